// This node's part in a cluster (only when cluster.redisUrl is set): the bus, its entry in
// the node registry with its load, channel placement and the bridges of channels across
// nodes. Constructed with the rest of the node (no I/O), so the join gets its placement and
// bridge ports directly; started once the HTTP listener knows its port (the registry entry
// carries the node's URL); closed before the Redis connection. Until started, both ports
// answer E_CLUSTER_UNAVAILABLE ("try again").
import type { Redis } from 'ioredis';
import type { ParleyConfig } from '../../config/schema.js';
import type { Channel } from '../channels/Channel.js';
import type { ChannelRegistry } from '../channels/ChannelRegistry.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { ChannelBridgeHook, ChannelPlacer, PlacementDecision } from '../channels/placement.js';
import { RequestError } from '../../protocol/RequestError.js';
import type { Logger } from '../telemetry/logger.js';
import { BUS_NODE_PREFIX, RedisClusterBus } from './ClusterBus.js';
import { ChannelPlacement } from './ChannelPlacement.js';
import { ChannelBridges, pipeSettings } from './ChannelBridge.js';
import { isNodeRegistered, NodeRegistry, type NodeInfo, type NodeLoad } from './NodeRegistry.js';
import { ClusterSecret } from './ClusterSecret.js';

export interface ClusterNodeOptions {
	config: ParleyConfig;
	nodeId: string;
	/** The node's command connection (owned by ParleyServer). */
	redis: Redis;
	channels: ChannelRegistry;
	workers: WorkerPool;
	/** Address announced to clients for media (media.announcedAddress resolved). */
	mediaAddress: string;
	/** What the HTTP listener speaks (https with http.tls): the default URL's scheme. */
	scheme?: 'http' | 'https';
	log: Logger;
}

/** URLs other clients use to reach this node: cluster.publicUrl, else <scheme>://<media address>:<port>. */
export function nodeUrls(publicUrl: string, mediaAddress: string, httpPort: number, scheme: 'http' | 'https' = 'http'): { httpUrl: string; signalingUrl: string } {
	const host = mediaAddress.includes(':') ? `[${mediaAddress}]` : mediaAddress;
	const base = (publicUrl || `${scheme}://${host}:${httpPort}`).replace(/\/$/, '');
	const httpUrl = base.replace(/^ws(s?):/, 'http$1:');
	return { httpUrl, signalingUrl: `${httpUrl.replace(/^http(s?):/, 'ws$1:')}/ws` };
}

export class ClusterNode {
	readonly nodeId: string;
	/** Where a channel is served (the join's port); E_CLUSTER_UNAVAILABLE until started. */
	readonly placement: ChannelPlacer = {
		place: (channel: string): Promise<PlacementDecision> => this.#running().placement.place(channel),
	};
	/** Connects a channel opened here to its home on another node (the join's port). */
	readonly bridge: ChannelBridgeHook = {
		attach: (channel: Channel, homeNodeId: string): Promise<void> => this.#running().bridges.attach(channel, homeNodeId),
	};
	readonly #options: ClusterNodeOptions;
	readonly #redis: Redis;
	readonly #channels: ChannelRegistry;
	readonly #log: Logger;
	readonly #cpu: WorkerCpuSampler;
	readonly #secret: ClusterSecret;
	#started: Started | undefined;
	/** Peers connected to this node (the registry's events count local peers only). */
	#peers = 0;
	readonly #tracked = new WeakSet<Channel>();
	/** Redis was ready once already: a later 'ready' is a reconnect. */
	#sawReady: boolean;
	readonly #onReady = (): void => {
		if (!this.#started) return;
		if (this.#sawReady) this.#started.placement.redisReconnected();
		this.#sawReady = true;
		void this.#started.registry.beat();
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

	constructor(options: ClusterNodeOptions) {
		this.nodeId = options.nodeId;
		// A cluster without the secret would take orders from anyone who can reach Redis:
		// refuse to start rather than run one by accident.
		if (!options.config.cluster.secret) {
			throw new TypeError('cluster.secret (PARLEY_CLUSTER_SECRET) must be set when cluster.redisUrl is: the same secret of at least 32 characters on every node, e.g. `openssl rand -hex 32`');
		}
		this.#secret = new ClusterSecret(options.config.cluster.secret);
		this.#options = options;
		this.#redis = options.redis;
		this.#channels = options.channels;
		this.#log = options.log;
		this.#cpu = new WorkerCpuSampler(options.workers);
		this.#sawReady = options.redis.status === 'ready';
	}

	get started(): boolean {
		return this.#started !== undefined;
	}

	/** The node-to-node bus (once started). */
	get bus(): RedisClusterBus {
		return this.#running().bus;
	}

	/** Whether `nodeId` has a live, validly signed registry entry (works before start()). */
	isNodeRegistered(nodeId: string): Promise<boolean> {
		return isNodeRegistered(this.#redis, this.#secret, nodeId);
	}

	/** The node registry (once started). */
	get registry(): NodeRegistry {
		return this.#running().registry;
	}

	/** What this node announces in the registry (once started). */
	get info(): Omit<NodeInfo, 'load'> {
		return this.#running().info;
	}

	/** Connects the bus, registers this node with the URL of `httpPort` (the port the HTTP
	 * listener got; http.port may be 0) and starts bridging. Resolves even when Redis is
	 * away: the node registers as soon as Redis answers. */
	async start(httpPort: number): Promise<void> {
		if (this.#started || this.#closed) throw new Error('ClusterNode: start() called twice or after close()');
		const options = this.#options;
		const c = options.config.cluster;
		const bus = await RedisClusterBus.create({
			redis: options.redis,
			nodeId: options.nodeId,
			requestTimeoutMs: c.requestTimeoutMs,
			secret: this.#secret,
			log: options.log.child({ part: 'bus' }),
		});
		const urls = nodeUrls(c.publicUrl, options.mediaAddress, httpPort, options.scheme);
		const pipe = pipeSettings(options.config);
		const info = {
			nodeId: options.nodeId,
			...urls,
			mediaAddress: options.mediaAddress,
			pipeAddress: pipe.announcedIp ?? pipe.listenIp,
			startedAt: Date.now(),
		};
		const registry = new NodeRegistry({
			redis: options.redis,
			self: info,
			ttlMs: c.nodeTtlMs,
			load: () => this.#load(options.workers),
			secret: this.#secret,
			log: options.log,
		});
		// Requests and broadcasts only from live registered nodes (signed entries).
		bus.trustSenders((nodeId) => registry.isLive(nodeId));
		const placement = new ChannelPlacement({
			redis: options.redis,
			registry,
			ttlMs: c.nodeTtlMs,
			bridgeAbovePeers: c.bridgeAbovePeers,
			isOpenHere: (name) => {
				const channel = options.channels.get(name);
				return channel !== undefined && !channel.closed;
			},
			timeoutMs: c.requestTimeoutMs,
			isOnBus: async (nodeId) => {
				const reply = (await options.redis.pubsub('NUMSUB', BUS_NODE_PREFIX + nodeId)) as [string, number];
				return Number(reply[1]) > 0;
			},
			log: options.log,
		});
		const bridges = new ChannelBridges({ bus, registry: options.channels, pipe, nodes: registry, secret: this.#secret, log: options.log.child({ part: 'bridge' }) });
		this.#started = { bus, registry, placement, bridges, info };
		options.channels.on('peerJoined', this.#onPeerJoined);
		options.channels.on('peerLeft', this.#onPeerLeft);
		// Re-register at once when Redis returns instead of at the next heartbeat.
		options.redis.on('ready', this.#onReady);
		registry.on('nodeLost', (lost) => options.log.info({ lostNodeId: lost }, 'node lost'));
		registry.on('nodeSeen', (seen) => options.log.info({ seenNodeId: seen.nodeId, signalingUrl: seen.signalingUrl }, 'node seen'));
		await registry.start();
		options.log.info({ nodeId: this.nodeId, signalingUrl: info.signalingUrl, ttlMs: registry.ttlMs, registered: registry.registered }, 'cluster node started');
	}

	/**
	 * Leaves the cluster at the start of a graceful shutdown: deletes this node's registry
	 * entry and its channels' home claims so other nodes take them over at once (its clients
	 * are about to reconnect elsewhere). The bus keeps working until close().
	 */
	async leave(): Promise<void> {
		const started = this.#started;
		if (this.#left || !started) return;
		this.#left = true;
		await started.registry.stop({ deregister: true });
		await started.placement.releaseAll();
		this.#log.info({ nodeId: this.nodeId }, 'left the cluster');
	}

	/** Closes the bridges (their links were closed with their channels; this waits for the
	 * other nodes to be told), stops the heartbeat (without leave(), the entry and claims
	 * expire after the TTL) and the bus. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		const started = this.#started;
		if (!started) return;
		this.#redis.off('ready', this.#onReady);
		this.#channels.off('peerJoined', this.#onPeerJoined);
		this.#channels.off('peerLeft', this.#onPeerLeft);
		await started.bridges.close();
		await started.registry.stop({ deregister: false });
		await started.bus.close();
	}

	#running(): Started {
		if (!this.#started || this.#closed) throw new RequestError('E_CLUSTER_UNAVAILABLE', 'This node is still joining the cluster; try again.');
		return this.#started;
	}

	/** Gives up the home claim the moment a channel closes here, so the next join anywhere claims it. */
	#trackClose(channel: Channel): void {
		if (this.#tracked.has(channel)) return;
		this.#tracked.add(channel);
		channel.once('closed', () => {
			if (this.#left || this.#closed) return;
			// A new channel of the same name may already be open here (closed, then rejoined).
			if (this.#channels.get(channel.name)) return;
			void this.#started?.placement.release(channel.name);
		});
	}

	async #load(workers: WorkerPool): Promise<NodeLoad> {
		let consumers = 0;
		for (const w of workers.info()) consumers += w.consumers;
		return { peers: this.#peers, consumers, channels: this.#channels.size, workerCpu: await this.#cpu.sample() };
	}
}

interface Started {
	bus: RedisClusterBus;
	registry: NodeRegistry;
	placement: ChannelPlacement;
	bridges: ChannelBridges;
	info: Omit<NodeInfo, 'load'>;
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
