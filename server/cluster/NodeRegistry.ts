// The cluster's list of live nodes, kept in Redis: each node writes its entry with a TTL
// and refreshes it on a heartbeat, so a node that dies drops out by itself within the TTL
// without anyone having to notice it first.
//
//   parley:node:<nodeId>   JSON NodeInfo plus `sig`, PX nodeTtlMs
//   parley:nodes           sorted set nodeId -> last heartbeat (Redis clock, ms); pruned
//                          past the TTL. Lists candidates; the entry key is the truth.
//
// `sig` is the HMAC (ClusterSecret 'registry' key) of "<nodeId>\n<JSON of the entry
// without sig>". Entries are verified on read and an unsigned or forged one is ignored:
// redirects, placement and bridges only ever go to nodes that hold the cluster secret.
// (JSON.stringify of what JSON.parse made of JSON.stringify output gives the same text, so
// the reader re-serializes the entry to check it; the entry stays plain JSON to look at.)
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { settlesWithin } from '../async/settlesWithin.js';
import type { Logger } from '../telemetry/logger.js';
import type { ClusterSecret } from './ClusterSecret.js';

export const NODE_KEY_PREFIX = 'parley:node:';

/** Whether `nodeId` has a registry entry now (without a NodeRegistry of one's own: used
 * before this node registers). */
/** Whether `nodeId` has a live entry signed with the cluster secret (a forged one would keep a
 * dead node's recordings from being recovered). */
export async function isNodeRegistered(redis: Redis, secret: ClusterSecret, nodeId: string): Promise<boolean> {
	const value = await redis.get(NODE_KEY_PREFIX + nodeId);
	return value !== null && verifyNodeEntry(secret, value, nodeId) !== undefined;
}
export const NODES_KEY = 'parley:nodes';

const loadSchema = z.object({
	peers: z.number().int().min(0),
	consumers: z.number().int().min(0),
	channels: z.number().int().min(0),
	/** Mean CPU share of this node's mediasoup workers over the last heartbeat (0..1 per worker). */
	workerCpu: z.number().min(0),
});
export type NodeLoad = z.infer<typeof loadSchema>;

/** Entries come back from Redis, where anything may have written them: validated on read. */
export const nodeInfoSchema = z.object({
	nodeId: z.string().min(1).max(200),
	/** WebSocket URL clients use (ws(s)://host:port/ws). */
	signalingUrl: z.url(),
	/** Base HTTP URL (voice-message API, health). */
	httpUrl: z.url(),
	/** Address announced to clients for WebRTC media. */
	mediaAddress: z.string(),
	/** Address other nodes reach this node's PipeTransports at. */
	pipeAddress: z.string(),
	/** Epoch ms of this process's start. */
	startedAt: z.number(),
	load: loadSchema,
});
export type NodeInfo = z.infer<typeof nodeInfoSchema>;

export interface NodeRegistryEvents {
	/** A node that was live is gone (expired, or deregistered at shutdown). */
	nodeLost: [nodeId: string];
	/** A node appeared (or came back after Redis returned). */
	nodeSeen: [info: NodeInfo];
}

export interface NodeRegistryOptions {
	redis: Redis;
	/** This node's entry without its load (filled in on each heartbeat). */
	self: Omit<NodeInfo, 'load'>;
	/** cluster.nodeTtlMs: entry lifetime; the heartbeat runs every third of it. */
	ttlMs: number;
	load: () => NodeLoad | Promise<NodeLoad>;
	/** cluster.secret: signs this node's entry, verifies the others'. */
	secret: ClusterSecret;
	log: Logger;
}

/** The entry as stored: `info` as JSON with its signature. */
export function signNodeEntry(secret: ClusterSecret, info: NodeInfo): string {
	const body = JSON.stringify(info);
	return JSON.stringify({ ...info, sig: secret.mac('registry', `${info.nodeId}\n${body}`) });
}

/** The signed fields of a stored entry, or undefined when it carries no valid signature for `nodeId`. */
export function verifyNodeEntry(secret: ClusterSecret, value: string, nodeId: string): unknown {
	let json: unknown;
	try {
		json = JSON.parse(value);
	} catch {
		return undefined;
	}
	if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
	const { sig, ...signed } = json as Record<string, unknown>;
	if (typeof sig !== 'string' || !secret.verify('registry', `${nodeId}\n${JSON.stringify(signed)}`, sig)) return undefined;
	return signed;
}

// Redis's clock for the sorted-set scores, so nodes with skewed clocks agree on who is stale.
const HEARTBEAT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
return now
`;

export type HeartbeatTask = () => Promise<void>;

/** How long stop() waits for a heartbeat in flight, and for the entry's deletion. */
const STOP_WAIT_MS = 1000;

export class NodeRegistry extends EventEmitter<NodeRegistryEvents> {
	readonly nodeId: string;
	readonly ttlMs: number;
	readonly #redis: Redis;
	readonly #self: Omit<NodeInfo, 'load'>;
	readonly #load: () => NodeLoad | Promise<NodeLoad>;
	readonly #log: Logger;
	readonly #secret: ClusterSecret;
	/** Unsigned or forged entries ignored so far (tests; logged at most every 10 s). */
	#forgedEntries = 0;
	#lastForgedLogMs = -Infinity;
	readonly #tasks: HeartbeatTask[] = [];
	/** Live nodes as of the last successful poll (other nodes and this one). */
	#known = new Map<string, NodeInfo>();
	/** When each node was last seen live, by a poll or by isLive (pruned after the goodbye grace). */
	readonly #lastSeenMs = new Map<string, number>();
	#timer: NodeJS.Timeout | undefined;
	#beating: Promise<void> | undefined;
	#registered = false;
	#stopped = false;
	#lastError = '';

	constructor(options: NodeRegistryOptions) {
		super();
		this.nodeId = options.self.nodeId;
		this.ttlMs = options.ttlMs;
		this.#redis = options.redis;
		this.#self = options.self;
		this.#load = options.load;
		this.#log = options.log;
		this.#secret = options.secret;
	}

	/** Registry entries ignored for a missing or wrong signature since start. */
	get forgedEntries(): number {
		return this.#forgedEntries;
	}

	/** Whether `nodeId` is live: known from the last poll, else its (signed) entry is in Redis now. */
	async isLive(nodeId: string): Promise<boolean> {
		if (this.#known.has(nodeId)) return true;
		// A node that just deregistered (SIGTERM) still says goodbye over the bus (bridge
		// closes, peers leaving): what it sends in the moments after it left is taken.
		const seenMs = this.#lastSeenMs.get(nodeId);
		if (seenMs !== undefined && Date.now() - seenMs < this.#goodbyeGraceMs) return true;
		if ((await this.get(nodeId)) === undefined) return false;
		// Seen now, though between polls (a node that joined and leaves within one).
		this.#lastSeenMs.set(nodeId, Date.now());
		return true;
	}

	/** How long after a node was last seen live its bus messages are still taken. */
	get #goodbyeGraceMs(): number {
		return Math.max(2 * this.ttlMs, 5000);
	}

	/** This node's entry was written by the last heartbeat (false while Redis is away). */
	get registered(): boolean {
		return this.#registered;
	}

	get heartbeatIntervalMs(): number {
		return Math.max(100, Math.floor(this.ttlMs / 3));
	}

	/** Runs after every successful heartbeat (e.g. placement refreshes its home claims). */
	onHeartbeat(task: HeartbeatTask): void {
		this.#tasks.push(task);
	}

	/** Writes the entry now (resolves even when Redis is away) and keeps it fresh. */
	async start(): Promise<void> {
		if (this.#timer || this.#stopped) return;
		await this.beat();
		const schedule = (): void => {
			this.#timer = setTimeout(() => {
				void this.beat().finally(() => {
					if (!this.#stopped) schedule();
				});
			}, this.heartbeatIntervalMs);
		};
		schedule();
	}

	/** One heartbeat: write this node's entry, then poll the others. Never rejects. */
	beat(): Promise<void> {
		this.#beating ??= this.#beat().finally(() => (this.#beating = undefined));
		return this.#beating;
	}

	async #beat(): Promise<void> {
		if (this.#stopped) return;
		try {
			const info: NodeInfo = { ...this.#self, load: await this.#load() };
			await this.#redis.eval(HEARTBEAT_SCRIPT, 2, NODE_KEY_PREFIX + this.nodeId, NODES_KEY, signNodeEntry(this.#secret, info), String(this.ttlMs), this.nodeId);
			if (!this.#registered) this.#log.info({ nodeId: this.nodeId, ttlMs: this.ttlMs }, 'node registered');
			this.#registered = true;
			this.#lastError = '';
		} catch (err) {
			if (this.#registered || this.#lastError !== (err as Error).message) this.#log.warn({ err }, 'node heartbeat failed');
			this.#registered = false;
			this.#lastError = (err as Error).message;
			return;
		}
		for (const task of this.#tasks) {
			try {
				await task();
			} catch (err) {
				this.#log.warn({ err }, 'heartbeat task failed');
			}
		}
		await this.#poll();
	}

	/** Compares the live set with the last one and emits nodeLost / nodeSeen. Skipped
	 * while Redis is away: an unreachable Redis says nothing about the other nodes. */
	async #poll(): Promise<void> {
		let live: NodeInfo[];
		try {
			live = await this.liveNodes();
		} catch {
			return;
		}
		if (this.#stopped) return;
		const next = new Map(live.map((n) => [n.nodeId, n]));
		const previous = this.#known;
		this.#known = next;
		const nowMs = Date.now();
		for (const id of next.keys()) this.#lastSeenMs.set(id, nowMs);
		for (const [id, seenMs] of this.#lastSeenMs) if (nowMs - seenMs >= this.#goodbyeGraceMs) this.#lastSeenMs.delete(id);
		for (const id of previous.keys()) if (!next.has(id) && id !== this.nodeId) this.emit('nodeLost', id);
		for (const [id, info] of next) if (!previous.has(id) && id !== this.nodeId) this.emit('nodeSeen', info);
	}

	/** Every node whose entry has not expired (this one included), from Redis now. */
	async liveNodes(): Promise<NodeInfo[]> {
		const ids = await this.#redis.zrange(NODES_KEY, '0', '-1');
		if (ids.length === 0) return [];
		const raw = await this.#redis.mget(...ids.map((id) => NODE_KEY_PREFIX + id));
		const nodes: NodeInfo[] = [];
		raw.forEach((value, i) => {
			const info = value === null ? undefined : this.#parse(value, ids[i]!);
			if (info) nodes.push(info);
		});
		return nodes;
	}

	/** The node's entry, or undefined when it is not live. */
	async get(nodeId: string): Promise<NodeInfo | undefined> {
		const value = await this.#redis.get(NODE_KEY_PREFIX + nodeId);
		return value === null ? undefined : this.#parse(value, nodeId);
	}

	#parse(value: string, nodeId: string): NodeInfo | undefined {
		const json = verifyNodeEntry(this.#secret, value, nodeId);
		if (json === undefined) {
			this.#forgedEntries++;
			const now = Date.now();
			if (now - this.#lastForgedLogMs >= 10_000) {
				this.#lastForgedLogMs = now;
				this.#log.warn({ nodeId, ignoredSoFar: this.#forgedEntries }, 'ignoring a node registry entry without a valid signature (cluster.secret differs, or it is forged)');
			}
			return undefined;
		}
		const parsed = nodeInfoSchema.safeParse(json);
		if (!parsed.success || parsed.data.nodeId !== nodeId) {
			this.#log.warn({ nodeId }, 'ignoring a malformed node registry entry');
			return undefined;
		}
		return parsed.data;
	}

	/** Stops the heartbeat. `deregister`: delete this node's entry now so others see it
	 * gone at once (graceful shutdown) instead of after the TTL. */
	async stop(options: { deregister: boolean }): Promise<void> {
		if (this.#stopped) return;
		this.#stopped = true;
		clearTimeout(this.#timer);
		this.#timer = undefined;
		// A stalled Redis (not refusing, just not answering) must not hold up a shutdown.
		if (!(await settlesWithin(this.#beating, STOP_WAIT_MS))) return;
		if (!options.deregister || this.#redis.status !== 'ready') return;
		try {
			const deleted = this.#redis.multi().del(NODE_KEY_PREFIX + this.nodeId).zrem(NODES_KEY, this.nodeId).exec();
			if (!(await settlesWithin(deleted, STOP_WAIT_MS))) throw new Error(`Redis did not answer within ${STOP_WAIT_MS} ms`);
			await deleted;
			this.#registered = false;
		} catch (err) {
			this.#log.warn({ err }, 'could not delete the node registry entry; it expires by itself');
		}
	}
}
