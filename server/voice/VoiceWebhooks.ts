// Signed webhooks for voice-message lifecycle events (voice.webhookUrl). Works with or
// without Redis: the node that commits a change delivers its event.
//
// Each event is POSTed as JSON with
//   X-Parley-Event:      voiceMessage.ready (the event's name)
//   X-Parley-Delivery:   the event id, the same on every retry (receivers deduplicate on it)
//   X-Parley-Signature:  t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with webhookSecret>
// Stripe's scheme: the timestamp is signed with the body, so a receiver that checks it is
// recent (verifyWebhookSignature) rejects replays of an old request. The body is the same
// bytes on every attempt; t and the signature are those of the attempt.
//
// Delivery: a network error, a timeout, 5xx or 429 is retried with exponential backoff and
// jitter up to webhookMaxAttempts; any other status (2xx delivered, 3xx/4xx refused) is final.
// Events of one message are delivered in order (the next waits for the previous to finish,
// delivered or given up); different messages go in parallel, a few at a time. The queue is in
// memory and bounded: when full, a new event is dropped and counted. At shutdown, what is
// queued gets until the deadline to go out; then the rest is given up and logged.
//
// That in-memory queue serves the Redis store. With a SQL store the outbox relay
// (server/voice/outbox) delivers from the database instead, through the same single attempt
// (deliverOnce) and the same schedule (RetrySchedule), so both paths sign, classify and back
// off alike; only where the pending events live differs.
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../telemetry/logger.js';
import type { VoiceMessageEvent } from './voiceEvents.js';
import { signWebhook } from '../../protocol/webhookSignature.js';

export type WebhookOutcome = 'delivered' | 'retried' | 'refused' | 'failed' | 'dropped';

/** What a webhook carries, at the least: its name (X-Parley-Event) and id (X-Parley-Delivery). */
export interface WebhookEvent {
	eventId: string;
	event: string;
}

export interface VoiceWebhooksOptions {
	url: string;
	secret: string;
	maxAttempts: number;
	/** One attempt: connect, send and response headers. */
	timeoutMs: number;
	/** Events waiting (in every per-message lane together). */
	maxQueued: number;
	log: Logger;
	/** Counts each attempt's outcome (metrics). */
	onOutcome?: (outcome: WebhookOutcome) => void;
	/** First retry delay; doubles per attempt up to maxDelayMs; each delay is jittered down to half. */
	baseDelayMs?: number;
	maxDelayMs?: number;
	/** Messages whose events are in flight at once. */
	concurrency?: number;
}

interface Delivery<E extends WebhookEvent> {
	event: E;
	body: string;
}

export interface WebhookQueueOptions<E extends WebhookEvent> extends VoiceWebhooksOptions {
	/** Events of one lane go out in order; lanes go in parallel (voice: the message id). */
	laneOf: (event: E) => string;
}

const DEFAULT_BASE_DELAY_MS = 500;
const DEFAULT_MAX_DELAY_MS = 30_000;
const DEFAULT_CONCURRENCY = 4;

/** The in-memory delivery queue of signed webhooks (voice messages here, room events in
 * server/events): lanes in order, a few at a time, with the retry schedule. */
export class WebhookQueue<E extends WebhookEvent> {
	readonly #o: WebhookQueueOptions<E> & { baseDelayMs: number; maxDelayMs: number; concurrency: number };
	/** Per lane (voice message), its events in order; a lane is running or waiting for a slot. */
	readonly #lanes = new Map<string, Delivery<E>[]>();
	readonly #waiting: string[] = [];
	#running = 0;
	#queued = 0;
	#closed = false;
	/** Aborts in-flight requests and retry waits when shutdown gives up. */
	readonly #abort = new AbortController();
	#idle: (() => void) | undefined;

	readonly #schedule: RetrySchedule;

	constructor(options: WebhookQueueOptions<E>) {
		checkWebhookEndpoint(options);
		this.#o = {
			baseDelayMs: DEFAULT_BASE_DELAY_MS,
			maxDelayMs: DEFAULT_MAX_DELAY_MS,
			concurrency: DEFAULT_CONCURRENCY,
			...options,
		};
		this.#schedule = new RetrySchedule({ baseDelayMs: this.#o.baseDelayMs, maxDelayMs: this.#o.maxDelayMs });
	}

	/** Events queued or in flight. */
	get pending(): number {
		return this.#queued;
	}

	/** Queues an event; false when it was dropped (queue full or shutting down). */
	enqueue(event: E): boolean {
		const laneId = this.#o.laneOf(event);
		if (this.#closed || this.#queued >= this.#o.maxQueued) {
			this.#o.onOutcome?.('dropped');
			this.#o.log.warn({ eventId: event.eventId, event: event.event, lane: laneId, queued: this.#queued }, 'webhook queue full: event dropped');
			return false;
		}
		this.#queued++;
		const delivery = { event, body: JSON.stringify(event) };
		const lane = this.#lanes.get(laneId);
		if (lane) {
			lane.push(delivery);
			return true;
		}
		this.#lanes.set(laneId, [delivery]);
		this.#waiting.push(laneId);
		this.#pump();
		return true;
	}

	#pump(): void {
		while (this.#running < this.#o.concurrency && this.#waiting.length > 0) {
			const id = this.#waiting.shift()!;
			this.#running++;
			void this.#runLane(id).finally(() => {
				this.#running--;
				if (this.#queued === 0) this.#idle?.();
				this.#pump();
			});
		}
	}

	async #runLane(id: string): Promise<void> {
		const lane = this.#lanes.get(id)!;
		while (lane.length > 0) {
			const delivery = lane[0]!;
			await this.#deliver(delivery);
			lane.shift();
			this.#queued--;
		}
		this.#lanes.delete(id);
	}

	async #deliver({ event, body }: Delivery<E>): Promise<void> {
		const signal = this.#abort.signal;
		for (let attempt = 1; ; attempt++) {
			if (signal.aborted) return;
			const result = await deliverOnce(this.#o, event, { body, signal });
			if (result.kind === 'delivered') {
				this.#o.onOutcome?.('delivered');
				return;
			}
			if (result.kind === 'refused') {
				this.#o.onOutcome?.('refused');
				this.#o.log.warn({ eventId: event.eventId, event: event.event, status: result.status }, 'webhook refused by the receiver (not retried)');
				return;
			}
			if (signal.aborted) return;
			if (attempt >= this.#o.maxAttempts) {
				this.#o.onOutcome?.('failed');
				this.#o.log.error({ eventId: event.eventId, event: event.event, attempts: attempt, reason: result.reason }, 'webhook delivery failed: giving up');
				return;
			}
			this.#o.onOutcome?.('retried');
			const delayMs = this.retryDelayMs(attempt, result.retryAfterMs);
			this.#o.log.info({ eventId: event.eventId, attempt, delayMs, reason: result.reason }, 'webhook attempt failed: retrying');
			// Cut short by shutdown (abort): the loop's next check returns.
			await delay(delayMs, undefined, { signal }).catch(() => undefined);
		}
	}

	/** Backoff before attempt `attempt + 1` (RetrySchedule). */
	retryDelayMs(attempt: number, retryAfterMs?: number): number {
		return this.#schedule.delayMs(attempt, retryAfterMs);
	}

	/**
	 * Shutdown: takes no new events, lets queued ones go out until `deadline` aborts, then gives
	 * up on the rest (in-flight requests and retry waits are cancelled; the count is logged).
	 */
	async close(deadline: AbortSignal): Promise<void> {
		this.#closed = true;
		if (this.#queued > 0 && !deadline.aborted) {
			await new Promise<void>((resolve) => {
				this.#idle = resolve;
				deadline.addEventListener('abort', () => resolve(), { once: true });
			});
		}
		this.#idle = undefined;
		if (this.#queued > 0) {
			this.#o.log.warn({ undelivered: this.#queued }, 'shutdown deadline: undelivered webhook events given up');
			this.#abort.abort();
		}
	}
}

/** Voice-message webhooks: one lane per message. */
export class VoiceWebhooks extends WebhookQueue<VoiceMessageEvent> {
	constructor(options: VoiceWebhooksOptions) {
		super({ ...options, laneOf: (e) => e.voiceMessageId });
	}
}

/** Where and how events are POSTed: voice.webhookUrl, voice.webhookSecret, voice.webhookTimeoutMs. */
export interface WebhookEndpoint {
	url: string;
	secret: string;
	/** One attempt: connect, send and response headers. */
	timeoutMs: number;
}

/** Throws TypeError naming the option when the endpoint cannot be used. */
export function checkWebhookEndpoint(endpoint: Pick<WebhookEndpoint, 'url' | 'secret'>): void {
	if (!/^https?:\/\//.test(endpoint.url)) throw new TypeError('voice.webhookUrl must be an http(s) URL');
	if (endpoint.secret.length < 16) throw new TypeError('voice.webhookSecret must be set (at least 16 characters) when voice.webhookUrl is set');
}

/** What one attempt came to: delivered (2xx), refused for good (3xx, 4xx but 429), or worth
 * another try (network error, timeout, 5xx, 429 with its Retry-After). */
export type WebhookAttemptResult = { kind: 'delivered' } | { kind: 'refused'; status: number } | { kind: 'retry'; reason: string; retryAfterMs?: number };

/**
 * One signed POST of `event` (no retries: the caller owns the schedule). `body` defaults to the
 * event's JSON; pass the same bytes on every attempt. `signal` aborts the request (shutdown);
 * an aborted attempt reports `retry`.
 */
export async function deliverOnce(endpoint: WebhookEndpoint, event: WebhookEvent, options: { body?: string; signal?: AbortSignal } = {}): Promise<WebhookAttemptResult> {
	const body = options.body ?? JSON.stringify(event);
	const t = Math.floor(Date.now() / 1000);
	const timeout = AbortSignal.timeout(endpoint.timeoutMs);
	const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
	try {
		const res = await fetch(endpoint.url, {
			method: 'POST',
			headers: {
				'content-type': 'application/json',
				'user-agent': 'Parley-Webhooks/1',
				'x-parley-event': event.event,
				'x-parley-delivery': event.eventId,
				'x-parley-signature': `t=${t},v1=${signWebhook(body, t, endpoint.secret)}`,
			},
			body,
			// A redirect would resend the event elsewhere (or as a GET): answer it as final.
			redirect: 'manual',
			signal,
		});
		// The body is not needed; drain it so the connection can be reused.
		await res.arrayBuffer().catch(() => undefined);
		if (res.status >= 200 && res.status < 300) return { kind: 'delivered' };
		if (res.status === 429 || res.status >= 500) {
			const retryAfterS = Number(res.headers.get('retry-after'));
			return { kind: 'retry', reason: `HTTP ${res.status}`, ...(Number.isFinite(retryAfterS) && retryAfterS > 0 && { retryAfterMs: retryAfterS * 1000 }) };
		}
		return { kind: 'refused', status: res.status };
	} catch (err) {
		const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${endpoint.timeoutMs} ms` : ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
		return { kind: 'retry', reason };
	}
}

/**
 * The webhook backoff: before attempt n+1, base * 2^(n-1) capped at maxDelayMs, jittered to
 * [half, full] so receivers that come back are not hit by every node at once; a 429's
 * Retry-After is a floor (itself capped at maxDelayMs).
 */
export class RetrySchedule {
	readonly baseDelayMs: number;
	readonly maxDelayMs: number;

	constructor({ baseDelayMs = DEFAULT_BASE_DELAY_MS, maxDelayMs = DEFAULT_MAX_DELAY_MS }: { baseDelayMs?: number; maxDelayMs?: number } = {}) {
		if (!(baseDelayMs > 0) || !(maxDelayMs >= baseDelayMs)) throw new TypeError('RetrySchedule: need 0 < baseDelayMs <= maxDelayMs');
		this.baseDelayMs = baseDelayMs;
		this.maxDelayMs = maxDelayMs;
	}

	/** Delay after failed attempt `attempt` (1 = the first), before the next one. */
	delayMs(attempt: number, floorMs?: number): number {
		const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (Math.max(1, attempt) - 1));
		const jittered = ceiling / 2 + Math.random() * (ceiling / 2);
		return Math.round(Math.min(this.maxDelayMs, Math.max(jittered, floorMs ?? 0)));
	}
}

// The signature scheme is shared with receivers (the SDK): protocol/webhookSignature.ts.
export { signWebhook, verifyWebhookSignature, type VerifyWebhookOptions } from '../../protocol/webhookSignature.js';
