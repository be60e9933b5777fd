// Node-to-node messages over Redis pub/sub: requests to one node with a reply and a
// timeout, and broadcasts by topic. Redis is the only thing nodes share, so the bus rides
// on it instead of opening connections between nodes.
//
// Wire format: JSON envelopes {from, id, type, payload} published on
//   parley:bus:node:<nodeId>   requests to that node, and replies to its requests
//   parley:bus:topic:<topic>   broadcasts
// A reply is an envelope of type '@reply' whose id is the request's id.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../telemetry/logger.js';

export type ClusterBusErrorCode = 'timeout' | 'unavailable' | 'no_handler' | 'remote';

export class ClusterBusError extends Error {
	readonly code: ClusterBusErrorCode;
	constructor(code: ClusterBusErrorCode, message: string) {
		super(message);
		this.name = 'ClusterBusError';
		this.code = code;
	}
}

export type BusRequestHandler = (payload: unknown, fromNodeId: string) => Promise<unknown>;
export type BusTopicListener = (message: unknown, fromNodeId: string) => void;

export interface ClusterBus {
	readonly nodeId: string;
	/** Request to one node; resolves with its handler's result (JSON). Rejects ClusterBusError:
	 *  'timeout' (default timeout cluster.requestTimeoutMs), 'unavailable' (Redis down), 'no_handler', 'remote' (handler threw; message carried). */
	request<T = unknown>(nodeId: string, type: string, payload: unknown, timeoutMs?: number): Promise<T>;
	/** Serves requests of `type` addressed to this node (one handler per type). Payloads are untrusted JSON: validate them. */
	handle(type: string, handler: BusRequestHandler): void;
	/** Broadcast to every node subscribed to `topic` (including this one). Fire and forget. */
	publish(topic: string, message: unknown): Promise<void>;
	/** Returns an unsubscribe function. */
	subscribe(topic: string, listener: BusTopicListener): Promise<() => Promise<void>>;
	close(): Promise<void>;
}

export const BUS_NODE_PREFIX = 'parley:bus:node:';
export const BUS_TOPIC_PREFIX = 'parley:bus:topic:';
const REPLY_TYPE = '@reply';
/** Node ids, types and topics end up in Redis channel names and logs: keep them plain. */
const NAME_RE = /^[A-Za-z0-9_.:@-]{1,200}$/;

const envelopeSchema = z.object({
	from: z.string().regex(NAME_RE),
	id: z.string().min(1).max(100),
	type: z.string().regex(NAME_RE),
	payload: z.unknown(),
});
type Envelope = z.infer<typeof envelopeSchema>;

const replySchema = z.discriminatedUnion('ok', [
	z.object({ ok: z.literal(true), result: z.unknown() }),
	z.object({ ok: z.literal(false), code: z.enum(['no_handler', 'remote']), message: z.string().max(10_000) }),
]);
type Reply = z.infer<typeof replySchema>;

interface PendingRequest {
	resolve(value: unknown): void;
	reject(err: ClusterBusError): void;
	timer: NodeJS.Timeout;
}

export interface RedisClusterBusOptions {
	/** The node's command connection (owned by the caller; the bus only publishes on it). */
	redis: Redis;
	nodeId: string;
	/** Default timeout of request() (cluster.requestTimeoutMs). */
	requestTimeoutMs: number;
	log: Logger;
}

function assertName(kind: string, value: string): void {
	if (!NAME_RE.test(value)) throw new TypeError(`${kind} must match ${NAME_RE}, got ${JSON.stringify(value)}`);
}

/**
 * ClusterBus on Redis pub/sub. Owns its subscriber connection (a duplicate of the command
 * connection: a connection in subscriber mode cannot publish). Messages published while
 * Redis is away are lost (pub/sub keeps nothing); requests fail fast with 'unavailable'.
 */
export class RedisClusterBus implements ClusterBus {
	readonly nodeId: string;
	readonly #redis: Redis;
	readonly #sub: Redis;
	readonly #log: Logger;
	readonly #requestTimeoutMs: number;
	readonly #handlers = new Map<string, BusRequestHandler>();
	readonly #listeners = new Map<string, Set<BusTopicListener>>();
	readonly #pending = new Map<string, PendingRequest>();
	#closed = false;
	/** The SUBSCRIBE issued on the latest 'ready' (create() waits for the first one). */
	#subscribed: Promise<void> = Promise.resolve();

	private constructor(options: RedisClusterBusOptions) {
		assertName('nodeId', options.nodeId);
		this.nodeId = options.nodeId;
		this.#redis = options.redis;
		this.#log = options.log;
		this.#requestTimeoutMs = options.requestTimeoutMs;
		// Commands on a subscriber connection cannot be retried usefully either: fail fast
		// and re-subscribe everything on 'ready' instead.
		this.#sub = options.redis.duplicate({ lazyConnect: true });
		let lastError = '';
		this.#sub.on('error', (err: Error) => {
			if (err.message !== lastError) this.#log.warn({ err }, 'cluster bus subscriber connection error');
			lastError = err.message;
		});
		this.#sub.on('ready', () => {
			lastError = '';
			// ioredis re-subscribes channels it knew about; channels whose SUBSCRIBE failed
			// while Redis was away are only known here.
			this.#subscribed = this.#subscribeAll();
		});
		this.#sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.#onMessage(channel.toString(), message));
	}

	/** Starts the subscriber connection. Resolves even when Redis is away: the bus
	 * subscribes as soon as Redis answers, and requests fail with 'unavailable' meanwhile. */
	static async create(options: RedisClusterBusOptions): Promise<RedisClusterBus> {
		const bus = new RedisClusterBus(options);
		// connect() only rejects on the first attempt; retryStrategy keeps trying after it.
		await bus.#sub.connect().catch((err: unknown) => bus.#log.warn({ err }, 'cluster bus: Redis not reachable yet'));
		await bus.#subscribed;
		return bus;
	}

	/** Both connections are up: requests can go out and replies come back. */
	get available(): boolean {
		return !this.#closed && this.#redis.status === 'ready' && this.#sub.status === 'ready';
	}

	async request<T = unknown>(nodeId: string, type: string, payload: unknown, timeoutMs = this.#requestTimeoutMs): Promise<T> {
		assertName('nodeId', nodeId);
		assertName('type', type);
		if (type === REPLY_TYPE) throw new TypeError(`${REPLY_TYPE} is reserved`);
		if (!this.available) throw new ClusterBusError('unavailable', this.#closed ? 'cluster bus is closed' : 'cluster coordination (Redis) is unreachable');
		const id = randomUUID();
		const body = JSON.stringify({ from: this.nodeId, id, type, payload: payload ?? null } satisfies Envelope);
		const result = new Promise<unknown>((resolve, reject) => {
			const timer = setTimeout(() => {
				this.#pending.delete(id);
				reject(new ClusterBusError('timeout', `node ${nodeId} did not answer ${type} within ${timeoutMs} ms`));
			}, timeoutMs);
			this.#pending.set(id, { resolve, reject, timer });
		});
		// close() may settle it while PUBLISH is still in flight, before the caller holds it:
		// mark it handled so that is not an unhandled rejection (the caller still sees it).
		result.catch(() => undefined);
		let receivers: number;
		try {
			receivers = await this.#redis.publish(BUS_NODE_PREFIX + nodeId, body);
		} catch (err) {
			this.#settle(id, new ClusterBusError('unavailable', `cluster coordination (Redis) is unreachable: ${(err as Error).message}`));
			return result as Promise<T>;
		}
		// Nobody subscribed to that node's channel: it is gone (or never was). Say so now
		// rather than after the timeout.
		if (receivers === 0) this.#settle(id, new ClusterBusError('no_handler', `node ${nodeId} is not on the cluster bus`));
		return result as Promise<T>;
	}

	handle(type: string, handler: BusRequestHandler): void {
		assertName('type', type);
		if (type === REPLY_TYPE) throw new TypeError(`${REPLY_TYPE} is reserved`);
		if (this.#handlers.has(type)) throw new Error(`a handler for ${type} is already registered`);
		this.#handlers.set(type, handler);
	}

	async publish(topic: string, message: unknown): Promise<void> {
		assertName('topic', topic);
		if (this.#closed) throw new ClusterBusError('unavailable', 'cluster bus is closed');
		const body = JSON.stringify({ from: this.nodeId, id: randomUUID(), type: topic, payload: message ?? null } satisfies Envelope);
		try {
			await this.#redis.publish(BUS_TOPIC_PREFIX + topic, body);
		} catch (err) {
			throw new ClusterBusError('unavailable', `cluster coordination (Redis) is unreachable: ${(err as Error).message}`);
		}
	}

	async subscribe(topic: string, listener: BusTopicListener): Promise<() => Promise<void>> {
		assertName('topic', topic);
		if (this.#closed) throw new ClusterBusError('unavailable', 'cluster bus is closed');
		let set = this.#listeners.get(topic);
		if (!set) {
			set = new Set();
			this.#listeners.set(topic, set);
			await this.#subscribeChannel(BUS_TOPIC_PREFIX + topic);
		}
		// A distinct wrapper per call, so subscribing the same function twice unsubscribes once per call.
		const entry: BusTopicListener = (message, from) => listener(message, from);
		set.add(entry);
		let done = false;
		return async () => {
			if (done) return;
			done = true;
			const current = this.#listeners.get(topic);
			if (!current?.delete(entry) || current.size > 0) return;
			this.#listeners.delete(topic);
			if (this.#closed || this.#sub.status !== 'ready') return;
			await this.#sub.unsubscribe(BUS_TOPIC_PREFIX + topic).catch((err: unknown) => this.#log.debug({ err, topic }, 'unsubscribe failed'));
		};
	}

	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		for (const id of [...this.#pending.keys()]) this.#settle(id, new ClusterBusError('unavailable', 'cluster bus is closed'));
		this.#handlers.clear();
		this.#listeners.clear();
		// Dropping the connection ends every subscription; nothing to QUIT politely for.
		this.#sub.disconnect();
	}

	/** Requests waiting for a reply (tests check it returns to zero). */
	get pendingRequests(): number {
		return this.#pending.size;
	}

	async #subscribeChannel(channel: string): Promise<void> {
		if (this.#sub.status !== 'ready') return; // done on 'ready'
		try {
			await this.#sub.subscribe(channel);
		} catch (err) {
			this.#log.debug({ err, channel }, 'subscribe failed; retried when Redis is back');
		}
	}

	async #subscribeAll(): Promise<void> {
		if (this.#closed) return;
		const channels = [BUS_NODE_PREFIX + this.nodeId, ...[...this.#listeners.keys()].map((t) => BUS_TOPIC_PREFIX + t)];
		try {
			await this.#sub.subscribe(...channels);
		} catch (err) {
			this.#log.debug({ err }, 'subscribe failed; retried when Redis is back');
		}
	}

	#settle(id: string, outcome: ClusterBusError | { value: unknown }): void {
		const pending = this.#pending.get(id);
		if (!pending) return;
		this.#pending.delete(id);
		clearTimeout(pending.timer);
		if (outcome instanceof ClusterBusError) pending.reject(outcome);
		else pending.resolve(outcome.value);
	}

	#onMessage(channel: string, raw: Buffer): void {
		if (this.#closed) return;
		let envelope: Envelope;
		try {
			const parsed = envelopeSchema.safeParse(JSON.parse(raw.toString('utf8')));
			if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
			envelope = parsed.data;
		} catch (err) {
			this.#log.warn({ err, channel, bytes: raw.length }, 'cluster bus: dropped a malformed message');
			return;
		}
		if (channel.startsWith(BUS_TOPIC_PREFIX)) {
			const topic = channel.slice(BUS_TOPIC_PREFIX.length);
			for (const listener of this.#listeners.get(topic) ?? []) {
				try {
					listener(envelope.payload, envelope.from);
				} catch (err) {
					this.#log.error({ err, topic }, 'cluster bus topic listener threw');
				}
			}
			return;
		}
		if (channel !== BUS_NODE_PREFIX + this.nodeId) return;
		if (envelope.type === REPLY_TYPE) this.#onReply(envelope);
		else void this.#onRequest(envelope);
	}

	#onReply(envelope: Envelope): void {
		if (!this.#pending.has(envelope.id)) return; // late reply after a timeout
		const reply = replySchema.safeParse(envelope.payload);
		if (!reply.success) {
			this.#settle(envelope.id, new ClusterBusError('remote', `node ${envelope.from} sent a malformed reply`));
			return;
		}
		const data = reply.data;
		this.#settle(envelope.id, data.ok ? { value: data.result } : new ClusterBusError(data.code, data.message));
	}

	async #onRequest(envelope: Envelope): Promise<void> {
		const handler = this.#handlers.get(envelope.type);
		let reply: Reply;
		if (!handler) {
			reply = { ok: false, code: 'no_handler', message: `node ${this.nodeId} has no handler for ${envelope.type}` };
		} else {
			try {
				const result = await handler(envelope.payload, envelope.from);
				reply = { ok: true, result: result ?? null };
			} catch (err) {
				reply = { ok: false, code: 'remote', message: err instanceof Error ? err.message : String(err) };
			}
		}
		let body: string;
		try {
			body = JSON.stringify({ from: this.nodeId, id: envelope.id, type: REPLY_TYPE, payload: reply } satisfies Envelope);
		} catch (err) {
			// A handler returned something JSON cannot carry (a cycle, a BigInt): the caller
			// gets an error instead of a timeout.
			body = JSON.stringify({
				from: this.nodeId,
				id: envelope.id,
				type: REPLY_TYPE,
				payload: { ok: false, code: 'remote', message: `reply not serializable: ${(err as Error).message}` },
			} satisfies Envelope);
		}
		if (this.#closed) return;
		await this.#redis.publish(BUS_NODE_PREFIX + envelope.from, body).catch((err: unknown) => {
			this.#log.warn({ err, type: envelope.type, to: envelope.from }, 'cluster bus: reply not sent');
		});
	}
}
