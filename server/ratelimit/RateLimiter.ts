// Keyed token buckets: one bucket per key (a user id, an IP address) of one scope, all with
// the same rule. `RateLimiter` is what the signaling server and the HTTP routes ask; the
// buckets live in this process (LocalRateLimiter) or in Redis for the whole cluster
// (server/cluster/RedisRateLimiter.ts).
import { assertBucketRule } from '../../protocol/TokenBucket.js';

/** A token bucket's shape: `burst` at once, refilled at `ratePerSecond`. */
export interface RateLimitRule {
	ratePerSecond: number;
	burst: number;
}

export interface RateDecision {
	allowed: boolean;
	/** 0 when allowed; otherwise how long until `cost` tokens are there again. */
	retryAfterMs: number;
}

export interface RateLimiter {
	readonly rule: RateLimitRule;
	/** Takes `cost` tokens (default 1) from `key`'s bucket if it holds them. Never rejects. */
	take(key: string, cost?: number): Promise<RateDecision>;
}

/** Throws TypeError for a rule no bucket can have (TokenBucket's own check). */
export const assertRule: (rule: RateLimitRule) => void = assertBucketRule;

/** Throws TypeError for a cost no bucket of this rule could ever pay (that would refuse forever). */
export function assertCost(cost: number, rule: RateLimitRule): void {
	if (!(cost > 0) || !(cost <= rule.burst)) throw new TypeError(`cost must be > 0 and <= burst (${rule.burst}), got ${cost}`);
}

export interface LocalRateLimiterOptions extends RateLimitRule {
	/** Most buckets held; past it the least recently used one is dropped (default 100 000). */
	maxKeys?: number;
	/** Monotonic clock in ms; injected by tests. */
	nowMs?: () => number;
}

interface Bucket {
	tokens: number;
	updatedAtMs: number;
}

const DEFAULT_MAX_KEYS = 100_000;
/** Idle buckets looked at per take: enough to keep up with any arrival rate, O(1) per call. */
const EVICTIONS_PER_TAKE = 2;

/**
 * Token buckets in this process. A bucket that has refilled is the same as no bucket, so
 * idle ones are dropped as they fill up again (checked a couple per take, oldest first: no
 * timer to own). The map is ordered by last use, so the oldest entry is the first to fill.
 */
export class LocalRateLimiter implements RateLimiter {
	readonly rule: RateLimitRule;
	readonly #ratePerMs: number;
	readonly #maxKeys: number;
	readonly #nowMs: () => number;
	readonly #buckets = new Map<string, Bucket>();

	constructor({ ratePerSecond, burst, maxKeys = DEFAULT_MAX_KEYS, nowMs = () => performance.now() }: LocalRateLimiterOptions) {
		assertRule({ ratePerSecond, burst });
		if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new TypeError('maxKeys must be a positive integer');
		this.rule = { ratePerSecond, burst };
		this.#ratePerMs = ratePerSecond / 1000;
		this.#maxKeys = maxKeys;
		this.#nowMs = nowMs;
	}

	/** Buckets held now (tests check idle ones go away). */
	get size(): number {
		return this.#buckets.size;
	}

	take(key: string, cost = 1): Promise<RateDecision> {
		return Promise.resolve(this.takeNow(key, cost));
	}

	/** take() without the promise, for callers on a synchronous path. */
	takeNow(key: string, cost = 1): RateDecision {
		assertCost(cost, this.rule);
		const now = this.#nowMs();
		this.#evictIdle(now);
		const bucket = this.#buckets.get(key);
		let tokens = this.rule.burst;
		if (bucket) {
			tokens = Math.min(this.rule.burst, bucket.tokens + Math.max(0, now - bucket.updatedAtMs) * this.#ratePerMs);
			// Re-inserted below: the map stays ordered by last use.
			this.#buckets.delete(key);
		}
		const allowed = tokens >= cost;
		if (allowed) tokens -= cost;
		this.#buckets.set(key, { tokens, updatedAtMs: now });
		if (this.#buckets.size > this.#maxKeys) {
			// Only with more than maxKeys keys busy at once: the least recently used bucket
			// forgets its debt. Bounded memory matters more than that one key's limit.
			const oldest = this.#buckets.keys().next();
			if (!oldest.done) this.#buckets.delete(oldest.value);
		}
		return { allowed, retryAfterMs: allowed ? 0 : Math.ceil(((cost - tokens) * 1000) / this.rule.ratePerSecond) };
	}

	#evictIdle(now: number): void {
		for (let i = 0; i < EVICTIONS_PER_TAKE; i++) {
			const oldest = this.#buckets.entries().next();
			if (oldest.done) return;
			const [key, bucket] = oldest.value;
			const fullAtMs = bucket.updatedAtMs + (this.rule.burst - bucket.tokens) / this.#ratePerMs;
			if (fullAtMs > now) return;
			this.#buckets.delete(key);
		}
	}
}

/** "350 ms" / "2 s" / "3 min" for the sentences clients see. */
export function describeDelay(ms: number): string {
	if (ms < 1000) return `${Math.max(1, Math.ceil(ms))} ms`;
	if (ms < 120_000) return `${Math.ceil(ms / 1000)} s`;
	return `${Math.ceil(ms / 60_000)} min`;
}
