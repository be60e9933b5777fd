// RtpStatsPoller on stand-in streams: the per-round cap and its round robin, counters fed
// with differences between polls, unit conversions, and streams that close or fail.
import type { types as ms } from 'mediasoup';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText, total } from '../../test/helpers/prometheusText.js';
import { ParleyMetrics, type MetricSources } from './metrics.js';
import { RtpStatsPoller, type PolledStream } from './rtpStats.js';

interface FakeStream {
	id: string;
	closed: boolean;
	polls: number;
	packets: number;
	fail?: boolean;
	/** Negotiated Opus RED (audio/red before its Opus). */
	red?: boolean;
}

function fakeSources(): MetricSources {
	const pool = { size: 0, info: () => [], liveWorkers: () => [], on: () => pool } as unknown as MetricSources['pool'];
	const channels = { size: 0, channels: () => [] } as unknown as MetricSources['channels'];
	return { pool, channels, signalingConnections: () => 0, activeRecordings: () => 0, transcodeJobs: () => ({ running: 0, queued: 0 }) };
}

function asProducer(s: FakeStream, direction: 'in' | 'out' = 'in'): PolledStream {
	const source = {
		get id() {
			return s.id;
		},
		get closed() {
			return s.closed;
		},
		rtpParameters: { codecs: [...(s.red ? [{ mimeType: 'audio/red', clockRate: 48_000 }] : []), { mimeType: 'audio/opus', clockRate: 48_000 }] },
		getStats: async () => {
			s.polls++;
			if (s.fail) throw new Error('closed meanwhile');
			return [
				{ type: direction === 'in' ? 'inbound-rtp' : 'outbound-rtp', packetCount: s.packets, byteCount: s.packets * 100, packetsLost: 2, fractionLost: 64, jitter: 480, nackCount: 0, nackPacketCount: 0, score: 9 },
			];
		},
	};
	return direction === 'in' ? { direction, source: source as unknown as ms.Producer } : { direction, source: source as unknown as ms.Consumer };
}

async function metricsText(metrics: ParleyMetrics) {
	return parsePrometheusText((await metrics.exposition()).body);
}

describe('RtpStatsPoller', () => {
	it('polls at most maxPerRound streams a round, taking turns so every stream is seen', async () => {
		const metrics = new ParleyMetrics(fakeSources());
		const streams: FakeStream[] = Array.from({ length: 5 }, (_, i) => ({ id: `p${i}`, closed: false, polls: 0, packets: 10 }));
		const poller = new RtpStatsPoller(metrics, { intervalMs: 0, maxPerRound: 2, streams: () => streams.map((s) => asProducer(s)) });
		await poller.poll();
		expect(streams.map((s) => s.polls)).toEqual([1, 1, 0, 0, 0]);
		await poller.poll();
		expect(streams.map((s) => s.polls)).toEqual([1, 1, 1, 1, 0]);
		await poller.poll();
		expect(streams.map((s) => s.polls)).toEqual([2, 1, 1, 1, 1]);
		// 5 streams x 10 packets, each counted once so far.
		expect(total(await metricsText(metrics), 'parley_rtp_packets_total', { direction: 'in' })).toBe(50);
	});

	it('counts the difference since the last poll, converts units, and skips closed or failing streams', async () => {
		const metrics = new ParleyMetrics(fakeSources());
		const a: FakeStream = { id: 'a', closed: false, polls: 0, packets: 100 };
		const b: FakeStream = { id: 'b', closed: false, polls: 0, packets: 50, fail: true };
		const c: FakeStream = { id: 'c', closed: true, polls: 0, packets: 70 };
		const poller = new RtpStatsPoller(metrics, { intervalMs: 0, maxPerRound: 100, streams: () => [a, b, c].map((s) => asProducer(s)) });
		await poller.poll();
		a.packets = 160;
		await poller.poll();
		const samples = await metricsText(metrics);
		expect(total(samples, 'parley_rtp_packets_total', { direction: 'in' })).toBe(160);
		expect(total(samples, 'parley_rtp_bytes_total', { direction: 'in' })).toBe(16_000);
		// packetsLost stayed 2: counted once, not per poll.
		expect(total(samples, 'parley_rtp_packets_lost_total', { direction: 'in' })).toBe(2);
		expect(c.polls).toBe(0);
		expect(b.polls).toBe(2);
		// fractionLost 64/256 = 0.25; jitter 480 RTP units at 48 kHz = 10 ms.
		expect(total(samples, 'parley_rtp_fraction_lost_sum', { direction: 'in' })).toBeCloseTo(0.5);
		expect(total(samples, 'parley_rtp_jitter_seconds_sum', { direction: 'in' })).toBeCloseTo(0.02);
		expect(total(samples, 'parley_producer_score_count')).toBe(2);
		expect(total(samples, 'parley_producer_score_sum')).toBe(18);
	});

	it('counts the packets of streams that negotiated RED as RED, in and out', async () => {
		const metrics = new ParleyMetrics(fakeSources());
		const redIn: FakeStream = { id: 'red-in', closed: false, polls: 0, packets: 40, red: true };
		const plainIn: FakeStream = { id: 'plain-in', closed: false, polls: 0, packets: 30 };
		const redOut: FakeStream = { id: 'red-out', closed: false, polls: 0, packets: 20, red: true };
		const plainOut: FakeStream = { id: 'plain-out', closed: false, polls: 0, packets: 10 };
		const poller = new RtpStatsPoller(metrics, { intervalMs: 0, maxPerRound: 100, streams: () => [asProducer(redIn), asProducer(plainIn), asProducer(redOut, 'out'), asProducer(plainOut, 'out')] });
		await poller.poll();
		redIn.packets += 5;
		await poller.poll();
		const samples = await metricsText(metrics);
		expect(total(samples, 'parley_rtp_red_packets_total', { direction: 'in' })).toBe(45);
		expect(total(samples, 'parley_rtp_red_packets_total', { direction: 'out' })).toBe(20);
		expect(total(samples, 'parley_rtp_packets_total', { direction: 'in' })).toBe(75);
		expect(total(samples, 'parley_rtp_packets_total', { direction: 'out' })).toBe(30);
	});

	it('polls on its interval until stop()', async () => {
		const metrics = new ParleyMetrics(fakeSources());
		const s: FakeStream = { id: 'a', closed: false, polls: 0, packets: 1 };
		const poller = new RtpStatsPoller(metrics, { intervalMs: 20, maxPerRound: 10, streams: () => [asProducer(s)] });
		poller.start();
		await new Promise((r) => setTimeout(r, 110));
		expect(s.polls).toBeGreaterThanOrEqual(2);
		poller.stop();
		const after = s.polls;
		await new Promise((r) => setTimeout(r, 80));
		expect(s.polls).toBe(after);
	});

	it('spreads a round on the timer over its interval instead of sending every request at once', async () => {
		const metrics = new ParleyMetrics(fakeSources());
		const streams: FakeStream[] = Array.from({ length: 10 }, (_, i) => ({ id: `s${i}`, closed: false, polls: 0, packets: 1 }));
		const polledAt: number[] = [];
		const poller = new RtpStatsPoller(metrics, {
			intervalMs: 400,
			maxPerRound: 100,
			streams: () =>
				streams.map((s) => {
					const p = asProducer(s);
					const getStats = p.source.getStats.bind(p.source);
					(p.source as { getStats: () => Promise<unknown> }).getStats = () => {
						polledAt.push(performance.now());
						return getStats();
					};
					return p;
				}),
		});
		poller.start();
		await expect.poll(() => metrics.recentStatsRounds[0]?.endedAtMs ?? null, { timeout: 10_000, interval: 50 }).not.toBeNull();
		poller.stop();
		const first = polledAt.slice(0, 10);
		expect(first).toHaveLength(10);
		// 10 requests over 0.9 x 400 ms: one every 36 ms, so the first and last are far apart.
		expect(first[9]! - first[0]!).toBeGreaterThan(200);
		const round = metrics.recentStatsRounds[0]!;
		expect(round.streams).toBe(10);
		expect(round.endedAtMs! - round.startedAtMs).toBeGreaterThan(200);
	});
});
