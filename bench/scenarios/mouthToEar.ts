// Scenario `mouth-to-ear`: voice latency as a person hears it, Chromium to Chromium, through
// Parley and, in the same run, over a direct RTCPeerConnection between the same two browsers
// (no server), so the difference is Parley's. Per loss level, both paths, one after the other
// (the order alternates from one level to the next):
//
//   parley: speaker Chromium (network namespace) -[lossy veth]-> Parley (in this process,
//           1 worker, on the veth's host end) -> listener Chromium (host)
//   direct: speaker Chromium (network namespace) -[lossy veth]-> listener Chromium (host)
//
// The speaker's fake microphone loops short voiced bursts (bench/audio/toneBursts.ts). Each
// burst's onset is detected twice, with the same AudioWorklet detector (mouthToEarPage.ts): in
// the speaker's page on its own capture track (what the encoder gets, after Chromium's voice
// processing), and in the listener's page on the decoded remote track. Both stamps are
// performance.timeOrigin + performance.now() of their page: one machine clock, two processes.
// mouth-to-ear = listener onset - speaker onset, per burst.
//
// Loss: an nftables netdev table on the egress hook of the namespace's end of the veth drops
// p% of the UDP datagrams the speaker's browser sends, at random (numgen): the uplink (speaker
// -> Parley, speaker -> listener), the same leg on both paths. TCP (signaling) is not dropped.
// At egress a dropped datagram has already left the socket (sendto succeeds), unlike the inet
// output hook, where it fails with EPERM and Chromium loses far fewer packets than asked
// (../shared/notes/real-services.md). The rule goes on once the path is connected (ICE and
// DTLS at 0%) and before the warm-up, so the jitter buffer has adapted when the window starts.
//
// The codecs are the same on both paths: Parley's client publishes Opus with voiceCodecOptions
// (mono, FEC, DTX, 20 ms, no NACK) and RED when the router and browser have it (both do by
// default); the direct path's answer is rewritten to ask the speaker's encoder for the same:
// RED first, the Opus fmtp Parley's speaker is given, NACK feedback removed. The report shows
// what each path's speaker was told and sent.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { loadConfig } from '../../server/config/loadConfig.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { createLogger } from '../../server/telemetry/logger.js';
import { CHROMIUM, launchChromium, loadClientLibrary } from '../../testkit/browsers/chromium.js';
import { trackPeerConnections } from '../../testkit/browsers/pageAudio.js';
import { createVethNamespace, netAdminUnavailable, type VethNamespace } from '../../testkit/netns.js';
import { freePortRange } from '../../testkit/ports.js';
import { burstTrain, writeBurstWav, type BurstTrain } from '../audio/toneBursts.js';
import { type LatencySummary, summarize } from '../metrics/stats.js';
import { MOUTH_TO_EAR_PAGE_SCRIPT } from './mouthToEarPage.js';
import { benchServerEnv } from '../targets/ParleyTarget.js';

const REPO_DIR = fileURLToPath(new URL('../..', import.meta.url));
const NFT = '/usr/sbin/nft';
const IP = '/usr/sbin/ip';

export type MouthToEarPath = 'parley' | 'direct';
export const MOUTH_TO_EAR_PATHS: readonly MouthToEarPath[] = ['parley', 'direct'];

export interface MouthToEarOptions {
	/** Uplink loss levels, percent. */
	lossPercents: number[];
	/** Measuring window per path and loss level, seconds. */
	durationS: number;
	/** Under loss, after connecting and before the window (the jitter buffer adapts), seconds. */
	warmUpS: number;
	paths: MouthToEarPath[];
	/**
	 * Both paths at once instead of one after the other: the speaker's one capture track is
	 * published through Parley and sent over the direct connection, the listener page hears
	 * both (a detector each), so every burst is timed on both paths under the same machine load.
	 */
	together: boolean;
	burstMs: number;
	/**
	 * Shortest gap between burst onsets (the gaps are this + 0..95 ms). A listener onset up to
	 * this - 50 ms after a burst is that burst's; later, the burst counts as missed. 700 leaves
	 * room for the 300-450 ms a jitter buffer reaches on a busy machine.
	 */
	minGapMs: number;
}

export const MOUTH_TO_EAR_DEFAULTS: MouthToEarOptions = { lossPercents: [0, 5, 20], durationS: 60, warmUpS: 4, paths: [...MOUTH_TO_EAR_PATHS], together: false, burstMs: 60, minGapMs: 700 };

/** The detector's settings (mouthToEarPage.ts). */
export const DETECTOR = { windowFrames: 48, thresholdRms: 0.02, rearmMs: 150 } as const;
/** How much shorter than the shortest gap the longest mouth-to-ear a burst may have is. */
const MATCH_MARGIN_MS = 50;
export function maxMouthToEarMs(minGapMs: number): number {
	return minGapMs - MATCH_MARGIN_MS;
}

/** The goals of issue 20. */
export const MOUTH_TO_EAR_GOALS = { addedP99Ms: 5, p99At5PctMs: 100 } as const;

/** Differences of the listener's inbound-rtp over the window (getStats). */
export interface ListenerStats {
	packetsReceived: number;
	packetsLost: number;
	/**
	 * The listener's packetsLost over the speaker's packetsSent (both Δ over the window): the
	 * share of the speaker's packets that never arrived. Not packetsLost / (packetsLost +
	 * packetsReceived): most of what Chromium sends here is padding-only probing packets on the
	 * audio SSRC, which mediasoup does not forward, but one lost upstream is a sequence gap at
	 * the listener all the same, so on the Parley path that ratio overstates the loss (41% at 5%).
	 */
	lossShare: number | null;
	/** Mean jitter buffer delay per emitted sample: ΔjitterBufferDelay / ΔjitterBufferEmittedCount. */
	jitterBufferMs: number | null;
	/** ΔjitterBufferTargetDelay / ΔjitterBufferEmittedCount, when the browser has it. */
	jitterBufferTargetMs: number | null;
	/** ΔjitterBufferMinimumDelay / ΔjitterBufferEmittedCount, when the browser has it. */
	jitterBufferMinimumMs: number | null;
	concealedSamples: number;
	totalSamplesReceived: number;
	concealedShare: number | null;
	concealmentEvents: number;
	fecPacketsReceived: number;
	codec: string | null;
}

export interface SpeakerStats {
	packetsSent: number;
	codec: string | null;
	/** The Opus fmtp of the speaker's remote description (what its encoder was asked for). */
	opusFmtp: string | null;
}

export interface MouthToEarCondition {
	path: MouthToEarPath;
	lossPercent: number;
	/** Measured at the same time as the other path, from the same bursts (options.together). */
	together: boolean;
	/** Onsets the speaker's page detected in the window (bursts sent). */
	burstsSent: number;
	/** Of those, heard by the listener within maxMouthToEarMs. */
	burstsDetected: number;
	/** Listener onsets that matched no burst (a burst heard twice, a click of concealment). */
	unmatchedOnsets: number;
	mouthToEarMs: LatencySummary | null;
	/** Per burst, in order: mouth-to-ear ms, null where the burst was missed. */
	samplesMs: (number | null)[];
	listener: ListenerStats | null;
	speaker: SpeakerStats | null;
	/** Median of the bursts' loudest 1 ms RMS at each end (the threshold is DETECTOR.thresholdRms). */
	onsetLevel: { speaker: number | null; listener: number | null };
	/** Median lag from an onset's mapped instant to its message reaching the page (ms): a sanity check of the clock mapping. */
	detectorLagMs: { speaker: number | null; listener: number | null };
	error: string | null;
}

export interface MouthToEarComparison {
	lossPercent: number;
	/** Parley minus direct (ms); null when either path is missing. */
	addedP50Ms: number | null;
	addedP99Ms: number | null;
	/** addedP99Ms <= MOUTH_TO_EAR_GOALS.addedP99Ms. */
	withinAddedGoal: boolean | null;
	/** Together only: per burst heard on both paths, Parley's latency minus direct's. */
	perBurstAddedMs: LatencySummary | null;
}

export interface MouthToEarResult {
	options: MouthToEarOptions;
	path: string;
	burst: { burstMs: number; fundamentalHz: number; gapsMs: string; loopMs: number };
	/** A burst not heard within this is missed (maxMouthToEarMs(options.minGapMs)). */
	maxMouthToEarMs: number;
	detector: typeof DETECTOR & { method: string };
	conditions: MouthToEarCondition[];
	comparisons: MouthToEarComparison[];
	goals: typeof MOUTH_TO_EAR_GOALS;
	/** Parley's p99 at 5% loss <= MOUTH_TO_EAR_GOALS.p99At5PctMs; null when 5% was not measured. */
	p99At5PctWithinGoal: boolean | null;
	loadAverage: { before: number[]; after: number[] };
}

/**
 * Pairs each speaker onset with the first listener onset after it, no more than `maxMs` later
 * (with maxMs below the shortest gap between bursts a listener onset can belong to one burst
 * only). Per speaker onset, in time order: the latency, or null (missed); and how
 * many listener onsets matched no burst.
 */
export function matchOnsets(speaker: readonly number[], listener: readonly number[], maxMs: number): { latenciesMs: (number | null)[]; unmatched: number } {
	const heard = [...listener].sort((a, b) => a - b);
	let next = 0;
	let matched = 0;
	const latenciesMs = [...speaker]
		.sort((a, b) => a - b)
		.map((s) => {
			while (next < heard.length && heard[next]! <= s) next++;
			if (next < heard.length && heard[next]! - s <= maxMs) {
				matched++;
				return heard[next++]! - s;
			}
			return null;
		});
	return { latenciesMs, unmatched: heard.length - matched };
}

type RawStats = { inbound: Record<string, number | string | { mimeType: string; sdpFmtpLine: string } | null> | null; outbound: Record<string, number | string | { mimeType: string; sdpFmtpLine: string } | null> | null; opusFmtp: string | null; at: number };

function codecLabel(s: RawStats['inbound']): string | null {
	const c = s?.codec as { mimeType: string; sdpFmtpLine: string } | null | undefined;
	return c ? `${c.mimeType}${c.sdpFmtpLine ? ` ${c.sdpFmtpLine}` : ''}` : null;
}

function listenerDelta(a: RawStats, b: RawStats, packetsSent: number | null): ListenerStats | null {
	if (!b.inbound) return null;
	const d = (k: string): number => Number(b.inbound?.[k] ?? 0) - Number(a.inbound?.[k] ?? 0);
	const has = (k: string): boolean => typeof b.inbound?.[k] === 'number';
	const emitted = d('jitterBufferEmittedCount');
	const perSampleMs = (k: string): number | null => (has(k) && emitted > 0 ? (d(k) / emitted) * 1000 : null);
	const received = d('packetsReceived');
	const lost = d('packetsLost');
	const total = d('totalSamplesReceived');
	return {
		packetsReceived: received,
		packetsLost: lost,
		lossShare: packetsSent ? lost / packetsSent : null,
		jitterBufferMs: perSampleMs('jitterBufferDelay'),
		jitterBufferTargetMs: perSampleMs('jitterBufferTargetDelay'),
		jitterBufferMinimumMs: perSampleMs('jitterBufferMinimumDelay'),
		concealedSamples: d('concealedSamples'),
		totalSamplesReceived: total,
		concealedShare: total > 0 ? d('concealedSamples') / total : null,
		concealmentEvents: d('concealmentEvents'),
		fecPacketsReceived: d('fecPacketsReceived'),
		codec: codecLabel(b.inbound),
	};
}

function speakerDelta(a: RawStats, b: RawStats): SpeakerStats | null {
	if (!b.outbound) return null;
	return { packetsSent: Number(b.outbound.packetsSent ?? 0) - Number(a.outbound?.packetsSent ?? 0), codec: codecLabel(b.outbound), opusFmtp: b.opusFmtp };
}

function median(values: number[]): number | null {
	return values.length ? summarize(values).p50 : null;
}

/**
 * The listener's answer as the direct path's speaker gets it: the same codec choice and Opus
 * parameters as Parley's speaker is given (`parleyOpusFmtp`, read from Parley's speaker page,
 * or the fmtp mediasoup-client writes for voiceCodecOptions when the Parley path has not run),
 * RED first when `red`, no NACK feedback (Parley's client publishes without it).
 */
export function rewriteDirectAnswer(sdp: string, { red, opusFmtp }: { red: boolean; opusFmtp: string }): string {
	const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
	const lines = sdp.split(eol);
	const pt = (name: string): string | undefined => lines.map((l) => new RegExp(`^a=rtpmap:(\\d+) ${name}/48000/2$`, 'i').exec(l)?.[1]).find((x) => x !== undefined);
	const opus = pt('opus');
	const redPt = pt('red');
	if (!opus) throw new Error('direct: the answer has no Opus');
	const [fmtp, ptime] = opusFmtp.split(' (a=ptime:');
	const out: string[] = [];
	for (const line of lines) {
		if (line.startsWith('m=audio ')) {
			const [m, port, proto, ...pts] = line.split(' ');
			const first = red && redPt ? [redPt, opus] : [opus];
			out.push([m, port, proto, ...first, ...pts.filter((p) => !first.includes(p))].join(' '));
			continue;
		}
		if (line.startsWith(`a=fmtp:${opus} `)) {
			out.push(`a=fmtp:${opus} ${fmtp}`);
			continue;
		}
		if (/^a=ptime:/.test(line)) continue;
		if (line === `a=rtcp-fb:${opus} nack` || (redPt && line === `a=rtcp-fb:${redPt} nack`)) continue;
		out.push(line);
	}
	if (ptime) {
		const at = out.findIndex((l) => l.startsWith(`a=fmtp:${opus} `));
		out.splice(at + 1, 0, `a=ptime:${ptime.replace(')', '')}`);
	}
	return out.join(eol);
}

/** What mediasoup-client writes into the send answer for voiceCodecOptions(true, true) and the
 * router's Opus (routerMediaCodecs): used only until Parley's speaker has shown its own. */
const FALLBACK_OPUS_FMTP = 'minptime=10;stereo=0;usedtx=1;useinbandfec=1 (a=ptime:20)';

/** Drops p% of the UDP datagrams leaving the namespace's end of the veth (0: no rule). */
function setUplinkLoss(ns: VethNamespace, device: string, percent: number): void {
	const table = 'parley_m2e';
	const rules = [`delete table netdev ${table}`];
	try {
		execFileSync(IP, ['netns', 'exec', ns.name, NFT, '-f', '-'], { input: rules.join('\n'), stdio: ['pipe', 'pipe', 'pipe'] });
	} catch {
		// No table yet.
	}
	if (percent <= 0) return;
	const ruleset = [`table netdev ${table} {`, '\tchain egress {', `\t\ttype filter hook egress device "${device}" priority 0; policy accept;`, `\t\tmeta l4proto udp numgen random mod 10000 < ${Math.round(percent * 100)} drop`, '\t}', '}', ''].join('\n');
	execFileSync(IP, ['netns', 'exec', ns.name, NFT, '-f', '-'], { input: ruleset, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** The namespace's veth device (its only one besides lo). */
function namespaceDevice(ns: VethNamespace): string {
	const out = execFileSync(IP, ['-n', ns.name, '-o', 'link', 'show'], { encoding: 'utf8' });
	const names = out.split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter((n): n is string => !!n && n !== 'lo');
	if (names.length !== 1) throw new Error(`mouth-to-ear: expected one device in ${ns.name}, found ${names.join(', ')}`);
	return names[0]!;
}

/** What Parley's speaker was told and sent, once its path has run: the direct path copies it. */
interface ParleySpeakerSettings {
	opusFmtp: string | null;
	codec: string | null;
}

interface Rig {
	ns: VethNamespace;
	device: string;
	server: ParleyServer;
	speakerBrowser: Browser;
	listenerBrowser: Browser;
	origin: string;
	key: Uint8Array;
}

async function openPage(browser: Browser, origin: string, name: string): Promise<Page> {
	const page = await browser.newPage();
	page.on('pageerror', (err) => console.error(`[m2e ${name}] page error: ${err.message}`));
	await page.addInitScript(trackPeerConnections);
	await page.addInitScript({ content: MOUTH_TO_EAR_PAGE_SCRIPT });
	await page.goto(`${origin}/`);
	return page;
}

async function parleyClient(rig: Rig, page: Page, name: string, channel: string): Promise<void> {
	await loadClientLibrary(page);
	const token = await mintAccessToken({ userId: `m2e-${name}`, displayName: name, channels: ['*'], grants: { canPublish: true, canSubscribe: true }, ttlS: 3600 }, rig.key);
	await page.evaluate(
		async ({ url, token, channel }) => {
			const w = window as unknown as Record<string, unknown> & { ParleyClient: new (o: unknown) => { connect(): Promise<void>; join(c: string): Promise<unknown> } };
			const client = new w.ParleyClient({ url, token });
			w.client = client;
			await client.connect();
			await client.join(channel);
		},
		{ url: `${rig.origin.replace('http:', 'ws:')}/ws`, token, channel },
	);
}

/**
 * Sets up the speaker's and the listener's page for `paths` (one, or both at once: then the
 * direct connection sends the track Parley's client published); resolves once each path's
 * remote track is at the listener.
 */
async function connectPaths(rig: Rig, paths: readonly MouthToEarPath[], n: number, parley: ParleySpeakerSettings): Promise<{ speaker: Page; listener: Page }> {
	const speaker = await openPage(rig.speakerBrowser, rig.origin, `${paths.join('+')}-speaker`);
	const listener = await openPage(rig.listenerBrowser, rig.origin, `${paths.join('+')}-listener`);
	if (paths.includes('parley')) {
		const channel = `m2e-${n}`;
		await parleyClient(rig, listener, 'listener', channel);
		await parleyClient(rig, speaker, 'speaker', channel);
		await speaker.evaluate('window.client.publishMicrophone()');
		await listener.waitForFunction('window.client.remoteStreams().size > 0', undefined, { timeout: 15_000 });
	}
	if (paths.includes('direct')) {
		// RED as Parley's speaker sent it; before that path has run, as its client would choose.
		const red = parley.codec !== null ? parley.codec.toLowerCase().startsWith('audio/red') : ((await speaker.evaluate("RTCRtpSender.getCapabilities('audio').codecs.some((c) => c.mimeType.toLowerCase() === 'audio/red')")) as boolean);
		const offer = (await speaker.evaluate(paths.includes('parley') ? 'window.__m2e.directOffer(window.client.microphoneTrack)' : 'window.__m2e.directOffer(null)')) as string;
		const answer = (await listener.evaluate((o) => (window as unknown as { __m2e: { directAnswer(o: string): Promise<string> } }).__m2e.directAnswer(o), offer)) as string;
		const rewritten = rewriteDirectAnswer(answer, { red, opusFmtp: parley.opusFmtp ?? FALLBACK_OPUS_FMTP });
		await speaker.evaluate(({ a, t }) => (window as unknown as { __m2e: { directAccept(a: string, t: number): Promise<void> } }).__m2e.directAccept(a, t), { a: rewritten, t: 15_000 });
		await listener.evaluate('window.__m2e.directConnected(15000)');
		await listener.waitForFunction('window.__m2e.remoteStream() !== null', undefined, { timeout: 15_000 });
	}
	return { speaker, listener };
}

function emptyCondition(path: MouthToEarPath, lossPercent: number, together: boolean, error: string | null = null): MouthToEarCondition {
	return { path, lossPercent, together, burstsSent: 0, burstsDetected: 0, unmatchedOnsets: 0, mouthToEarMs: null, samplesMs: [], listener: null, speaker: null, onsetLevel: { speaker: null, listener: null }, detectorLagMs: { speaker: null, listener: null }, error };
}

/** One loss level over `paths`: each path alone, or both at once from one capture track. */
async function measureCondition(rig: Rig, options: MouthToEarOptions, paths: readonly MouthToEarPath[], lossPercent: number, n: number, parley: ParleySpeakerSettings, log: (line: string) => void): Promise<MouthToEarCondition[]> {
	const together = paths.length > 1;
	setUplinkLoss(rig.ns, rig.device, 0);
	let pages: { speaker: Page; listener: Page } | undefined;
	try {
		pages = await connectPaths(rig, paths, n, parley);
		const { speaker, listener } = pages;
		const localStream = paths.includes('parley') ? 'new MediaStream([window.client.microphoneTrack])' : 'new MediaStream([window.__m2e.localTrack()])';
		const remoteStream = (p: MouthToEarPath) => (p === 'parley' ? '[...window.client.remoteStreams().values()][0]' : 'window.__m2e.remoteStream()');
		const detector = JSON.stringify(DETECTOR);
		await speaker.evaluate(`window.__m2e.startDetector('speaker', ${localStream}, ${detector})`);
		for (const p of paths) await listener.evaluate(`window.__m2e.startDetector('${p}', ${remoteStream(p)}, ${detector})`);
		setUplinkLoss(rig.ns, rig.device, lossPercent);
		await new Promise((r) => setTimeout(r, options.warmUpS * 1000));
		const stats = (page: Page) => Promise.all(paths.map((p) => page.evaluate(`window.__m2e.stats('${p}')`) as Promise<RawStats>));
		const [s0, l0] = await Promise.all([stats(speaker), stats(listener)]);
		const windowStart = Date.now();
		await new Promise((r) => setTimeout(r, options.durationS * 1000));
		const windowEnd = Date.now();
		// Bursts in the window's last maxMs are left out: their sound may still be on its way.
		const maxMs = maxMouthToEarMs(options.minGapMs);
		await new Promise((r) => setTimeout(r, maxMs + 50));
		const [s1, l1] = await Promise.all([stats(speaker), stats(listener)]);
		setUplinkLoss(rig.ns, rig.device, 0);
		type Onsets = { onsets: number[]; levels: number[]; arrivalLagMs: number[] };
		const so = (await speaker.evaluate("window.__m2e.onsets('speaker')")) as Onsets;
		const sent = so.onsets.filter((t) => t >= windowStart && t < windowEnd - maxMs);
		const results: MouthToEarCondition[] = [];
		for (const [i, p] of paths.entries()) {
			const lo = (await listener.evaluate(`window.__m2e.onsets('${p}')`)) as Onsets;
			// What the listener heard of those bursts: from the first sent onset to the last one's reach.
			const heard = sent.length ? lo.onsets.filter((t) => t > sent[0]! && t <= sent[sent.length - 1]! + maxMs) : [];
			const { latenciesMs, unmatched } = matchOnsets(sent, heard, maxMs);
			const found = latenciesMs.filter((x): x is number => x !== null);
			const result: MouthToEarCondition = {
				...emptyCondition(p, lossPercent, together),
				burstsSent: sent.length,
				burstsDetected: found.length,
				unmatchedOnsets: unmatched,
				mouthToEarMs: found.length ? summarize(found) : null,
				samplesMs: latenciesMs.map((x) => (x === null ? null : Math.round(x * 100) / 100)),
				speaker: speakerDelta(s0[i]!, s1[i]!),
				listener: listenerDelta(l0[i]!, l1[i]!, speakerDelta(s0[i]!, s1[i]!)?.packetsSent ?? null),
				onsetLevel: { speaker: median(so.levels), listener: median(lo.levels) },
				detectorLagMs: { speaker: median(so.arrivalLagMs), listener: median(lo.arrivalLagMs) },
			};
			const m = result.mouthToEarMs;
			log(`mouth-to-ear ${p}${together ? ' (together)' : ''} ${lossPercent}%: ${result.burstsDetected}/${result.burstsSent} bursts, p50 ${m?.p50.toFixed(1) ?? '-'} ms, p99 ${m?.p99.toFixed(1) ?? '-'} ms, max ${m?.max.toFixed(1) ?? '-'} ms; jitter buffer ${result.listener?.jitterBufferMs?.toFixed(1) ?? '-'} ms; listener saw ${((result.listener?.lossShare ?? NaN) * 100).toFixed(1)}% lost`);
			results.push(result);
		}
		return results;
	} catch (err) {
		log(`mouth-to-ear ${paths.join('+')} ${lossPercent}% failed: ${(err as Error).message}`);
		return paths.map((p) => emptyCondition(p, lossPercent, together, (err as Error).message.split('\n')[0]!));
	} finally {
		setUplinkLoss(rig.ns, rig.device, 0);
		if (pages) {
			await pages.speaker.close().catch(() => {});
			await pages.listener.close().catch(() => {});
		}
	}
}

export async function runMouthToEar(options: MouthToEarOptions, log: (line: string) => void): Promise<MouthToEarResult> {
	const why = netAdminUnavailable();
	if (why) throw new Error(`mouth-to-ear: ${why}`);
	const loadBefore = os.loadavg().map((x) => Math.round(x * 100) / 100);
	// The pages load the library bundle the server serves: built from the sources first.
	execFileSync(process.execPath, ['--import', 'tsx', 'client/build.ts'], { cwd: REPO_DIR, stdio: 'pipe' });
	const dataDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-m2e-'));
	const train: BurstTrain = burstTrain({ burstMs: options.burstMs, minGapMs: options.minGapMs });
	const wav = path.join(dataDir, 'bursts.wav');
	writeBurstWav(wav, train);
	const cleanup: (() => Promise<unknown> | unknown)[] = [() => rmSync(dataDir, { recursive: true, force: true })];
	const conditions: MouthToEarCondition[] = [];
	try {
		const ns = createVethNamespace();
		cleanup.unshift(() => ns.close());
		const jwtSecret = `bench-m2e-${process.pid}-0123456789abcdef0123456789`;
		const rtcPort = await freePortRange(2);
		const config = await loadConfig({
			env: {
				...benchServerEnv(dataDir),
				PARLEY_AUTH_JWT_SECRET: jwtSecret,
				PARLEY_HTTP_HOST: ns.hostAddress,
				PARLEY_HTTP_PORT: '0',
				PARLEY_MEDIA_WORKERS: '1',
				PARLEY_MEDIA_LISTEN_IP: ns.hostAddress,
				PARLEY_MEDIA_RTC_PORT: String(rtcPort),
			},
		});
		const server = await ParleyServer.create(config, createLogger(config.logLevel));
		cleanup.unshift(() => server.shutdown('mouth-to-ear bench done'));
		const origin = `http://${ns.hostAddress}:${server.http.port}`;
		// getUserMedia and AudioWorklet need a secure context; the listener's candidates must be
		// addresses, not mDNS names, for the speaker in the namespace to reach them directly.
		const extraArgs = [`--unsafely-treat-insecure-origin-as-secure=${origin}`, '--disable-features=WebRtcHideLocalIpsWithMdns'];
		const speakerBrowser = await launchChromium({ executablePath: ns.wrapper(CHROMIUM), fakeMicWav: wav, extraArgs });
		cleanup.unshift(() => speakerBrowser.close());
		const listenerBrowser = await launchChromium({ extraArgs });
		cleanup.unshift(() => listenerBrowser.close());
		const rig: Rig = { ns, device: namespaceDevice(ns), server, speakerBrowser, listenerBrowser, origin, key: new TextEncoder().encode(jwtSecret) };
		const parley: ParleySpeakerSettings = { opusFmtp: null, codec: null };
		let n = 0;
		for (const [i, loss] of options.lossPercents.entries()) {
			// Alternating which path goes first spreads a drift of the machine's load over both.
			const order = i % 2 === 0 ? options.paths : [...options.paths].reverse();
			const runs = options.together ? [options.paths] : order.map((p) => [p]);
			for (const paths of runs) {
				for (const c of await measureCondition(rig, options, paths, loss, ++n, parley, log)) {
					if (c.path === 'parley' && c.speaker) {
						parley.opusFmtp = c.speaker.opusFmtp ?? parley.opusFmtp;
						parley.codec = c.speaker.codec ?? parley.codec;
					}
					conditions.push(c);
				}
			}
		}
	} finally {
		for (const step of cleanup) await Promise.resolve(step()).catch(() => {});
	}
	const condition = (p: MouthToEarPath, loss: number) => conditions.find((c) => c.path === p && c.lossPercent === loss);
	const byPath = (p: MouthToEarPath, loss: number) => condition(p, loss)?.mouthToEarMs;
	const comparisons = options.lossPercents.map((loss): MouthToEarComparison => {
		const a = byPath('parley', loss);
		const b = byPath('direct', loss);
		const addedP99Ms = a && b ? a.p99 - b.p99 : null;
		const pa = condition('parley', loss);
		const pb = condition('direct', loss);
		const paired: number[] = [];
		if (pa?.together && pb?.together) pa.samplesMs.forEach((x, i) => x !== null && typeof pb.samplesMs[i] === 'number' && paired.push(x - pb.samplesMs[i]!));
		return { lossPercent: loss, addedP50Ms: a && b ? a.p50 - b.p50 : null, addedP99Ms, withinAddedGoal: addedP99Ms === null ? null : addedP99Ms <= MOUTH_TO_EAR_GOALS.addedP99Ms, perBurstAddedMs: paired.length ? summarize(paired) : null };
	});
	const at5 = byPath('parley', 5);
	return {
		options,
		path: 'speaker Chromium (network namespace, veth; UDP it sends dropped at random at the veth egress) -> Parley (in the bench process, 1 worker) -> listener Chromium; direct: the same speaker -> the same listener over one RTCPeerConnection',
		burst: { burstMs: train.burstMs, fundamentalHz: 200, gapsMs: `${options.minGapMs}-${options.minGapMs + 95}`, loopMs: train.loopMs },
		maxMouthToEarMs: maxMouthToEarMs(options.minGapMs),
		detector: { ...DETECTOR, method: 'AudioWorklet, RMS over a sliding 1 ms window (48 samples at 48 kHz) crossing the threshold after 150 ms below it; sample-accurate, mapped to performance.timeOrigin + performance.now() with AudioContext.getOutputTimestamp()' },
		conditions,
		comparisons,
		goals: MOUTH_TO_EAR_GOALS,
		p99At5PctWithinGoal: at5 ? at5.p99 <= MOUTH_TO_EAR_GOALS.p99At5PctMs : null,
		loadAverage: { before: loadBefore, after: os.loadavg().map((x) => Math.round(x * 100) / 100) },
	};
}
