// ClusterBus against a real redis-server: two bus instances play two nodes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../../test/helpers/redis.js';
import { testLogger } from '../../test/helpers/logger.js';
import { testClusterSecret } from '../../test/cluster/helpers/clusterSecret.js';
import { closeRedis, connectRedis } from '../redis/redisConnection.js';
import { BUS_NODE_PREFIX, ClusterBusError, REPLAY_WINDOW_MS, RedisClusterBus } from './ClusterBus.js';
import { ClusterSecret } from './ClusterSecret.js';
import { waitUntil } from '../../test/helpers/wait.js';

interface Ctx {
	redis: TestRedis;
	connections: Redis[];
	a: RedisClusterBus;
	b: RedisClusterBus;
}

const waitFor = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000) => waitUntil(cond, timeoutMs, what, 25);

async function makeBus(ctx: Pick<Ctx, 'connections'>, url: string, nodeId: string, requestTimeoutMs = 2000, secret = testClusterSecret): Promise<RedisClusterBus> {
	const redis = connectRedis(url, testLogger());
	ctx.connections.push(redis);
	return RedisClusterBus.create({ redis, nodeId, requestTimeoutMs, secret, log: testLogger() });
}

/** An envelope as a holder of `secret` would put it on `channel` (the bus's wire format). */
function signedEnvelope(secret: ClusterSecret, channel: string, envelope: { from: string; id: string; type: string; ts: number; payload: unknown }): string {
	const body = JSON.stringify(envelope);
	return JSON.stringify({ v: 1, body, mac: secret.mac('bus', `${channel}\n${body}`) });
}

function busError(code: string): unknown {
	return expect.objectContaining({ name: 'ClusterBusError', code });
}

describe('RedisClusterBus', () => {
	let ctx: Ctx;

	beforeEach(async () => {
		const redis = await startRedis();
		const partial = { redis, connections: [] as Redis[] };
		const a = await makeBus(partial, redis.url, 'node-a');
		const b = await makeBus(partial, redis.url, 'node-b');
		ctx = { ...partial, a, b };
	});

	afterEach(async () => {
		expect(ctx.a.pendingRequests).toBe(0);
		expect(ctx.b.pendingRequests).toBe(0);
		await ctx.a.close();
		await ctx.b.close();
		for (const c of ctx.connections) await closeRedis(c);
		await ctx.redis.stop();
	});

	it('carries a request to one node and its reply back', async () => {
		const seen: Array<{ payload: unknown; from: string }> = [];
		ctx.b.handle('echo', async (payload, from) => {
			seen.push({ payload, from });
			return { echoed: payload, by: ctx.b.nodeId };
		});
		const reply = await ctx.a.request<{ echoed: unknown; by: string }>('node-b', 'echo', { n: 42, s: 'hi' });
		expect(reply).toEqual({ echoed: { n: 42, s: 'hi' }, by: 'node-b' });
		expect(seen).toEqual([{ payload: { n: 42, s: 'hi' }, from: 'node-a' }]);
		// A node can address itself too (the same path through Redis).
		ctx.a.handle('self', async () => 'me');
		expect(await ctx.a.request('node-a', 'self', null)).toBe('me');
		// Many concurrent requests are matched to their own replies.
		const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => ctx.a.request('node-b', 'echo', i)));
		expect(replies.map((r) => (r as { echoed: number }).echoed)).toEqual(Array.from({ length: 50 }, (_, i) => i));
	});

	it("rejects with 'timeout' when the handler does not answer in time", async () => {
		let release: () => void = () => undefined;
		ctx.b.handle('slow', () => new Promise((resolve) => (release = () => resolve('late'))));
		const started = Date.now();
		await expect(ctx.a.request('node-b', 'slow', {}, 300)).rejects.toEqual(busError('timeout'));
		expect(Date.now() - started).toBeGreaterThanOrEqual(290);
		release(); // the late reply is ignored
		await new Promise((r) => setTimeout(r, 100));
	});

	it("rejects with 'no_handler' for an unknown type and for a node nobody serves", async () => {
		await expect(ctx.a.request('node-b', 'nothing-here', {})).rejects.toEqual(busError('no_handler'));
		const started = Date.now();
		await expect(ctx.a.request('node-gone', 'echo', {})).rejects.toEqual(busError('no_handler'));
		// Known at once from PUBLISH's receiver count, not after the timeout.
		expect(Date.now() - started).toBeLessThan(1500);
	});

	it("rejects with 'remote' and the handler's message when it throws", async () => {
		ctx.b.handle('fails', async () => {
			throw new Error('channel lobby is not here');
		});
		const err = await ctx.a.request('node-b', 'fails', {}).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(ClusterBusError);
		expect(err).toMatchObject({ code: 'remote', message: 'channel lobby is not here' });
	});

	it('refuses a second handler for a type and names that break channel names', async () => {
		ctx.b.handle('once', async () => 1);
		expect(() => ctx.b.handle('once', async () => 2)).toThrow(/already registered/);
		await expect(ctx.a.request('node b', 'x', {})).rejects.toThrow(TypeError);
		await expect(ctx.a.publish('bad topic', {})).rejects.toThrow(TypeError);
	});

	it('publishes a topic to every subscribed node, this one included, until unsubscribed', async () => {
		const gotA: unknown[] = [];
		const gotB: Array<[unknown, string]> = [];
		const offA = await ctx.a.subscribe('channel:lobby', (m) => gotA.push(m));
		const offB = await ctx.b.subscribe('channel:lobby', (m, from) => gotB.push([m, from]));
		await ctx.a.publish('channel:lobby', { event: 'peerJoined', peerId: 'p1' });
		await waitFor('both nodes to receive', () => gotA.length === 1 && gotB.length === 1);
		expect(gotA).toEqual([{ event: 'peerJoined', peerId: 'p1' }]);
		expect(gotB).toEqual([[{ event: 'peerJoined', peerId: 'p1' }, 'node-a']]);
		await offB();
		await ctx.a.publish('channel:lobby', 2);
		await waitFor('node a to receive the second', () => gotA.length === 2);
		await new Promise((r) => setTimeout(r, 100));
		expect(gotB).toHaveLength(1);
		await offA();
	});

	it('drops malformed messages and keeps serving', async () => {
		ctx.b.handle('echo', async (p) => p);
		const raw = ctx.connections[0]!;
		await raw.publish(BUS_NODE_PREFIX + 'node-b', 'not json');
		await raw.publish(BUS_NODE_PREFIX + 'node-b', JSON.stringify({ from: 'x y', id: '1', type: 'echo', payload: 1 }));
		await raw.publish(BUS_NODE_PREFIX + 'node-a', JSON.stringify({ from: 'node-b', id: 'nope', type: '@reply', payload: { ok: 'maybe' } }));
		expect(await ctx.a.request('node-b', 'echo', 'still here')).toBe('still here');
	});

	describe('authentication (cluster.secret)', () => {
		const channelB = BUS_NODE_PREFIX + 'node-b';

		it('drops unsigned envelopes and ones signed with another secret; the handler never runs', async () => {
			const calls: unknown[] = [];
			ctx.b.handle('echo', async (p) => calls.push(p));
			const raw = ctx.connections[0]!;
			// The format before envelopes were signed: a self-declared `from` and nothing else.
			await raw.publish(channelB, JSON.stringify({ from: 'node-a', id: 'x1', type: 'echo', payload: 'unsigned' }));
			const other = new ClusterSecret('another-secret-that-is-long-enough-0123456789');
			await raw.publish(channelB, signedEnvelope(other, channelB, { from: 'node-a', id: 'x2', type: 'echo', ts: Date.now(), payload: 'forged' }));
			// Signed for node a's channel, replayed on node b's: the channel is in the MAC.
			const channelA = BUS_NODE_PREFIX + 'node-a';
			await raw.publish(channelB, signedEnvelope(testClusterSecret, channelA, { from: 'node-a', id: 'x3', type: 'echo', ts: Date.now(), payload: 'moved' }));
			await waitFor('three drops', () => ctx.b.droppedEnvelopes.malformed + ctx.b.droppedEnvelopes.bad_mac === 3);
			expect(ctx.b.droppedEnvelopes).toMatchObject({ malformed: 1, bad_mac: 2 });
			expect(calls).toEqual([]);
			// A node with another secret is not part of this cluster: its requests go unanswered.
			const stranger = await makeBus(ctx, ctx.redis.url, 'node-x', 300, other);
			try {
				// Connected first (until then a request fails 'unavailable', not what this checks).
				await waitFor('the stranger connected', () => stranger.available);
				await expect(stranger.request('node-b', 'echo', 'hi')).rejects.toEqual(busError('timeout'));
			} finally {
				await stranger.close();
			}
			expect(calls).toEqual([]);
		});

		it('drops a replayed envelope and one outside the replay window', async () => {
			const calls: unknown[] = [];
			ctx.b.handle('echo', async (p) => calls.push(p));
			// Capture a real request on its way to node b, then send it again.
			const spy = connectRedis(ctx.redis.url, testLogger());
			ctx.connections.push(spy);
			const captured: string[] = [];
			spy.on('message', (_channel: string, message: string) => captured.push(message));
			await spy.subscribe(channelB);
			await ctx.a.request('node-b', 'echo', 'once');
			await waitFor('the capture', () => captured.length >= 1);
			const raw = ctx.connections[0]!;
			await raw.publish(channelB, captured[0]!);
			const now = Date.now();
			await raw.publish(channelB, signedEnvelope(testClusterSecret, channelB, { from: 'node-a', id: 'old', type: 'echo', ts: now - REPLAY_WINDOW_MS - 5000, payload: 'old' }));
			await raw.publish(channelB, signedEnvelope(testClusterSecret, channelB, { from: 'node-a', id: 'future', type: 'echo', ts: now + REPLAY_WINDOW_MS + 5000, payload: 'future' }));
			await waitFor('the drops', () => ctx.b.droppedEnvelopes.replayed === 1 && ctx.b.droppedEnvelopes.stale === 2);
			expect(calls).toEqual(['once']);
		});

		it('takes a reply only from the node the request went to', async () => {
			let release: () => void = () => undefined;
			ctx.b.handle('slow', () => new Promise((resolve) => (release = () => resolve('from b'))));
			const spy = connectRedis(ctx.redis.url, testLogger());
			ctx.connections.push(spy);
			const ids: string[] = [];
			spy.on('message', (_channel: string, message: string) => ids.push((JSON.parse((JSON.parse(message) as { body: string }).body) as { id: string }).id));
			await spy.subscribe(channelB);
			const reply = ctx.a.request('node-b', 'slow', {});
			await waitFor('the request id', () => ids.length === 1);
			// Another secret holder (node c) answers in b's place.
			const channelA = BUS_NODE_PREFIX + 'node-a';
			await ctx.connections[0]!.publish(
				channelA,
				signedEnvelope(testClusterSecret, channelA, { from: 'node-c', id: ids[0]!, type: '@reply', ts: Date.now(), payload: { ok: true, result: 'from c' } }),
			);
			await waitFor('the drop', () => ctx.a.droppedEnvelopes.wrong_replier === 1);
			release();
			expect(await reply).toBe('from b');
		});

		it('with trustSenders, serves requests and broadcasts only from nodes the check names', async () => {
			const calls: Array<[unknown, string]> = [];
			ctx.b.handle('echo', async (p, from) => calls.push([p, from]));
			const heard: Array<[unknown, string]> = [];
			await ctx.b.subscribe('news', (m, from) => heard.push([m, from]));
			ctx.b.trustSenders(async (nodeId) => nodeId === 'node-a');
			const c = await makeBus(ctx, ctx.redis.url, 'node-c', 300);
			try {
				await expect(c.request('node-b', 'echo', 'from c')).rejects.toEqual(busError('timeout'));
				await c.publish('news', 'from c');
				await ctx.a.publish('news', 'from a');
				expect(await ctx.a.request('node-b', 'echo', 'from a')).toBe(1);
				await waitFor('a broadcast from a', () => heard.length === 1);
			} finally {
				await c.close();
			}
			expect(calls).toEqual([['from a', 'node-a']]);
			expect(heard).toEqual([['from a', 'node-a']]);
			expect(ctx.b.droppedEnvelopes.unknown_sender).toBe(2);
		});
	});

	it("rejects with 'unavailable' while Redis is down and works again when it returns", async () => {
		ctx.b.handle('echo', async (p) => p);
		const gotB: unknown[] = [];
		await ctx.b.subscribe('news', (m) => gotB.push(m));
		const port = ctx.redis.port;
		await ctx.redis.stop();
		await waitFor('the bus to notice', () => !ctx.a.available);
		await expect(ctx.a.request('node-b', 'echo', 1)).rejects.toEqual(busError('unavailable'));
		await expect(ctx.a.publish('news', 1)).rejects.toEqual(busError('unavailable'));
		// Subscribing while Redis is away takes effect when it is back.
		const gotA: unknown[] = [];
		await ctx.a.subscribe('later', (m) => gotA.push(m));

		ctx.redis = await startRedis({ port });
		await waitFor('both buses to reconnect', () => ctx.a.available && ctx.b.available, 15_000);
		// The subscriber re-subscribes on 'ready'; wait until node b's channel has a subscriber again.
		await waitFor('node b to re-subscribe', async () => (await ctx.connections[0]!.pubsub('NUMSUB', BUS_NODE_PREFIX + 'node-b').catch(() => [0, 0]))[1] === 1);
		expect(await ctx.a.request('node-b', 'echo', 'back')).toBe('back');
		await ctx.b.publish('later', 'hello');
		await ctx.a.publish('news', 'again');
		await waitFor('topics to flow again', () => gotA.length === 1 && gotB.length === 1);
		expect(gotA).toEqual(['hello']);
		expect(gotB).toEqual(['again']);
	});

	it("close() rejects pending requests with 'unavailable' and later calls too", async () => {
		ctx.b.handle('never', () => new Promise(() => undefined));
		const pending = ctx.a.request('node-b', 'never', {}, 10_000);
		await new Promise((r) => setTimeout(r, 50));
		await ctx.a.close();
		await expect(pending).rejects.toEqual(busError('unavailable'));
		await expect(ctx.a.request('node-b', 'never', {})).rejects.toEqual(busError('unavailable'));
		expect(ctx.a.pendingRequests).toBe(0);
	});
});
