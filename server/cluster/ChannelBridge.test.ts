// ChannelBridges in one process: two or three "nodes" (each its own ChannelRegistry, its own
// RedisClusterBus on a real redis-server, its own ChannelBridges) on one pool of real
// mediasoup workers. Peers are Channel peers with WebRTC transports that record what they
// are told; the audio itself is checked end to end in test/cluster/bridge*.test.ts.
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChannelRegistry } from '../channels/ChannelRegistry.js';
import { Peer } from '../channels/Peer.js';
import type { Channel } from '../channels/Channel.js';
import { routerMediaCodecs } from '../media/mediaCodecs.js';
import { WorkerPool } from '../media/WorkerPool.js';
import { resolveWorkerBin } from '../media/workerSettings.js';
import { freePortRange } from '../../testkit/ports.js';
import { startRedis, type TestRedis } from '../../test/helpers/redis.js';
import { testLogger } from '../../test/helpers/logger.js';
import { testClusterSecret } from '../../test/cluster/helpers/clusterSecret.js';
import { ClusterBusError, RedisClusterBus } from './ClusterBus.js';
import { ChannelBridges, type BridgeNodeDirectory } from './ChannelBridge.js';
import { closeRedis, connectRedis } from '../redis/redisConnection.js';
import { BRIDGE_OPEN, BRIDGE_SYNC } from './ChannelBridgeMessages.js';
import { waitUntil } from '../../test/helpers/wait.js';
import { opusParams, RecordingLink } from '../../test/helpers/peerLink.js';

const mediaCodecs = routerMediaCodecs({ inbandFec: true, dtx: true, nack: false });
const deviceCaps = mediasoup.ortc.generateRouterRtpCapabilities(mediaCodecs) as ms.RtpCapabilities;
interface Node {
	id: string;
	pool: WorkerPool;
	redis: Redis;
	bus: RedisClusterBus;
	registry: ChannelRegistry;
	bridges: ChannelBridges;
}

interface TestPeer {
	node: Node;
	peer: Peer;
	link: RecordingLink;
	channel: Channel;
}

const until = (what: string, cond: () => boolean, timeoutMs = 5000) => waitUntil(cond, timeoutMs, what, 10);

describe('ChannelBridges (in process, real workers and Redis)', () => {
	let redis: TestRedis;
	let nodes: Node[] = [];
	let userCounter = 0;

	beforeAll(async () => {
		redis = await startRedis();
	});

	afterAll(async () => {
		await redis?.stop();
	});

	afterEach(async () => {
		await Promise.all(nodes.map((n) => n.bridges.close()));
		for (const n of nodes) n.registry.closeAll('test end');
		for (const n of nodes) {
			await n.bus.close();
			await closeRedis(n.redis);
		}
		await until('workers empty', () => load().routers === 0);
		expect(load()).toEqual({ routers: 0, transports: 0, producers: 0, consumers: 0 });
		for (const n of nodes) await n.pool.close();
		nodes = [];
	});

	/** mediasoup objects on every node's worker, summed. */
	function load(): { routers: number; transports: number; producers: number; consumers: number } {
		const sum = { routers: 0, transports: 0, producers: 0, consumers: 0 };
		for (const n of nodes) for (const w of n.pool.info()) for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += w[k];
		return sum;
	}

	/** A node: its own worker (as on separate machines: a producer id exists once per worker). */
	async function node(id: string, maxPeers = 500, directory?: BridgeNodeDirectory): Promise<Node> {
		const pool = await WorkerPool.create(
			{ numWorkers: 1, workerBin: resolveWorkerBin(''), workerLogLevel: 'warn', listenIp: '127.0.0.1', announcedAddress: undefined, rtcPort: await freePortRange(1), respawnDelayMs: 1000 },
			testLogger(),
		);
		const conn = connectRedis(redis.url, testLogger());
		const bus = await RedisClusterBus.create({ redis: conn, nodeId: id, requestTimeoutMs: 2000, secret: testClusterSecret, log: testLogger() });
		const registry = new ChannelRegistry(
			pool,
			{ maxChannels: 10, emptyCloseDelayMs: 100, mediaCodecs, maxPeers, maxTransportsPerPeer: 4, maxProducersPerPeer: 2, audioLevelIntervalMs: 200, audioLevelThresholdDb: -70, enableRtx: false },
			testLogger(),
		);
		const bridges = new ChannelBridges({ bus, registry, pipe: { listenIp: '127.0.0.1', announcedIp: undefined, portRange: undefined, enableRtx: false }, ...(directory && { nodes: directory }), secret: testClusterSecret, log: testLogger() });
		const n = { id, pool, redis: conn, bus, registry, bridges };
		nodes.push(n);
		return n;
	}

	/** Joins the way the join handler does: open, attach when the home is elsewhere, add. */
	async function join(n: Node, channelName: string, homeNodeId: string, options: { listen?: boolean; userId?: string } = {}): Promise<TestPeer> {
		const channel = await n.registry.open(channelName);
		await n.bridges.attach(channel, homeNodeId);
		const link = new RecordingLink();
		const userId = options.userId ?? `u${++userCounter}`;
		const peer = new Peer({ userId, displayName: userId, grants: { canPublish: true, canSubscribe: true, canRecord: false }, rtpCapabilities: deviceCaps, link });
		channel.addPeer(peer);
		if (options.listen !== false) await channel.createTransport(peer, 'recv', n.pool.webRtcServerFor(channel.router));
		return { node: n, peer, link, channel };
	}

	async function produce(p: TestPeer, ssrc: number): Promise<ms.Producer> {
		const t = await p.channel.createTransport(p.peer, 'send', p.node.pool.webRtcServerFor(p.channel.router));
		return p.channel.produce(p.peer, t.id, 'audio', opusParams(ssrc), false);
	}

	const consumerOf = (p: TestPeer, producerId: string) => p.link.of('newConsumer').find((c) => c.producerId === producerId);

	it('brings the home node peers and producers to a satellite and back, and follows pause, close and leave', async () => {
		const a = await node('node-a');
		const b = await node('node-b');
		const la = await join(a, 'room', 'node-a');
		const pa = await join(a, 'room', 'node-a', { listen: false });
		const producerA = await produce(pa, 1111);

		const lb = await join(b, 'room', 'node-a');
		// The home node's peers are in the satellite's channel before the join answers.
		expect([...lb.channel.peers.values()].filter((p) => p.remote).map((p) => p.id).sort()).toEqual([la.peer.id, pa.peer.id].sort());
		await until('B hears A', () => consumerOf(lb, producerA.id) !== undefined);
		expect(consumerOf(lb, producerA.id)).toMatchObject({ peerId: pa.peer.id, producerPaused: false });
		await until('A hears of B', () => la.link.of('peerJoined').some((p) => p.peerId === lb.peer.id));
		expect(la.link.of('peerJoined').find((p) => p.peerId === lb.peer.id)).toEqual({ peerId: lb.peer.id, userId: lb.peer.userId, displayName: lb.peer.displayName });

		// A producer on the satellite reaches the home node's listener.
		const pb = await join(b, 'room', 'node-a', { listen: false });
		const producerB = await produce(pb, 2222);
		await until('A hears B', () => consumerOf(la, producerB.id) !== undefined);
		expect(consumerOf(la, producerB.id)!.peerId).toBe(pb.peer.id);

		// Pause and resume cross the pipe.
		await producerA.pause();
		const cB = consumerOf(lb, producerA.id)!.consumerId;
		await until('paused at B', () => lb.link.of('consumerPaused').some((c) => c.consumerId === cB));
		await producerA.resume();
		await until('resumed at B', () => lb.link.of('consumerResumed').some((c) => c.consumerId === cB));

		// A closed producer closes its consumers on the other node.
		producerB.close();
		const cA = consumerOf(la, producerB.id)!.consumerId;
		await until('closed at A', () => la.link.of('consumerClosed').some((c) => c.consumerId === cA));

		// Leaving on B: A's peers hear peerLeft; the last local peer ends the bridge on both sides.
		pb.channel.removePeer(pb.peer);
		await until('A hears pb left', () => la.link.of('peerLeft').some((p) => p.peerId === pb.peer.id));
		expect(b.bridges.linkCount).toBe(1);
		lb.channel.removePeer(lb.peer);
		await until('bridge torn down', () => a.bridges.linkCount === 0 && b.bridges.linkCount === 0);
		await until('A hears lb left', () => la.link.of('peerLeft').some((p) => p.peerId === lb.peer.id));
		expect([...la.channel.peers.values()].every((p) => !p.remote)).toBe(true);
		// B's channel had only remote peers left: it closes after the grace period.
		await until('B channel closed', () => b.registry.size === 0);
		expect(a.registry.size).toBe(1);
		// What stays on A: its two peers' transports (1 recv + 1 send), producer A and la's
		// consumer of it; nothing piped.
		expect(load()).toEqual({ routers: 1, transports: 2, producers: 1, consumers: 1 });
		// Everyone gone: nothing left anywhere (before any closeAll).
		la.channel.removePeer(la.peer);
		pa.channel.removePeer(pa.peer);
		await until('A channel closed', () => a.registry.size === 0);
		await until('workers empty', () => load().routers === 0);
		expect(load()).toEqual({ routers: 0, transports: 0, producers: 0, consumers: 0 });
		// Bridges use the nodes' own bus channels only: no per-channel subscription to remove.
		expect(await a.redis.pubsub('CHANNELS', 'parley:bus:topic:*')).toEqual([]);
		expect(a.bus.pendingRequests + b.bus.pendingRequests).toBe(0);
	});

	it('connects a pipe only to the address the other node announced in the registry', async () => {
		// What the signed registry entries say (NodeRegistry in a real node): b's pipes are
		// announced on another address than the one its bridge.open names.
		const announced = new Map([
			['node-a', '127.0.0.1'],
			['node-b', '127.0.0.2'],
		]);
		const directory: BridgeNodeDirectory = {
			on: () => undefined,
			off: () => undefined,
			get: async (nodeId) => {
				const pipeAddress = announced.get(nodeId);
				return pipeAddress === undefined ? undefined : { pipeAddress };
			},
		};
		const a = await node('node-a', 500, directory);
		const b = await node('node-b', 500, directory);
		await join(a, 'room', 'node-a');
		await expect(join(b, 'room', 'node-a')).rejects.toMatchObject({ code: 'E_CLUSTER_UNAVAILABLE', message: expect.stringMatching(/is not the one node node-b announced \(127\.0\.0\.2\)/) });
		expect(a.bridges.linkCount + b.bridges.linkCount).toBe(0);
		// A node the registry does not know is refused as well.
		announced.delete('node-b');
		await expect(join(b, 'room', 'node-a')).rejects.toMatchObject({ code: 'E_CLUSTER_UNAVAILABLE', message: expect.stringMatching(/node-b is not in the node registry/) });
		// As announced: bridged.
		announced.set('node-b', '127.0.0.1');
		const lb = await join(b, 'room', 'node-a');
		expect([...lb.channel.peers.values()].filter((p) => p.remote)).toHaveLength(1);
	});

	it('opens one link when two joins reach the satellite at once, and both hear the home node', async () => {
		const a = await node('node-a');
		const b = await node('node-b');
		const pa = await join(a, 'room', 'node-a', { listen: false });
		const producerA = await produce(pa, 1111);
		// Two users joining through B in the same moment (the cluster soak's two bots).
		const [lb1, lb2] = await Promise.all([join(b, 'room', 'node-a'), join(b, 'room', 'node-a')]);
		expect(lb1.channel).toBe(lb2.channel);
		expect(b.bridges.linkCount).toBe(1);
		expect(a.bridges.satellitesOf('room')).toEqual(['node-b']);
		await until('both hear A', () => consumerOf(lb1, producerA.id) !== undefined && consumerOf(lb2, producerA.id) !== undefined);
		// Their producers reach A once each, over the one link, which stays up.
		const [p1, p2] = [await produce(lb1, 2221), await produce(lb2, 2222)];
		const la = await join(a, 'room', 'node-a');
		await until('A hears both', () => consumerOf(la, p1.id) !== undefined && consumerOf(la, p2.id) !== undefined);
		await new Promise((r) => setTimeout(r, 200));
		expect(b.bridges.link('room')?.closed).toBe(false);
		expect(lb1.link.of('channelClosing')).toEqual([]);
		expect(a.bridges.link('room', 'node-b')?.counts).toMatchObject({ inbound: 2, remotePeers: 2 });
	});

	it('keeps the bridge when the satellite\'s only user joins again (their old peer is replaced)', async () => {
		const a = await node('node-a');
		const b = await node('node-b');
		const la = await join(a, 'room', 'node-a');
		const first = await join(b, 'room', 'node-a', { userId: 'bea' });
		const again = await join(b, 'room', 'node-a', { userId: 'bea' });
		expect(first.peer.closed).toBe(true);
		await until('A hears the new peer', () => la.link.of('peerJoined').some((p) => p.peerId === again.peer.id));
		await new Promise((r) => setTimeout(r, 100));
		expect(b.bridges.linkCount).toBe(1);
		expect(again.channel.peers.has(la.peer.id)).toBe(true);
		expect(la.link.of('peerLeft').map((p) => p.peerId)).toEqual([first.peer.id]);
		// A leave later ends it.
		again.channel.removePeer(again.peer);
		await until('bridge torn down', () => a.bridges.linkCount === 0 && b.bridges.linkCount === 0);
	});

	it('replaces a user\'s peer on one node when the same user joins on the other', async () => {
		const a = await node('node-a');
		const b = await node('node-b');
		const la = await join(a, 'room', 'node-a');
		const onA = await join(a, 'room', 'node-a', { userId: 'cy' });
		const onB = await join(b, 'room', 'node-a', { userId: 'cy' });
		await until('old peer replaced', () => onA.peer.closed);
		expect(onA.link.disconnects).toEqual([{ code: 4409, reason: expect.stringMatching(/^E_REPLACED/) }]);
		await until('B sees it go', () => !onB.channel.peers.has(onA.peer.id));
		expect([...la.channel.peers.values()].filter((p) => p.userId === 'cy').map((p) => p.id)).toEqual([onB.peer.id]);
		// And the other way round: joining on the home node replaces the satellite's peer.
		const back = await join(a, 'room', 'node-a', { userId: 'cy' });
		await until('satellite peer replaced', () => onB.peer.closed);
		expect(onB.link.disconnects).toHaveLength(1);
		await until('bridge ended with its last local peer', () => b.bridges.linkCount === 0);
		// The home node hears of the satellite peer's leave over the bus, possibly after the satellite closed its link.
		await until('home keeps only the new peer', () => [...la.channel.peers.values()].filter((p) => p.userId === 'cy').length === 1);
		expect([...la.channel.peers.values()].filter((p) => p.userId === 'cy').map((p) => p.id)).toEqual([back.peer.id]);
	});

	it('opens a bridge onto a busy channel: every publisher in the open reply', async () => {
		const a = await node('node-a');
		const b = await node('node-b');
		const publishers = 150;
		const channel = await a.registry.open('busy');
		for (let i = 0; i < publishers; i++) {
			const p = await join(a, 'busy', 'node-a', { listen: false });
			await produce(p, 10_000 + i);
		}
		const started = performance.now();
		const lb = await join(b, 'busy', 'node-a');
		const attachMs = Math.round(performance.now() - started);
		// Every producer was piped before the join answered; the listener consumes them all.
		expect(lb.channel.peers.size).toBe(publishers + 1);
		await until('listener consumes all', () => lb.link.of('newConsumer').length === publishers, 10_000);
		console.log(`bridge.open onto ${publishers} publishers: join at the satellite answered after ${attachMs} ms`);
		expect(channel.peers.size).toBe(publishers + 1);
	}, 60_000);

	it('limits peers per node, not per bridged channel', async () => {
		const a = await node('node-a', 2);
		const b = await node('node-b', 2);
		await join(a, 'room', 'node-a');
		await join(a, 'room', 'node-a');
		await expect(join(a, 'room', 'node-a')).rejects.toMatchObject({ code: 'E_CHANNEL_FULL' });
		const b1 = await join(b, 'room', 'node-a');
		await join(b, 'room', 'node-a');
		await expect(join(b, 'room', 'node-a')).rejects.toMatchObject({ code: 'E_CHANNEL_FULL' });
		expect(b1.channel.peers.size).toBe(4);
	});

	it('relays between satellites through the home node', async () => {
		const a = await node('node-a');
		const b = await node('node-b');
		const c = await node('node-c');
		const la = await join(a, 'room', 'node-a');
		const pb = await join(b, 'room', 'node-a', { listen: false });
		const producerB = await produce(pb, 3333);
		const lc = await join(c, 'room', 'node-a');
		// C learns of B's peer and producer through A (B's peer is there before the join answers).
		expect(lc.channel.peers.has(pb.peer.id)).toBe(true);
		await until('C hears B', () => consumerOf(lc, producerB.id) !== undefined);
		expect(consumerOf(lc, producerB.id)!.peerId).toBe(pb.peer.id);
		await until('A hears B', () => consumerOf(la, producerB.id) !== undefined);
		// A producer on C reaches B's listener (B listens now).
		await pb.channel.createTransport(pb.peer, 'recv', pb.node.pool.webRtcServerFor(pb.channel.router));
		const pc = await join(c, 'room', 'node-a', { listen: false });
		const producerC = await produce(pc, 4444);
		await until('B hears C', () => consumerOf(pb, producerC.id) !== undefined);
		await until('B hears of pc', () => pb.link.of('peerJoined').some((p) => p.peerId === pc.peer.id));
		expect(a.bridges.satellitesOf('room').sort()).toEqual(['node-b', 'node-c']);
		// Satellites never link to each other.
		expect(b.bridges.linkCount).toBe(1);
		expect(c.bridges.linkCount).toBe(1);
	});

	it('drops a lost satellite\'s peers at the hub, and closes a satellite\'s channel when its hub is lost', async () => {
		const a = await node('node-a');
		const b = await node('node-b');
		const la = await join(a, 'room', 'node-a');
		const pa = await join(a, 'room', 'node-a', { listen: false });
		const producerA = await produce(pa, 5555);
		const lb = await join(b, 'room', 'node-a');
		const pb = await join(b, 'room', 'node-a', { listen: false });
		const producerB = await produce(pb, 6666);
		await until('A hears B', () => consumerOf(la, producerB.id) !== undefined);
		await until('B hears A', () => consumerOf(lb, producerA.id) !== undefined);

		// The hub sees B go (as NodeRegistry's nodeLost would tell it).
		a.bridges.nodeLost('node-b');
		for (const id of [lb.peer.id, pb.peer.id]) expect(la.link.of('peerLeft').map((p) => p.peerId)).toContain(id);
		const piped = consumerOf(la, producerB.id)!.consumerId;
		await until('A consumer of B closed', () => la.link.of('consumerClosed').some((c) => c.consumerId === piped));
		expect(a.bridges.linkCount).toBe(0);
		expect([...la.channel.peers.values()].map((p) => p.id).sort()).toEqual([la.peer.id, pa.peer.id].sort());
		expect(la.channel.closed).toBe(false);
		// The satellite loses its hub: its peers are told to rejoin.
		b.bridges.nodeLost('node-a');
		expect(lb.link.of('channelClosing')).toHaveLength(1);
		expect(pb.link.of('channelClosing')).toHaveLength(1);
		expect(lb.channel.closed).toBe(true);
		expect(b.bridges.linkCount).toBe(0);
	});

	it('closes the satellite channel when the hub closes its channel', async () => {
		const a = await node('node-a');
		const b = await node('node-b');
		const la = await join(a, 'room', 'node-a');
		const lb = await join(b, 'room', 'node-a');
		la.channel.close('worker lost');
		await until('B told', () => lb.link.of('channelClosing').length === 1);
		expect(lb.link.of('channelClosing')[0]!.reason).toMatch(/node-a/);
		expect(b.bridges.linkCount).toBe(0);
		expect(a.bridges.linkCount).toBe(0);
	});

	it('refuses malformed and unexpected bridge messages with a reason', async () => {
		const a = await node('node-a');
		const x = await node('node-x');
		await join(a, 'room', 'node-a');
		const refused = (p: Promise<unknown>) => expect(p).rejects.toSatisfy((e: unknown) => e instanceof ClusterBusError && e.code === 'remote');
		await refused(x.bus.request('node-a', BRIDGE_OPEN, { channel: '../etc', ip: '127.0.0.1', port: 1, enableRtx: false }));
		await refused(x.bus.request('node-a', BRIDGE_OPEN, { channel: 'room', ip: 'evil.example', port: 5000, enableRtx: false }));
		await refused(x.bus.request('node-a', BRIDGE_OPEN, { channel: 'room', ip: '127.0.0.1', port: 70_000, enableRtx: false }));
		await expect(x.bus.request('node-a', BRIDGE_SYNC, { channel: 'room', events: [] })).rejects.toThrow(/no bridge of channel room with node node-x/);
		await expect(x.bus.request('node-a', BRIDGE_SYNC, { channel: 'room', events: [{ type: 'peerJoined', peer: { peerId: 'p' } }] })).rejects.toThrow(/invalid bridge.sync: events.0.peer.userId/);
		expect(a.bridges.linkCount).toBe(0);
		// A satellite whose events do not fit (a producer of a peer never announced) breaks
		// the bridge: both ends close it.
		const lx = await join(x, 'room', 'node-a');
		await expect(
			x.bus.request('node-a', BRIDGE_SYNC, { channel: 'room', events: [{ type: 'producerClosed', producerId: 'nope' }, { type: 'producer', peerId: 'ghost', producerId: 'p1', rtpParameters: opusParams(1), paused: false }] }),
		).rejects.toThrow(/unknown peer ghost/);
		expect(a.bridges.linkCount).toBe(0);
		// x learns it at its next sync (a peer joining there) and closes its channel.
		await join(x, 'room', 'node-a', { listen: false });
		await until('x told to rejoin', () => lx.link.of('channelClosing').length === 1);
		expect(x.bridges.linkCount).toBe(0);
	});

	it('fails a join with E_CLUSTER_UNAVAILABLE when the home node does not answer, and leaves nothing open', async () => {
		const b = await node('node-b');
		const channel = await b.registry.open('room');
		await expect(b.bridges.attach(channel, 'node-gone')).rejects.toMatchObject({ code: 'E_CLUSTER_UNAVAILABLE', message: expect.stringMatching(/node-gone.*does not answer/) });
		expect(b.bridges.linkCount).toBe(0);
		await until('channel closed', () => b.registry.size === 0);
	});
});
