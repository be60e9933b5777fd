// GET /metrics of a real server during a real channel: a werift publisher sends Opus over
// ICE + DTLS + SRTP, a werift listener receives it from a consumer. The gauges must match
// what exists, go back to zero when everyone left, counters must only rise, and worker CPU
// must be in seconds.
import { afterEach, describe, expect, it } from 'vitest';
import { encodeTone } from '../../test/helpers/audio.js';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { freePort } from '../../testkit/ports.js';
import { parsePrometheusText, select, seriesKey, total, type Sample } from '../../test/helpers/prometheusText.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { publishWithWerift, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { subscribeWithWerift, type WeriftSubscriber } from '../../testkit/weriftListener.js';
import { ParleyServer } from '../ParleyServer.js';
import { mintAccessToken } from '../auth/accessToken.js';
import { PROTOCOL_VERSION, type Grants, type RequestData } from '../../protocol/messages.js';

const SECRET = 'metrics-test-secret-0123456789-abcdefghij';
const key = new TextEncoder().encode(SECRET);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function join(server: ParleyServer, userId: string, grants: Partial<Grants>): Promise<TestSignalingClient> {
	const token = await mintAccessToken({ userId, channels: ['room'], grants, ttlS: 600 }, key);
	const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
	const caps = await client.request('getRouterRtpCapabilities', {});
	if (!caps.ok) throw new Error('caps');
	const joined = await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
	if (!joined.ok) throw new Error(`join: ${joined.error.code}`);
	return client;
}

describe('Prometheus metrics', () => {
	let server: ParleyServer | undefined;
	const closers: (() => unknown)[] = [];

	afterEach(async () => {
		for (const close of closers.splice(0).reverse()) await close();
		await server?.shutdown('test end');
		server = undefined;
	});

	async function scrape(): Promise<Sample[]> {
		const res = await fetch(`http://127.0.0.1:${server!.http.port}/metrics`);
		expect(res.status).toBe(200);
		expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
		return parsePrometheusText(await res.text());
	}

	/** Every counter and histogram series in `later` is >= its value in `earlier`. */
	function expectOnlyRising(earlier: Sample[], later: Sample[]): void {
		const before = new Map(earlier.filter(isCumulative).map((s) => [seriesKey(s), s.value]));
		for (const s of later.filter(isCumulative)) {
			const was = before.get(seriesKey(s));
			if (was !== undefined) expect(s.value, seriesKey(s)).toBeGreaterThanOrEqual(was);
		}
	}

	it('counts a live channel with real RTP, rises only, and returns to zero after everyone left', async () => {
		server = await ParleyServer.create(
			await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_METRICS_STATS_INTERVAL_MS: '200', PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '100' }),
			testLogger(),
		);
		const idle = await scrape();
		expect(total(idle, 'parley_workers_up')).toBe(1);
		expect(total(idle, 'parley_channels')).toBe(0);

		const alice = await join(server, 'alice', { canPublish: true });
		closers.push(() => alice.close());
		const publisher: WeriftPublisher = await publishWithWerift(alice);
		closers.push(() => publisher.close());
		const bob = await join(server, 'bob', { canSubscribe: true });
		closers.push(() => bob.close());
		const listener: WeriftSubscriber = await subscribeWithWerift(bob);
		closers.push(() => listener.close());

		// Junk and an unknown method: counted, with bounded labels.
		expect((await bob.sendJunk('{not json')).ok).toBe(false);
		const unknown = await bob.sendRaw({ id: 900, method: 'getSecrets-of-user-42', data: {} });
		expect(unknown.ok ? 'OK' : unknown.error.code).toBe('E_UNKNOWN_METHOD');

		const during = await scrape();
		expect(total(during, 'parley_channels')).toBe(1);
		expect(total(during, 'parley_peers')).toBe(2);
		expect(total(during, 'parley_transports')).toBe(2);
		expect(total(during, 'parley_producers')).toBe(1);
		expect(total(during, 'parley_consumers')).toBe(1);
		expect(total(during, 'parley_signaling_connections')).toBe(2);
		expect(total(during, 'parley_worker_routers', { worker: '0' })).toBe(1);
		expect(total(during, 'parley_peer_joins_total')).toBe(2);
		expect(total(during, 'parley_peer_leaves_total')).toBe(0);
		expect(total(during, 'parley_signaling_requests_total', { method: 'join', code: 'OK' })).toBe(2);
		expect(total(during, 'parley_signaling_requests_total', { method: 'unknown', code: 'E_UNKNOWN_METHOD' })).toBe(1);
		expect(total(during, 'parley_signaling_requests_total', { method: 'invalid', code: 'E_BAD_REQUEST' })).toBe(1);
		expect(total(during, 'parley_signaling_invalid_messages_total', { reason: 'not_json' })).toBe(1);
		expect(total(during, 'parley_signaling_invalid_messages_total', { reason: 'unknown_method' })).toBe(1);
		// No label value from the client's text.
		expect(select(during, 'parley_signaling_requests_total').map((s) => s.labels.method)).not.toContain('getSecrets-of-user-42');
		expect(total(during, 'parley_signaling_request_duration_seconds_count', { method: 'join' })).toBe(2);

		// Two seconds of a tone.
		const sent = await publisher.send(encodeTone(1000, 100));
		await bob.until(() => listener.packetsReceived >= sent, 3000, 'packets at the listener');
		const deadline = Date.now() + 5000;
		let traffic = await scrape();
		while (Date.now() < deadline && (total(traffic, 'parley_rtp_packets_total', { direction: 'in' }) < sent || total(traffic, 'parley_rtp_packets_total', { direction: 'out' }) < sent)) {
			await sleep(100);
			traffic = await scrape();
		}
		// Loopback loses nothing: the server counted every packet in, and forwarded each one.
		expect(total(traffic, 'parley_rtp_packets_total', { direction: 'in' })).toBe(sent);
		expect(total(traffic, 'parley_rtp_packets_total', { direction: 'out' })).toBe(listener.packetsReceived);
		expect(total(traffic, 'parley_rtp_bytes_total', { direction: 'in' })).toBeGreaterThan(sent * 12);
		expect(total(traffic, 'parley_rtp_bytes_total', { direction: 'out' })).toBeGreaterThan(sent * 12);
		expect(total(traffic, 'parley_rtp_packets_lost_total', { direction: 'in' })).toBe(0);
		expect(total(traffic, 'parley_producer_score_count')).toBeGreaterThan(0);
		expect(total(traffic, 'parley_consumer_score_count')).toBeGreaterThan(0);
		// A clean link scores 10 (an observation in the le="10" bucket but not the le="9" one).
		expect(total(traffic, 'parley_producer_score_bucket', { le: '10' }) - total(traffic, 'parley_producer_score_bucket', { le: '9' })).toBeGreaterThan(0);
		expect(total(traffic, 'parley_rtp_fraction_lost_count', { direction: 'in' })).toBeGreaterThan(0);
		expect(total(traffic, 'parley_rtp_fraction_lost_bucket', { direction: 'in', le: '0' })).toBe(total(traffic, 'parley_rtp_fraction_lost_count', { direction: 'in' }));
		expect(total(traffic, 'parley_rtp_jitter_seconds_count', { direction: 'in' })).toBeGreaterThan(0);
		// Loopback jitter is a few ms at most: in seconds, far below 1.
		const jitterMean = total(traffic, 'parley_rtp_jitter_seconds_sum', { direction: 'in' }) / total(traffic, 'parley_rtp_jitter_seconds_count', { direction: 'in' });
		expect(jitterMean).toBeLessThan(0.05);
		expect(total(traffic, 'parley_rtp_stats_poll_duration_seconds_count')).toBeGreaterThan(0);

		// Worker CPU is in seconds: more than nothing, less than the worker has existed (the
		// worker started after this process, so its CPU time is below our uptime; a ms/s mix-up
		// would be 1000x over).
		const cpu = total(traffic, 'parley_worker_cpu_seconds_total', { worker: '0' });
		expect(cpu).toBeGreaterThan(0);
		expect(cpu).toBeLessThan(process.uptime());
		expect(select(traffic, 'parley_worker_cpu_seconds_total').map((s) => s.labels.mode).sort()).toEqual(['system', 'user']);
		expectOnlyRising(idle, during);
		expectOnlyRising(during, traffic);

		// Alice leaves by request, Bob by closing his socket.
		expect((await alice.request('leave', {})).ok).toBe(true);
		bob.close();
		await bob.closed;
		let after = await scrape();
		const settle = Date.now() + 5000;
		while (Date.now() < settle && (total(after, 'parley_channels') > 0 || total(after, 'parley_signaling_connections') > 1)) {
			await sleep(50);
			after = await scrape();
		}
		for (const gauge of ['parley_channels', 'parley_peers', 'parley_transports', 'parley_producers', 'parley_consumers', 'parley_voice_recordings_active']) {
			expect(total(after, gauge), gauge).toBe(0);
		}
		expect(total(after, 'parley_worker_routers')).toBe(0);
		expect(total(after, 'parley_signaling_connections')).toBe(1); // alice is still connected
		expect(total(after, 'parley_peer_leaves_total')).toBe(2);
		expectOnlyRising(traffic, after);
	});

	it('serves /metrics on its own port behind a bearer token when configured', async () => {
		const port = await freePort();
		server = await ParleyServer.create(await testConfig({ PARLEY_METRICS_PORT: String(port), PARLEY_METRICS_BEARER_TOKEN: 'scrape-me-please' }), testLogger());
		// Not on the main port then.
		expect((await fetch(`http://127.0.0.1:${server.http.port}/metrics`)).status).toBe(404);
		const url = `http://127.0.0.1:${port}/metrics`;
		const anonymous = await fetch(url);
		expect(anonymous.status).toBe(401);
		expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
		expect((await fetch(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
		const ok = await fetch(url, { headers: { authorization: 'Bearer scrape-me-please' } });
		expect(ok.status).toBe(200);
		const samples = parsePrometheusText(await ok.text());
		expect(total(samples, 'parley_workers_up')).toBe(1);
		// Default Node metrics under their standard names.
		expect(select(samples, 'process_cpu_seconds_total').length).toBe(1);
		expect(select(samples, 'nodejs_eventloop_lag_seconds').length).toBe(1);
		expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(404);
		await server.shutdown('test end');
		await expect(fetch(url)).rejects.toThrow();
	});

	it('has no /metrics and no polling when metrics are disabled', async () => {
		server = await ParleyServer.create(await testConfig({ PARLEY_METRICS_ENABLED: 'false' }), testLogger());
		expect(server.metrics).toBeUndefined();
		expect((await fetch(`http://127.0.0.1:${server.http.port}/metrics`)).status).toBe(404);
	});
});

/** Counters, and histograms' buckets, counts and sums (every observation is >= 0). */
function isCumulative(s: Sample): boolean {
	return s.type === 'counter' || s.type === 'histogram';
}
