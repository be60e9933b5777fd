// This node's part in a cluster (only when cluster.redisUrl is set): the bus, its entry in
// the node registry with its load, and channel placement. Owned by ParleyServer, started
// once the HTTP listener knows its port (the registry entry carries the node's URL), closed
// before the Redis connection.
import type { Redis } from 'ioredis';
import type { ParleyConfig } from '../../config/schema.js';
import type { Channel } from '../channels/Channel.js';
import type { ChannelRegistry } from '../channels/ChannelRegistry.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { ChannelBridgeHook } from '../channels/placement.js';
import type { Logger } from '../telemetry/logger.js';
import { BUS_NODE_PREFIX, RedisClusterBus } from './ClusterBus.js';
import { ChannelPlacement } from './ChannelPlacement.js';
import { pipeSettings } from './ChannelBridge.js';
import { NodeRegistry, type NodeInfo, type NodeLoad } from './NodeRegistry.js';

export interface ClusterNodeOptions {
	config: ParleyConfig;
	nodeId: string;
	/** The node's command connection (owned by ParleyServer). */
	redis: Redis;
	channels: ChannelRegistry;
	workers: WorkerPool;
	/** The port the HTTP listener got (http.port may be 0). */
	httpPort: number;
	/** Address announced to clients for media (media.announcedAddress resolved). */
	mediaAddress: string;
	log: Logger;
}

/** URLs other clients use to reach this node: cluster.publicUrl, else http://<media address>:<port>. */
export function nodeUrls(publicUrl: string, mediaAddress: string, httpPort: number): { httpUrl: string; signalingUrl: string } {
	const host = mediaAddress.includes(':') ? `[${mediaAddress}]` : mediaAddress;
	const base = (publicUrl || `http://${host}:${httpPort}`).replace(/\/$/, '');
	const httpUrl = base.replace(/^ws(s?):/, 'http$1:');
	return { httpUrl, signalingUrl: `${httpUrl.replace(/^http(s?):/, 'ws$1:')}/ws` };
}

export class ClusterNode {
	readonly nodeId: string;
	readonly bus: RedisClusterBus;
	readonly registry: NodeRegistry;
	readonly placement: ChannelPlacement;
	readonly info: Omit<NodeInfo, 'load'>;
	/** Set by whoever wires channels bridging nodes (ChannelBridges); until then a busy home
	 * node still gets joins redirected to it. */
	bridge: ChannelBridgeHook | undefined;
	readonly #redis: Redis;
	readonly #channels: ChannelRegistry;
	readonly #log: Logger;
	readonly #cpu: WorkerCpuSampler;
	/** Peers connected to this node (the registry's events count local peers only). */
	#peers = 0;
	readonly #tracked = new WeakSet<Channel>();
	/** Redis was ready once already: a later 'ready' is a reconnect. */
	#sawReady: boolean;
	readonly #onReady = (): void => {
		if (this.#sawReady) this.placement.redisReconnected();
		this.#sawReady = true;
		void this.registry.beat();
	};
	readonly #onPeerJoined = (_peer: unknown, channel: Channel): void => {
		this.#peers++;
		this.#trackClose(channel);
	};
	readonly #onPeerLeft = (): void => {
		this.#peers = Math.max(0, this.#peers - 1);
	};
	#left = false;
	#closed = false;

	private constructor(options: ClusterNodeOptions, bus: RedisClusterBus) {
		const c = options.config.cluster;
		this.nodeId = options.nodeId;
		this.bus = bus;
		this.#redis = options.redis;
		this.#channels = options.channels;
		this.#log = options.log;
		this.#cpu = new WorkerCpuSampler(options.workers);
		this.#sawReady = options.redis.status === 'ready';
		const urls = nodeUrls(c.publicUrl, options.mediaAddress, options.httpPort);
		const pipe = pipeSettings(options.config);
		this.info = {
			nodeId: options.nodeId,
			...urls,
			mediaAddress: options.mediaAddress,
			pipeAddress: pipe.announcedIp ?? pipe.listenIp,
			startedAt: Date.now(),
		};
		this.registry = new NodeRegistry({
			redis: options.redis,
			self: this.info,
			ttlMs: c.nodeTtlMs,
			load: () => this.#load(options.workers),
			log: options.log,
		});
		this.placement = new ChannelPlacement({
			redis: options.redis,
			registry: this.registry,
			ttlMs: c.nodeTtlMs,
			bridgeAbovePeers: c.bridgeAbovePeers,
			isOpenHere: (name) => {
				const channel = options.channels.get(name);
				return channel !== undefined && !channel.closed;
			},
			canBridge: () => this.bridge !== undefined,
			timeoutMs: c.requestTimeoutMs,
			isOnBus: async (nodeId) => {
				const reply = (await options.redis.pubsub('NUMSUB', BUS_NODE_PREFIX + nodeId)) as [string, number];
				return Number(reply[1]) > 0;
			},
			log: options.log,
		});
	}

	/** Connects the bus and registers this node (resolves even when Redis is away: the node
	 * registers as soon as Redis answers). */
	static async create(options: ClusterNodeOptions): Promise<ClusterNode> {
		const bus = await RedisClusterBus.create({
			redis: options.redis,
			nodeId: options.nodeId,
			requestTimeoutMs: options.config.cluster.requestTimeoutMs,
			log: options.log.child({ part: 'bus' }),
		});
		const node = new ClusterNode(options, bus);
		options.channels.on('peerJoined', node.#onPeerJoined);
		options.channels.on('peerLeft', node.#onPeerLeft);
		// Re-register at once when Redis returns instead of at the next heartbeat.
		options.redis.on('ready', node.#onReady);
		node.registry.on('nodeLost', (lost) => options.log.info({ lostNodeId: lost }, 'node lost'));
		node.registry.on('nodeSeen', (info) => options.log.info({ seenNodeId: info.nodeId, signalingUrl: info.signalingUrl }, 'node seen'));
		await node.registry.start();
		options.log.info({ nodeId: node.nodeId, signalingUrl: node.info.signalingUrl, ttlMs: node.registry.ttlMs, registered: node.registry.registered }, 'cluster node started');
		return node;
	}

	/**
	 * Leaves the cluster at the start of a graceful shutdown: deletes this node's registry
	 * entry and its channels' home claims so other nodes take them over at once (its clients
	 * are about to reconnect elsewhere). The bus keeps working until close().
	 */
	async leave(): Promise<void> {
		if (this.#left) return;
		this.#left = true;
		await this.registry.stop({ deregister: true });
		await this.placement.releaseAll();
		this.#log.info({ nodeId: this.nodeId }, 'left the cluster');
	}

	/** Stops the heartbeat (without leave(), the entry and claims expire after the TTL) and the bus. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		this.#redis.off('ready', this.#onReady);
		this.#channels.off('peerJoined', this.#onPeerJoined);
		this.#channels.off('peerLeft', this.#onPeerLeft);
		await this.registry.stop({ deregister: false });
		await this.bus.close();
	}

	/** Gives up the home claim the moment a channel closes here, so the next join anywhere claims it. */
	#trackClose(channel: Channel): void {
		if (this.#tracked.has(channel)) return;
		this.#tracked.add(channel);
		channel.once('closed', () => {
			if (this.#left || this.#closed) return;
			// A new channel of the same name may already be open here (closed, then rejoined).
			if (this.#channels.get(channel.name)) return;
			void this.placement.release(channel.name);
		});
	}

	async #load(workers: WorkerPool): Promise<NodeLoad> {
		let consumers = 0;
		for (const w of workers.info()) consumers += w.consumers;
		return { peers: this.#peers, consumers, channels: this.#channels.size, workerCpu: await this.#cpu.sample() };
	}
}

/** Mean CPU share of the live mediasoup workers since the previous sample (0..1 each). */
class WorkerCpuSampler {
	readonly #workers: WorkerPool;
	#last = new Map<number, { pid: number; cpuMs: number; atMs: number }>();

	constructor(workers: WorkerPool) {
		this.#workers = workers;
	}

	async sample(): Promise<number> {
		const now = performance.now();
		const next = new Map<number, { pid: number; cpuMs: number; atMs: number }>();
		const shares: number[] = [];
		await Promise.all(
			this.#workers.liveWorkers().map(async ({ index, worker }) => {
				const usage = await worker.getResourceUsage().catch(() => undefined);
				if (!usage) return;
				const cpuMs = usage.ru_utime + usage.ru_stime;
				const entry = { pid: worker.pid, cpuMs, atMs: now };
				next.set(index, entry);
				const prev = this.#last.get(index);
				// A replaced worker (new pid) starts from zero: no share until the next sample.
				if (prev && prev.pid === worker.pid && now > prev.atMs) shares.push(Math.max(0, (cpuMs - prev.cpuMs) / (now - prev.atMs)));
			}),
		);
		this.#last = next;
		if (shares.length === 0) return 0;
		return Math.round((shares.reduce((a, b) => a + b, 0) / shares.length) * 1000) / 1000;
	}
}
