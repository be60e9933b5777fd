// Scenario 1, the loss sweep: speech as real Opus through Parley (plain RTP) with loss
// injected by UDP proxies, random and bursty. Two grids:
// - FEC and NACK: FEC on and off, NACK on and off, loss where `lossAt` says;
// - RED (RFC 2198): per loss placement in `redLossAt` (uplink, downlink, both), the modes of
//   `redModes` (FEC only, RED distance 1 and 2, each with and without FEC), NACK off. The
//   listener of a RED stream has audio/red in its capabilities and uses the redundant blocks;
//   on uplink loss a second listener without RED hears the worker's stripping (plain Opus,
//   frames lost upstream rebuilt from the next packet's redundant copy).
// Every condition is its own channel with one publisher and its listeners, and the
// conditions stream at the same time (at most `maxParallelStreams` at once; one Parley node
// per NACK setting, since `media.opusNack` is a server option), so the sweep takes a few
// stream durations instead of hundreds.
//
//   publisher -> [uplink proxy] -> Parley (PlainTransport in, consumers out) -> [downlink proxy] -> listener
//
// Loss on the downlink lets mediasoup answer NACKs from its own retransmission buffer. The
// same seed per loss condition and placement gives every mode the same loss pattern. The
// publisher's packet-loss hint follows the condition ("an encoder that got the loss
// reports"), as Parley forwards listeners' loss to senders in receiver reports.
import { encodeOpusFrames } from '../audio/opusEncoding.js';
import { coveringPackets, lossCeiling, type LossLeg, lossLeg, playout, type PlayoutResult } from '../audio/playout.js';
import { FRAME_MS, speechPcm } from '../audio/speech.js';
import { createLossModel, type LossModel, type LossSpec } from '../loss/LossModel.js';
import { seedFrom } from '../loss/random.js';
import { type DelaySpec, UdpLossProxy } from '../loss/UdpLossProxy.js';
import { summarize, type LatencySummary } from '../metrics/stats.js';
import { FramePacer } from '../peers/FramePacer.js';
import { RtpPublisher } from '../peers/RtpPublisher.js';
import { type ReceivedStream, RtpSubscriber } from '../peers/RtpSubscriber.js';
import { LOOPBACK, OPUS_PAYLOAD_TYPE, RED_PAYLOAD_TYPE, type Room } from '../targets/ForwardingTarget.js';
import { ParleyTarget } from '../targets/ParleyTarget.js';
import { probeRedSupport, type RedSupport } from '../targets/redSupport.js';

export type LossModelKind = 'random' | 'bursty';
export type LossPlacement = 'up' | 'down' | 'both';

/** What the publisher sends: RED with `redDistance` previous frames (0: plain Opus), FEC on or off. */
export interface LossMode {
	redDistance: number;
	fec: boolean;
}

export interface LossSweepOptions {
	lossRates: number[];
	models: LossModelKind[];
	meanBurstLength: number;
	fec: boolean[];
	nack: boolean[];
	durationS: number;
	/** Where the FEC/NACK grid's loss sits. */
	lossAt: LossPlacement;
	/** The RED grid: modes (empty: no RED grid), placements and loss rates (NACK off). */
	redModes: LossMode[];
	redLossAt: LossPlacement[];
	redLossRates: number[];
	/** On uplink loss, a listener without RED beside the RED listener (the worker strips). */
	strippedListener: boolean;
	/** Streams at once; more conditions run in consecutive batches. */
	maxParallelStreams: number;
	playoutDelayMs: number;
	delay?: DelaySpec;
	bitrateBps: number;
	/** Encoder packet-loss hint in percent, or 'match' (the condition's loss, at least 1 with FEC). */
	packetLossHint: number | 'match';
	seed: number;
}

/** FEC only, then RED distance 1 and 2, each without and with FEC. */
export const RED_MODES: LossMode[] = [
	{ redDistance: 0, fec: true },
	{ redDistance: 1, fec: false },
	{ redDistance: 1, fec: true },
	{ redDistance: 2, fec: false },
	{ redDistance: 2, fec: true },
];

export const LOSS_SWEEP_DEFAULTS: LossSweepOptions = {
	lossRates: [0, 0.01, 0.05, 0.1, 0.2, 0.3],
	models: ['random', 'bursty'],
	meanBurstLength: 3,
	fec: [true, false],
	nack: [false, true],
	durationS: 40,
	lossAt: 'down',
	redModes: RED_MODES,
	redLossAt: ['up', 'down', 'both'],
	redLossRates: [0, 0.05, 0.1, 0.2, 0.3],
	strippedListener: true,
	maxParallelStreams: 24,
	playoutDelayMs: 60,
	bitrateBps: 32_000,
	packetLossHint: 'match',
	seed: 1,
};

/** "FEC only", "no FEC", "RED d=2", "RED d=2 + FEC". */
export function modeLabel(m: LossMode): string {
	if (m.redDistance === 0) return m.fec ? 'FEC only' : 'no FEC';
	return `RED d=${m.redDistance}${m.fec ? ' + FEC' : ''}`;
}

/** The listener a row describes: plain Opus from a plain publisher, a RED listener, or a
 * listener without RED fed by the worker's stripping of a RED stream. */
export type ListenerKind = 'opus' | 'red' | 'stripped';

export interface LossConditionResult {
	model: LossModelKind;
	lossRate: number;
	meanBurstLength: number | null;
	lossAt: LossPlacement;
	/** Which grid the row belongs to. */
	grid: 'fec-nack' | 'red';
	fec: boolean;
	nack: boolean;
	redDistance: number;
	listener: ListenerKind;
	packetLossHintPercent: number;
	/** RTP loss the proxies actually applied, end to end (retransmissions included). */
	measuredNetworkLoss: number;
	/** The playable-share ceiling of this mode and loss (see playout.ts's lossCeiling). */
	ceiling: number;
	/** Later packets that can stand in for a lost frame in time (ceiling = 1 - p^(k+1) for random loss). */
	coveringPackets: number;
	playout: PlayoutResult;
	/** One way, send to receive, over frames that arrived in their own packet (no NACK answer,
	 * no redundant copy, no frame the worker rebuilt). */
	latencyMs: LatencySummary;
	nackStats: { nacksSent: number; packetsAsked: number; publisherRetransmissions: number };
	/** What the listener's socket got: packets, RED packets among them, and the two that must stay 0. */
	received: { packets: number; redPackets: number; invalidRedPackets: number; unexpectedPayloadType: number };
	/** Proxy-level figures: packets dropped on the way (RTP). */
	proxy: { uplinkDropped: number; downlinkDropped: number };
}

export interface LossSweepResult {
	path: string;
	options: LossSweepOptions;
	conditions: LossConditionResult[];
	/** Latency samples of the lossless FEC-on, NACK-off stream (for the CDF chart). */
	losslessLatencySamples: number[];
	/** Problems that make rows meaningless (RED not forwarded by the worker, say). */
	errors: string[];
	/** Batches run one after the other (streams per batch at most maxParallelStreams). */
	batches: number;
	/** The worker probe's answer (null when no RED mode was asked for). */
	redSupport: RedSupport | null;
	server: Record<string, unknown>;
}

interface Condition {
	grid: 'fec-nack' | 'red';
	model: LossModelKind;
	lossRate: number;
	lossAt: LossPlacement;
	fec: boolean;
	nack: boolean;
	redDistance: number;
	hint: number;
}

interface ListenerRig {
	kind: ListenerKind;
	subscriber: RtpSubscriber;
	stream: ReceivedStream;
	down: UdpLossProxy;
}

interface StreamRig {
	condition: Condition;
	publisher: RtpPublisher;
	listeners: ListenerRig[];
	up: UdpLossProxy;
	/** Drop decisions of the uplink, in packet order (= frame order: NACK is off where it is read). */
	upDrops: boolean[];
	room: Room;
	frames: Uint8Array[];
}

function legSpec(model: LossModelKind, lossRate: number, burst: number): LossSpec {
	return model === 'random' ? { kind: 'random', lossRate } : { kind: 'bursty', lossRate, meanBurstLength: burst };
}

/** A loss model that remembers its decisions. */
function recording(model: LossModel, drops: boolean[]): LossModel {
	return {
		label: model.label,
		meanLossRate: model.meanLossRate,
		drop: () => {
			const d = model.drop();
			drops.push(d);
			return d;
		},
	};
}

/** Per-leg loss rate: on one leg p, split over both so that 1 - (1 - q)^2 = p. */
function legRate(lossAt: LossPlacement, lossRate: number): number {
	return lossAt === 'both' ? 1 - Math.sqrt(1 - lossRate) : lossRate;
}

/** The lossy legs of a condition, each a chain at the per-leg rate (none at 0%). */
export function conditionLegs(model: LossModelKind, lossRate: number, lossAt: LossPlacement, meanBurstLength: number): LossLeg[] {
	if (lossRate === 0) return [];
	const leg = lossLeg(model, legRate(lossAt, lossRate), meanBurstLength);
	return lossAt === 'both' ? [leg, leg] : [leg];
}

/** The conditions of both grids, without repeats (a RED-grid FEC-only row that the FEC/NACK
 * grid already has is that row). */
export function sweepConditions(o: LossSweepOptions): Condition[] {
	const hintFor = (fec: boolean, lossRate: number): number => (!fec ? 0 : o.packetLossHint === 'match' ? Math.max(1, Math.round(lossRate * 100)) : o.packetLossHint);
	const out: Condition[] = [];
	const seen = new Set<string>();
	const add = (c: Omit<Condition, 'hint'>): void => {
		// At 0% loss the placement changes nothing: one row per mode.
		const key = `${c.model}/${c.lossRate}/${c.lossRate === 0 ? '-' : c.lossAt}/${c.fec}/${c.nack}/${c.redDistance}`;
		if (seen.has(key)) return;
		seen.add(key);
		out.push({ ...c, hint: hintFor(c.fec, c.lossRate) });
	};
	for (const nack of o.nack)
		for (const model of o.models)
			for (const lossRate of o.lossRates) {
				if (model === 'bursty' && lossRate === 0) continue; // same as random 0%
				for (const fec of o.fec) add({ grid: 'fec-nack', model, lossRate, lossAt: o.lossAt, fec, nack, redDistance: 0 });
			}
	for (const lossAt of o.redLossAt)
		for (const model of o.models)
			for (const lossRate of o.redLossRates) {
				if (model === 'bursty' && lossRate === 0) continue;
				for (const m of o.redModes) add({ grid: 'red', model, lossRate, lossAt, fec: m.fec, nack: false, redDistance: m.redDistance });
			}
	return out;
}

export async function runLossSweep(options: LossSweepOptions, log: (line: string) => void = () => {}): Promise<LossSweepResult> {
	const o = options;
	const frameCount = Math.round((o.durationS * 1000) / FRAME_MS);
	const pcm = speechPcm();
	const encoded = new Map<string, Uint8Array[]>();
	const framesFor = (fec: boolean, hint: number): Uint8Array[] => {
		const key = `${fec}/${hint}`;
		let frames = encoded.get(key);
		if (!frames) {
			frames = encodeOpusFrames(pcm, frameCount, { bitrateBps: o.bitrateBps, inbandFec: fec, packetLossPercent: hint });
			encoded.set(key, frames);
		}
		return frames;
	};

	const errors: string[] = [];
	let conditions = sweepConditions(o);
	let redSupport: RedSupport | null = null;
	if (conditions.some((c) => c.redDistance > 0)) {
		redSupport = await probeRedSupport();
		log(`loss sweep: RED through this worker: ${redSupport.detail}`);
		if (!redSupport.forwardsRed) {
			// A RED producer would abort the worker (every stream of the batch with it) or be
			// discarded: no RED row would be a measurement.
			errors.push(`RED rows not measured: this mediasoup worker does not forward RED (${redSupport.detail}); build it with scripts/mediasoup's RED patch`);
			conditions = conditions.filter((c) => c.redDistance === 0);
		}
	}
	const batchCount = Math.max(1, Math.ceil(conditions.length / Math.max(1, o.maxParallelStreams)));
	const perBatch = Math.ceil(conditions.length / batchCount);
	log(`loss sweep: ${conditions.length} streams of ${o.durationS} s each, ${batchCount === 1 ? 'all in parallel' : `in ${batchCount} batches of up to ${perBatch} in parallel`}`);
	for (const c of conditions) framesFor(c.fec, c.hint);

	const targets = new Map<boolean, ParleyTarget>();
	const results: LossConditionResult[] = [];
	let losslessLatencySamples: number[] = [];
	try {
		for (const nack of new Set(conditions.map((c) => c.nack))) targets.set(nack, await ParleyTarget.start({ workers: 1, opusNack: nack }));
		let n = 0;
		for (let b = 0; b < batchCount; b++) {
			const batch = conditions.slice(b * perBatch, (b + 1) * perBatch);
			const rigs: StreamRig[] = [];
			try {
				for (const c of batch) rigs.push(await buildRig(c, n++, targets.get(c.nack)!, framesFor(c.fec, c.hint), o));
				await stream(rigs, frameCount, o, log);
				for (const r of rigs) {
					for (const l of r.listeners) {
						const row = judge(r, l, o);
						if (row.grid === 'fec-nack' && row.lossRate === 0 && row.fec && !row.nack) losslessLatencySamples = latencySamples(r, l);
						results.push(row);
					}
				}
			} finally {
				for (const r of rigs) closeRig(r);
			}
			if (batchCount > 1) log(`loss sweep: batch ${b + 1}/${batchCount} done`);
		}
		// A RED stream that never reached its listener: the worker drops RED (a worker
		// without the RED patch discards it at the producer). Its rows would read as 100% loss.
		const silent = results.filter((r) => r.redDistance > 0 && r.received.packets === 0);
		if (silent.length) errors.push(`${silent.length} RED listener(s) received no packet at all: this mediasoup worker does not forward RED (build it with scripts/mediasoup's RED patch); their rows are not measurements`);
		const invalid = results.filter((r) => r.received.invalidRedPackets > 0 || r.received.unexpectedPayloadType > 0);
		if (invalid.length) errors.push(`${invalid.length} listener(s) got RED blocks or payload types they did not negotiate`);
		for (const e of errors) log(`loss sweep: ERROR ${e}`);
		const anyTarget = [...targets.values()][0]!;
		return {
			path: 'plain RTP through Parley (bench control path: Channel + PlainTransports), UDP loss proxies in-process',
			options: o,
			conditions: results,
			losslessLatencySamples,
			errors,
			batches: batchCount,
			redSupport,
			server: { media: anyTarget.config.media, channels: anyTarget.config.channels },
		};
	} finally {
		for (const t of targets.values()) await t.close();
	}
}

async function buildRig(c: Condition, n: number, target: ParleyTarget, frames: Uint8Array[], o: LossSweepOptions): Promise<StreamRig> {
	const rate = legRate(c.lossAt, c.lossRate);
	const seedLabel = `${c.model}-${c.lossRate}-${c.lossAt}`;
	const lossy = (leg: 'up' | 'down'): LossModel | undefined => (c.lossAt === leg || c.lossAt === 'both' ? createLossModel(legSpec(c.model, rate, o.meanBurstLength), seedFrom(`${seedLabel}-${leg}`, o.seed)) : undefined);
	const red = c.redDistance > 0;
	// On uplink loss, a RED stream also gets a listener without RED: the worker's stripping.
	const kinds: ListenerKind[] = !red ? ['opus'] : c.lossAt === 'up' && o.strippedListener ? ['red', 'stripped'] : ['red'];
	const listeners: Omit<ListenerRig, 'stream'>[] = [];
	for (const kind of kinds) {
		const subscriber = await RtpSubscriber.create({ mode: 'record', nack: c.nack });
		// Each listener has its own downlink; the seed per listener kind keeps the loss pattern
		// of a RED listener equal to that of the plain listener of the same condition.
		const downModel = lossy('down');
		const down = await UdpLossProxy.create({ target: { address: LOOPBACK, port: subscriber.port }, ...(downModel ? { forward: downModel } : {}), ...(o.delay ? { delay: o.delay } : {}), seed: n });
		listeners.push({ kind, subscriber, down });
	}
	const ssrc = 0x10000 + n;
	const room = await target.buildRoom({
		name: `loss-${n}`,
		publisherSsrcs: [ssrc],
		listenerDestinations: listeners.map((l) => l.down.frontPort),
		nack: c.nack,
		red,
		listenersWithoutRed: kinds.flatMap((k, i) => (k === 'stripped' ? [i] : [])),
	});
	const upDrops: boolean[] = [];
	const upModel = lossy('up');
	const up = await UdpLossProxy.create({ target: { address: LOOPBACK, port: room.publisherPorts[0]! }, ...(upModel ? { forward: recording(upModel, upDrops) } : {}), ...(o.delay ? { delay: o.delay } : {}), seed: n + 1000 });
	const publisher = await RtpPublisher.create({ ssrc, payloadType: OPUS_PAYLOAD_TYPE, frames, target: { address: LOOPBACK, port: up.frontPort }, ...(red ? { red: { payloadType: RED_PAYLOAD_TYPE, distance: c.redDistance } } : {}) });
	const withStreams = listeners.map((l, i): ListenerRig => {
		const consumer = room.listeners[i]!.consumers[0]!;
		if (l.kind === 'red' && consumer.payloadTypes.red === undefined) throw new Error('the RED listener\'s consumer did not negotiate audio/red');
		if (l.kind === 'stripped' && consumer.payloadTypes.red !== undefined) throw new Error('the listener without RED got a RED consumer');
		return { ...l, stream: l.subscriber.addStream(consumer.ssrc, publisher, consumer.payloadTypes) };
	});
	return { condition: c, publisher, listeners: withStreams, up, upDrops, room, frames };
}

async function stream(rigs: StreamRig[], frameCount: number, o: LossSweepOptions, log: (line: string) => void): Promise<void> {
	const pacer = new FramePacer(rigs.map((r) => ({ sendNext: () => r.publisher.sent < frameCount && r.publisher.sendNext() })));
	pacer.start();
	const started = performance.now();
	try {
		while (rigs.some((r) => r.publisher.sent < frameCount)) {
			await new Promise((r) => setTimeout(r, 100));
			if (performance.now() - started > o.durationS * 1000 + 10_000) throw new Error('loss sweep publishers fell behind');
		}
	} finally {
		pacer.stop();
	}
	// Let the last packets (and retransmissions) arrive.
	await new Promise((r) => setTimeout(r, Math.max(300, o.playoutDelayMs * 2 + (o.delay ? o.delay.delayMs * 2 + o.delay.jitterMs * 2 : 0))));
	if (pacer.skipped > 0) log(`warning: the pacer skipped ${pacer.skipped} frames (event loop too busy)`);
}

/** Frames the worker rebuilt for a listener without RED: their own packet was dropped on the uplink. */
function rebuiltUpstream(r: StreamRig, l: ListenerRig): ((frame: number) => boolean) | undefined {
	return l.kind === 'stripped' ? (i) => r.upDrops[i] === true : undefined;
}

function latencySamples(r: StreamRig, l: ListenerRig): number[] {
	const rebuilt = rebuiltUpstream(r, l);
	const out: number[] = [];
	for (const [i, a] of l.stream.arrivals) {
		const s = r.publisher.sendTimeOf(i);
		if (s !== undefined && !a.afterNack && !rebuilt?.(i)) out.push(a.atMs - s);
	}
	return out;
}

function judge(r: StreamRig, l: ListenerRig, o: LossSweepOptions): LossConditionResult {
	const c = r.condition;
	const sent = r.frames.slice(0, r.publisher.sent);
	const rebuilt = rebuiltUpstream(r, l);
	const result = playout({
		sent,
		sendTimeOf: (i) => r.publisher.sendTimeOf(i),
		arrivals: l.stream.arrivals,
		...(l.kind === 'red' ? { redundantArrivals: l.stream.redundantArrivals } : {}),
		...(rebuilt ? { rebuiltUpstream: rebuilt } : {}),
		playoutDelayMs: o.playoutDelayMs,
		useFec: true,
	});
	const lossyUp = c.lossAt !== 'down';
	const lossyDown = c.lossAt !== 'up';
	const legStats = [lossyUp ? r.up.stats.forward : undefined, lossyDown ? l.down.stats.forward : undefined].filter((s) => s !== undefined);
	// End to end: a packet survives only if it survives every lossy leg.
	const survived = legStats.reduce((a, s) => a * (s.received ? 1 - s.dropped / s.received : 1), 1);
	const legs = conditionLegs(c.model, c.lossRate, c.lossAt, o.meanBurstLength);
	const covering = coveringPackets({ redDistance: c.redDistance, fec: c.fec }, o.playoutDelayMs);
	return {
		model: c.model,
		lossRate: c.lossRate,
		meanBurstLength: c.model === 'bursty' ? o.meanBurstLength : null,
		lossAt: c.lossAt,
		grid: c.grid,
		fec: c.fec,
		nack: c.nack,
		redDistance: c.redDistance,
		listener: l.kind,
		packetLossHintPercent: c.hint,
		measuredNetworkLoss: 1 - survived,
		ceiling: legs.length ? lossCeiling(legs, covering) : 1,
		coveringPackets: covering,
		playout: result,
		latencyMs: summarize(latencySamples(r, l)),
		nackStats: { nacksSent: l.stream.nacksSent, packetsAsked: l.stream.nackedPackets, publisherRetransmissions: r.publisher.retransmitted },
		received: { packets: l.stream.packets, redPackets: l.stream.redPackets, invalidRedPackets: l.stream.invalidRedPackets, unexpectedPayloadType: l.stream.unexpectedPayloadType },
		proxy: { uplinkDropped: r.up.stats.forward.dropped, downlinkDropped: l.down.stats.forward.dropped },
	};
}

function closeRig(r: StreamRig): void {
	r.publisher.close();
	for (const l of r.listeners) {
		l.subscriber.close();
		l.down.close();
	}
	r.up.close();
	r.room.close();
}
