// Issue 7: "Rate limit held across nodes: N requests spread over two nodes are limited as
// one bucket." Two Parley nodes (ParleyServer instances, each with its own mediasoup worker
// and listener) share one real redis-server; one user's signaling requests and tus requests
// alternate between them. Then the same without Redis: each node limits on its own.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ParleyError } from '../../client/ParleyError.js';
import { SignalingConnection } from '../../client/SignalingConnection.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { CLOSE_CODES, PROTOCOL_VERSION } from '../../protocol/messages.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { parsePrometheusText } from '../helpers/prometheusText.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { TestSignalingClient, type Reply } from '../../testkit/signalingClient.js';

const SECRET = 'rate-limit-test-secret-0123456789abcdef';
const KEY = new TextEncoder().encode(SECRET);

// The per-connection bucket is wide open so only the per-user / per-address buckets decide.
// Rates are slow so the refill during a run is computable (and under one token).
const USER_RATE = 0.5;
const USER_BURST = 10;
const VOICE_RATE = 0.5;
const VOICE_BURST = 6;
const CONN_PER_MIN = 1;
const CONN_BURST = 20;
const LIMITS_ENV = {
	PARLEY_AUTH_JWT_SECRET: SECRET,
	PARLEY_SIGNALING_REQUESTS_PER_SECOND: '1000',
	PARLEY_SIGNALING_REQUEST_BURST: '1000',
	PARLEY_SIGNALING_USER_REQUESTS_PER_SECOND: String(USER_RATE),
	PARLEY_SIGNALING_USER_REQUEST_BURST: String(USER_BURST),
	PARLEY_SIGNALING_IP_REQUESTS_PER_SECOND: '0',
	PARLEY_SIGNALING_IP_CONNECTIONS_PER_MINUTE: String(CONN_PER_MIN),
	PARLEY_SIGNALING_IP_CONNECTION_BURST: String(CONN_BURST),
	// This file tests the rate of new connections; the caps on open connections per user and
	// per address (quotas) would refuse them first.
	PARLEY_SIGNALING_MAX_CONNECTIONS_PER_USER: '0',
	PARLEY_VOICE_USER_REQUESTS_PER_SECOND: String(VOICE_RATE),
	PARLEY_VOICE_USER_REQUEST_BURST: String(VOICE_BURST),
	PARLEY_VOICE_IP_REQUESTS_PER_SECOND: '0',
};

async function startNodes(env: Record<string, string>): Promise<ParleyServer[]> {
	const nodes: ParleyServer[] = [];
	for (let i = 0; i < 2; i++) nodes.push(await ParleyServer.create(await testConfig({ ...LIMITS_ENV, ...env }), testLogger()));
	return nodes;
}

function token(userId: string): Promise<string> {
	return mintAccessToken({ userId, channels: ['room'], grants: { canPublish: true, canSubscribe: true, canRecord: true }, ttlS: 600 }, KEY);
}

const wsUrl = (node: ParleyServer, tok: string) => `ws://127.0.0.1:${node.http.port}/ws?token=${encodeURIComponent(tok)}&v=${PROTOCOL_VERSION}`;

/** The most tokens that can have refilled over `ms` at `ratePerSecond` (on top of the burst). */
const refillBound = (ratePerSecond: number, ms: number) => Math.floor((ratePerSecond * ms) / 1000);

async function rateLimitedCount(node: ParleyServer, scope: string): Promise<number> {
	const res = await fetch(`http://127.0.0.1:${node.http.port}/metrics`);
	const sample = parsePrometheusText(await res.text()).find((s) => s.name === 'parley_rate_limited_total' && s.labels.scope === scope);
	return sample?.value ?? 0;
}

describe('two nodes, one Redis: one bucket per user and per address', () => {
	let redis: TestRedis;
	let nodes: ParleyServer[];
	const clients: TestSignalingClient[] = [];

	beforeAll(async () => {
		redis = await startRedis();
		nodes = await startNodes({ PARLEY_CLUSTER_REDIS_URL: redis.url });
	}, 60_000);

	afterEach(() => {
		for (const c of clients.splice(0)) c.close();
	});

	afterAll(async () => {
		await Promise.all((nodes ?? []).map((n) => n.shutdown('test end')));
		await redis?.stop();
	});

	async function connect(node: ParleyServer, tok: string): Promise<TestSignalingClient> {
		const { client, welcome } = await TestSignalingClient.connect(wsUrl(node, tok));
		clients.push(client);
		// The welcome tells the client to pace under its user's limit, the lower one here.
		expect(welcome.limits).toMatchObject({ requestsPerSecond: USER_RATE, requestBurst: USER_BURST });
		return client;
	}

	it('signaling: one user alternating over both nodes gets exactly burst (+ refill) requests, the rest E_RATE_LIMIT', async () => {
		const tok = await token(`sig-${randomUUID()}`);
		const [a, b] = [await connect(nodes[0]!, tok), await connect(nodes[1]!, tok)];
		const before = await Promise.all(nodes.map((n) => rateLimitedCount(n, 'signaling_user')));
		const N = 30;
		const started = performance.now();
		const replies: Reply[] = [];
		// One at a time, alternating: every request sees the bucket the previous one left.
		for (let i = 0; i < N; i++) replies.push(await (i % 2 === 0 ? a : b).request('getRouterRtpCapabilities', {}));
		const elapsedMs = performance.now() - started;
		const ok = replies.filter((r) => r.ok).length;
		const limited = replies.filter((r) => !r.ok && r.error.code === 'E_RATE_LIMIT');
		console.log(`signaling across 2 nodes: ${N} requests in ${Math.round(elapsedMs)} ms, ${ok} allowed (burst ${USER_BURST}, refill bound ${refillBound(USER_RATE, elapsedMs)})`);
		expect(ok).toBeGreaterThanOrEqual(USER_BURST);
		expect(ok).toBeLessThanOrEqual(USER_BURST + refillBound(USER_RATE, elapsedMs));
		expect(limited).toHaveLength(N - ok);
		// The first burst went through in order, alternating: both nodes drew from one bucket.
		expect(replies.slice(0, USER_BURST).every((r) => r.ok)).toBe(true);
		const first = limited[0]!;
		if (first.ok) throw new Error('unreachable');
		expect(first.error.message).toMatch(/your user across all connections .* retry in \d+ (ms|s)/);
		expect(first.error.retryAfterMs).toBeGreaterThan(0);
		expect(first.error.retryAfterMs).toBeLessThanOrEqual(1000 / USER_RATE);
		const after = await Promise.all(nodes.map((n) => rateLimitedCount(n, 'signaling_user')));
		expect(after[0]! - before[0]! + (after[1]! - before[1]!)).toBe(N - ok);
		// Both nodes refused some: neither one held the bucket alone.
		expect(after[0]! - before[0]!).toBeGreaterThan(0);
		expect(after[1]! - before[1]!).toBeGreaterThan(0);
	});

	it('invalid frames are stopped by the per-connection bucket and never reach Redis', async () => {
		const userId = `junk-${randomUUID()}`;
		const client = await connect(nodes[0]!, await token(userId));
		const r = new Redis(redis.url);
		try {
			for (let i = 0; i < 20; i++) await client.sendJunk('not json');
			for (let i = 0; i < 20; i++) expect((await client.sendRaw({ id: 1000 + i, method: 'noSuchMethod', data: {} })).ok).toBe(false);
			for (let i = 0; i < 20; i++) expect((await client.sendRaw({ id: 2000 + i, method: 'join', data: { channel: 7 } })).ok).toBe(false);
			// Any take would have written the user's bucket (the script creates it).
			expect(await r.exists(`parley:rl:sig-user:${userId}`)).toBe(0);
			expect((await client.request('getRouterRtpCapabilities', {})).ok).toBe(true);
			expect(await r.exists(`parley:rl:sig-user:${userId}`)).toBe(1);
		} finally {
			await r.quit();
		}
	});

	it('tus: one user alternating over both nodes gets exactly burst (+ refill) requests, the rest 429 with Retry-After', async () => {
		const tok = await token(`tus-${randomUUID()}`);
		const N = 16;
		const started = performance.now();
		const responses: Response[] = [];
		for (let i = 0; i < N; i++) {
			// HEAD of an upload that does not exist: 404 once past the limit, 429 when refused.
			const node = nodes[i % 2]!;
			responses.push(
				await fetch(`http://127.0.0.1:${node.http.port}/voice/uploads/${randomUUID()}`, {
					method: 'HEAD',
					headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${tok}` },
				}),
			);
		}
		const elapsedMs = performance.now() - started;
		const statuses = responses.map((r) => r.status);
		const passed = statuses.filter((s) => s === 404).length;
		console.log(`tus across 2 nodes: ${N} requests in ${Math.round(elapsedMs)} ms, ${passed} allowed (burst ${VOICE_BURST})`);
		expect(statuses.every((s) => s === 404 || s === 429)).toBe(true);
		expect(passed).toBeGreaterThanOrEqual(VOICE_BURST);
		expect(passed).toBeLessThanOrEqual(VOICE_BURST + refillBound(VOICE_RATE, elapsedMs));
		const refused = responses.find((r) => r.status === 429)!;
		expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
		expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(Math.ceil(1 / VOICE_RATE));
		expect(refused.headers.get('tus-resumable')).toBe('1.0.0');

		// A body-carrying method shows the JSON error: POST (create) over the limit.
		const post = await fetch(`http://127.0.0.1:${nodes[1]!.http.port}/voice/uploads`, {
			method: 'POST',
			headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${tok}`, 'Upload-Length': '100' },
		});
		expect(post.status).toBe(429);
		const body = (await post.json()) as { error: { code: string; message: string; retryAfterMs: number } };
		expect(body.error.code).toBe('E_RATE_LIMIT');
		expect(body.error.message).toMatch(/retry in/);
		// The voice-message API draws from the same per-user bucket.
		const list = await fetch(`http://127.0.0.1:${nodes[0]!.http.port}/voice/messages?channel=room`, { headers: { Authorization: `Bearer ${tok}` } });
		expect(list.status).toBe(429);
	});

	it('the client library retries a request the user limit refused, after the retryAfterMs it was given', async () => {
		const tok = await token(`retry-${randomUUID()}`);
		// Another connection of the same user (another tab, on the other node) spends the bucket.
		const other = await connect(nodes[0]!, tok);
		for (let i = 0; i < USER_BURST; i++) expect((await other.request('getRouterRtpCapabilities', {})).ok).toBe(true);
		const connection = await SignalingConnection.open({ url: `ws://127.0.0.1:${nodes[1]!.http.port}/ws`, token: tok, createWebSocket: (u, protocols) => new WebSocket(u, protocols) as unknown as globalThis.WebSocket });
		try {
			const refused = await connection.request('getRouterRtpCapabilities', {}, { rateLimitRetries: 0 }).catch((e: unknown) => e);
			expect(refused).toBeInstanceOf(ParleyError);
			expect(refused).toMatchObject({ code: 'E_RATE_LIMIT' });
			const waitMs = (refused as ParleyError).retryAfterMs!;
			expect(waitMs).toBeGreaterThan(0);
			expect(waitMs).toBeLessThanOrEqual(1000 / USER_RATE);
			const before = await rateLimitedCount(nodes[1]!, 'signaling_user');
			const started = performance.now();
			// Refused once more (the bucket is still empty), then sent again after the wait: answered.
			const caps = await connection.request('getRouterRtpCapabilities', {});
			const tookMs = performance.now() - started;
			console.log(`client retry after E_RATE_LIMIT: answered after ${Math.round(tookMs)} ms (retryAfterMs ${waitMs})`);
			expect(caps.rtpCapabilities.codecs?.length).toBeGreaterThan(0);
			expect(await rateLimitedCount(nodes[1]!, 'signaling_user')).toBe(before + 1);
			// It waited (about retryAfterMs, jittered up to twice): not answered before a token refilled.
			expect(tookMs).toBeGreaterThan(waitMs / 2);
		} finally {
			connection.close();
		}
	});

	it('new WebSocket connections from one address: exactly burst open over both nodes, the rest close 4429', async () => {
		// Earlier tests spent some of this address's connection tokens: start from a full bucket.
		const r = new Redis(redis.url);
		await r.del('parley:rl:ws-conn-ip:127.0.0.1');
		await r.quit();
		const tok = await token(`conn-${randomUUID()}`);
		const N = CONN_BURST + 5;
		const outcomes: ('welcome' | number)[] = [];
		for (let i = 0; i < N; i++) {
			const c = await TestSignalingClient.open(wsUrl(nodes[i % 2]!, tok));
			clients.push(c);
			const first = await Promise.race([c.waitFor('welcome').then(() => 'welcome' as const), c.closed.then((x) => x.code)]);
			outcomes.push(first);
			if (first !== 'welcome') expect((await c.closed).reason).toMatch(/^E_RATE_LIMIT: Too many new connections from your address .* retry in/);
		}
		expect(outcomes.filter((o) => o === 'welcome')).toHaveLength(CONN_BURST);
		expect(outcomes.slice(CONN_BURST)).toEqual(Array(5).fill(CLOSE_CODES.OVERLOADED));
	});
});

describe('two nodes without Redis: each node has its own buckets', () => {
	let nodes: ParleyServer[];
	const clients: TestSignalingClient[] = [];

	beforeAll(async () => {
		nodes = await startNodes({});
	}, 60_000);

	afterAll(async () => {
		for (const c of clients.splice(0)) c.close();
		await Promise.all((nodes ?? []).map((n) => n.shutdown('test end')));
	});

	it('the same alternating requests get a burst on each node: twice as many', async () => {
		const tok = await token(`solo-${randomUUID()}`);
		const conns = [];
		for (const n of nodes) {
			const { client } = await TestSignalingClient.connect(wsUrl(n, tok));
			clients.push(client);
			conns.push(client);
		}
		const N = 30;
		const started = performance.now();
		const replies: Reply[] = [];
		for (let i = 0; i < N; i++) replies.push(await conns[i % 2]!.request('getRouterRtpCapabilities', {}));
		const elapsedMs = performance.now() - started;
		const ok = replies.filter((r) => r.ok).length;
		console.log(`signaling, 2 nodes without Redis: ${N} requests, ${ok} allowed (2 x burst ${USER_BURST})`);
		expect(ok).toBeGreaterThanOrEqual(2 * USER_BURST);
		expect(ok).toBeLessThanOrEqual(2 * (USER_BURST + refillBound(USER_RATE, elapsedMs)));

		let passed = 0;
		for (let i = 0; i < 16; i++) {
			const res = await fetch(`http://127.0.0.1:${nodes[i % 2]!.http.port}/voice/uploads/${randomUUID()}`, {
				method: 'HEAD',
				headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${tok}` },
			});
			if (res.status === 404) passed++;
		}
		expect(passed).toBeGreaterThanOrEqual(2 * VOICE_BURST);
		expect(passed).toBeLessThanOrEqual(2 * VOICE_BURST + 2);
	});
});

describe('per-address limits on one node behind a proxy (http.trustProxy)', () => {
	let node: ParleyServer;
	const clients: TestSignalingClient[] = [];

	beforeAll(async () => {
		node = await ParleyServer.create(
			await testConfig({
				PARLEY_AUTH_JWT_SECRET: SECRET,
				PARLEY_HTTP_TRUST_PROXY: 'true',
				PARLEY_SIGNALING_IP_REQUESTS_PER_SECOND: '0.5',
				PARLEY_SIGNALING_IP_REQUEST_BURST: '8',
				PARLEY_VOICE_IP_REQUESTS_PER_SECOND: '0.5',
				PARLEY_VOICE_IP_REQUEST_BURST: '5',
			}),
			testLogger(),
		);
	}, 60_000);

	afterAll(async () => {
		for (const c of clients.splice(0)) c.close();
		await node?.shutdown('test end');
	});

	it('limits unauthenticated voice requests per forwarded address before the token is checked', async () => {
		const send = (forwardedFor: string) =>
			fetch(`http://127.0.0.1:${node.http.port}/voice/uploads/${randomUUID()}`, {
				method: 'HEAD',
				headers: { 'Tus-Resumable': '1.0.0', Authorization: 'Bearer not-a-token', 'X-Forwarded-For': forwardedFor },
			}).then((r) => r.status);
		const fromA = [];
		for (let i = 0; i < 8; i++) fromA.push(await send('198.51.100.7, 203.0.113.1'));
		expect(fromA).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
		// Another address (the proxy's last entry) has its own bucket; the client-written first entry does not count.
		expect(await send('198.51.100.7, 203.0.113.2')).toBe(401);
		// IPv6 clients share their /64.
		const v6 = [];
		for (let i = 0; i < 6; i++) v6.push(await send(`2001:db8:7:7::${i + 1}`));
		expect(v6).toEqual([401, 401, 401, 401, 401, 429]);
	});

	it('limits signaling requests per address across users', async () => {
		const url = async (user: string) => `ws://127.0.0.1:${node.http.port}/ws?token=${encodeURIComponent(await token(user))}&v=${PROTOCOL_VERSION}`;
		const conns = [];
		for (const u of ['ip-a', 'ip-b']) {
			// ws sends no X-Forwarded-For: the socket address (127.0.0.1) is the key.
			const { client } = await TestSignalingClient.connect(await url(u));
			clients.push(client);
			conns.push(client);
		}
		const codes = [];
		for (let i = 0; i < 12; i++) {
			const r = await conns[i % 2]!.request('getRouterRtpCapabilities', {});
			codes.push(r.ok ? 'OK' : r.error.code);
		}
		expect(codes.filter((c) => c === 'OK')).toHaveLength(8);
		const refused = await conns[0]!.request('getRouterRtpCapabilities', {});
		expect(refused.ok ? '' : refused.error.message).toMatch(/from your address/);
	});
});
