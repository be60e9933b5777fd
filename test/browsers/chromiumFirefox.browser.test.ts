// A call between the two browsers Parley is tested with: Debian's Chromium (playwright-core,
// a 440 Hz WAV as its fake microphone) and Debian's Firefox ESR (puppeteer-core over WebDriver
// BiDi, whose fake microphone is a fixed 1 kHz tone, with a throwaway PulseAudio so its
// AudioContext runs), both running the browser library (client/dist/parley-client.js) against
// a real Parley server. Each page measures what it hears with a Web Audio AnalyserNode
// (measureStreamInPage). One launch of each browser for the whole file.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser as ChromiumBrowser, Page as ChromiumPage } from 'playwright-core';
import type { Browser as FirefoxBrowser, Page as FirefoxPage } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { FIREFOX_FAKE_TONE_HZ, launchFirefox, mediaAddressForFirefox } from '../../testkit/browsers/firefox.js';
import { makeTempFolder, removeTempFolder } from '../../testkit/services/daemon.js';
import { startPulseAudio, type TestPulseAudio } from '../../testkit/services/pulseaudio.js';
import { decodeFileToMono, dominantFrequency, probeDurationMs } from '../helpers/audio.js';
import { launchBrowser, measureStreamInPage, type Spectrum, trackPeerConnections } from '../helpers/browser.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { writeToneWav } from '../helpers/wav.js';

const SECRET = 'two-browsers-secret-0123456789-abcdefghij';
const CHROMIUM_TONE_HZ = 440;
/** "The right tone": the strongest analyser bin within 3 % of what the speaker plays. */
const TONE_TOLERANCE = 0.03;

/** What the test needs of a page in either browser. Both libraries evaluate a string as a
 * script and a function with one serializable argument the same way. */
interface Tab {
	name: string;
	userId: string;
	run<T>(body: string): Promise<T>;
	/** The page as the shared in-page helpers take it (they only call evaluate(fn, arg)). */
	measurable: ChromiumPage;
	errors: string[];
}

describe('Chromium and Firefox in one voice channel', () => {
	let server: ParleyServer;
	let pulse: TestPulseAudio;
	let chromium: ChromiumBrowser;
	let firefox: FirefoxBrowser;
	let chrome: Tab;
	let fox: Tab;
	const dir = makeTempFolder('two-browsers');
	const key = new TextEncoder().encode(SECRET);
	let base: string;

	const token = (userId: string) => mintAccessToken({ userId, displayName: userId, channels: ['room'], grants: { canPublish: true, canSubscribe: true, canRecord: true }, ttlS: 600 }, key);

	/** Loads the library bundle as a module script and connects `window.client`. */
	const CONNECT = (tokenValue: string) => `
		const s = document.createElement('script');
		s.type = 'module';
		s.textContent = "import { ParleyClient, listMicrophones } from '/parley-client.js'; window.ParleyClient = ParleyClient; window.listMicrophones = listMicrophones;";
		document.head.append(s);
		while (!('ParleyClient' in window)) await new Promise((r) => setTimeout(r, 20));
		window.client = new window.ParleyClient({ url: 'ws://127.0.0.1:${server.http.port}/ws', token: ${JSON.stringify(tokenValue)} });
		window.peerMutes = [];
		window.client.on('peerMuteChanged', (peerId, muted) => window.peerMutes.push(muted));
		await window.client.connect();
		await window.client.join('room');
		await window.client.publishMicrophone();
		return window.client.peerId;`;

	async function chromiumTab(): Promise<Tab> {
		const page = await chromium.newPage();
		const errors: string[] = [];
		page.on('pageerror', (err) => errors.push(err.message));
		await page.goto(`${base}/`);
		const run = <T,>(body: string) => page.evaluate(`(async () => { ${body} })()`) as Promise<T>;
		await run(CONNECT(await token('chromium-user')));
		return { name: 'Chromium', userId: 'chromium-user', run, measurable: page, errors };
	}

	async function firefoxTab(): Promise<Tab> {
		const page: FirefoxPage = await firefox.newPage();
		const errors: string[] = [];
		page.on('pageerror', (err) => errors.push(err instanceof Error ? err.message : String(err)));
		await page.evaluateOnNewDocument(trackPeerConnections);
		await page.goto(`${base}/`);
		const run = <T,>(body: string) => page.evaluate(`(async () => { ${body} })()`) as Promise<T>;
		await run(CONNECT(await token('firefox-user')));
		return { name: 'Firefox', userId: 'firefox-user', run, measurable: page as unknown as ChromiumPage, errors };
	}

	/** What `listener` hears from `speaker` over ~1 s (waits up to 15 s for the stream). */
	async function hear(listener: Tab, speaker: Tab): Promise<Spectrum> {
		const speakerPeerId = await speaker.run<string>('return window.client.peerId;');
		await listener.run(`
			const deadline = Date.now() + 15000;
			while (!window.client.remoteStreams().has(${JSON.stringify(speakerPeerId)})) {
				if (Date.now() > deadline) throw new Error('no stream from ${speaker.name}');
				await new Promise((r) => setTimeout(r, 50));
			}
			window.__spectrumStream = window.client.remoteStreams().get(${JSON.stringify(speakerPeerId)});`);
		return measureStreamInPage(listener.measurable, 20);
	}

	const near = (measuredHz: number, toneHz: number) => Math.abs(measuredHz - toneHz) / toneHz;

	/**
	 * hear(), again until something is heard (for up to 10 s): a remote stream exists as soon
	 * as its consumer does, and on a loaded machine the first packets, or Firefox's first
	 * decoded audio, can come a second or more later.
	 */
	async function hearSound(listener: Tab, speaker: Tab): Promise<Spectrum> {
		const deadline = Date.now() + 10_000;
		for (;;) {
			const heard = await hear(listener, speaker);
			if (heard.levelDb > -70 || Date.now() > deadline) return heard;
		}
	}

	beforeAll(async () => {
		const wav = path.join(dir, `${CHROMIUM_TONE_HZ}.wav`);
		writeToneWav(wav, CHROMIUM_TONE_HZ, 10);
		[server, pulse] = await Promise.all([ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_MEDIA_LISTEN_IP: mediaAddressForFirefox() }), testLogger()), startPulseAudio()]);
		base = `http://127.0.0.1:${server.http.port}`;
		[chromium, firefox] = await Promise.all([launchBrowser(wav), launchFirefox({ env: pulse.env() })]);
		[chrome, fox] = await Promise.all([chromiumTab(), firefoxTab()]);
	}, 60_000);

	afterAll(async () => {
		await Promise.all([chromium?.close(), firefox?.close()]);
		await server?.shutdown('test end');
		await pulse?.close();
		removeTempFolder(dir);
	});

	it('each hears the other’s tone', async () => {
		const chromeHears = await hearSound(chrome, fox);
		const foxHears = await hearSound(fox, chrome);
		console.log(`Chromium hears ${chromeHears.frequencyHz.toFixed(1)} Hz at ${chromeHears.levelDb.toFixed(1)} dB, Firefox hears ${foxHears.frequencyHz.toFixed(1)} Hz at ${foxHears.levelDb.toFixed(1)} dB`);
		expect(near(chromeHears.frequencyHz, FIREFOX_FAKE_TONE_HZ)).toBeLessThan(TONE_TOLERANCE);
		expect(near(foxHears.frequencyHz, CHROMIUM_TONE_HZ)).toBeLessThan(TONE_TOLERANCE);
		expect(chromeHears.levelDb).toBeGreaterThan(-60);
		expect(foxHears.levelDb).toBeGreaterThan(-60);
		// What Firefox sends: Opus with in-band FEC, as the library asks; it offers no RED. (Firefox
		// throws on reading a closed connection's description: the open ones only.)
		const sdp = await fox.run<string>('return window.__pcs.filter((pc) => pc.signalingState !== "closed").map((pc) => pc.localDescription?.sdp ?? "").join("\\n");');
		expect(sdp).toMatch(/a=rtpmap:\d+ opus\/48000\/2/);
		expect(sdp).toMatch(/a=fmtp:\d+ .*useinbandfec=1/);
		expect(sdp).not.toMatch(/a=rtpmap:\d+ red\/48000/);
		// Connection quality from each receiver's getStats: the standard fields peerQuality() reads
		// must be filled in both browsers.
		for (const [listener, speaker] of [[chrome, fox], [fox, chrome]] as const) {
			const speakerPeerId = await speaker.run<string>('return window.client.peerId;');
			const quality = await listener.run<{ lossPercent: number | null; jitterMs: number | null; roundTripMs: number | null }>(`return await window.client.peerQuality(${JSON.stringify(speakerPeerId)});`);
			console.log(`${listener.name} quality of ${speaker.name}: ${JSON.stringify(quality)}`);
			expect(quality.lossPercent, listener.name).not.toBeNull();
			expect(quality.jitterMs, listener.name).not.toBeNull();
			expect(quality.roundTripMs, listener.name).not.toBeNull();
		}
	}, 30_000);

	it('Firefox mutes: Chromium is told and hears silence; unmute brings the tone back; switching microphone keeps the producer', async () => {
		const before = await hearSound(chrome, fox);
		await fox.run('await window.client.mute();');
		await chrome.run(`while (!window.peerMutes.includes(true)) await new Promise((r) => setTimeout(r, 20));`);
		await new Promise((r) => setTimeout(r, 300));
		const muted = await hear(chrome, fox);
		console.log(`Chromium hears Firefox at ${before.levelDb.toFixed(1)} dB, muted ${muted.levelDb} dB`);
		expect(muted.levelDb).toBeLessThan(before.levelDb - 30);
		await fox.run('await window.client.unmute();');
		await chrome.run(`while (window.peerMutes.at(-1) !== false) await new Promise((r) => setTimeout(r, 20));`);
		await new Promise((r) => setTimeout(r, 300));
		const unmuted = await hearSound(chrome, fox);
		expect(near(unmuted.frequencyHz, FIREFOX_FAKE_TONE_HZ)).toBeLessThan(TONE_TOLERANCE);
		expect(unmuted.levelDb).toBeGreaterThan(muted.levelDb + 30);

		// Device selection: Firefox lists its (fake) microphone and switches to it mid-call on
		// the same producer; Chromium still hears the tone.
		const switched = await fox.run<{ devices: number; before: string; after: string }>(`
			const devices = await window.listMicrophones();
			const before = window.client.producerId;
			await window.client.switchMicrophone(devices[0].deviceId);
			return { devices: devices.length, before, after: window.client.producerId };`);
		expect(switched.devices).toBeGreaterThan(0);
		expect(switched.after).toBe(switched.before);
		expect(near((await hearSound(chrome, fox)).frequencyHz, FIREFOX_FAKE_TONE_HZ)).toBeLessThan(TONE_TOLERANCE);
	}, 30_000);

	it('Firefox reconnects after the server drops its WebSocket and is heard again', async () => {
		const peerBefore = await fox.run<string>(`
			window.states = [];
			window.client.on('connectionState', (s) => window.states.push(s));
			return window.client.peerId;`);
		expect(server.signaling.dropUser(fox.userId)).toBe(1);
		const after = await fox.run<{ states: string[]; peerId: string }>(`
			const c = window.client;
			const deadline = Date.now() + 15000;
			while (!((c.state === 'connected' || c.state === 'reconnected') && c.peerId && c.peerId !== ${JSON.stringify(peerBefore)} && c.producerId)) {
				if (Date.now() > deadline) throw new Error('not back: ' + c.state + ' ' + window.states.join(','));
				await new Promise((r) => setTimeout(r, 50));
			}
			return { states: window.states, peerId: c.peerId };`);
		expect(after.states).toContain('reconnecting');
		expect(after.states).toContain('reconnected');
		expect(near((await hearSound(chrome, fox)).frequencyHz, FIREFOX_FAKE_TONE_HZ)).toBeLessThan(TONE_TOLERANCE);
		expect(near((await hearSound(fox, chrome)).frequencyHz, CHROMIUM_TONE_HZ)).toBeLessThan(TONE_TOLERANCE);
	}, 30_000);

	it('a recording of the Firefox producer decodes to the recorded length and tone', async () => {
		const recorded = await fox.run<{ id: string; wallMs: number }>(`
			const startedAt = performance.now();
			const id = await window.client.startRecording();
			await new Promise((r) => setTimeout(r, 2500));
			const wallMs = performance.now() - startedAt;
			await window.client.stopRecording();
			return { id, wallMs };`);
		const auth = { authorization: `Bearer ${await token(fox.userId)}` };
		let message: VoiceMessageInfo | undefined;
		for (let i = 0; i < 200 && message?.status !== 'ready'; i++) {
			message = (await (await fetch(`${base}/voice/messages/${recorded.id}`, { headers: auth })).json()) as VoiceMessageInfo;
			if (message.status !== 'ready') await new Promise((r) => setTimeout(r, 50));
		}
		expect(message?.status).toBe('ready');
		const file = path.join(dir, 'firefox.ogg');
		writeFileSync(file, Buffer.from(await (await fetch(`${base}${message!.audioUrl}`, { headers: auth })).arrayBuffer()));
		expect(Math.abs(probeDurationMs(file) - recorded.wallMs)).toBeLessThan(300);
		const pcm = decodeFileToMono(file);
		console.log(`Firefox recording: ${Math.round(recorded.wallMs)} ms recorded, ffprobe ${probeDurationMs(file)} ms, decoded ${Math.round(pcm.length / 48)} ms, ${dominantFrequency(pcm.subarray(4800))} Hz`);
		expect(Math.abs(pcm.length / 48 - recorded.wallMs)).toBeLessThan(300);
		expect(near(dominantFrequency(pcm.subarray(4800)), FIREFOX_FAKE_TONE_HZ)).toBeLessThan(TONE_TOLERANCE);
		expect([...chrome.errors, ...fox.errors]).toEqual([]);
	}, 30_000);
});
