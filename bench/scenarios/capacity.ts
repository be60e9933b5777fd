// Scenario 2, capacity: how many listeners one worker core feeds. P publishers (real Opus,
// 50 packets/s each, on independent phases) in one room; L listeners each consume all P, so
// consumers C = P x L (one per speaker per listener, as in a voice channel; LiveKit counts
// "down-tracks" the same way). C grows step by step until p99 added latency > 5 ms, added
// loss > 0.1 %, or the worker's core saturates.
//
// The bench cannot read 100k+ packets/s itself without becoming the bottleneck, so only a
// sample of listeners is read (their packets give latency and loss); the others send to
// sockets nobody reads, whose kernel drop counters tally every arrival (udpDrops.ts). The
// worker is pinned to the last core and the bench to the others; both CPU shares come from
// /proc. Raw mediasoup (the baseline) and Parley are measured alternately at each step.
// Publishers and sampled listeners run on a thread of their own (LoadThread.ts), as clients on
// other machines would: pauses of the event loop Parley's JavaScript runs on are not counted
// as forwarding latency, only what they cost the worker.
// With `red`, publishers send Opus in RED (RFC 2198, the previous frames repeated: larger
// packets), to listeners that have audio/red (forwarded as is) or to listeners without it
// (the worker strips each packet to its primary block), which is what RED costs a server.
import { encodeOpusFrames } from '../audio/opusEncoding.js';
import { speechPcm } from '../audio/speech.js';
import { allCores, canPin, pin } from '../metrics/affinity.js';
import { CpuMeter, waitForQuietMachine } from '../metrics/cpu.js';
import { type EventLoopStall, EventLoopProbe, maxStallIn } from '../metrics/eventLoop.js';
import { processRssBytes, settledOwnHeapBytes } from '../metrics/memory.js';
import type { StatsRound } from '../../server/metrics/metrics.js';
import { cdfPoints, type LatencySummary, summarize } from '../metrics/stats.js';
import { totalUdpDrops, UdpSink } from '../metrics/udpDrops.js';
import { LoadThread } from '../peers/LoadThread.js';
import type { types as ms } from 'mediasoup';
import { type ForwardingTarget, LOOPBACK, OPUS_PAYLOAD_TYPE, RED_PAYLOAD_TYPE, type Room } from '../targets/ForwardingTarget.js';
import { ParleyTarget } from '../targets/ParleyTarget.js';
import { RawMediasoupTarget } from '../targets/RawMediasoupTarget.js';
import { probeRedSupport } from '../targets/redSupport.js';

export interface CapacityLimits {
	p99Ms: number;
	lossRate: number;
	/** Worker CPU share of one core counted as saturated. */
	cpuShare: number;
}

export type CapacityTarget = 'raw-mediasoup' | 'parley';

export interface CapacityOptions {
	publishers: number;
	/** Consumer counts to try, ascending (rounded to multiples of `publishers`). */
	steps: number[];
	/** After the first failing step, try this many midpoints between it and the last pass. */
	refineSteps: number;
	sampledListeners: number;
	warmupMs: number;
	windowMs: number;
	/** Listener transports: plain RTP, or SRTP (the per-packet work a WebRTC listener costs). */
	transport: 'plain' | 'srtp' | 'webrtc';
	srtpCryptoSuite: ms.SrtpCryptoSuite;
	/** Publishers send RED with `distance` previous frames; listeners with audio/red get it as
	 * is, the others (listenersWithRed false) get plain Opus stripped by the worker. */
	red: { distance: number; listenersWithRed: boolean } | null;
	targets: CapacityTarget[];
	limits: CapacityLimits;
	bitrateBps: number;
	pin: boolean;
	/** A step during which other processes used more than this (cores) is measured again. */
	maxOtherCpu: number;
	contentionRetries: number;
	/** Before each window, wait up to this long for other processes to quieten down... */
	quietWaitMs: number;
	/** ... and up to this long in all, over the whole ramp. */
	quietBudgetMs: number;
}

export const CAPACITY_DEFAULTS: CapacityOptions = {
	publishers: 10,
	steps: [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000],
	refineSteps: 1,
	sampledListeners: 4,
	warmupMs: 1000,
	windowMs: 4000,
	transport: 'plain',
	srtpCryptoSuite: 'AEAD_AES_256_GCM',
	red: null,
	targets: ['raw-mediasoup', 'parley'],
	limits: { p99Ms: 5, lossRate: 0.001, cpuShare: 0.9 },
	bitrateBps: 32_000,
	pin: true,
	maxOtherCpu: 0.25,
	contentionRetries: 2,
	quietWaitMs: 20_000,
	quietBudgetMs: 45_000,
};

export interface CapacityStep {
	target: 'raw-mediasoup' | 'parley';
	consumers: number;
	listeners: number;
	/** Packets forwarded per second (all listeners) during the window. */
	forwardedPps: number;
	latencyMs: LatencySummary;
	/** p99 of each 1 s slice of the window, and their median: the figure the limit is checked
	 * against, so one stall caused by another process on a shared machine does not decide a step. */
	p99PerSecondMs: number[];
	p99MedianMs: number;
	/** 1 - arrived / expected over every listener (sampled and sinks). */
	lossRate: number;
	sampledLossRate: number;
	/** Worker process CPU, as a share of one core. */
	workerCpu: number;
	/** forwardedPps / workerCpu: what a fully busy core would forward at this load. */
	ppsPerCore: number;
	/** The bench process (load generator, sampled listeners, and Parley's own JS thread when the target is Parley in-process). */
	benchCpu: number;
	/** Parley's JS process when it runs apart from the bench (WebRTC ramp), else 0. */
	serverCpu: number;
	coreBusy: number[];
	/** CPU used by everything else on the machine at normal priority (cores busy - worker -
	 * bench - server - niced), in cores. Other processes on a shared machine skew a step;
	 * such steps are retried. */
	otherCpu: number;
	/** CPU of niced background processes (they yield to the bench; reported, not held against a step). */
	nicedCpu: number;
	/** Measurements of this step thrown away because the machine was busy with other work. */
	retriedForContention: number;
	/** Still disturbed after the retries: a failure here is inconclusive and does not end the ramp. */
	contended: boolean;
	/** Time spent waiting for other processes to quieten before the window. */
	quietWaitMs: number;
	pass: boolean;
	failed: string[];
	latencyCdf: [number, number][];
	/** Each 1 s slice of the window: latency beside what the server process did in it. */
	seconds: SliceFigures[];
	/** The slice with the highest p99: a listener hears it even when the median hides it. */
	worstSecond: WorstSecond | null;
	/** 100 ms slices of the window (p99, max, event-loop stall): the time-resolved chart. */
	timeline: SliceFigures[];
	/** Resident memory with this step's room built and warmed up, and before any room. */
	memory: StepMemory | null;
}

export interface SliceFigures {
	/** Start of the slice, from the window start. */
	atMs: number;
	samples: number;
	p99Ms: number;
	maxMs: number;
	/** Longest stall of the bench's main event loop in the slice (Parley's JS runs on it for
	 * the plain and SRTP ramps, mediasoup's Node side for raw mediasoup; the clients do not). */
	eventLoopMaxMs: number;
	/** Parley's RTP stats rounds that started / finished in the slice. */
	statsRoundsStarted: number;
	statsRoundsFinished: number;
	/** Rounds running at some point of the slice (started before its end, not finished before its start). */
	statsRoundsRunning: number;
}

export interface WorstSecond extends SliceFigures {
	/** Stats rounds overlapping the second (times from the window start; null: still running). */
	statsRounds: { startMs: number; durationMs: number | null; streams: number }[];
}

export interface StepMemory {
	/** The Node process that runs Parley's JS: for in-process targets the bench process's V8
	 * heap in use + external after a full GC (its RSS keeps freed pages), for Parley as a child
	 * process its RSS. */
	nodeRssBytes: number;
	nodeMeasure?: 'heap+external' | 'rss';
	nodeIdleRssBytes: number;
	/** The mediasoup worker(s), summed. */
	workerRssBytes: number;
	workerIdleRssBytes: number;
	/** Peers in the room: listeners + publishers. */
	peers: number;
}

/** Memory per 1,000 consumers and per 1,000 peers (step RSS minus idle, scaled), from the largest step measured. */
export interface MemoryCost {
	atConsumers: number;
	peers: number;
	nodeMiBPer1000Consumers: number;
	workerMiBPer1000Consumers: number;
	nodeMiBPer1000Peers: number;
	workerMiBPer1000Peers: number;
}

export interface CapacityTargetSummary {
	target: 'raw-mediasoup' | 'parley';
	/** Largest consumer count that passed every limit (per worker = per core here). */
	maxConsumersPerCore: number | null;
	/** Steps whose failure was inconclusive because other processes kept the machine busy. */
	contendedFailures: number[];
	/**
	 * The CPU-bound capacity: consumers one fully busy worker core would feed, from the
	 * worker's measured CPU per forwarded packet (median over steps without loss that kept it
	 * at least 20% busy). Less sensitive to a shared machine than the latency knee, which other
	 * processes move; it says nothing about latency.
	 */
	cpuBoundConsumersPerCore: number | null;
	/** The worker's CPU time per forwarded packet (microseconds), median over the same steps. */
	workerUsPerPacket: number | null;
	ppsPerCoreAtMax: number | null;
	firstFailure: { consumers: number; failed: string[] } | null;
	memory: MemoryCost | null;
}

export interface CapacityResult {
	path: string;
	options: CapacityOptions;
	pinned: boolean;
	/** The bench's own latency floor: publishers straight to sampled sockets, no server. */
	benchFloorLatencyMs: LatencySummary;
	steps: CapacityStep[];
	summary: CapacityTargetSummary[];
	/** Parley's max consumers as a share of the baseline's, measured in the same run (null
	 * unless both ramps ended in a conclusive failure right above their last pass). */
	parleyToBaseline: number | null;
	/** The same for the CPU-bound capacity (worker CPU per forwarded packet). */
	parleyToBaselineCpu: number | null;
	server: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DRAIN_MS = 200;
const LISTENERS_PER_SINK = 100;

export async function runCapacity(options: CapacityOptions, log: (line: string) => void = () => {}): Promise<CapacityResult> {
	const o = options;
	const pcm = speechPcm();
	// 30 s of speech per publisher, each starting elsewhere in the text.
	const frames = Array.from({ length: o.publishers }, (_, i) => encodeOpusFrames(pcm, 1500, { bitrateBps: o.bitrateBps, inbandFec: true, packetLossPercent: 5 }, i * 97));
	const pinned = o.pin && canPin();
	const cores = allCores();
	const workerCore = cores[cores.length - 1]!;
	const benchCores = cores.slice(0, -1);
	const targets = new Map<string, ForwardingTarget>();
	if (o.red) {
		// A worker without the RED patch aborts on a RED producer or discards RED: no step
		// would be a measurement, so the ramp fails here rather than report zeros.
		const support = await probeRedSupport();
		log(`capacity: RED through this worker: ${support.detail}`);
		if (!support.forwardsRed) throw new Error(`RED capacity ramp not measured: this mediasoup worker does not forward RED (${support.detail}); build it with scripts/mediasoup's RED patch`);
	}
	let load: LoadThread | undefined;
	try {
		if (pinned) pin(process.pid, benchCores);
		if (o.targets.includes('raw-mediasoup')) targets.set('raw-mediasoup', await RawMediasoupTarget.start());
		if (o.targets.includes('parley')) targets.set('parley', await ParleyTarget.start({ workers: 1, opusNack: false }));
		if (pinned) for (const t of targets.values()) for (const pid of t.workerPids()) pin(pid, [workerCore]);

		// Started after pinning: the thread inherits the bench's cores.
		const clients = await LoadThread.start();
		load = clients;
		const benchFloorLatencyMs = await measureBenchFloor(clients, o, frames);
		log(`capacity: bench latency floor (no server) p50 ${benchFloorLatencyMs.p50.toFixed(2)} ms, p99 ${benchFloorLatencyMs.p99.toFixed(2)} ms`);

		// Idle memory, both targets started and no room yet. Steps grow, so memory an allocator
		// keeps after a room closes is reused by the next (larger) one rather than added to it.
		const nodeIdle = settledOwnHeapBytes();
		const idle = new Map([...targets].map(([name, t]) => [name, { nodeRssBytes: nodeIdle, workerRssBytes: t.workerPids().reduce((n, pid) => n + processRssBytes(pid), 0) }]));
		const budget = { remainingMs: o.quietBudgetMs };
		const { steps, summary } = await rampCapacity([...targets.keys()] as CapacityStep['target'][], o, (name, consumers, index) => measureStep(targets.get(name)!, clients, o, frames, consumers, index, budget, idle.get(name)!), log);
		// A ratio only when both knees are conclusive: a real failure right above the last pass.
		const conclusive = (t: string): number | null => {
			const s = summary.find((x) => x.target === t);
			if (!s || s.maxConsumersPerCore === null || !s.firstFailure) return null;
			return s.contendedFailures.some((c) => c < s.firstFailure!.consumers && c > s.maxConsumersPerCore!) ? null : s.maxConsumersPerCore;
		};
		const raw = conclusive('raw-mediasoup');
		const parley = conclusive('parley');
		const parleyTarget = targets.get('parley') as ParleyTarget | undefined;
		return {
			path: `${
				o.transport === 'plain'
					? 'plain RTP (PlainTransport) listeners'
					: `SRTP listeners (PlainTransport with ${o.srtpCryptoSuite}; no DTLS/ICE): the per-packet encryption WebRTC listeners cost`
			}${o.red ? `; publishers send RED d=${o.red.distance}${o.red.listenersWithRed ? ', listeners have audio/red (forwarded as is)' : ', listeners without audio/red (the worker strips RED to plain Opus)'}` : ''}`,
			options: o,
			pinned,
			benchFloorLatencyMs,
			steps,
			summary,
			parleyToBaseline: raw && parley ? parley / raw : null,
			parleyToBaselineCpu: cpuRatio(summary),
			server: parleyTarget ? { media: parleyTarget.config.media, metrics: (parleyTarget.config as Record<string, unknown>).metrics } : {},
		};
	} finally {
		await load?.close();
		for (const t of targets.values()) await t.close();
		if (pinned) pin(process.pid, cores);
	}
}

/** Steps up the consumer count per target until it fails, then narrows the knee. Shared by
 * the plain/SRTP ramp and the WebRTC one. */
export async function rampCapacity(
	names: CapacityStep['target'][],
	o: Pick<CapacityOptions, 'steps' | 'publishers' | 'refineSteps' | 'contentionRetries' | 'maxOtherCpu' | 'transport' | 'limits'>,
	measure: (name: CapacityStep['target'], consumers: number, stepIndex: number) => Promise<CapacityStep>,
	log: (line: string) => void,
): Promise<{ steps: CapacityStep[]; summary: CapacityTargetSummary[] }> {
	const steps: CapacityStep[] = [];
	const passed = new Map<string, number>();
	const failedAt = new Map<string, number>();
	let index = 0;
	const runStep = async (name: CapacityStep['target'], consumers: number): Promise<void> => {
		let step = await measure(name, consumers, index++);
		for (let retry = 1; retry <= o.contentionRetries && step.otherCpu > o.maxOtherCpu; retry++) {
			log(`capacity ${name} ${consumers}: other processes used ${(step.otherCpu * 100).toFixed(0)}% of a core; measuring again`);
			await sleep(1000 * retry);
			const again = await measure(name, consumers, index++);
			// Keep the least disturbed measurement.
			step = { ...(again.otherCpu < step.otherCpu ? again : step), retriedForContention: retry };
		}
		// A failure below saturation must repeat: a server limit does, a stall caused by
		// something else on a shared machine mostly does not. The better measurement is kept.
		if (!step.pass && step.workerCpu < o.limits.cpuShare && o.contentionRetries > 0) {
			log(`capacity ${name} ${consumers}: failed (${step.failed.join(', ')}); measuring again to confirm`);
			const again = await measure(name, consumers, index++);
			if (again.pass || again.p99MedianMs < step.p99MedianMs) step = { ...again, retriedForContention: step.retriedForContention + 1 };
		}
		// A saturated worker core is a conclusive failure whatever else ran: it cannot do more.
		step.contended = !step.pass && step.otherCpu > o.maxOtherCpu && step.workerCpu < o.limits.cpuShare;
		steps.push(step);
		log(
			`capacity ${o.transport} ${name.padEnd(13)} ${String(step.consumers).padStart(5)} consumers: p99 ${step.p99MedianMs.toFixed(2)} ms (whole window ${step.latencyMs.p99.toFixed(2)}), loss ${(step.lossRate * 100).toFixed(3)}%, worker ${(step.workerCpu * 100).toFixed(0)}%, bench ${(step.benchCpu * 100).toFixed(0)}%, other ${(step.otherCpu * 100).toFixed(0)}% ${step.pass ? 'ok' : `${step.contended ? 'INCONCLUSIVE (machine busy)' : 'FAIL'} ${step.failed.join(', ')}`}`,
		);
		if (step.pass) passed.set(name, Math.max(passed.get(name) ?? 0, step.consumers));
		else if (!step.contended) failedAt.set(name, Math.min(failedAt.get(name) ?? Infinity, step.consumers));
	};
	for (const wanted of o.steps) {
		const consumers = Math.max(o.publishers, Math.round(wanted / o.publishers) * o.publishers);
		const live = names.filter((k) => !failedAt.has(k));
		if (live.length === 0) break;
		for (const name of live) await runStep(name, consumers);
	}
	// Narrow the knee: midpoints between the last pass and the first failure.
	for (let r = 0; r < o.refineSteps; r++) {
		for (const name of names) {
			const lo = passed.get(name) ?? 0;
			const hi = failedAt.get(name);
			if (hi === undefined) continue;
			const mid = Math.round((lo + hi) / 2 / o.publishers) * o.publishers;
			if (mid <= lo || mid >= hi) continue;
			await runStep(name, mid);
		}
	}
	const summary = names.map((name): CapacityTargetSummary => {
		const max = passed.get(name) ?? null;
		const atMax = steps.find((s) => s.target === name && s.consumers === max && s.pass);
		const fail = steps.filter((s) => s.target === name && !s.pass && !s.contended).sort((a, b) => a.consumers - b.consumers)[0];
		return {
			target: name,
			maxConsumersPerCore: max,
			contendedFailures: steps.filter((s) => s.target === name && s.contended).map((s) => s.consumers),
			cpuBoundConsumersPerCore: cpuBound(steps.filter((s) => s.target === name)),
			workerUsPerPacket: usPerPacket(steps.filter((s) => s.target === name)),
			ppsPerCoreAtMax: atMax ? Math.round(atMax.ppsPerCore) : null,
			firstFailure: fail ? { consumers: fail.consumers, failed: fail.failed } : null,
			memory: memoryCost(steps.filter((s) => s.target === name)),
		};
	});
	return { steps, summary };
}

const MIB = 1024 * 1024;

export function memoryCost(steps: CapacityStep[]): MemoryCost | null {
	const largest = steps.filter((s) => s.memory && s.consumers > 0).sort((a, b) => b.consumers - a.consumers)[0];
	if (!largest?.memory) return null;
	const m = largest.memory;
	const node = Math.max(0, m.nodeRssBytes - m.nodeIdleRssBytes) / MIB;
	const worker = Math.max(0, m.workerRssBytes - m.workerIdleRssBytes) / MIB;
	const r = (v: number) => Math.round(v * 100) / 100;
	return {
		atConsumers: largest.consumers,
		peers: m.peers,
		nodeMiBPer1000Consumers: r((node * 1000) / largest.consumers),
		workerMiBPer1000Consumers: r((worker * 1000) / largest.consumers),
		nodeMiBPer1000Peers: r((node * 1000) / m.peers),
		workerMiBPer1000Peers: r((worker * 1000) / m.peers),
	};
}

function cpuRatio(summary: CapacityTargetSummary[]): number | null {
	const raw = summary.find((s) => s.target === 'raw-mediasoup')?.cpuBoundConsumersPerCore;
	const parley = summary.find((s) => s.target === 'parley')?.cpuBoundConsumersPerCore;
	return raw && parley ? parley / raw : null;
}

/** Steps that say what a packet costs the worker: busy enough to measure, no loss. */
const cpuSteps = (steps: CapacityStep[]): CapacityStep[] => steps.filter((s) => s.workerCpu >= 0.2 && s.lossRate <= 0.001 && s.consumers > 0);

function cpuBound(steps: CapacityStep[]): number | null {
	const perCore = cpuSteps(steps).map((s) => s.ppsPerCore / (s.forwardedPps / s.consumers));
	return perCore.length ? Math.round(median(perCore)) : null;
}

function usPerPacket(steps: CapacityStep[]): number | null {
	const us = cpuSteps(steps).map((s) => 1e6 / s.ppsPerCore);
	return us.length ? Math.round(median(us) * 100) / 100 : null;
}

/** The raw figures of one measuring window. */
export interface WindowFigures {
	target: CapacityStep['target'];
	listeners: number;
	publishers: number;
	latencies: Float64Array;
	arrivalTimes: Float64Array;
	windowStart: number;
	/** Packets every listener should have received, and what arrived (sampled + sinks). */
	expected: number;
	arrived: number;
	sampledExpected: number;
	sampledArrived: number;
	wallS: number;
	workerCpu: number;
	benchCpu: number;
	/** Server processes other than the worker (Parley's JS thread when it runs apart). */
	serverCpu: number;
	cores: number[];
	nicedCpu: number;
	quietWaitMs: number;
	windowMs?: number;
	/** Event-loop stalls of the process running Parley's JS during the window, if probed. */
	stalls?: EventLoopStall[];
	statsRounds?: StatsRound[];
	memory?: StepMemory;
}

/** Turns a window's figures into a step, checked against the limits. */
export function judgeWindow(f: WindowFigures, limits: CapacityLimits): CapacityStep {
	const latencyMs = summarize(f.latencies);
	const p99PerSecondMs = perSecondP99(f.arrivalTimes, f.latencies, f.windowStart);
	const p99MedianMs = median(p99PerSecondMs);
	const lossRate = f.expected ? Math.max(0, 1 - f.arrived / f.expected) : 0;
	const sampledLossRate = f.sampledExpected ? Math.max(0, 1 - f.sampledArrived / f.sampledExpected) : 0;
	const otherCpu = Math.max(0, f.cores.reduce((a, b) => a + b, 0) - f.workerCpu - f.benchCpu - f.serverCpu - f.nicedCpu);
	const forwardedPps = f.expected / f.wallS;
	const failed: string[] = [];
	if (!(p99MedianMs <= limits.p99Ms)) failed.push(`p99 ${p99MedianMs.toFixed(1)} ms > ${limits.p99Ms} ms`);
	if (lossRate > limits.lossRate) failed.push(`loss ${(lossRate * 100).toFixed(2)}% > ${(limits.lossRate * 100).toFixed(2)}%`);
	if (f.workerCpu >= limits.cpuShare) failed.push(`worker core ${(f.workerCpu * 100).toFixed(0)}% busy`);
	return {
		target: f.target,
		consumers: f.listeners * f.publishers,
		listeners: f.listeners,
		forwardedPps,
		latencyMs,
		p99PerSecondMs,
		p99MedianMs,
		lossRate,
		sampledLossRate,
		workerCpu: f.workerCpu,
		ppsPerCore: f.workerCpu > 0 ? forwardedPps / f.workerCpu : 0,
		benchCpu: f.benchCpu,
		serverCpu: f.serverCpu,
		coreBusy: f.cores,
		otherCpu,
		nicedCpu: f.nicedCpu,
		retriedForContention: 0,
		contended: false,
		quietWaitMs: f.quietWaitMs,
		pass: failed.length === 0,
		failed,
		latencyCdf: cdfPoints(f.latencies, 150),
		...activityFigures(f),
		memory: f.memory ?? null,
	};
}

function activityFigures(f: WindowFigures): Pick<CapacityStep, 'seconds' | 'worstSecond' | 'timeline'> {
	const windowMs = f.windowMs ?? Math.round(f.wallS * 1000);
	const stalls = f.stalls ?? [];
	const rounds = f.statsRounds ?? [];
	const seconds = slices(f.arrivalTimes, f.latencies, f.windowStart, windowMs, 1000, 100, stalls, rounds);
	const timeline = slices(f.arrivalTimes, f.latencies, f.windowStart, windowMs, 100, 10, stalls, rounds);
	const worst = seconds.reduce<SliceFigures | null>((w, x) => (w === null || x.p99Ms > w.p99Ms ? x : w), null);
	const worstSecond: WorstSecond | null = worst && {
		...worst,
		statsRounds: rounds
			.filter((r) => r.startedAtMs < f.windowStart + worst.atMs + 1000 && (r.endedAtMs ?? Infinity) > f.windowStart + worst.atMs)
			.map((r) => ({ startMs: round2(r.startedAtMs - f.windowStart), durationMs: r.endedAtMs === null ? null : round2(r.endedAtMs - r.startedAtMs), streams: r.streams })),
	};
	return { seconds, worstSecond, timeline };
}

const round2 = (v: number) => Math.round(v * 100) / 100;

/** Latency per slice of the window (slices with fewer than minSamples left out), with the
 * longest event-loop stall and the stats rounds started and finished in each. */
export function slices(arrivals: Float64Array, latencies: Float64Array, windowStart: number, windowMs: number, sliceMs: number, minSamples: number, stalls: EventLoopStall[], rounds: StatsRound[]): SliceFigures[] {
	const buckets: number[][] = [];
	for (let i = 0; i < latencies.length; i++) {
		const b = Math.floor((arrivals[i]! - windowStart) / sliceMs);
		if (b >= 0) (buckets[b] ??= []).push(latencies[i]!);
	}
	const out: SliceFigures[] = [];
	const count = Math.ceil(windowMs / sliceMs);
	for (let b = 0; b < count; b++) {
		const samples = buckets[b] ?? [];
		if (samples.length < minSamples) continue;
		const summary = summarize(samples);
		const from = windowStart + b * sliceMs;
		const to = from + sliceMs;
		const within = (t: number | null) => t !== null && t >= from && t < to;
		out.push({
			atMs: b * sliceMs,
			samples: samples.length,
			p99Ms: round2(summary.p99),
			maxMs: round2(summary.max),
			eventLoopMaxMs: round2(maxStallIn(stalls, from, to)),
			statsRoundsStarted: rounds.filter((r) => within(r.startedAtMs)).length,
			statsRoundsFinished: rounds.filter((r) => within(r.endedAtMs)).length,
			statsRoundsRunning: rounds.filter((r) => r.startedAtMs < to && (r.endedAtMs ?? Infinity) >= from).length,
		});
	}
	return out;
}

/** RSS before any room: what a step's memory is measured against. */
export interface IdleMemory {
	nodeRssBytes: number;
	workerRssBytes: number;
}

async function measureStep(
	target: ForwardingTarget,
	clients: LoadThread,
	o: CapacityOptions,
	frames: Uint8Array[][],
	consumers: number,
	stepIndex: number,
	quietBudget: { remainingMs: number },
	idle: IdleMemory,
): Promise<CapacityStep> {
	const listeners = Math.max(1, Math.round(consumers / o.publishers));
	const sampled = Math.min(o.sampledListeners, listeners);
	// Sampled listeners spread over creation order (first, ..., last): forwarding order matters.
	const sampledIdx = new Set(Array.from({ length: sampled }, (_, k) => (sampled === 1 ? listeners - 1 : Math.round((k * (listeners - 1)) / (sampled - 1)))));
	const subscriberPorts = await clients.subscribers(sampledIdx.size, 1 << 16);
	const sinks = await Promise.all(Array.from({ length: Math.ceil((listeners - sampledIdx.size) / LISTENERS_PER_SINK) }, () => UdpSink.create()));
	const destinations: number[] = [];
	let s = 0;
	let k = 0;
	for (let i = 0; i < listeners; i++) destinations.push(sampledIdx.has(i) ? subscriberPorts[s++]! : sinks[k++ % sinks.length]!.port);
	const ssrcs = Array.from({ length: o.publishers }, (_, i) => 0x20000000 + stepIndex * 1000 + i);
	let room: Room | undefined;
	try {
		room = await target.buildRoom({
			name: `capacity-${stepIndex}`,
			publisherSsrcs: ssrcs,
			listenerDestinations: destinations,
			nack: false,
			...(o.transport === 'srtp' ? { srtpCryptoSuite: o.srtpCryptoSuite } : {}),
			...(o.red ? { red: true, listenersWithoutRed: o.red.listenersWithRed ? [] : destinations.map((_, i) => i) } : {}),
		});
		const red = o.red ? { payloadType: RED_PAYLOAD_TYPE, distance: o.red.distance } : undefined;
		const publisherPorts = room.publisherPorts;
		await clients.publishers(ssrcs.map((ssrc, i) => ({ ssrc, payloadType: OPUS_PAYLOAD_TYPE, frames: frames[i]!, target: { address: LOOPBACK, port: publisherPorts[i]! }, ...(red ? { red } : {}) })));
		s = 0;
		for (let i = 0; i < listeners; i++) {
			if (!sampledIdx.has(i)) continue;
			await clients.streams(s++, room.listeners[i]!.consumers.map((c) => ({ ssrc: c.ssrc, publisher: c.publisherIndex })));
		}
		await clients.pace(true);
		await sleep(o.warmupMs);
		await clients.pace(false);
		await sleep(DRAIN_MS);
		const memory: StepMemory = {
			nodeRssBytes: settledOwnHeapBytes(),
			nodeIdleRssBytes: idle.nodeRssBytes,
			nodeMeasure: 'heap+external',
			workerRssBytes: target.workerPids().reduce((n, pid) => n + processRssBytes(pid), 0),
			workerIdleRssBytes: idle.workerRssBytes,
			peers: listeners + o.publishers,
		};

		const quiet = await waitForQuietMachine(target.workerPids(), o.maxOtherCpu, o.quietWaitMs, quietBudget);
		const sinkPorts = sinks.map((x) => x.port);
		const dropsBefore = totalUdpDrops(sinkPorts);
		const sentBefore = await clients.sent();
		await clients.resetWindow();
		const cpu = new CpuMeter(target.workerPids());
		const probe = new EventLoopProbe();
		probe.start();
		cpu.start();
		const windowStart = performance.now();
		await clients.pace(true);
		await sleep(o.windowMs);
		await clients.pace(false);
		const usage = cpu.stop();
		await sleep(DRAIN_MS);
		const stalls = probe.stop();
		const arrivedAtSinks = totalUdpDrops(sinkPorts) - dropsBefore;
		const sentAfter = await clients.sent();
		const sampled = await clients.window();

		const sentPerListener = sentAfter.reduce((n, sent, i) => n + sent - sentBefore[i]!, 0);
		const sampledArrived = sampled.packets.reduce((n, p) => n + p, 0);
		if (o.red && sampledArrived === 0) throw new Error(`RED capacity step: no packet reached a sampled listener (${target.kind}); the worker does not forward RED`);
		if (o.red && wrongPayloadType(sampled.payloadTypes, room.listeners, sampledIdx, o.red.listenersWithRed)) throw new Error(`RED capacity step: a sampled listener got a payload type its consumer did not negotiate (${target.kind})`);
		return judgeWindow(
			{
				target: target.kind,
				listeners,
				publishers: o.publishers,
				latencies: concat(sampled.latencies),
				arrivalTimes: concat(sampled.arrivalTimes),
				windowStart,
				expected: sentPerListener * listeners,
				arrived: sampledArrived + arrivedAtSinks,
				sampledExpected: sentPerListener * sampled.packets.length,
				sampledArrived,
				wallS: usage.wallS,
				workerCpu: usage.processes.reduce((a, b) => a + b, 0),
				benchCpu: usage.bench,
				serverCpu: 0,
				cores: usage.cores,
				nicedCpu: usage.niced,
				quietWaitMs: quiet.waitedMs,
				windowMs: o.windowMs,
				stalls,
				statsRounds: target.statsRounds().map((r) => ({ ...r })),
				memory,
			},
			o.limits,
		);
	} finally {
		await clients.closePeers();
		room?.close();
		for (const x of sinks) x.close();
		// Let the worker finish closing the room before the next step measures it.
		await sleep(100);
	}
}

/** Whether any sampled listener's packets carried another payload type than its consumer's
 * RED (listeners with RED) or Opus (listeners without). */
function wrongPayloadType(payloadTypesSeen: number[][], listeners: { consumers: { payloadTypes: { opus: number; red?: number } }[] }[], sampledIdx: Set<number>, withRed: boolean): boolean {
	const sampled = [...sampledIdx].sort((a, b) => a - b);
	return payloadTypesSeen.some((seen, k) => {
		const consumer = listeners[sampled[k]!]?.consumers[0];
		if (!consumer) return false;
		const expected = withRed ? consumer.payloadTypes.red : consumer.payloadTypes.opus;
		return expected === undefined || seen.some((pt) => pt !== expected);
	});
}

/** Publishers straight to sampled subscribers (on the load thread, as in the steps): what the
 * bench itself adds to latency. */
async function measureBenchFloor(clients: LoadThread, o: CapacityOptions, frames: Uint8Array[][]): Promise<LatencySummary> {
	try {
		const ports = await clients.subscribers(o.sampledListeners, 4096);
		await clients.publishers(Array.from({ length: o.publishers }, (_, i) => ({ ssrc: 0x7000 + i, payloadType: OPUS_PAYLOAD_TYPE, frames: frames[i]!, target: { address: LOOPBACK, port: ports[i % ports.length]! } })));
		for (let i = 0; i < o.publishers; i++) await clients.streams(i % ports.length, [{ ssrc: 0x7000 + i, publisher: i }]);
		await clients.pace(true);
		await sleep(Math.min(2000, o.windowMs));
		await clients.pace(false);
		await sleep(50);
		return summarize(concat((await clients.window()).latencies));
	} finally {
		await clients.closePeers();
	}
}

export function perSecondP99(arrivals: Float64Array, latencies: Float64Array, start: number): number[] {
	const buckets: number[][] = [];
	for (let i = 0; i < latencies.length; i++) {
		const b = Math.floor((arrivals[i]! - start) / 1000);
		(buckets[b] ??= []).push(latencies[i]!);
	}
	// A last slice with few samples (the tail of the window) would be noise.
	return buckets.filter((b) => b && b.length >= 100).map((b) => summarize(b).p99);
}

function median(values: number[]): number {
	if (values.length === 0) return NaN;
	const s = [...values].sort((a, b) => a - b);
	const m = s.length >> 1;
	return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function concat(parts: Float64Array[]): Float64Array {
	const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
	let o = 0;
	for (const p of parts) {
		out.set(p, o);
		o += p.length;
	}
	return out;
}
