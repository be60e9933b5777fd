// Where the outbox relay sends an entry: the Redis Stream parley:voice-meta, or the webhook.
// A sink makes one attempt per call and says what became of it; the relay records that in the
// outbox (done, or retry at a time), so the retry state lives in the database, not in memory,
// and survives the node.
import type { Redis } from 'ioredis';
import type { Logger } from '../../telemetry/logger.js';
import type { OutboxEntry } from '../store/VoiceOutbox.js';
import { VOICE_EVENT_STREAM_KEY, VoiceEventStream } from '../store/VoiceEventStream.js';
import { deliverOnce, RetrySchedule, type WebhookEndpoint, type WebhookOutcome } from '../VoiceWebhooks.js';

/**
 * `done`: delivered, or given up on for good (the relay marks it done).
 * `retry`: offer it again after `delayMs` (the relay counts the attempt).
 * `interrupted`: cut off by shutdown with no answer; the relay leaves the entry leased, and it
 * is offered again when the lease ends (the attempt is not counted against the event).
 */
export type SinkResult = { kind: 'done' } | { kind: 'retry'; delayMs: number } | { kind: 'interrupted' };

export interface OutboxSink {
	/** Entries in flight at once (one claim's worth: each is one attempt, so a claim's work
	 * takes at most one attempt's time, well within the lease). */
	readonly concurrency: number;
	/** The longest one attempt may take: must stay below the lease, or another node could
	 * take the entry while this one is still sending it. */
	readonly attemptTimeoutMs: number;
	/** One attempt; never throws. */
	deliver(entry: OutboxEntry, signal: AbortSignal): Promise<SinkResult>;
}

export interface StreamSinkOptions {
	redis: Redis;
	/** XADD MAXLEN ~ (cluster.eventStreamMaxLen). */
	maxLen: number;
	key?: string;
	/** One XADD, answered or not (default 2000). */
	timeoutMs?: number;
	/** Backoff while Redis is away (default 250 ms doubling to 5 s: the stream catches up soon
	 * after Redis is back). The stream never gives up: it is the durable record of events. */
	schedule?: RetrySchedule;
	concurrency?: number;
	log: Logger;
}

/** XADD parley:voice-meta with VoiceEventStream's fields (those RedisVoiceMessageStore
 * writes, sequence included), so VoiceEventStream.read validates relay entries alike.
 * At least once: a node killed after the XADD and before the
 * outbox marks the entry done appends it again; consumers dedupe on eventId. */
export class StreamSink implements OutboxSink {
	readonly concurrency: number;
	readonly attemptTimeoutMs: number;
	readonly #redis: Redis;
	readonly #key: string;
	readonly #maxLen: string;
	readonly #schedule: RetrySchedule;
	readonly #log: Logger;
	#lastError = '';

	constructor(options: StreamSinkOptions) {
		if (!Number.isInteger(options.maxLen) || options.maxLen < 1) throw new TypeError('maxLen must be a positive integer');
		this.#redis = options.redis;
		this.#key = options.key ?? VOICE_EVENT_STREAM_KEY;
		this.#maxLen = String(options.maxLen);
		this.attemptTimeoutMs = options.timeoutMs ?? 2000;
		this.#schedule = options.schedule ?? new RetrySchedule({ baseDelayMs: 250, maxDelayMs: 5000 });
		this.concurrency = options.concurrency ?? 32;
		this.#log = options.log;
	}

	async deliver(entry: OutboxEntry, signal: AbortSignal): Promise<SinkResult> {
		let timer: NodeJS.Timeout | undefined;
		try {
			await Promise.race([
				this.#redis.xadd(this.#key, 'MAXLEN', '~', this.#maxLen, '*', ...VoiceEventStream.fields(entry.event)),
				new Promise((_, reject) => {
					timer = setTimeout(() => reject(new Error(`no answer from Redis within ${this.attemptTimeoutMs} ms`)), this.attemptTimeoutMs);
				}),
			]);
			if (this.#lastError) this.#log.info({ target: 'stream' }, 'outbox: appending to the event stream again');
			this.#lastError = '';
			return { kind: 'done' };
		} catch (err) {
			if (signal.aborted) return { kind: 'interrupted' };
			const message = (err as Error).message;
			// Every entry fails alike while Redis is away: log when the reason changes.
			if (message !== this.#lastError) this.#log.warn({ target: 'stream', err }, 'outbox: appending to the event stream failed; retrying later (nothing is lost)');
			this.#lastError = message;
			return { kind: 'retry', delayMs: this.#schedule.delayMs(entry.attempts + 1) };
		} finally {
			clearTimeout(timer);
		}
	}
}

export interface WebhookSinkOptions {
	endpoint: WebhookEndpoint;
	/** voice.webhookMaxAttempts: after the last failed attempt the event is given up (done). */
	maxAttempts: number;
	schedule?: RetrySchedule;
	concurrency?: number;
	log: Logger;
	/** parley_voice_webhook_deliveries_total{outcome}, as with the in-memory queue. */
	onOutcome?: (outcome: WebhookOutcome) => void;
}

/** A signed POST per attempt (VoiceWebhooks' deliverOnce), classified like VoiceWebhooks:
 * 2xx delivered; 3xx/4xx but 429 refused (final); network error, timeout, 5xx, 429 retried
 * with the backoff (Retry-After a floor) until maxAttempts, then given up. */
export class WebhookSink implements OutboxSink {
	readonly concurrency: number;
	readonly attemptTimeoutMs: number;
	readonly #o: WebhookSinkOptions;
	readonly #schedule: RetrySchedule;

	constructor(options: WebhookSinkOptions) {
		if (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1) throw new TypeError('maxAttempts must be a positive integer');
		this.#o = options;
		this.#schedule = options.schedule ?? new RetrySchedule();
		this.concurrency = options.concurrency ?? 4;
		this.attemptTimeoutMs = options.endpoint.timeoutMs;
	}

	async deliver(entry: OutboxEntry, signal: AbortSignal): Promise<SinkResult> {
		const { event } = entry;
		const attempt = entry.attempts + 1;
		const result = await deliverOnce(this.#o.endpoint, event, { signal });
		if (result.kind === 'delivered') {
			this.#o.onOutcome?.('delivered');
			return { kind: 'done' };
		}
		if (result.kind === 'refused') {
			this.#o.onOutcome?.('refused');
			this.#o.log.warn({ eventId: event.eventId, event: event.event, status: result.status }, 'webhook refused by the receiver (not retried)');
			return { kind: 'done' };
		}
		if (signal.aborted) return { kind: 'interrupted' };
		if (attempt >= this.#o.maxAttempts) {
			this.#o.onOutcome?.('failed');
			this.#o.log.error({ eventId: event.eventId, event: event.event, attempts: attempt, reason: result.reason }, 'webhook delivery failed: giving up');
			return { kind: 'done' };
		}
		this.#o.onOutcome?.('retried');
		const delayMs = this.#schedule.delayMs(attempt, result.retryAfterMs);
		this.#o.log.info({ eventId: event.eventId, attempt, delayMs, reason: result.reason }, 'webhook attempt failed: retrying');
		return { kind: 'retry', delayMs };
	}
}
