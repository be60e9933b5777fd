// NodeRegistry against a real redis-server: entries with a TTL, heartbeats, nodeLost.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../../test/helpers/redis.js';
import { testLogger } from '../../test/helpers/logger.js';
import { testClusterSecret } from '../../test/cluster/helpers/clusterSecret.js';
import { closeRedis, connectRedis } from '../redis/redisConnection.js';
import { isNodeRegistered, NODE_KEY_PREFIX, NODES_KEY, NodeRegistry, signNodeEntry, type NodeInfo, type NodeLoad } from './NodeRegistry.js';
import { ClusterSecret } from './ClusterSecret.js';
import { waitUntil } from '../../test/helpers/wait.js';

const TTL_MS = 1200;

function self(nodeId: string): Omit<NodeInfo, 'load'> {
	return {
		nodeId,
		signalingUrl: `ws://127.0.0.1:8080/ws`,
		httpUrl: `http://127.0.0.1:8080`,
		mediaAddress: '127.0.0.1',
		pipeAddress: '127.0.0.1',
		startedAt: Date.now(),
	};
}

const waitFor = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000) => waitUntil(cond, timeoutMs, what, 20);

describe('NodeRegistry', () => {
	let redis: TestRedis;
	let connections: Redis[];
	let registries: NodeRegistry[];

	function makeRegistry(nodeId: string, load: NodeLoad = { peers: 0, consumers: 0, channels: 0, workerCpu: 0 }): NodeRegistry {
		const conn = connectRedis(redis.url, testLogger());
		connections.push(conn);
		const registry = new NodeRegistry({ redis: conn, self: self(nodeId), ttlMs: TTL_MS, load: () => load, secret: testClusterSecret, log: testLogger() });
		registries.push(registry);
		return registry;
	}

	beforeEach(async () => {
		redis = await startRedis();
		connections = [];
		registries = [];
	});

	afterEach(async () => {
		for (const r of registries) await r.stop({ deregister: false });
		for (const c of connections) await closeRedis(c);
		await redis.stop();
	});

	it('registers with a TTL, lists live nodes and reads one entry with its load', async () => {
		const a = makeRegistry('node-a', { peers: 3, consumers: 6, channels: 1, workerCpu: 0.25 });
		const b = makeRegistry('node-b');
		await a.start();
		await b.start();
		expect(a.registered).toBe(true);
		const live = await a.liveNodes();
		expect(live.map((n) => n.nodeId).sort()).toEqual(['node-a', 'node-b']);
		expect(await b.get('node-a')).toMatchObject({ nodeId: 'node-a', signalingUrl: 'ws://127.0.0.1:8080/ws', load: { peers: 3, consumers: 6, channels: 1, workerCpu: 0.25 } });
		expect(await b.get('node-x')).toBeUndefined();
		const pttl = await connections[0]!.pttl(NODE_KEY_PREFIX + 'node-a');
		expect(pttl).toBeGreaterThan(0);
		expect(pttl).toBeLessThanOrEqual(TTL_MS);
		// Heartbeats keep it alive well past the TTL.
		await new Promise((r) => setTimeout(r, TTL_MS * 3));
		expect(await b.get('node-a')).toBeDefined();
	});

	it('ignores unsigned, forged and altered entries: only holders of cluster.secret are nodes', async () => {
		const a = makeRegistry('node-a');
		await a.start();
		const raw = connections[0]!;
		const forged = { ...self('node-evil'), signalingUrl: 'ws://203.0.113.7/ws', httpUrl: 'http://203.0.113.7', load: { peers: 0, consumers: 0, channels: 0, workerCpu: 0 } };
		// Unsigned (the format before entries were signed), and signed with another secret.
		await raw.set(NODE_KEY_PREFIX + 'node-evil', JSON.stringify(forged), 'PX', 10_000);
		await raw.zadd(NODES_KEY, Date.now(), 'node-evil');
		const other = new ClusterSecret('another-secret-that-is-long-enough-0123456789');
		await raw.set(NODE_KEY_PREFIX + 'node-other', signNodeEntry(other, { ...forged, nodeId: 'node-other' }), 'PX', 10_000);
		await raw.zadd(NODES_KEY, Date.now(), 'node-other');
		// node-a's real entry with its URL changed (the signature no longer matches).
		const real = JSON.parse((await raw.get(NODE_KEY_PREFIX + 'node-a'))!) as Record<string, unknown>;
		const b = makeRegistry('node-b');
		expect(await b.get('node-a')).toBeDefined();
		await raw.set(NODE_KEY_PREFIX + 'node-a', JSON.stringify({ ...real, signalingUrl: 'ws://203.0.113.7/ws' }), 'PX', 10_000);
		expect(await b.get('node-a')).toBeUndefined();
		expect(await b.get('node-evil')).toBeUndefined();
		expect(await b.get('node-other')).toBeUndefined();
		expect(await b.isLive('node-evil')).toBe(false);
		expect((await b.liveNodes()).map((n) => n.nodeId)).toEqual([]);
		expect(b.forgedEntries).toBeGreaterThanOrEqual(7);
		// Voice recovery's "is that node still there" does not take a forged entry either.
		const secret = testClusterSecret;
		expect(await isNodeRegistered(raw, secret, 'node-evil')).toBe(false);
		expect(await isNodeRegistered(raw, secret, 'node-other')).toBe(false);
		expect(await isNodeRegistered(raw, secret, 'node-a')).toBe(false);
		// The next heartbeat writes a good entry again.
		await a.beat();
		expect(await b.get('node-a')).toMatchObject({ nodeId: 'node-a', signalingUrl: 'ws://127.0.0.1:8080/ws' });
		expect(await isNodeRegistered(raw, secret, 'node-a')).toBe(true);
	});

	it('a node that stops beating disappears within the TTL and others emit nodeLost', async () => {
		const a = makeRegistry('node-a');
		const b = makeRegistry('node-b');
		await a.start();
		await b.start();
		await a.beat(); // a has seen b
		const lost: Array<{ id: string; atMs: number }> = [];
		a.on('nodeLost', (id) => lost.push({ id, atMs: Date.now() }));
		const stoppedAt = Date.now();
		await b.stop({ deregister: false }); // like a crash: the entry stays until it expires
		await waitFor('nodeLost', () => lost.length > 0, TTL_MS * 6);
		expect(lost.map((l) => l.id)).toEqual(['node-b']);
		// Noticed within the TTL plus one heartbeat interval (plus slack for a busy machine).
		expect(lost[0]!.atMs - stoppedAt).toBeLessThan(TTL_MS + a.heartbeatIntervalMs + 3000);
		expect(await a.get('node-b')).toBeUndefined();
		// The sorted set is pruned by the survivors' heartbeats.
		await waitFor('pruned', async () => (await connections[0]!.zscore(NODES_KEY, 'node-b')) === null, TTL_MS * 4);
	});

	it('deregistering at shutdown removes the entry at once', async () => {
		const a = makeRegistry('node-a');
		const b = makeRegistry('node-b');
		await a.start();
		await b.start();
		expect(await a.isLive('node-b')).toBe(true);
		await b.stop({ deregister: true });
		expect(await a.get('node-b')).toBeUndefined();
		expect((await a.liveNodes()).map((n) => n.nodeId)).toEqual(['node-a']);
		// Its goodbyes on the bus (bridge closes) still count as from a live node for a moment,
		// even when no poll saw it between its start and its stop; a node never seen does not.
		expect(await a.isLive('node-b')).toBe(true);
		expect(await a.isLive('node-never')).toBe(false);
	});

	it('ignores malformed entries written by someone else', async () => {
		const a = makeRegistry('node-a');
		await a.start();
		const raw = connections[0]!;
		await raw.zadd(NODES_KEY, Date.now(), 'evil');
		await raw.set(NODE_KEY_PREFIX + 'evil', '{"nodeId":"evil","signalingUrl":"not a url"}', 'PX', 10_000);
		await raw.zadd(NODES_KEY, Date.now(), 'liar');
		await raw.set(NODE_KEY_PREFIX + 'liar', JSON.stringify({ ...self('someone-else'), load: { peers: 0, consumers: 0, channels: 0, workerCpu: 0 } }), 'PX', 10_000);
		expect((await a.liveNodes()).map((n) => n.nodeId)).toEqual(['node-a']);
		expect(await a.get('evil')).toBeUndefined();
	});

	it('stop() does not hang on a Redis that stalls (shutdown goes on; the entry expires)', async () => {
		const a = makeRegistry('node-a');
		await a.start();
		const admin = connectRedis(redis.url, testLogger());
		connections.push(admin);
		await admin.client('PAUSE', 4000, 'WRITE');
		const beating = a.beat(); // in flight: its write waits for the pause to end
		await new Promise((r) => setTimeout(r, 100));
		const started = Date.now();
		await a.stop({ deregister: true });
		expect(Date.now() - started).toBeLessThan(2500);
		await beating;
	});

	it('re-registers after Redis restarts empty', async () => {
		const a = makeRegistry('node-a');
		await a.start();
		const port = redis.port;
		await redis.stop();
		await waitFor('heartbeat to fail', () => !a.registered, TTL_MS * 10);
		redis = await startRedis({ port });
		await waitFor('re-registered', () => a.registered, 15_000);
		expect((await a.liveNodes()).map((n) => n.nodeId)).toEqual(['node-a']);
	});
});
