// The node's Redis connection (only when cluster.redisUrl / REDIS_URL is set).
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../telemetry/logger.js';

export function connectRedis(url: string, log: Logger): Redis {
	const redis = new Redis(url, {
		// Fail a command fast when Redis is away instead of queueing it for minutes:
		// callers (readiness, rate limits) decide what to do without Redis.
		maxRetriesPerRequest: 1,
		connectTimeout: 2000,
		retryStrategy: (attempt) => Math.min(2000, 100 * 2 ** attempt),
		lazyConnect: false,
	});
	let lastError = '';
	redis.on('error', (err: Error) => {
		// ioredis repeats the same error on every reconnect attempt: log changes only.
		if (err.message !== lastError) log.warn({ err }, 'redis connection error');
		lastError = err.message;
	});
	redis.on('ready', () => {
		lastError = '';
		log.info({ url: redactUrl(url) }, 'redis connected');
	});
	return redis;
}

export async function pingRedis(redis: Redis): Promise<void> {
	const reply = await redis.ping();
	if (reply !== 'PONG') throw new Error(`unexpected PING reply ${reply}`);
}

/** Hides the password of redis://user:pass@host URLs in logs. */
export function redactUrl(url: string): string {
	return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** QUIT when connected (lets pending replies arrive), else drop the socket: QUIT on a
 * connection that is away would wait for a reconnect that may never come. */
export async function closeRedis(redis: Redis, timeoutMs = 1000): Promise<void> {
	if (redis.status !== 'ready') {
		redis.disconnect();
		return;
	}
	let timer: NodeJS.Timeout | undefined;
	await Promise.race([
		redis.quit().catch(() => undefined),
		new Promise((resolve) => {
			timer = setTimeout(resolve, timeoutMs);
		}),
	]);
	clearTimeout(timer);
	redis.disconnect();
}

/** A Lua script and its SHA1, for EVALSHA. */
export interface RedisScript {
	lua: string;
	sha: string;
}

export const redisScript = (lua: string): RedisScript => ({ lua, sha: createHash('sha1').update(lua).digest('hex') });

/** EVALSHA, sending the script in full when Redis does not know it (first use, or a
 * restarted or flushed Redis). */
export async function evalScript(redis: Redis, script: RedisScript, keys: string[], args: string[]): Promise<unknown> {
	try {
		return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
	} catch (err) {
		if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
		return redis.eval(script.lua, keys.length, ...keys, ...args);
	}
}
