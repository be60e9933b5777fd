// Node-to-node messages over Redis pub/sub: requests to one node with a reply and a
// timeout, and broadcasts by topic. Redis is the only thing nodes share, so the bus rides
// on it instead of opening connections between nodes.
//
// Wire format: {v: 1, body, mac} published on
//   parley:bus:node:<nodeId>   requests to that node, and replies to its requests
//   parley:bus:topic:<topic>   broadcasts
// where body is the JSON text of the envelope {from, id, type, ts, payload} and mac its
// HMAC-SHA256 (ClusterSecret 'bus' key) over "<Redis channel>\n<body>": the bytes that
// were signed are the bytes that are parsed, and an envelope cannot be moved to another
// node's channel or topic. A reply is an envelope of type '@reply' whose id is the request's id.
//
// Anyone who can publish to Redis reaches every node, so a receiver drops (counts, and
// logs at most every LOG_INTERVAL_MS per reason) an envelope that is malformed, has a bad
// MAC, a timestamp outside ±REPLAY_WINDOW_MS of its clock, an id it saw already within
// the window, or (once trustSenders() is set) a `from` that is not a live registered node;
// a reply is taken only from the node the request went to.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../telemetry/logger.js';
import type { ClusterSecret } from './ClusterSecret.js';

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

/** How far an envelope's timestamp may be from the receiver's clock (both ways: node
 * clocks differ a little, NTP keeps them well within this). Also how long ids are kept. */
export const REPLAY_WINDOW_MS = 30_000;
/** Ids remembered for replay detection; past this the oldest go first (100,000 in a minute
 * is far beyond a cluster's bus traffic). */
export const MAX_SEEN_IDS = 100_000;
const LOG_INTERVAL_MS = 10_000;

const wireSchema = z.strictObject({ v: z.literal(1), body: z.string().max(64 * 1024 * 1024), mac: z.string().max(100) });

const envelopeSchema = z.object({
	from: z.string().regex(NAME_RE),
	id: z.string().min(1).max(100),
	type: z.string().regex(NAME_RE),
	/** Sender's clock, epoch ms. */
	ts: z.number(),
	payload: z.unknown(),
});
type Envelope = z.infer<typeof envelopeSchema>;

/** Why an envelope was dropped (droppedEnvelopes counts each). */
export type BusDropReason = 'malformed' | 'bad_mac' | 'stale' | 'replayed' | 'unknown_sender' | 'wrong_replier';

const replySchema = z.discriminatedUnion('ok', [
	z.object({ ok: z.literal(true), result: z.unknown() }),
	z.object({ ok: z.literal(false), code: z.enum(['no_handler', 'remote']), message: z.string().max(10_000) }),
]);
type Reply = z.infer<typeof replySchema>;

interface PendingRequest {
	/** The node asked: only its reply is taken. */
	nodeId: string;
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
	/** cluster.secret: signs what this node sends, checks what it receives. */
	secret: ClusterSecret;
	log: Logger;
}

/** Whether `nodeId` is a live node of the registry (its signed entry is there). */
export type SenderCheck = (nodeId: string) => boolean | Promise<boolean>;

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
	readonly #secret: ClusterSecret;
	/** "<from>|<type>|<id>" -> epoch ms until which a replay of it could pass the window. */
	readonly #seen = new Map<string, number>();
	readonly #dropped: Record<BusDropReason, number> = { malformed: 0, bad_mac: 0, stale: 0, replayed: 0, unknown_sender: 0, wrong_replier: 0 };
	readonly #lastDropLogMs = new Map<BusDropReason, number>();
	#senderCheck: SenderCheck | undefined;
	/** Envelopes whose sender is being checked, in arrival order (topics stay in order). */
	#inbound: Promise<void> = Promise.resolve();
	#closed = false;
	/** The SUBSCRIBE issued on the latest 'ready' (create() waits for the first one). */
	#subscribed: Promise<void> = Promise.resolve();

	private constructor(options: RedisClusterBusOptions) {
		assertName('nodeId', options.nodeId);
		this.nodeId = options.nodeId;
		this.#redis = options.redis;
		this.#log = options.log;
		this.#requestTimeoutMs = options.requestTimeoutMs;
		this.#secret = options.secret;
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
		const channel = BUS_NODE_PREFIX + nodeId;
		const body = this.#seal(channel, { from: this.nodeId, id, type, ts: Date.now(), payload: payload ?? null });
		const result = new Promise<unknown>((resolve, reject) => {
			const timer = setTimeout(() => {
				this.#pending.delete(id);
				reject(new ClusterBusError('timeout', `node ${nodeId} did not answer ${type} within ${timeoutMs} ms`));
			}, timeoutMs);
			this.#pending.set(id, { nodeId, resolve, reject, timer });
		});
		// close() may settle it while PUBLISH is still in flight, before the caller holds it:
		// mark it handled so that is not an unhandled rejection (the caller still sees it).
		result.catch(() => undefined);
		let receivers: number;
		try {
			receivers = await this.#redis.publish(channel, body);
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
		const channel = BUS_TOPIC_PREFIX + topic;
		const body = this.#seal(channel, { from: this.nodeId, id: randomUUID(), type: topic, ts: Date.now(), payload: message ?? null });
		try {
			await this.#redis.publish(channel, body);
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

	/**
	 * From now on, requests and broadcasts are taken only from nodes `check` says are live
	 * (the node registry: signed entries). Set once the registry exists, before this node
	 * registers: until then nobody can ask it anything (it has no channels yet), and replies
	 * need no check (they are taken only from the node asked).
	 */
	trustSenders(check: SenderCheck): void {
		this.#senderCheck = check;
	}

	/** Envelopes dropped since start, by reason (tests and logs). */
	get droppedEnvelopes(): Readonly<Record<BusDropReason, number>> {
		return { ...this.#dropped };
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

	#seal(channel: string, envelope: Envelope): string {
		const body = JSON.stringify(envelope);
		return JSON.stringify({ v: 1, body, mac: this.#secret.mac('bus', `${channel}\n${body}`) });
	}

	#drop(reason: BusDropReason, details: Record<string, unknown>): void {
		this.#dropped[reason]++;
		// Whoever can publish to Redis can send these as fast as they like: log rarely.
		const now = Date.now();
		if (now - (this.#lastDropLogMs.get(reason) ?? -Infinity) < LOG_INTERVAL_MS) return;
		this.#lastDropLogMs.set(reason, now);
		this.#log.warn({ ...details, reason, droppedSoFar: this.#dropped[reason] }, 'cluster bus: dropped an envelope');
	}

	/** The envelope, if it is authentic, fresh and new; else counts the drop. */
	#authenticate(channel: string, raw: Buffer): Envelope | undefined {
		let wire: z.infer<typeof wireSchema>;
		try {
			const parsed = wireSchema.safeParse(JSON.parse(raw.toString('utf8')));
			if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
			wire = parsed.data;
		} catch (err) {
			this.#drop('malformed', { err, channel, bytes: raw.length });
			return undefined;
		}
		// MAC first: nothing of an unauthenticated body is parsed.
		if (!this.#secret.verify('bus', `${channel}\n${wire.body}`, wire.mac)) {
			this.#drop('bad_mac', { channel, bytes: raw.length });
			return undefined;
		}
		let envelope: Envelope;
		try {
			const parsed = envelopeSchema.safeParse(JSON.parse(wire.body));
			if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
			envelope = parsed.data;
		} catch (err) {
			this.#drop('malformed', { err, channel, bytes: raw.length });
			return undefined;
		}
		const now = Date.now();
		if (Math.abs(now - envelope.ts) > REPLAY_WINDOW_MS) {
			this.#drop('stale', { channel, from: envelope.from, type: envelope.type, skewMs: now - envelope.ts });
			return undefined;
		}
		const key = `${envelope.from}|${envelope.type}|${envelope.id}`;
		this.#forgetExpiredIds(now);
		if (this.#seen.has(key)) {
			this.#drop('replayed', { channel, from: envelope.from, type: envelope.type });
			return undefined;
		}
		if (this.#seen.size >= MAX_SEEN_IDS) this.#seen.delete(this.#seen.keys().next().value!);
		this.#seen.set(key, envelope.ts + REPLAY_WINDOW_MS);
		return envelope;
	}

	/** Drops ids whose envelopes would fail the timestamp check by now. Entries go in
	 * roughly in expiry order; an out-of-order one only lingers until those before it go. */
	#forgetExpiredIds(now: number): void {
		for (const [key, until] of this.#seen) {
			if (until >= now) break;
			this.#seen.delete(key);
		}
	}

	#onMessage(channel: string, raw: Buffer): void {
		if (this.#closed) return;
		const envelope = this.#authenticate(channel, raw);
		if (!envelope) return;
		if (channel === BUS_NODE_PREFIX + this.nodeId && envelope.type === REPLY_TYPE) {
			this.#onReply(envelope);
			return;
		}
		const check = this.#senderCheck;
		if (!check) {
			this.#dispatch(channel, envelope);
			return;
		}
		// In arrival order, even when a check has to ask Redis.
		this.#inbound = this.#inbound.then(async () => {
			let trusted: boolean;
			try {
				trusted = await check(envelope.from);
			} catch (err) {
				this.#log.debug({ err, from: envelope.from }, 'cluster bus: sender check failed');
				trusted = false;
			}
			if (this.#closed) return;
			if (!trusted) {
				this.#drop('unknown_sender', { channel, from: envelope.from, type: envelope.type });
				return;
			}
			this.#dispatch(channel, envelope);
		});
	}

	#dispatch(channel: string, envelope: Envelope): void {
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
		void this.#onRequest(envelope);
	}

	#onReply(envelope: Envelope): void {
		const pending = this.#pending.get(envelope.id);
		if (!pending) return; // late reply after a timeout
		if (pending.nodeId !== envelope.from) {
			this.#drop('wrong_replier', { from: envelope.from, asked: pending.nodeId });
			return;
		}
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
		const channel = BUS_NODE_PREFIX + envelope.from;
		let body: string;
		try {
			body = this.#seal(channel, { from: this.nodeId, id: envelope.id, type: REPLY_TYPE, ts: Date.now(), payload: reply });
		} catch (err) {
			// A handler returned something JSON cannot carry (a cycle, a BigInt): the caller
			// gets an error instead of a timeout.
			body = this.#seal(channel, {
				from: this.nodeId,
				id: envelope.id,
				type: REPLY_TYPE,
				ts: Date.now(),
				payload: { ok: false, code: 'remote', message: `reply not serializable: ${(err as Error).message}` },
			});
		}
		if (this.#closed) return;
		await this.#redis.publish(channel, body).catch((err: unknown) => {
			this.#log.warn({ err, type: envelope.type, to: envelope.from }, 'cluster bus: reply not sent');
		});
	}
}
