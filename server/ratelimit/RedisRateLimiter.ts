// Token buckets shared by every node: one Redis hash {tokens, ts} per key at
// `parley:rl:<scope>:<key>`, refilled and taken by one Lua script (atomic: concurrent takes
// from any number of nodes never hand out more than the bucket holds). The script reads
// Redis's own clock (TIME), so the nodes' clocks do not matter, and expires the hash when
// the bucket would be full again (a full bucket and no bucket are the same).
//
// When Redis cannot answer, the same rule is enforced by per-node buckets (a
// LocalRateLimiter): limits keep holding on each node, they never open up to unlimited and
// never refuse everyone. Redis is tried again once it is connected and a short pause has
// passed, and the switch each way is logged once.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../telemetry/logger.js';
import { evalScript, redisScript } from '../redis/redisConnection.js';
import { assertCost, assertRule, LocalRateLimiter, type RateDecision, type RateLimiter, type RateLimitRule } from './RateLimiter.js';

const KEY_PREFIX = 'parley:rl:';
/** Keys longer than this (client-chosen text) are hashed: Redis keys stay small. */
const MAX_PLAIN_KEY_CHARS = 128;
const DEFAULT_TIMEOUT_MS = 500;
const DEFAULT_RETRY_REDIS_AFTER_MS = 1000;

// KEYS[1] bucket; ARGV: rate (tokens/ms), burst, cost. Returns {allowed 0|1, retryAfterMs}.
// Needs Redis >= 5 (scripts replicate their effects, so TIME before a write is allowed).
const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) / rate)))
return {allowed, retry}
`;
const TAKE = redisScript(TAKE_SCRIPT);

export interface RedisRateLimiterOptions extends RateLimitRule {
	/** Names the buckets: `parley:rl:<scope>:<key>`. Letters, digits, `-` and `_`. */
	scope: string;
	log: Logger;
	/** A Redis reply slower than this counts as Redis being away (default 500 ms). */
	timeoutMs?: number;
	/** After a failure, how long the local buckets serve before Redis is tried again (default 1 s). */
	retryRedisAfterMs?: number;
	/** Most keys the per-node fallback holds (LocalRateLimiter's maxKeys). */
	maxLocalKeys?: number;
}

export class RedisRateLimiter implements RateLimiter {
	readonly rule: RateLimitRule;
	readonly scope: string;
	readonly #redis: Redis;
	readonly #log: Logger;
	readonly #local: LocalRateLimiter;
	readonly #timeoutMs: number;
	readonly #retryRedisAfterMs: number;
	#usingRedis = true;
	#retryRedisAtMs = 0;

	constructor(redis: Redis, options: RedisRateLimiterOptions) {
		const { scope, ratePerSecond, burst } = options;
		assertRule({ ratePerSecond, burst });
		if (!/^[A-Za-z0-9_-]{1,32}$/.test(scope)) throw new TypeError(`scope must be 1-32 letters, digits, - or _: ${scope}`);
		this.rule = { ratePerSecond, burst };
		this.scope = scope;
		this.#redis = redis;
		this.#log = options.log;
		this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
		this.#retryRedisAfterMs = options.retryRedisAfterMs ?? DEFAULT_RETRY_REDIS_AFTER_MS;
		this.#local = new LocalRateLimiter({ ratePerSecond, burst, ...(options.maxLocalKeys !== undefined && { maxKeys: options.maxLocalKeys }) });
	}

	/** False while the per-node fallback buckets are in use. */
	get usingRedis(): boolean {
		return this.#usingRedis;
	}

	/** The Redis key of `key`'s bucket. */
	redisKey(key: string): string {
		const k = key.length > MAX_PLAIN_KEY_CHARS ? `sha256:${createHash('sha256').update(key).digest('hex')}` : key;
		return `${KEY_PREFIX}${this.scope}:${k}`;
	}

	async take(key: string, cost = 1): Promise<RateDecision> {
		assertCost(cost, this.rule);
		if (this.#redisWorthTrying()) {
			try {
				const decision = await this.#takeInRedis(key, cost);
				this.#redisAnswered();
				return decision;
			} catch (err) {
				this.#redisFailed(err);
			}
		}
		return this.#local.takeNow(key, cost);
	}

	#redisWorthTrying(): boolean {
		if (this.#redis.status !== 'ready') {
			// ioredis would queue the command until it reconnects: do not wait for that. Once
			// it reconnects, the next take tries Redis (no pause: the connection said so).
			this.#switchToLocal(new Error(`redis connection is ${this.#redis.status}`));
			return false;
		}
		return this.#usingRedis || performance.now() >= this.#retryRedisAtMs;
	}

	#redisAnswered(): void {
		if (this.#usingRedis) return;
		this.#usingRedis = true;
		this.#log.info({ scope: this.scope }, 'rate limits: back on Redis (shared by all nodes)');
	}

	/** A command failed or timed out on a connection that looked fine: pause before the next try. */
	#redisFailed(err: unknown): void {
		this.#retryRedisAtMs = performance.now() + this.#retryRedisAfterMs;
		this.#switchToLocal(err);
	}

	#switchToLocal(err: unknown): void {
		if (!this.#usingRedis) return;
		this.#usingRedis = false;
		this.#log.warn({ scope: this.scope, err }, 'rate limits: Redis unreachable, enforcing them per node until it returns');
	}

	async #takeInRedis(key: string, cost: number): Promise<RateDecision> {
		const run = () => evalScript(this.#redis, TAKE, [this.redisKey(key)], [String(this.rule.ratePerSecond / 1000), String(this.rule.burst), String(cost)]);
		let timer: NodeJS.Timeout | undefined;
		try {
			const reply = await Promise.race([
				run(),
				new Promise<never>((_, reject) => {
					timer = setTimeout(() => reject(new Error(`redis did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
				}),
			]);
			return parseReply(reply);
		} finally {
			clearTimeout(timer);
		}
	}
}

function parseReply(reply: unknown): RateDecision {
	if (!Array.isArray(reply) || reply.length !== 2) throw new Error(`unexpected rate-limit script reply ${JSON.stringify(reply)}`);
	const [allowed, retryAfterMs] = reply as unknown[];
	if ((allowed !== 0 && allowed !== 1) || typeof retryAfterMs !== 'number' || !(retryAfterMs >= 0)) {
		throw new Error(`unexpected rate-limit script reply ${JSON.stringify(reply)}`);
	}
	return { allowed: allowed === 1, retryAfterMs };
}

/**
 * The buckets for one scope: in Redis when the node has a connection, else in this process.
 * undefined when the rule is off (rate 0).
 */
export function rateLimiterFor(redis: Redis | undefined, scope: string, rule: RateLimitRule, log: Logger): RateLimiter | undefined {
	if (rule.ratePerSecond <= 0) return undefined;
	return redis ? new RedisRateLimiter(redis, { scope, ...rule, log }) : new LocalRateLimiter(rule);
}
