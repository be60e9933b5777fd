// Scenario 1, the loss sweep: speech as real Opus through Parley (plain RTP) with loss
// injected by UDP proxies, random and bursty, FEC on and off, NACK on and off. Every
// condition is its own channel with one publisher and one listener, and all conditions of a
// run stream at the same time (one Parley node per NACK setting, since `media.opusNack` is a
// server option), so the whole sweep takes one stream duration instead of dozens.
//
//   publisher -> [uplink proxy] -> Parley (PlainTransport in, consumer out) -> [downlink proxy] -> listener
//
// Loss sits where `lossAt` says (downlink by default: mediasoup then answers NACKs from its
// own retransmission buffer). The same seed per loss condition gives FEC on and off the same
// loss pattern. The publisher's packet-loss hint follows the condition ("an encoder that got
// the loss reports"), as Parley forwards listeners' loss to senders in receiver reports.
import { encodeOpusFrames } from '../audio/opusEncoding.js';
import { fecCeiling, playout, type PlayoutResult } from '../audio/playout.js';
import { FRAME_MS, speechPcm } from '../audio/speech.js';
import { createLossModel, type LossSpec } from '../loss/LossModel.js';
import { seedFrom } from '../loss/random.js';
import { type DelaySpec, UdpLossProxy } from '../loss/UdpLossProxy.js';
import { summarize, type LatencySummary } from '../metrics/stats.js';
import { FramePacer } from '../peers/FramePacer.js';
import { RtpPublisher } from '../peers/RtpPublisher.js';
import { type ReceivedStream, RtpSubscriber } from '../peers/RtpSubscriber.js';
import { LOOPBACK, OPUS_PAYLOAD_TYPE, type Room } from '../targets/ForwardingTarget.js';
import { ParleyTarget } from '../targets/ParleyTarget.js';

export type LossModelKind = 'random' | 'bursty';

export interface LossSweepOptions {
	lossRates: number[];
	models: LossModelKind[];
	meanBurstLength: number;
	fec: boolean[];
	nack: boolean[];
	durationS: number;
	lossAt: 'up' | 'down' | 'both';
	playoutDelayMs: number;
	delay?: DelaySpec;
	bitrateBps: number;
	/** Encoder packet-loss hint in percent, or 'match' (the condition's loss, at least 1 with FEC). */
	packetLossHint: number | 'match';
	seed: number;
}

export const LOSS_SWEEP_DEFAULTS: LossSweepOptions = {
	lossRates: [0, 0.01, 0.05, 0.1, 0.2, 0.3],
	models: ['random', 'bursty'],
	meanBurstLength: 3,
	fec: [true, false],
	nack: [false, true],
	durationS: 40,
	lossAt: 'down',
	playoutDelayMs: 60,
	bitrateBps: 32_000,
	packetLossHint: 'match',
	seed: 1,
};

export interface LossConditionResult {
	model: LossModelKind;
	lossRate: number;
	meanBurstLength: number | null;
	fec: boolean;
	nack: boolean;
	packetLossHintPercent: number;
	/** RTP loss the proxies actually applied, end to end (retransmissions included). */
	measuredNetworkLoss: number;
	ceiling: number;
	playout: PlayoutResult;
	latencyMs: LatencySummary;
	nackStats: { nacksSent: number; packetsAsked: number; publisherRetransmissions: number };
	/** Proxy-level figures: packets dropped on the way (RTP). */
	proxy: { uplinkDropped: number; downlinkDropped: number };
}

export interface LossSweepResult {
	path: string;
	options: LossSweepOptions;
	conditions: LossConditionResult[];
	/** Latency samples of the lossless FEC-on, NACK-off stream (for the CDF chart). */
	losslessLatencySamples: number[];
	server: Record<string, unknown>;
}

interface StreamRig {
	condition: { model: LossModelKind; lossRate: number; fec: boolean; nack: boolean; hint: number };
	publisher: RtpPublisher;
	subscriber: RtpSubscriber;
	stream: ReceivedStream;
	up: UdpLossProxy;
	down: UdpLossProxy;
	room: Room;
	frames: Uint8Array[];
}

function legSpec(model: LossModelKind, lossRate: number, burst: number): LossSpec {
	return model === 'random' ? { kind: 'random', lossRate } : { kind: 'bursty', lossRate, meanBurstLength: burst };
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

	const conditions: StreamRig['condition'][] = [];
	for (const nack of o.nack)
		for (const model of o.models)
			for (const lossRate of o.lossRates) {
				if (model === 'bursty' && lossRate === 0) continue; // same as random 0%
				for (const fec of o.fec) {
					const hint = !fec ? 0 : o.packetLossHint === 'match' ? Math.max(1, Math.round(lossRate * 100)) : o.packetLossHint;
					conditions.push({ model, lossRate, fec, nack, hint });
				}
			}
	log(`loss sweep: ${conditions.length} streams of ${o.durationS} s each, in parallel (loss on the ${o.lossAt === 'both' ? 'uplink and the downlink' : `${o.lossAt}link`})`);
	for (const c of conditions) framesFor(c.fec, c.hint);

	const targets = new Map<boolean, ParleyTarget>();
	const rigs: StreamRig[] = [];
	try {
		for (const nack of new Set(o.nack)) targets.set(nack, await ParleyTarget.start({ workers: 1, opusNack: nack }));
		let n = 0;
		for (const c of conditions) {
			// End-to-end loss p: on one leg, or split so that 1 - (1 - q)^2 = p on both.
			const legRate = o.lossAt === 'both' ? 1 - Math.sqrt(1 - c.lossRate) : c.lossRate;
			const seedLabel = `${c.model}-${c.lossRate}-${o.lossAt}`;
			const lossy = (leg: 'up' | 'down') => (o.lossAt === leg || o.lossAt === 'both' ? createLossModel(legSpec(c.model, legRate, o.meanBurstLength), seedFrom(`${seedLabel}-${leg}`, o.seed)) : undefined);
			const subscriber = await RtpSubscriber.create({ mode: 'record', nack: c.nack });
			const down = await UdpLossProxy.create({ target: { address: LOOPBACK, port: subscriber.port }, forward: lossy('down'), ...(o.delay ? { delay: o.delay } : {}), seed: n });
			const ssrc = 0x10000 + n++;
			const room = await targets.get(c.nack)!.buildRoom({ name: `loss-${n}`, publisherSsrcs: [ssrc], listenerDestinations: [down.frontPort], nack: c.nack });
			const up = await UdpLossProxy.create({ target: { address: LOOPBACK, port: room.publisherPorts[0]! }, forward: lossy('up'), ...(o.delay ? { delay: o.delay } : {}), seed: n + 1000 });
			const frames = framesFor(c.fec, c.hint);
			const publisher = await RtpPublisher.create({ ssrc, payloadType: OPUS_PAYLOAD_TYPE, frames, target: { address: LOOPBACK, port: up.frontPort } });
			const stream = subscriber.addStream(room.listeners[0]!.consumers[0]!.ssrc, publisher);
			rigs.push({ condition: c, publisher, subscriber, stream, up, down, room, frames });
		}

		const pacer = new FramePacer(rigs.map((r) => ({ sendNext: () => r.publisher.sent < frameCount && r.publisher.sendNext() })));
		pacer.start();
		const started = performance.now();
		while (rigs.some((r) => r.publisher.sent < frameCount)) {
			await new Promise((r) => setTimeout(r, 100));
			if (performance.now() - started > o.durationS * 1000 + 10_000) throw new Error('loss sweep publishers fell behind');
		}
		pacer.stop();
		// Let the last packets (and retransmissions) arrive.
		await new Promise((r) => setTimeout(r, Math.max(300, o.playoutDelayMs * 2 + (o.delay ? o.delay.delayMs * 2 + o.delay.jitterMs * 2 : 0))));
		if (pacer.skipped > 0) log(`warning: the pacer skipped ${pacer.skipped} frames (event loop too busy)`);

		const results: LossConditionResult[] = [];
		let losslessLatencySamples: number[] = [];
		for (const r of rigs) {
			const c = r.condition;
			const sent = r.frames.slice(0, r.publisher.sent);
			const result = playout({ sent, sendTimeOf: (i) => r.publisher.sendTimeOf(i), arrivals: r.stream.arrivals, playoutDelayMs: o.playoutDelayMs, useFec: true });
			const latencies: number[] = [];
			for (const [i, a] of r.stream.arrivals) {
				const s = r.publisher.sendTimeOf(i);
				if (s !== undefined && !a.afterNack) latencies.push(a.atMs - s);
			}
			if (c.lossRate === 0 && c.fec && !c.nack) losslessLatencySamples = latencies;
			const lossyStats = [o.lossAt !== 'down' ? r.up.stats.forward : undefined, o.lossAt !== 'up' ? r.down.stats.forward : undefined].filter((s) => s !== undefined);
			// End to end: a packet survives only if it survives every lossy leg.
			const survived = lossyStats.reduce((a, s) => a * (s.received ? 1 - s.dropped / s.received : 1), 1);
			results.push({
				model: c.model,
				lossRate: c.lossRate,
				meanBurstLength: c.model === 'bursty' ? o.meanBurstLength : null,
				fec: c.fec,
				nack: c.nack,
				packetLossHintPercent: c.hint,
				measuredNetworkLoss: 1 - survived,
				ceiling: fecCeiling(c.model, c.lossRate, o.meanBurstLength),
				playout: result,
				latencyMs: summarize(latencies),
				nackStats: { nacksSent: r.stream.nacksSent, packetsAsked: r.stream.nackedPackets, publisherRetransmissions: r.publisher.retransmitted },
				proxy: { uplinkDropped: r.up.stats.forward.dropped, downlinkDropped: r.down.stats.forward.dropped },
			});
		}
		const anyTarget = [...targets.values()][0]!;
		return {
			path: 'plain RTP through Parley (bench control path: Channel + PlainTransports), UDP loss proxies in-process',
			options: o,
			conditions: results,
			losslessLatencySamples,
			server: { media: anyTarget.config.media, channels: anyTarget.config.channels },
		};
	} finally {
		for (const r of rigs) {
			r.publisher.close();
			r.subscriber.close();
			r.up.close();
			r.down.close();
			r.room.close();
		}
		for (const t of targets.values()) await t.close();
	}
}
