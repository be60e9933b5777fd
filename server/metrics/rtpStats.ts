// RTP figures for the metrics, from mediasoup's producer and consumer stats.
//
// Stats live in the worker processes: each getStats() is one request over the worker's
// channel. So they are polled in rounds, on a timer (never per scrape or per request), and
// a round polls at most `maxPerRound` streams: with more, consecutive rounds take turns
// through them (round robin from a cursor), so the cost per round stays flat as channels
// grow and each stream is seen every ceil(count / maxPerRound) rounds.
//
// A round on the timer spreads its requests evenly over the interval (a few every
// SLOT_GAP_MS) instead of sending them in one burst. A worker answers stats on the same
// thread that forwards RTP, and the replies are parsed on Parley's event loop: 500 requests
// at once held both for milliseconds, and every listener heard that second (the capacity
// bench saw single seconds with p99 at 10-20x raw mediasoup's at a tenth of the knee).
// Within a slot at most POLL_CONCURRENCY requests are in flight.
//
// mediasoup's packet, byte, loss and NACK figures are totals since the stream began; the
// counters get the difference since the stream's previous poll. What a stream carried after
// its last poll and before it closed is not counted (at most one interval of it).
import type { types as ms } from 'mediasoup';
import { usesOpusRed } from '../media/mediaCodecs.js';
import { type ParleyMetrics, RECENT_STATS_ROUNDS, type RtpDirection, type StatsRound } from './metrics.js';

/** A producer (audio coming in) or a consumer (audio going out to a listener). */
export type PolledStream = { direction: 'in'; source: ms.Producer } | { direction: 'out'; source: ms.Consumer };

export interface RtpStatsPollerOptions {
	intervalMs: number;
	maxPerRound: number;
	/** Every stream there is now (walked once per round: cheap, it is in-process). */
	streams(): Iterable<PolledStream>;
}

interface Totals {
	packets: number;
	bytes: number;
	lost: number;
	nacks: number;
	nackPackets: number;
}

const POLL_CONCURRENCY = 32;
/** Least time between two slots of a spread round: at 5 s and 500 streams, 2 requests every 20 ms. */
const SLOT_GAP_MS = 20;
/** A spread round ends this share into the interval, so it is done before the next begins. */
const SPREAD_SHARE = 0.9;
const ZERO: Totals = { packets: 0, bytes: 0, lost: 0, nacks: 0, nackPackets: 0 };

export class RtpStatsPoller {
	readonly #metrics: ParleyMetrics;
	readonly #options: RtpStatsPollerOptions;
	/** Totals at each stream's last poll, by producer/consumer id. */
	readonly #last = new Map<string, Totals>();
	#cursor = 0;
	#timer: NodeJS.Timeout | undefined;
	#round: Promise<void> | undefined;
	#stopped = false;

	constructor(metrics: ParleyMetrics, options: RtpStatsPollerOptions) {
		this.#metrics = metrics;
		this.#options = options;
	}

	/** A round every intervalMs (from the start of one to the next; they never overlap),
	 * its requests spread over the interval, until stop(). The timers never keep the process alive. */
	start(): void {
		const intervalMs = this.#options.intervalMs;
		if (intervalMs <= 0 || this.#stopped || this.#timer) return;
		const schedule = (delayMs: number): void => {
			this.#timer = setTimeout(() => {
				const started = performance.now();
				void this.#run(intervalMs * SPREAD_SHARE).finally(() => {
					if (!this.#stopped) schedule(Math.max(0, intervalMs - (performance.now() - started)));
				});
			}, delayMs);
			this.#timer.unref();
		};
		schedule(intervalMs);
	}

	stop(): void {
		this.#stopped = true;
		clearTimeout(this.#timer);
		this.#timer = undefined;
	}

	/** One round now, its requests not spread (tests call it to skip the wait); joins a round already running. */
	poll(): Promise<void> {
		return this.#run(0);
	}

	#run(spreadMs: number): Promise<void> {
		this.#round ??= this.#pollRound(spreadMs).finally(() => {
			this.#round = undefined;
		});
		return this.#round;
	}

	async #pollRound(spreadMs: number): Promise<void> {
		const started = performance.now();
		const all = [...this.#options.streams()];
		const ids = new Set(all.map((s) => s.source.id));
		for (const id of this.#last.keys()) if (!ids.has(id)) this.#last.delete(id);

		const max = this.#options.maxPerRound;
		let batch = all;
		if (all.length > max) {
			const from = this.#cursor % all.length;
			batch = [...all.slice(from, from + max), ...all.slice(0, Math.max(0, from + max - all.length))];
			this.#cursor = (from + max) % all.length;
		} else {
			this.#cursor = 0;
		}
		const round: StatsRound = { startedAtMs: started, endedAtMs: null, streams: batch.length };
		const rounds = this.#metrics.recentStatsRounds;
		rounds.push(round);
		if (rounds.length > RECENT_STATS_ROUNDS) rounds.splice(0, rounds.length - RECENT_STATS_ROUNDS);
		// Slot k starts at started + k * slotMs; requests of a slot that starts late (the
		// previous one was slow) go at once, so a round never takes much longer than spreadMs.
		const perSlot = Math.ceil(batch.length / Math.max(1, Math.min(batch.length, Math.floor(spreadMs / SLOT_GAP_MS))));
		// The slots actually used (rounding perSlot up may leave some empty) share the whole spread.
		const slotMs = spreadMs / Math.max(1, Math.ceil(batch.length / perSlot));
		let busyMs = 0;
		for (let k = 0; k * perSlot < batch.length; k++) {
			const waitMs = started + k * slotMs - performance.now();
			if (waitMs > 1) await new Promise<void>((r) => setTimeout(r, waitMs).unref());
			if (this.#stopped) return;
			const slotStarted = performance.now();
			const slot = batch.slice(k * perSlot, (k + 1) * perSlot);
			for (let i = 0; i < slot.length; i += POLL_CONCURRENCY) {
				await Promise.all(slot.slice(i, i + POLL_CONCURRENCY).map((s) => this.#pollStream(s)));
				if (this.#stopped) return;
			}
			busyMs += performance.now() - slotStarted;
		}
		this.#metrics.statsPollDuration.observe(busyMs / 1000);
		round.endedAtMs = performance.now();
	}

	async #pollStream(stream: PolledStream): Promise<void> {
		const { source, direction } = stream;
		if (source.closed) return;
		let stats: (ms.ProducerStat | ms.ConsumerStat)[];
		try {
			stats = await source.getStats();
		} catch {
			// Closed while the request was in flight (peer left, worker died): nothing to count.
			return;
		}
		// A producer reports its inbound stream; a consumer its outbound one (plus its producer's inbound).
		const own = stats.filter((s) => s.type === (direction === 'in' ? 'inbound-rtp' : 'outbound-rtp'));
		if (own.length === 0) return; // no packet yet
		const clockRate = source.rtpParameters.codecs[0]?.clockRate ?? 48_000;
		const m = this.#metrics;
		const now: Totals = { ...ZERO };
		for (const s of own) {
			now.packets += s.packetCount;
			now.bytes += s.byteCount;
			now.lost += s.packetsLost;
			now.nacks += s.nackCount;
			now.nackPackets += s.nackPacketCount;
			// RTCP conventions: fractionLost is 8-bit fixed point (256 = all), jitter is in RTP
			// timestamp units (1/clockRate s).
			m.rtpFractionLost.observe({ direction }, Math.min(1, s.fractionLost / 256));
			m.rtpJitter.observe({ direction }, s.jitter / clockRate);
			(direction === 'in' ? m.producerScore : m.consumerScore).observe(s.score);
		}
		const before = this.#last.get(source.id) ?? ZERO;
		this.#last.set(source.id, now);
		const add = (counter: ParleyMetrics['rtpPackets'], key: keyof Totals, d: RtpDirection) => {
			// Totals only grow, except packetsLost, which duplicates may lower: never count down.
			const delta = now[key] - before[key];
			if (delta > 0) counter.inc({ direction: d }, delta);
		};
		add(m.rtpPackets, 'packets', direction);
		add(m.rtpBytes, 'bytes', direction);
		add(m.rtpPacketsLost, 'lost', direction);
		add(m.rtpNacks, 'nacks', direction);
		add(m.rtpNackPackets, 'nackPackets', direction);
		// A stream that negotiated RED carries every packet as RED (Chromium sends them all so).
		if (usesOpusRed(source.rtpParameters)) add(m.rtpRedPackets, 'packets', direction);
	}
}

/** Every producer and consumer of the peers of `channels`. */
export function* channelStreams(channels: Iterable<{ peers: ReadonlyMap<string, { producers: ReadonlyMap<string, ms.Producer>; consumers: ReadonlyMap<string, ms.Consumer> }> }>): Iterable<PolledStream> {
	for (const channel of channels) {
		for (const peer of channel.peers.values()) {
			for (const source of peer.producers.values()) yield { direction: 'in', source };
			for (const source of peer.consumers.values()) yield { direction: 'out', source };
		}
	}
}
