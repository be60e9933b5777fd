// Issue 15, gap 5: the cluster bus trusted anyone who could publish to Redis. Two real
// nodes on a real redis-server; the attacker holds a plain Redis connection (no cluster
// secret) and
//   1. publishes bridge.open to the home node of a channel with audio, naming a node that
//      exists and one that does not, each with a UDP socket of its own as the pipe end;
//      also an envelope in the signed format with a MAC made under another key;
//   2. writes a node registry entry for a node of its own, claims a channel's home for it
//      and listens on that node's bus channel, so a join would bridge (or redirect) there.
// Before, 1 made the home node pipe the channel's audio to the attacker's sockets and 2 sent
// the join's bridge.open (its pipe address) to the attacker. Now: no datagram arrives, the
// node logs the dropped envelopes and the ignored entry, and the join is served locally.
// The figure printed ("forged bus messages accepted") is the closing note's before/after.
import { createHmac, randomUUID } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTone } from '../helpers/audio.js';
import { scrapeMetrics, total } from '../helpers/prometheusText.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { publishWithWerift, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { joinVia, startNode, type JoinedClient, type NodeProcess } from './bridgeNodes.js';
import { sleep } from '../helpers/wait.js';
import { testEnv } from '../helpers/config.js';
import { startServerProcess } from '../helpers/serverProcess.js';

const LISTEN_MS = 2000;

interface CountingSocket {
	socket: Socket;
	port: number;
	datagrams: number;
}

async function countingSocket(): Promise<CountingSocket> {
	const socket = createSocket('udp4');
	const counter: CountingSocket = { socket, port: 0, datagrams: 0 };
	socket.on('message', () => counter.datagrams++);
	await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
	counter.port = socket.address().port;
	return counter;
}

describe('a forged cluster bus message or node entry (no cluster secret)', () => {
	let redis: TestRedis;
	let a: NodeProcess;
	let b: NodeProcess;
	let attacker: Redis;
	let attackerSub: Redis;
	const sockets: CountingSocket[] = [];
	const clients: JoinedClient[] = [];
	let publisher: WeriftPublisher | undefined;

	beforeAll(async () => {
		redis = await startRedis();
		[a, b] = await Promise.all([startNode(redis.url, 'fb-a'), startNode(redis.url, 'fb-b')]);
		attacker = new Redis(redis.url);
		attackerSub = new Redis(redis.url);
	}, 60_000);

	afterAll(async () => {
		await publisher?.close();
		for (const c of clients) c.client.close();
		for (const s of sockets) s.socket.close();
		attacker?.disconnect();
		attackerSub?.disconnect();
		await Promise.all([a?.stop(), b?.stop()]);
		await redis?.stop();
	});

	it('sends no packet to a forged address and is refused', async () => {
		// A channel with audio, homed on node A.
		const p = await joinVia(a, 'board-meeting', 'alice');
		clients.push(p);
		publisher = await publishWithWerift(p.client);
		const talking = publisher.send(encodeTone(440, Math.ceil((LISTEN_MS + 2500) / 20)), { paceMs: 20 });

		// 1. bridge.open to A, as the envelopes looked before they were signed.
		const asRealNode = await countingSocket();
		const asUnknownNode = await countingSocket();
		const withBadMac = await countingSocket();
		sockets.push(asRealNode, asUnknownNode, withBadMac);
		const homeChannel = `parley:bus:node:${a.nodeId}`;
		const open = (port: number) => ({ channel: 'board-meeting', ip: '127.0.0.1', port, enableRtx: false });
		await attacker.publish(homeChannel, JSON.stringify({ from: b.nodeId, id: randomUUID(), type: 'bridge.open', payload: open(asRealNode.port) }));
		await attacker.publish(homeChannel, JSON.stringify({ from: 'evil-node', id: randomUUID(), type: 'bridge.open', payload: open(asUnknownNode.port) }));
		// In the signed format, with a MAC under a key that is not the cluster's.
		const body = JSON.stringify({ from: b.nodeId, id: randomUUID(), type: 'bridge.open', ts: Date.now(), payload: open(withBadMac.port) });
		const mac = createHmac('sha256', 'not-the-cluster-secret').update(`${homeChannel}\n${body}`).digest('base64url');
		await attacker.publish(homeChannel, JSON.stringify({ v: 1, body, mac }));

		// 2. A node entry of the attacker's, the home of a channel, listening on its bus channel.
		const evilEntry = {
			nodeId: 'evil-node',
			signalingUrl: 'ws://127.0.0.1:9/ws',
			httpUrl: 'http://127.0.0.1:9',
			mediaAddress: '127.0.0.1',
			pipeAddress: '127.0.0.1',
			startedAt: Date.now(),
			load: { peers: 0, consumers: 0, channels: 1, workerCpu: 0 },
		};
		await attacker.set('parley:node:evil-node', JSON.stringify(evilEntry), 'PX', 60_000);
		await attacker.zadd('parley:nodes', Date.now(), 'evil-node');
		await attacker.set('parley:channel-home:side-room', 'evil-node', 'PX', 60_000);
		const toEvil: string[] = [];
		attackerSub.on('message', (_channel: string, message: string) => toEvil.push(message));
		await attackerSub.subscribe('parley:bus:node:evil-node');
		const join = await joinVia(a, 'side-room', 'bob').then(
			(joined) => {
				clients.push(joined);
				return 'served';
			},
			(err: unknown) => `refused: ${(err as Error).message}`,
		);

		await sleep(LISTEN_MS);
		const accepted = [asRealNode, asUnknownNode, withBadMac].filter((s) => s.datagrams > 0).length + (toEvil.length > 0 ? 1 : 0);
		console.log(
			`forged bus messages accepted: ${accepted} of 4 (datagrams at the forged pipe ends: ${[asRealNode, asUnknownNode, withBadMac].map((s) => s.datagrams).join(', ')}; ` +
				`bus messages sent to the forged node: ${toEvil.length}; join of its channel: ${join})`,
		);

		expect([asRealNode.datagrams, asUnknownNode.datagrams, withBadMac.datagrams]).toEqual([0, 0, 0]);
		expect(toEvil).toEqual([]);
		expect(accepted).toBe(0);
		// The forged entry was ignored: the channel was taken over and served here.
		expect(join).toBe('served');
		const logs = a.proc
			.stdout()
			.split('\n')
			.filter((l) => l.startsWith('{'))
			.map((l) => JSON.parse(l) as { msg: string; reason?: string });
		const dropped = new Set(logs.filter((l) => l.msg === 'cluster bus: dropped an envelope').map((l) => l.reason));
		expect(dropped).toEqual(new Set(['malformed', 'bad_mac']));
		expect(logs.some((l) => l.msg.startsWith('ignoring a node registry entry without a valid signature'))).toBe(true);
		// And counted where an operator looks.
		const samples = await scrapeMetrics(a.httpBase);
		expect(total(samples, 'parley_cluster_untrusted_total', { reason: 'bad_mac' })).toBeGreaterThanOrEqual(1);
		expect(total(samples, 'parley_cluster_untrusted_total', { reason: 'registry_entry' })).toBeGreaterThanOrEqual(1);

		// The real cluster still bridges (SRTP pipe, sealed keys): B joins and hears of alice.
		const viaB = await joinVia(b, 'board-meeting', 'carol');
		clients.push(viaB);
		expect(viaB.peers.map((peer) => peer.userId)).toContain('alice');
		await talking;
	}, 60_000);

	it('a node with cluster.redisUrl but no cluster.secret refuses to start, naming the option', async () => {
		const proc = startServerProcess(await testEnv({ REDIS_URL: redis.url, PARLEY_CLUSTER_SECRET: '' }));
		const code = await proc.exited;
		expect(code).not.toBe(0);
		expect(proc.stdout() + proc.stderr()).toMatch(/cluster\.secret/);
		expect(proc.stdout()).not.toMatch(/parley listening/);
		const short = startServerProcess(await testEnv({ REDIS_URL: redis.url, PARLEY_CLUSTER_SECRET: 'too-short' }));
		expect(await short.exited).not.toBe(0);
		expect(short.stdout() + short.stderr()).toMatch(/cluster\.secret/);
	}, 60_000);
});
