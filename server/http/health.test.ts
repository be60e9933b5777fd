import dgram from 'node:dgram';
import { once } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { sleep, waitUntil } from '../../test/helpers/wait.js';
import { freePort } from '../../testkit/ports.js';
import { startRedis, type TestRedis } from '../../test/helpers/redis.js';
import { startPostgres } from '../../testkit/services/postgres.js';
import { ParleyServer } from '../ParleyServer.js';
import { registerHealthRoutes, type CachedReadiness, type ReadinessCheck } from './healthRoutes.js';
import { HttpServer } from './HttpServer.js';

interface ReadyBody {
	status: string;
	checks: Record<string, { ok: boolean }>;
}

/** Polls /readyz (its results are cached for readiness.cacheMs) until it answers `status`. */
async function readyzBecomes(base: string, status: number): Promise<void> {
	await waitUntil(async () => (await fetch(`${base}/readyz`)).status === status, 5000, `/readyz ${status}`, 100);
}

describe('health endpoints', () => {
	let server: ParleyServer | undefined;
	let redis: TestRedis | undefined;

	afterEach(async () => {
		await server?.shutdown('test end');
		await redis?.stop();
		server = undefined;
		redis = undefined;
	});

	async function start(env: Record<string, string> = {}): Promise<string> {
		server = await ParleyServer.create(await testConfig(env), testLogger());
		return `http://127.0.0.1:${server.http.port}`;
	}

	it('/healthz answers 200 with a request id', async () => {
		const base = await start();
		const res = await fetch(`${base}/healthz`, { headers: { 'x-request-id': 'probe-42' } });
		expect(res.status).toBe(200);
		expect(res.headers.get('x-request-id')).toBe('probe-42');
		expect(await res.json()).toMatchObject({ status: 'ok' });
		const generated = (await fetch(`${base}/healthz`, { headers: { 'x-request-id': 'bad id with spaces' } })).headers.get('x-request-id');
		expect(generated).toMatch(/^[0-9a-f-]{36}$/);
	});

	it('/readyz is 200 when workers run and storage is writable', async () => {
		const base = await start();
		const res = await fetch(`${base}/readyz`);
		const body = (await res.json()) as ReadyBody;
		expect(res.status).toBe(200);
		expect(body.status).toBe('ready');
		expect(Object.keys(body.checks).sort()).toEqual(['metadata', 'storage', 'workers']);
	});

	it('/readyz is 503 naming storage when the storage directory cannot be written', async () => {
		const base = await start();
		// Root ignores permission bits, so make the path unusable instead: a file, not a dir.
		rmSync(server!.storageDir, { recursive: true, force: true });
		writeFileSync(server!.storageDir, 'not a directory');
		const res = await fetch(`${base}/readyz`);
		const body = (await res.json()) as ReadyBody;
		expect(res.status).toBe(503);
		expect(body).toEqual({ status: 'not ready', checks: { metadata: { ok: true }, storage: { ok: false }, workers: { ok: true } } });
		expect(JSON.stringify(body)).not.toContain(server!.storageDir);
		// It recovers once storage does (after the cache window).
		rmSync(server!.storageDir);
		await readyzBecomes(base, 200);
	});

	it('/readyz is 503 while a worker is down, 200 once it is replaced', async () => {
		const base = await start({ PARLEY_MEDIA_WORKER_RESPAWN_DELAY_MS: '300' });
		const { pid, rtcPort } = server!.workers.info()[0]!;
		// Hold the worker's media port the moment it dies, so its replacement fails and
		// the pool stays degraded until we let go (the pool retries after the delay).
		const blocker = dgram.createSocket('udp4');
		server!.workers.once('workerDied', () => blocker.bind(rtcPort, '127.0.0.1'));
		const failed = once(server!.workers, 'workerRespawnFailed');
		process.kill(pid!, 'SIGKILL');
		await failed;
		const res = await fetch(`${base}/readyz`);
		const body = (await res.json()) as ReadyBody;
		expect(res.status).toBe(503);
		expect(body.checks.workers).toEqual({ ok: false });
		const replaced = once(server!.workers, 'workerReplaced');
		blocker.close();
		await replaced;
		await readyzBecomes(base, 200);
	});

	it('/readyz checks Redis when one is configured', async () => {
		redis = await startRedis();
		const base = await start({ PARLEY_CLUSTER_REDIS_URL: redis.url });
		let res = await fetch(`${base}/readyz`);
		expect(res.status).toBe(200);
		expect(((await res.json()) as ReadyBody).checks.redis).toMatchObject({ ok: true });
		await redis.stop();
		await readyzBecomes(base, 503);
		res = await fetch(`${base}/readyz`);
		expect(((await res.json()) as ReadyBody).checks.redis).toEqual({ ok: false });
	});

	it('/readyz checks the SQL metadata store: 503 naming metadata while its PostgreSQL is stopped, 200 once it is back', async () => {
		const postgres = await startPostgres();
		try {
			const base = await start({ PARLEY_METADATA_URL: postgres.url, PARLEY_READINESS_CHECK_TIMEOUT_MS: '2000' });
			let res = await fetch(`${base}/readyz`);
			expect(res.status).toBe(200);
			expect(((await res.json()) as ReadyBody).checks.metadata).toEqual({ ok: true });
			await postgres.stop();
			await readyzBecomes(base, 503);
			res = await fetch(`${base}/readyz`);
			expect(((await res.json()) as ReadyBody).checks).toMatchObject({ metadata: { ok: false }, storage: { ok: true } });
			await postgres.start();
			await readyzBecomes(base, 200);
		} finally {
			await server?.shutdown('test end');
			server = undefined;
			await postgres.close();
		}
	});

	it('/readyz is 503 when the configured Redis is unreachable', async () => {
		const base = await start({ PARLEY_CLUSTER_REDIS_URL: `redis://127.0.0.1:${await freePort()}`, PARLEY_READINESS_CHECK_TIMEOUT_MS: '500' });
		const res = await fetch(`${base}/readyz`);
		expect(res.status).toBe(503);
		expect(((await res.json()) as ReadyBody).checks.redis!.ok).toBe(false);
	});

	it('answers unknown routes with a JSON 404', async () => {
		const base = await start();
		const res = await fetch(`${base}/nope`);
		expect(res.status).toBe(404);
		expect(await res.json()).toEqual({ error: { code: 'E_NOT_FOUND', message: 'No route for GET /nope' } });
	});

	it('shutdown stops accepting, waits for registered work, then closes', async () => {
		const base = await start();
		const s = server!;
		let release!: () => void;
		let finished = false;
		s.onShutdown('hold', () => new Promise<void>((r) => (release = r)));
		const done = s.shutdown('test').then((r) => ((finished = true), r));
		expect(s.accepting).toBe(false);
		await expect(fetch(`${base}/healthz`)).rejects.toThrow();
		await new Promise((r) => setTimeout(r, 100));
		expect(finished).toBe(false);
		release();
		expect((await done).clean).toBe(true);
		expect(s.workers.closed).toBe(true);
	});

	it('shutdown cuts work off at the deadline', async () => {
		await start({ PARLEY_SHUTDOWN_DEADLINE_MS: '300' });
		server!.onShutdown('stuck', () => new Promise<void>(() => {}));
		const result = await server!.shutdown('test');
		expect(result.clean).toBe(false);
		expect(result.durationMs).toBeGreaterThanOrEqual(290);
		expect(result.durationMs).toBeLessThan(3000);
		expect(server!.workers.info().every((w) => !w.alive)).toBe(true);
	});
});

describe('/readyz cache', () => {
	let http: HttpServer | undefined;

	afterEach(() => {
		http?.close();
		http = undefined;
	});

	/** A listener with only the health routes, over checks the test controls. */
	async function serve(checks: ReadinessCheck[], cacheMs: number): Promise<{ base: string; readiness: CachedReadiness }> {
		http = new HttpServer(testLogger());
		const readiness = registerHealthRoutes(http, { checks, checkTimeoutMs: 1000, cacheMs, isAccepting: () => true });
		await http.listen('127.0.0.1', 0);
		return { base: `http://127.0.0.1:${http.port}`, readiness };
	}

	it('a burst of 200 calls runs the checks once or twice', async () => {
		let storageRuns = 0;
		const { base } = await serve(
			[
				{
					name: 'storage',
					check: async () => {
						storageRuns++;
						await sleep(20); // a write + fsync takes a while: calls pile up behind it
					},
				},
			],
			1000,
		);
		const replies = await Promise.all(Array.from({ length: 200 }, () => fetch(`${base}/readyz`)));
		expect(replies.every((r) => r.status === 200)).toBe(true);
		expect(storageRuns).toBeGreaterThanOrEqual(1);
		expect(storageRuns).toBeLessThanOrEqual(2);
	});

	it('a failing check shows its name only, not its reason', async () => {
		const dir = '/var/lib/parley/voice';
		const { base } = await serve(
			[
				{ name: 'storage', check: () => Promise.reject(new Error(`EROFS: read-only file system, open '${dir}/.ready-probe-1'`)) },
				{ name: 'workers', check: async () => {} },
			],
			1000,
		);
		const res = await fetch(`${base}/readyz`);
		const text = await res.text();
		expect(res.status).toBe(503);
		expect(JSON.parse(text)).toEqual({ status: 'not ready', checks: { storage: { ok: false }, workers: { ok: true } } });
		expect(text).not.toContain(dir);
		expect(text).not.toMatch(/EROFS/);
	});

	it('a check that changes state is seen once the cache window has passed', async () => {
		let writable = false;
		const { base, readiness } = await serve([{ name: 'storage', check: async () => void (writable || (await Promise.reject(new Error('not writable')))) }], 300);
		expect((await fetch(`${base}/readyz`)).status).toBe(503);
		writable = true;
		// Within the window: the cached result.
		expect((await fetch(`${base}/readyz`)).status).toBe(503);
		expect(readiness.runs).toBe(1);
		await sleep(350);
		expect((await fetch(`${base}/readyz`)).status).toBe(200);
		expect(readiness.runs).toBe(2);
	});
});
