// ChannelPlacement against a real redis-server: claims, redirects, bridges, takeover of a
// dead home, refresh after Redis restarts, release, and Redis down.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../../test/helpers/redis.js';
import { testLogger } from '../../test/helpers/logger.js';
import { testClusterSecret } from '../../test/cluster/helpers/clusterSecret.js';
import { closeRedis, connectRedis } from '../redis/redisConnection.js';
import { NodeRegistry, type NodeLoad } from './NodeRegistry.js';
import { CHANNEL_HOME_PREFIX, ChannelPlacement } from './ChannelPlacement.js';
import { waitUntil } from '../../test/helpers/wait.js';

const TTL_MS = 1200;

interface TestNode {
	id: string;
	conn: Redis;
	registry: NodeRegistry;
	placement: ChannelPlacement;
	open: Set<string>;
	load: NodeLoad;
}

const waitFor = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000) => waitUntil(cond, timeoutMs, what, 20);

describe('ChannelPlacement', () => {
	let redis: TestRedis;
	let nodes: TestNode[];

	async function makeNode(id: string, bridgeAbovePeers = 500): Promise<TestNode> {
		const conn = connectRedis(redis.url, testLogger());
		const open = new Set<string>();
		const load: NodeLoad = { peers: 0, consumers: 0, channels: 0, workerCpu: 0 };
		const registry = new NodeRegistry({
			redis: conn,
			self: { nodeId: id, signalingUrl: `ws://${id}.test:8080/ws`, httpUrl: `http://${id}.test:8080`, mediaAddress: '127.0.0.1', pipeAddress: '127.0.0.1', startedAt: Date.now() },
			ttlMs: TTL_MS,
			load: () => load,
			secret: testClusterSecret,
			log: testLogger(),
		});
		const placement = new ChannelPlacement({ redis: conn, registry, ttlMs: TTL_MS, bridgeAbovePeers, isOpenHere: (c) => open.has(c), log: testLogger() });
		await registry.start();
		const node = { id, conn, registry, placement, open, load };
		nodes.push(node);
		return node;
	}

	beforeEach(async () => {
		redis = await startRedis();
		nodes = [];
	});

	afterEach(async () => {
		for (const n of nodes) await n.registry.stop({ deregister: false });
		for (const n of nodes) await closeRedis(n.conn);
		await redis.stop();
	});

	it('the first node to place a channel claims it; others are redirected to it', async () => {
		const a = await makeNode('node-a');
		const b = await makeNode('node-b');
		expect(await a.placement.place('lobby')).toEqual({ kind: 'local' });
		expect(await a.conn.get(CHANNEL_HOME_PREFIX + 'lobby')).toBe('node-a');
		expect(await b.placement.place('lobby')).toEqual({ kind: 'redirect', nodeId: 'node-a', url: 'ws://node-a.test:8080/ws' });
		expect(await a.placement.place('lobby')).toEqual({ kind: 'local' });
		expect(await b.placement.place('other')).toEqual({ kind: 'local' });
		expect(a.placement.homedChannels()).toEqual(['lobby']);
	});

	it('concurrent first joins on two nodes agree on one home', async () => {
		const a = await makeNode('node-a');
		const b = await makeNode('node-b');
		for (let i = 0; i < 20; i++) {
			const [da, db] = await Promise.all([a.placement.place(`race-${i}`), b.placement.place(`race-${i}`)]);
			const kinds = [da.kind, db.kind].sort();
			expect(kinds).toEqual(['local', 'redirect']);
		}
	});

	it('bridges instead of redirecting when the home serves bridgeAbovePeers or more (0: always)', async () => {
		const a = await makeNode('node-a');
		const b = await makeNode('node-b', 10);
		const c = await makeNode('node-c', 0);
		await a.placement.place('big');
		expect(await b.placement.place('big')).toMatchObject({ kind: 'redirect' });
		a.load.peers = 10;
		await a.registry.beat();
		expect(await b.placement.place('big')).toEqual({ kind: 'bridge', homeNodeId: 'node-a' });
		a.load.peers = 0;
		await a.registry.beat();
		expect(await c.placement.place('big')).toEqual({ kind: 'bridge', homeNodeId: 'node-a' });
	});

	it('the home claim lives as long as the home node beats; a dead home is taken over', async () => {
		const a = await makeNode('node-a');
		const b = await makeNode('node-b');
		await a.placement.place('lobby');
		a.open.add('lobby');
		await new Promise((r) => setTimeout(r, TTL_MS * 3));
		expect(await a.conn.get(CHANNEL_HOME_PREFIX + 'lobby')).toBe('node-a');
		// a dies: no more heartbeats. Its registry entry expires first or together with the
		// claim; either way b takes over on the next join.
		await a.registry.stop({ deregister: false });
		await waitFor('node a to expire', async () => (await b.registry.get('node-a')) === undefined, TTL_MS * 8);
		expect(await b.placement.place('lobby')).toEqual({ kind: 'local' });
		expect(await b.conn.get(CHANNEL_HOME_PREFIX + 'lobby')).toBe('node-b');
	});

	it('replaces a home naming a node that is not in the registry at once', async () => {
		const b = await makeNode('node-b');
		await b.conn.set(CHANNEL_HOME_PREFIX + 'lobby', 'node-ghost', 'PX', 60_000);
		expect(await b.placement.place('lobby')).toEqual({ kind: 'local' });
		expect(await b.conn.get(CHANNEL_HOME_PREFIX + 'lobby')).toBe('node-b');
	});

	it('takes over at once from a home that is registered but no longer on the bus (killed outright)', async () => {
		const a = await makeNode('node-a');
		const b = await makeNode('node-b');
		await a.placement.place('lobby');
		a.open.add('lobby');
		const offBus = new Set(['node-a']);
		const c = new ChannelPlacement({ redis: b.conn, registry: b.registry, ttlMs: TTL_MS, bridgeAbovePeers: 500, isOpenHere: () => false, isOnBus: async (id) => !offBus.has(id), log: testLogger() });
		expect(await b.placement.place('lobby')).toMatchObject({ kind: 'redirect', nodeId: 'node-a' });
		expect(await c.place('lobby')).toEqual({ kind: 'local' });
		expect(await b.conn.get(CHANNEL_HOME_PREFIX + 'lobby')).toBe('node-b');
	});

	it('after Redis reconnects, a claim waits one TTL so the live home can re-claim first', async () => {
		// Node a's heartbeat is driven by hand here, so the order of events is fixed; TTLs
		// are long enough for a busy machine.
		const graceMs = 1500;
		const conn = connectRedis(redis.url, testLogger());
		const open = new Set<string>();
		const aRegistry = new NodeRegistry({
			redis: conn,
			self: { nodeId: 'node-a', signalingUrl: 'ws://node-a.test:8080/ws', httpUrl: 'http://node-a.test:8080', mediaAddress: '127.0.0.1', pipeAddress: '127.0.0.1', startedAt: Date.now() },
			ttlMs: 10_000,
			load: () => ({ peers: 0, consumers: 0, channels: 1, workerCpu: 0 }),
			secret: testClusterSecret,
			log: testLogger(),
		});
		const a = new ChannelPlacement({ redis: conn, registry: aRegistry, ttlMs: graceMs, bridgeAbovePeers: 500, isOpenHere: (c) => open.has(c), log: testLogger() });
		try {
			const bNode = await makeNode('node-b');
			const b = new ChannelPlacement({ redis: bNode.conn, registry: bNode.registry, ttlMs: graceMs, bridgeAbovePeers: 500, isOpenHere: () => false, log: testLogger() });
			await aRegistry.beat();
			expect(await a.place('lobby')).toEqual({ kind: 'local' });
			open.add('lobby');
			await conn.flushall(); // as after a restart of Redis without persistence
			b.redisReconnected();
			const started = Date.now();
			const placing = b.place('lobby');
			await new Promise((r) => setTimeout(r, 200));
			await aRegistry.beat(); // a's heartbeat after its own reconnect: entry, then its claims
			expect(await placing).toMatchObject({ kind: 'redirect', nodeId: 'node-a' });
			expect(Date.now() - started).toBeGreaterThanOrEqual(graceMs - 50);
			// A node's own channels are not held back.
			a.redisReconnected();
			const t0 = Date.now();
			expect(await a.place('lobby')).toEqual({ kind: 'local' });
			expect(Date.now() - t0).toBeLessThan(graceMs / 2);
		} finally {
			await closeRedis(conn);
		}
	});

	it('a stalled Redis answers E_CLUSTER_UNAVAILABLE within the timeout instead of holding the join', async () => {
		const a = await makeNode('node-a');
		const p = new ChannelPlacement({ redis: a.conn, registry: a.registry, ttlMs: TTL_MS, bridgeAbovePeers: 500, isOpenHere: () => false, timeoutMs: 300, log: testLogger() });
		await a.conn.client('PAUSE', 1500, 'ALL');
		const started = Date.now();
		await expect(p.place('stalled')).rejects.toMatchObject({ code: 'E_CLUSTER_UNAVAILABLE' });
		expect(Date.now() - started).toBeLessThan(1200);
		await new Promise((r) => setTimeout(r, 1500)); // the pause ends; the late claim lapses
	});

	it('release deletes only its own claims; releaseAll at shutdown frees every home', async () => {
		const a = await makeNode('node-a');
		const b = await makeNode('node-b');
		await a.placement.place('one');
		await a.placement.place('two');
		await b.placement.place('three');
		await a.placement.release('one');
		expect(await a.conn.get(CHANNEL_HOME_PREFIX + 'one')).toBeNull();
		await a.placement.release('three'); // not a's
		expect(await a.conn.get(CHANNEL_HOME_PREFIX + 'three')).toBe('node-b');
		await a.placement.releaseAll();
		expect(await a.conn.get(CHANNEL_HOME_PREFIX + 'two')).toBeNull();
		expect(await b.placement.place('two')).toEqual({ kind: 'local' });
	});

	it('a claim that was placed but never opened lapses', async () => {
		const a = await makeNode('node-a');
		await a.placement.place('abandoned');
		await waitFor('claim to lapse', async () => (await a.conn.get(CHANNEL_HOME_PREFIX + 'abandoned')) === null, TTL_MS * 8);
		expect(a.placement.homedChannels()).toEqual([]);
	});

	it('Redis down: open channels stay local, others get E_CLUSTER_UNAVAILABLE; after a restart claims are re-taken', async () => {
		const a = await makeNode('node-a');
		const b = await makeNode('node-b');
		await a.placement.place('lobby');
		a.open.add('lobby');
		const port = redis.port;
		await redis.stop();
		await waitFor('connection down', () => a.conn.status !== 'ready');
		expect(await a.placement.place('lobby')).toEqual({ kind: 'local' });
		await expect(a.placement.place('new')).rejects.toMatchObject({ code: 'E_CLUSTER_UNAVAILABLE', message: 'cluster coordination (Redis) is unreachable; try again' });
		redis = await startRedis({ port }); // empty: every key is gone
		await waitFor('claim re-taken', async () => (await b.conn.get(CHANNEL_HOME_PREFIX + 'lobby').catch(() => null)) === 'node-a', 15_000);
		await waitFor('node a registered', async () => (await b.registry.get('node-a').catch(() => undefined)) !== undefined, 15_000);
		expect(await b.placement.place('lobby')).toMatchObject({ kind: 'redirect', nodeId: 'node-a' });
	});
});
