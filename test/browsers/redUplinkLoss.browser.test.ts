// Opus RED through a lossy uplink, in real browsers: a Chromium publisher (a 440 Hz WAV as its
// fake microphone, RED distance 2) sits behind a router namespace that drops 20% of its UDP
// datagrams to the media port at random (testkit/lossyLink.ts); a Chromium listener (which
// negotiates RED) and a Firefox ESR listener (which has no RED: the worker hands it the
// primary Opus frames, rebuilding the ones lost upstream from later packets' copies) sit on
// the host side without loss. Both must hear the tone continuously, and a recording of the
// producer (publishing with NACK as well) must hold every frame any copy of reached the server.
//
// Chromium 156 sends RED with one redundant block (distance 1) whatever the answer's fmtp
// lists; the field trial WebRTC-Audio-Red-For-Opus/Enabled-2/ makes it two (see
// redNegotiation.browser.test.ts, which checks both on the packets).
//
// The continuity criterion, exactly. A DirectTransport consumer with RED inside the router
// sees every packet that reached the server; from their RED blocks the test knows which
// frames no copy of arrived (the RED ceiling as realised on this run: at d=2 a frame is lost
// only when its packet and the next two are, p^3 = 0.8% of frames at 20% loss). Let N be the
// number of such frames and M the longest run of them. Each listener's decoded tone is
// band-passed at 440 Hz and its RMS kept per 128-sample render quantum (AudioWorklet). Opus
// conceals a lost frame of a steady tone well, but not perfectly: the tone dips 6 dB or more
// below its median for a few milliseconds (calibrated: the same 20% loss without RED gave ~50
// such dips in 10 s, ~17% of samples concealed, and no dropout 20 dB down). So, per listener:
// - no dip (6 dB down) and no dropout (20 dB down) longer than (M + 1) frames of 20 ms plus
//   one quantum: one frame of slack beyond what the ceiling predicts;
// - at most N + 8 dips, and at most N + 8 concealment events in the receiver's getStats, with
//   concealed samples within 2 percentage points of N's share of frames (8 and 2 points of
//   slack for jitter-buffer hiccups on a loaded 2-core machine);
// - the strongest frequency within 3% of 440 Hz.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser as ChromiumBrowser, Page as ChromiumPage } from 'playwright-core';
import type { Browser as FirefoxBrowser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { CHROMIUM, launchChromium, loadClientLibrary } from '../../testkit/browsers/chromium.js';
import { launchFirefox } from '../../testkit/browsers/firefox.js';
import { measureStreamInPage, trackPeerConnections, type Spectrum } from '../../testkit/browsers/pageAudio.js';
import { envelopeGaps, startToneEnvelope, stopToneEnvelope, type EnvelopeGaps } from '../../testkit/browsers/toneEnvelope.js';
import { createLossyLink, type LossyLink } from '../../testkit/lossyLink.js';
import { netAdminUnavailable } from '../../testkit/netns.js';
import { RtpTap } from '../../testkit/rtpTap.js';
import { makeTempFolder, removeTempFolder } from '../../testkit/services/daemon.js';
import { startPulseAudio, type TestPulseAudio } from '../../testkit/services/pulseaudio.js';
import { writeToneWav } from '../../testkit/wav.js';
import { decodeFileToMono, dominantFrequency, probeDurationMs } from '../helpers/audio.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';

const REPO_DIR = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = 'red-uplink-loss-secret-0123456789-abcdefgh';
const TONE_HZ = 440;
const LOSS_PERCENT = 20;
const FRAME_MS = 20;
const MEASURE_MS = 10_000;
const RECORD_MS = 5_000;
/** "The right tone": the strongest analyser bin within 3 % of what the publisher plays. */
const TONE_TOLERANCE = 0.03;
/** Chromium's RED distance 2 (its default is 1). */
const RED_DISTANCE_2 = '--force-fieldtrials=WebRTC-Audio-Red-For-Opus/Enabled-2/';

const skip = netAdminUnavailable();

/** A page in either browser: both libraries evaluate a string as a script and a function with one serializable argument the same way. */
interface Tab {
	name: string;
	run<T>(body: string): Promise<T>;
	/** The page as the shared in-page helpers take it. */
	measurable: ChromiumPage;
	errors: string[];
}

interface Listened {
	/** Dropouts: the tone 20 dB down. */
	dropouts: EnvelopeGaps;
	/** Dips: the tone 6 dB down, what a concealed (lost, not rebuilt) frame of it looks like. */
	dips: EnvelopeGaps;
	spectrum: Spectrum;
	receiver: ReceiverCounts;
}

/** The listener's receiver (getStats inbound-rtp, audio), summed over its peer connections. */
interface ReceiverCounts {
	packetsReceived: number;
	packetsLost: number;
	/** Chromium counts RED's copies of frames it already has here. */
	packetsDiscarded: number;
	totalSamplesReceived: number;
	concealedSamples: number;
	concealmentEvents: number;
	/** The inbound stream's codec as getStats names it. */
	codecs: string[];
}

const RECEIVER_COUNTS = `
	const sum = { packetsReceived: 0, packetsLost: 0, packetsDiscarded: 0, totalSamplesReceived: 0, concealedSamples: 0, concealmentEvents: 0, codecs: [] };
	for (const pc of window.__pcs.filter((pc) => pc.connectionState !== 'closed')) {
		const report = await pc.getStats();
		report.forEach((s) => {
			if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
			for (const key of Object.keys(sum)) if (key !== 'codecs') sum[key] += s[key] ?? 0;
			const codec = s.codecId && report.get(s.codecId);
			if (codec) sum.codecs.push(codec.mimeType);
		});
	}
	return sum;`;

function receiverDelta(after: ReceiverCounts, before: ReceiverCounts): ReceiverCounts {
	const d = { ...after };
	for (const key of ['packetsReceived', 'packetsLost', 'packetsDiscarded', 'totalSamplesReceived', 'concealedSamples', 'concealmentEvents'] as const) d[key] = after[key] - before[key];
	return d;
}

describe.skipIf(skip)('Opus RED through 20% random uplink loss (Chromium publisher, Chromium and Firefox listeners)', () => {
	let link: LossyLink;
	let pulse: TestPulseAudio;
	/** Media defaults (RED on, NACK off): what users get. */
	let server: ParleyServer;
	/** The same with NACK offered, for the recording. */
	let nackServer: ParleyServer;
	let publisherBrowser: ChromiumBrowser;
	let listenerBrowser: ChromiumBrowser;
	let firefox: FirefoxBrowser;
	const dir = makeTempFolder('red-uplink-loss');
	const key = new TextEncoder().encode(SECRET);

	const origin = () => `http://${link.hostAddress}:${server.http.port}`;
	const wsUrl = (s: ParleyServer) => `ws://${link.hostAddress}:${s.http.port}/ws`;
	const token = (userId: string, grants: { canPublish?: boolean; canSubscribe?: boolean; canRecord?: boolean }) => mintAccessToken({ userId, displayName: userId, channels: ['*'], grants, ttlS: 600 }, key);

	/** `window.client`, connected to `target` and joined to `channel`; the library comes from the page's origin. */
	const CONNECT = (url: string, tokenValue: string, channel: string) => `
		if (!('ParleyClient' in window)) {
			const s = document.createElement('script');
			s.type = 'module';
			s.textContent = "import { ParleyClient } from '/parley-client.js'; window.ParleyClient = ParleyClient;";
			document.head.append(s);
			while (!('ParleyClient' in window)) await new Promise((r) => setTimeout(r, 20));
		}
		window.client = new window.ParleyClient({ url: ${JSON.stringify(url)}, token: ${JSON.stringify(tokenValue)} });
		window.errors = [];
		window.client.on('error', (e) => window.errors.push(e.code + ': ' + e.message));
		await window.client.connect();
		await window.client.join(${JSON.stringify(channel)});
		return window.client.peerId;`;

	async function chromiumTab(browser: ChromiumBrowser, name: string): Promise<Tab> {
		const page = await browser.newPage();
		const errors: string[] = [];
		page.on('pageerror', (err) => errors.push(err.message));
		await page.addInitScript(trackPeerConnections);
		await page.goto(`${origin()}/`);
		await loadClientLibrary(page);
		return { name, run: <T,>(body: string) => page.evaluate(`(async () => { ${body} })()`) as Promise<T>, measurable: page, errors };
	}

	async function firefoxTab(name: string): Promise<Tab> {
		const page = await firefox.newPage();
		const errors: string[] = [];
		page.on('pageerror', (err) => errors.push(err instanceof Error ? err.message : String(err)));
		await page.evaluateOnNewDocument(trackPeerConnections);
		await page.goto(`${origin()}/`);
		return { name, run: <T,>(body: string) => page.evaluate(`(async () => { ${body} })()`) as Promise<T>, measurable: page as unknown as ChromiumPage, errors };
	}

	/** Leaves the remote stream of `peerId` in the page as __envelopeStream and __spectrumStream (waits up to 15 s). */
	async function pickStream(listener: Tab, peerId: string): Promise<void> {
		await listener.run(`
			const deadline = Date.now() + 15000;
			while (!window.client.remoteStreams().has(${JSON.stringify(peerId)})) {
				if (Date.now() > deadline) throw new Error('no stream from the publisher');
				await new Promise((r) => setTimeout(r, 50));
			}
			window.__envelopeStream = window.__spectrumStream = window.client.remoteStreams().get(${JSON.stringify(peerId)});`);
	}

	/** Waits until the listener hears something (first packets and decoding can lag the stream on a loaded machine). */
	async function hearSound(listener: Tab, peerId: string): Promise<Spectrum> {
		await pickStream(listener, peerId);
		const deadline = Date.now() + 15_000;
		for (;;) {
			const heard = await measureStreamInPage(listener.measurable, 10);
			if (heard.levelDb > -70 || Date.now() > deadline) return heard;
		}
	}

	/** The producer's server-side object (the only producer in `channel`). */
	function producerIn(s: ParleyServer, channel: string) {
		const peers = [...(s.channels.get(channel)?.peers.values() ?? [])];
		const producers = peers.flatMap((p) => [...p.producers.values()]);
		expect(producers).toHaveLength(1);
		return { producer: producers[0]!, router: s.channels.get(channel)!.router };
	}

	beforeAll(async () => {
		// The pages load the library bundle the server serves: built from the sources first.
		execFileSync(process.execPath, ['--import', 'tsx', 'client/build.ts'], { cwd: REPO_DIR, stdio: 'pipe' });
		link = createLossyLink();
		const env = { PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_HTTP_HOST: link.hostAddress, PARLEY_MEDIA_LISTEN_IP: link.hostAddress };
		[server, nackServer, pulse] = await Promise.all([
			testConfig(env).then((c) => ParleyServer.create(c, testLogger())),
			testConfig({ ...env, PARLEY_MEDIA_OPUS_NACK: 'true' }).then((c) => ParleyServer.create(c, testLogger())),
			startPulseAudio(),
		]);
		const wav = path.join(dir, `${TONE_HZ}.wav`);
		// A whole number of periods: the looped file has no phase jump.
		writeToneWav(wav, TONE_HZ, 10);
		// getUserMedia needs a secure context; the publisher's page is plain HTTP on the veth address.
		const secure = `--unsafely-treat-insecure-origin-as-secure=${origin()}`;
		[publisherBrowser, listenerBrowser, firefox] = await Promise.all([
			launchChromium({ executablePath: link.wrapper(CHROMIUM), fakeMicWav: wav, extraArgs: [secure, RED_DISTANCE_2] }),
			launchChromium({ extraArgs: [secure] }),
			// AudioWorklet (the envelope) exists in secure contexts only; the pages are plain HTTP on the veth address.
			launchFirefox({ env: pulse.env(), extraPrefs: { 'dom.securecontext.allowlist': link.hostAddress } }),
		]);
	}, 90_000);

	afterAll(async () => {
		await Promise.all([publisherBrowser?.close(), listenerBrowser?.close(), firefox?.close()]);
		await Promise.all([server?.shutdown('test end'), nackServer?.shutdown('test end')]);
		await pulse?.close();
		link?.close();
		removeTempFolder(dir);
	});

	it('both listeners hear the tone without gaps beyond what RED d=2 cannot rebuild', async () => {
		const chrome = await chromiumTab(listenerBrowser, 'Chromium listener');
		const fox = await firefoxTab('Firefox listener');
		await chrome.run(CONNECT(wsUrl(server), await token('chromium-listener', { canSubscribe: true }), 'live'));
		await fox.run(CONNECT(wsUrl(server), await token('firefox-listener', { canSubscribe: true }), 'live'));
		const publisher = await chromiumTab(publisherBrowser, 'publisher');
		const publisherPeerId = await publisher.run<string>(CONNECT(wsUrl(server), await token('publisher', { canPublish: true }), 'live'));
		await publisher.run('await window.client.publishMicrophone();');
		expect(await publisher.run<string[]>('return window.client.producerCodecs;')).toEqual(['audio/red', 'audio/opus']);

		const { producer, router } = producerIn(server, 'live');
		expect(producer.rtpParameters.codecs.map((c) => c.mimeType)).toEqual(['audio/red', 'audio/opus']);
		for (const listener of [chrome, fox]) expect((await hearSound(listener, publisherPeerId)).levelDb, listener.name).toBeGreaterThan(-60);
		// What each listener negotiated: Chromium RED, Firefox plain Opus.
		expect(await chrome.run<string[][]>(`return window.client.peerCodecs(${JSON.stringify(publisherPeerId)});`)).toEqual([['audio/red', 'audio/opus']]);
		expect(await fox.run<string[][]>(`return window.client.peerCodecs(${JSON.stringify(publisherPeerId)});`)).toEqual([['audio/opus']]);

		const redTap = await RtpTap.open(router, producer.id, 'red');
		const opusTap = await RtpTap.open(router, producer.id, 'opus');
		// Padding-only packets (Chromium's bandwidth probes on the audio SSRC) take sequence
		// numbers among the frames, with the timestamp of the last frame sent, lost or not: on
		// a loaded machine hundreds in 10 s. Counted to tell what the forwarder stepped over.
		let probes = 0;
		producer.on('trace', (trace) => {
			if (trace.type === 'rtp' && Number((trace.info as { rtpPacket?: { payloadSize?: unknown } }).rtpPacket?.payloadSize) === 0) probes++;
		});
		await producer.enableTraceEvent(['rtp']);
		try {
			link.setLoss({ uplinkPercent: LOSS_PERCENT, udpPorts: String(server.config.media.rtcPort) });
			// Let the jitter buffers meet the loss before measuring.
			await new Promise((r) => setTimeout(r, 1000));
			redTap.reset();
			opusTap.reset();
			probes = 0;
			const before = link.counters();
			const receiversBefore = await Promise.all([chrome, fox].map((l) => l.run<ReceiverCounts>(RECEIVER_COUNTS)));
			await Promise.all([chrome, fox].map((l) => startToneEnvelope(l.measurable, TONE_HZ)));
			await new Promise((r) => setTimeout(r, MEASURE_MS));
			const envelopes = await Promise.all([chrome, fox].map((l) => stopToneEnvelope(l.measurable)));
			const receiversAfter = await Promise.all([chrome, fox].map((l) => l.run<ReceiverCounts>(RECEIVER_COUNTS)));
			const after = link.counters();
			link.setLoss();
			const heard: Listened[] = [];
			for (const [i, listener] of [chrome, fox].entries()) {
				heard.push({
					dropouts: envelopeGaps(envelopes[i]!, { thresholdRatio: 0.1 }),
					dips: envelopeGaps(envelopes[i]!, { thresholdRatio: 0.5 }),
					spectrum: await measureStreamInPage(listener.measurable, 20),
					receiver: receiverDelta(receiversAfter[i]!, receiversBefore[i]!),
				});
			}

			const dropped = after.uplinkDropped - before.uplinkDropped;
			const passed = after.uplinkPassed - before.uplinkPassed;
			const coverage = redTap.redCoverage();
			const opus = opusTap.timestampCoverage();
			console.log(
				`uplink: ${dropped} of ${dropped + passed} datagrams dropped (${((100 * dropped) / (dropped + passed)).toFixed(1)}%), ${probes} padding-only probes arrived; ` +
					`at the server (RED tap): ${coverage.frames} frames, ${coverage.primaries} primaries, ${coverage.fromRedundancy} from redundancy only, ${coverage.missing} missing (longest run ${coverage.longestMissingRun}), blocks per packet ${JSON.stringify(coverage.distances)}; ` +
					`Opus tap (what Firefox gets): ${opus.present} of ${opus.frames} frames, sequence numbers spanning ${opus.seqSpan}`,
			);
			for (const [i, listener] of [chrome, fox].entries()) {
				const { dropouts, dips, spectrum, receiver } = heard[i]!;
				console.log(
					`${listener.name}: ${spectrum.frequencyHz.toFixed(1)} Hz at ${spectrum.levelDb.toFixed(1)} dB; over ${Math.round(dips.analysedMs)} ms: longest dropout (-20 dB) ${dropouts.longestGapMs.toFixed(1)} ms, ` +
						`${dips.gapCount} dips (-6 dB), longest ${dips.longestGapMs.toFixed(1)} ms ${JSON.stringify(dips.gapsMs)}; receiver ${JSON.stringify(receiver)}`,
				);
			}

			// The loss was applied, and it hit the packets: about one in five primaries never came.
			expect(dropped / (dropped + passed)).toBeGreaterThan(0.14);
			expect(dropped / (dropped + passed)).toBeLessThan(0.26);
			expect(1 - coverage.primaries / coverage.frames).toBeGreaterThan(0.12);
			expect(coverage.frames).toBeGreaterThan((0.8 * MEASURE_MS) / FRAME_MS);
			// Distance 2: nearly every packet carries the two frames before it (the first ones after
			// a pause carry fewer).
			expect(coverage.distances[2] ?? 0).toBeGreaterThan(0.95 * redTap.packets.length);
			expect(redTap.malformed + opusTap.malformed).toBe(0);
			// The Opus-only consumer (Firefox's stream) is plain Opus with every frame the RED
			// packets brought: the worker rebuilt the lost primaries from the copies.
			expect(opusTap.packets.every((p) => p.redOffsets === null)).toBe(true);
			// (By timestamp: the frames a listener can play, whatever their sequence numbers.)
			// Chromium's padding-only probes take sequence numbers among the frames (hundreds in
			// 10 s on a loaded machine) with the timestamp of the last frame sent: a frame lost
			// just before one used to go unrebuilt (the probe looked like the next packet), 49
			// frames against 13 missing at the server in one CI run. The forwarder now steps over
			// probes. Allowance: 2 frames at the window's edges (the taps start and stop at
			// slightly different packets). Without the rebuild this listener would miss the ~20%
			// lost upstream (over 100 frames).
			expect(opus.frames - opus.present).toBeLessThanOrEqual(coverage.missing + 2);

			for (const [i, listener] of [chrome, fox].entries()) {
				const { dropouts, dips, spectrum, receiver } = heard[i]!;
				const allowedGapMs = (coverage.longestMissingRun + 1) * FRAME_MS + (1000 * envelopes[i]!.quantumFrames) / envelopes[i]!.sampleRate;
				expect(dips.analysedMs, listener.name).toBeGreaterThan(0.9 * (MEASURE_MS - 300));
				expect(dropouts.longestGapMs, listener.name).toBeLessThanOrEqual(allowedGapMs);
				expect(dips.longestGapMs, listener.name).toBeLessThanOrEqual(allowedGapMs);
				// Each frame no copy of reached the server can be one dip; 8 more for jitter-buffer
				// hiccups on a loaded machine. (Without RED the same loss gave ~50 dips in 10 s.)
				expect(dips.gapCount, listener.name).toBeLessThanOrEqual(coverage.missing + 8);
				// The receiver agrees: concealment (lost frames played as a guess) within 2 points
				// of the missing share (without RED: ~17% of samples).
				expect(receiver.concealmentEvents, listener.name).toBeLessThanOrEqual(coverage.missing + 8);
				expect(receiver.concealedSamples / receiver.totalSamplesReceived, listener.name).toBeLessThan(coverage.missing / coverage.frames + 0.02);
				expect(Math.abs(spectrum.frequencyHz - TONE_HZ) / TONE_HZ, listener.name).toBeLessThan(TONE_TOLERANCE);
			}
			// RED reached the Chromium listener: its jitter buffer discards the copies of frames it
			// already has (two per packet at d=2, fewer where a packet was lost).
			expect(heard[0]!.receiver.packetsDiscarded).toBeGreaterThan(heard[0]!.receiver.packetsReceived);
			expect([...chrome.errors, ...fox.errors, ...publisher.errors]).toEqual([]);
			expect(await publisher.run<string[]>('return window.errors;')).toEqual([]);
		} finally {
			link.setLoss();
			redTap.close();
			opusTap.close();
			await publisher.measurable.close();
			await chrome.measurable.close();
			await fox.measurable.close();
		}
	}, 120_000);

	it('a recording of that producer through the same loss (RED + NACK) decodes to its length, missing no frame that reached the server', async () => {
		const publisher = await chromiumTab(publisherBrowser, 'publisher');
		const userId = 'recording-publisher';
		const publisherToken = await token(userId, { canPublish: true, canRecord: true });
		await publisher.run(CONNECT(wsUrl(nackServer), publisherToken, 'recorded'));
		await publisher.run('await window.client.publishMicrophone({ opusNack: true });');
		expect(await publisher.run<string[]>('return window.client.producerCodecs;')).toEqual(['audio/red', 'audio/opus']);
		const { producer, router } = producerIn(nackServer, 'recorded');
		// NACK negotiated for the Opus inside RED (the server offers it; the library accepts it).
		expect(producer.rtpParameters.codecs.find((c) => c.mimeType === 'audio/opus')?.rtcpFeedback?.some((f) => f.type === 'nack' && !f.parameter)).toBe(true);
		// What reached the server in any copy (RED blocks, NACK retransmissions): the best a recording can hold.
		const tap = await RtpTap.open(router, producer.id, 'red');
		try {
			// Let the tone settle in the encoder, then lose 20% from before the first recorded packet.
			await new Promise((r) => setTimeout(r, 500));
			link.setLoss({ uplinkPercent: LOSS_PERCENT, udpPorts: String(nackServer.config.media.rtcPort) });
			tap.reset();
			const recorded = await publisher.run<{ id: string; wallMs: number }>(`
				const startedAt = performance.now();
				const id = await window.client.startRecording();
				await new Promise((r) => setTimeout(r, ${RECORD_MS}));
				const wallMs = performance.now() - startedAt;
				await window.client.stopRecording();
				return { id, wallMs };`);
			const counters = link.counters();
			link.setLoss();
			const coverage = tap.redCoverage();

			const auth = { authorization: `Bearer ${publisherToken}` };
			const base = `http://${link.hostAddress}:${nackServer.http.port}`;
			let message: VoiceMessageInfo | undefined;
			for (let i = 0; i < 200 && message?.status !== 'ready'; i++) {
				message = (await (await fetch(`${base}/voice/messages/${recorded.id}`, { headers: auth })).json()) as VoiceMessageInfo;
				if (message.status !== 'ready') await new Promise((r) => setTimeout(r, 50));
			}
			expect(message?.status).toBe('ready');
			const file = path.join(dir, 'recorded.ogg');
			writeFileSync(file, Buffer.from(await (await fetch(`${base}${message!.audioUrl}`, { headers: auth })).arrayBuffer()));
			const pcm = decodeFileToMono(file);
			const decodedMs = pcm.length / 48;
			const counts = (await nackServer.voiceStore.get(recorded.id))!.recording!;
			console.log(
				`recording through ${((100 * counters.uplinkDropped) / (counters.uplinkDropped + counters.uplinkPassed)).toFixed(1)}% uplink loss: ${Math.round(recorded.wallMs)} ms recorded, ` +
					`ffprobe ${probeDurationMs(file)} ms, decoded ${Math.round(decodedMs)} ms, ${dominantFrequency(pcm.subarray(4800))} Hz; counts ${JSON.stringify(counts)}; ` +
					`at the server: ${coverage.frames} frames, ${coverage.fromRedundancy} from redundancy only, ${coverage.missing} that no copy (nor retransmission) of reached it`,
			);
			expect(counters.uplinkDropped / (counters.uplinkDropped + counters.uplinkPassed)).toBeGreaterThan(0.14);
			expect(Math.abs(decodedMs - recorded.wallMs)).toBeLessThan(300);
			expect(Math.abs(probeDurationMs(file) - decodedMs)).toBeLessThanOrEqual(40);
			expect(Math.abs(dominantFrequency(pcm.subarray(4800)) - TONE_HZ) / TONE_HZ).toBeLessThan(TONE_TOLERANCE);
			// Every frame any copy of reached the server is in the file: the ones lost on the way in
			// came from RED copies or NACK retransmissions. At d=2 with NACK that is all of them
			// as a rule (0 missing); a frame whose three packets and retransmission were all lost
			// cannot be in it.
			// A copy that reached the server only after the repair buffer stopped waiting for it
			// (500 ms, or 64 packets behind) is counted late and cannot be in the file: seen in CI
			// (2 missing, 5 late), never alone.
			expect(counts.packetsMissing).toBeLessThanOrEqual(coverage.missing + counts.late);
			expect(counts.gaps).toBeLessThanOrEqual(coverage.missing + counts.late);
			expect(counts.framesFromRed ?? 0).toBeGreaterThan(0);
			expect(counts.redInvalid ?? 0).toBe(0);
			expect(publisher.errors).toEqual([]);
		} finally {
			link.setLoss();
			tap.close();
			await publisher.measurable.close();
		}
	}, 90_000);
});
