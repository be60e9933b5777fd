// The rate limiters on their own: LocalRateLimiter with an injected clock, RedisRateLimiter
// against a real redis-server (atomicity under concurrency, refill computed by Redis's own
// clock, key expiry, NOSCRIPT, and the per-node fallback while Redis is away).
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeRedis, connectRedis } from '../../server/redis/redisConnection.js';
import { RedisRateLimiter } from '../../server/ratelimit/RedisRateLimiter.js';
import { addressLimitKey, clientAddress } from '../../server/http/clientAddress.js';
import { LocalRateLimiter } from '../../server/ratelimit/RateLimiter.js';
import { createLogger, type Logger } from '../../server/telemetry/logger.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

/** A logger whose lines the test can read. */
function capturingLogger(): { log: Logger; lines: { level: string; msg: string }[] } {
	const lines: { level: string; msg: string }[] = [];
	const log = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as { level: string; msg: string }) });
	return { log, lines };
}

const until = (cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string) => waitUntil(cond, timeoutMs, what, 25);

describe('LocalRateLimiter', () => {
	let now = 0;
	const nowMs = () => now;
	beforeEach(() => {
		now = 1_000_000;
	});

	it('allows a burst, then refuses with the exact wait for the next token', async () => {
		const l = new LocalRateLimiter({ ratePerSecond: 4, burst: 3, nowMs });
		const decisions = [];
		for (let i = 0; i < 5; i++) decisions.push(await l.take('u'));
		expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
		expect(decisions[0]!.retryAfterMs).toBe(0);
		expect(decisions[3]!.retryAfterMs).toBe(250);
	});

	it('refills at the rate, never above the burst', () => {
		const l = new LocalRateLimiter({ ratePerSecond: 10, burst: 5, nowMs });
		for (let i = 0; i < 5; i++) expect(l.takeNow('u').allowed).toBe(true);
		now += 250; // 2.5 tokens
		expect([l.takeNow('u'), l.takeNow('u'), l.takeNow('u')].map((d) => d.allowed)).toEqual([true, true, false]);
		// 0.5 token left: the next one is 50 ms away.
		expect(l.takeNow('u').retryAfterMs).toBe(50);
		now += 60_000;
		let allowed = 0;
		while (l.takeNow('u').allowed) allowed++;
		expect(allowed).toBe(5);
	});

	it('charges the cost, refuses a cost the bucket lacks without taking anything, and rejects impossible costs', () => {
		const l = new LocalRateLimiter({ ratePerSecond: 1, burst: 5, nowMs });
		expect(l.takeNow('u', 4).allowed).toBe(true);
		const refused = l.takeNow('u', 3);
		expect(refused).toEqual({ allowed: false, retryAfterMs: 2000 });
		expect(l.takeNow('u', 1).allowed).toBe(true);
		expect(() => l.takeNow('u', 6)).toThrow(TypeError);
		expect(() => l.takeNow('u', 0)).toThrow(TypeError);
		expect(() => new LocalRateLimiter({ ratePerSecond: 0, burst: 1 })).toThrow(TypeError);
	});

	it('keeps keys apart', () => {
		const l = new LocalRateLimiter({ ratePerSecond: 1, burst: 1, nowMs });
		expect(l.takeNow('a').allowed).toBe(true);
		expect(l.takeNow('a').allowed).toBe(false);
		expect(l.takeNow('b').allowed).toBe(true);
	});

	it('drops buckets once they have refilled (idle keys do not pile up)', () => {
		const l = new LocalRateLimiter({ ratePerSecond: 10, burst: 2, nowMs });
		for (let i = 0; i < 100; i++) l.takeNow(`k${i}`);
		expect(l.size).toBe(100);
		now += 99; // k0..k99 each miss 1 token = 100 ms: none full yet
		l.takeNow('x');
		expect(l.size).toBe(101);
		now += 2;
		for (let i = 0; i < 60; i++) l.takeNow('x');
		// Each take looks at two idle buckets: after 60 takes all 100 are gone.
		expect(l.size).toBe(1);
	});

	it('holds at most maxKeys buckets (least recently used goes first)', () => {
		const l = new LocalRateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 3, nowMs });
		for (const k of ['a', 'b', 'c']) l.takeNow(k);
		expect(l.takeNow('a').allowed).toBe(false); // a is now the most recent
		l.takeNow('d'); // evicts b
		expect(l.size).toBe(3);
		expect(l.takeNow('a').allowed).toBe(false);
		expect(l.takeNow('b').allowed).toBe(true); // forgotten, so full again
	});
});

describe('client addresses', () => {
	it('uses the socket address unless a trusted proxy names the client in its last X-Forwarded-For entry', () => {
		expect(clientAddress('10.0.0.1', '1.2.3.4', false)).toBe('10.0.0.1');
		expect(clientAddress('10.0.0.1', 'spoofed, 1.2.3.4', true)).toBe('1.2.3.4');
		expect(clientAddress('10.0.0.1', '1.2.3.4, not-an-ip', true)).toBe('10.0.0.1');
		expect(clientAddress('0000:0000:0000:0000:0000:ffff:7f00:0001', '', false)).toBe('127.0.0.1');
		expect(clientAddress('::ffff:192.0.2.7', '', false)).toBe('192.0.2.7');
	});

	it('keys IPv6 addresses by their /64', () => {
		expect(addressLimitKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
		expect(addressLimitKey('2001:0db8:0001:0002:ffff:0:0:9')).toBe('2001:db8:1:2::/64');
		expect(addressLimitKey('::1')).toBe('0:0:0:0::/64');
		expect(addressLimitKey('192.0.2.1')).toBe('192.0.2.1');
	});
});

describe('RedisRateLimiter', () => {
	let redisServer: TestRedis;
	let redis: Redis;
	let admin: Redis;
	const extra: Redis[] = [];

	beforeEach(async () => {
		redisServer = await startRedis();
		redis = connectRedis(redisServer.url, createLogger('silent'));
		admin = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
		await until(() => redis.status === 'ready', 5000, 'redis ready');
	});

	afterEach(async () => {
		for (const r of [redis, admin, ...extra.splice(0)]) await closeRedis(r);
		await redisServer.stop();
	});

	const limiter = (ratePerSecond: number, burst: number, scope = 'test', log: Logger = createLogger('silent'), r: Redis = redis) =>
		new RedisRateLimiter(r, { scope, ratePerSecond, burst, log, retryRedisAfterMs: 100 });

	/** Redis's clock in ms, as the script reads it. */
	async function redisNowMs(): Promise<number> {
		const [s, us] = await admin.time();
		return Number(s) * 1000 + Math.floor(Number(us) / 1000);
	}

	it('allows a burst, then refuses with the wait for the next token', async () => {
		const l = limiter(2, 3);
		const d = [];
		for (let i = 0; i < 4; i++) d.push(await l.take('alice'));
		expect(d.map((x) => x.allowed)).toEqual([true, true, true, false]);
		// At most 500 ms (one token at 2/s), less by the time the four round trips took.
		expect(d[3]!.retryAfterMs).toBeGreaterThan(300);
		expect(d[3]!.retryAfterMs).toBeLessThanOrEqual(500);
		expect(l.usingRedis).toBe(true);
		expect(await admin.exists('parley:rl:test:alice')).toBe(1);
	});

	it('refills by Redis time: a bucket emptied 750 ms ago at 4/s holds 3 tokens', async () => {
		const l = limiter(4, 10);
		await admin.hset('parley:rl:test:bob', 'tokens', '0', 'ts', String((await redisNowMs()) - 750));
		let allowed = 0;
		while ((await l.take('bob')).allowed) allowed++;
		expect(allowed).toBe(3);
		const tokens = Number(await admin.hget('parley:rl:test:bob', 'tokens'));
		expect(tokens).toBeGreaterThanOrEqual(0);
		expect(tokens).toBeLessThan(1);
	});

	it('charges the cost and refuses what the bucket lacks', async () => {
		const l = limiter(1, 5);
		expect((await l.take('c', 4)).allowed).toBe(true);
		const refused = await l.take('c', 3);
		expect(refused.allowed).toBe(false);
		expect(refused.retryAfterMs).toBeGreaterThan(1500);
		expect(refused.retryAfterMs).toBeLessThanOrEqual(2000);
		expect((await l.take('c', 1)).allowed).toBe(true);
		await expect(l.take('c', 6)).rejects.toThrow(TypeError);
	});

	it('expires a bucket when it would be full again', async () => {
		const l = limiter(100, 5); // one token refills in 10 ms
		await l.take('d');
		await l.take('d');
		const pttl = await admin.pttl('parley:rl:test:d');
		expect(pttl).toBeGreaterThan(0);
		expect(pttl).toBeLessThanOrEqual(20);
		await until(async () => (await admin.exists('parley:rl:test:d')) === 0, 2000, 'key expiry');
		// A slow bucket lives longer: 1/s, 4 tokens missing = 4 s.
		const slow = limiter(1, 5, 'slow');
		for (let i = 0; i < 4; i++) await slow.take('e');
		const slowTtl = await admin.pttl('parley:rl:slow:e');
		expect(slowTtl).toBeGreaterThan(3500);
		expect(slowTtl).toBeLessThanOrEqual(4000);
	});

	it('hashes keys that are too long to use as they are', async () => {
		const l = limiter(1, 1);
		await l.take('x'.repeat(500));
		const keys = await admin.keys('parley:rl:test:*');
		expect(keys).toHaveLength(1);
		expect(keys[0]).toMatch(/^parley:rl:test:sha256:[0-9a-f]{64}$/);
	});

	it('gives exactly `burst` tokens to 200 concurrent takes from two connections (two nodes)', async () => {
		const other = connectRedis(redisServer.url, createLogger('silent'));
		extra.push(other);
		await until(() => other.status === 'ready', 5000, 'second connection');
		// 0.001/s: less than one token refills while the test runs.
		const a = limiter(0.001, 37);
		const b = limiter(0.001, 37, 'test', createLogger('silent'), other);
		const takes = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).take('shared'));
		const results = await Promise.all(takes);
		expect(results.filter((r) => r.allowed)).toHaveLength(37);
		expect(a.usingRedis && b.usingRedis).toBe(true);
	});

	it('loads the script again after Redis forgets it (NOSCRIPT)', async () => {
		const l = limiter(1, 2);
		expect((await l.take('f')).allowed).toBe(true);
		await admin.script('FLUSH');
		expect((await l.take('f')).allowed).toBe(true);
		expect((await l.take('f')).allowed).toBe(false);
		expect(l.usingRedis).toBe(true);
	});

	it('falls back to per-node buckets when Redis stops (still limiting), and returns to Redis when it is back', async () => {
		const { log, lines } = capturingLogger();
		const l = limiter(0.001, 3, 'test', log);
		expect((await l.take('g')).allowed).toBe(true);
		await redisServer.stop();
		await until(() => redis.status !== 'ready', 5000, 'connection to notice');
		const during = [];
		for (let i = 0; i < 5; i++) during.push(await l.take('g'));
		// The local bucket starts full: 3 allowed on this node, then refused. Never unlimited.
		expect(during.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
		expect(l.usingRedis).toBe(false);
		const warnings = lines.filter((x) => x.msg.startsWith('rate limits: Redis unreachable'));
		expect(warnings).toHaveLength(1);

		redisServer = await startRedis({ port: redisServer.port });
		await until(() => redis.status === 'ready', 10_000, 'reconnect');
		await until(async () => (await l.take('h')).allowed && l.usingRedis, 5000, 'back on Redis');
		expect(await admin.exists('parley:rl:test:h')).toBe(1);
		expect(lines.filter((x) => x.msg.startsWith('rate limits: back on Redis'))).toHaveLength(1);
		expect(lines.filter((x) => x.msg.startsWith('rate limits: Redis unreachable'))).toHaveLength(1);
	});

	it('falls back within its timeout when Redis stalls', async () => {
		const l = new RedisRateLimiter(redis, { scope: 'test', ratePerSecond: 0.001, burst: 2, log: createLogger('silent'), timeoutMs: 200, retryRedisAfterMs: 5000 });
		await admin.client('PAUSE', 1500, 'ALL');
		const started = performance.now();
		const first = await l.take('i');
		const tookMs = performance.now() - started;
		expect(first.allowed).toBe(true);
		expect(tookMs).toBeLessThan(1000);
		expect(l.usingRedis).toBe(false);
		// While the pause lasts, no request waits on Redis again.
		const quick = performance.now();
		expect((await l.take('i')).allowed).toBe(true);
		expect((await l.take('i')).allowed).toBe(false);
		expect(performance.now() - quick).toBeLessThan(50);
	});
});
