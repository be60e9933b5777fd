import dgram from 'node:dgram';
import { once } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { freePort } from '../../testkit/ports.js';
import { startRedis, type TestRedis } from '../../test/helpers/redis.js';
import { ParleyServer } from '../ParleyServer.js';

interface ReadyBody {
	status: string;
	checks: Record<string, { ok: boolean; error?: string }>;
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
		expect(Object.keys(body.checks).sort()).toEqual(['storage', 'workers']);
	});

	it('/readyz is 503 naming storage when the storage directory cannot be written', async () => {
		const base = await start();
		// Root ignores permission bits, so make the path unusable instead: a file, not a dir.
		rmSync(server!.storageDir, { recursive: true, force: true });
		writeFileSync(server!.storageDir, 'not a directory');
		const res = await fetch(`${base}/readyz`);
		const body = (await res.json()) as ReadyBody;
		expect(res.status).toBe(503);
		expect(body.checks.storage).toMatchObject({ ok: false });
		expect(body.checks.storage!.error).toMatch(/EEXIST|ENOTDIR/);
		expect(body.checks.workers!.ok).toBe(true);
		// It recovers as soon as storage does.
		rmSync(server!.storageDir);
		expect((await fetch(`${base}/readyz`)).status).toBe(200);
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
		expect(body.checks.workers).toMatchObject({ ok: false, error: 'mediasoup worker(s) 0 not running' });
		const replaced = once(server!.workers, 'workerReplaced');
		blocker.close();
		await replaced;
		expect((await fetch(`${base}/readyz`)).status).toBe(200);
	});

	it('/readyz checks Redis when one is configured', async () => {
		redis = await startRedis();
		const base = await start({ PARLEY_CLUSTER_REDIS_URL: redis.url });
		let res = await fetch(`${base}/readyz`);
		expect(res.status).toBe(200);
		expect(((await res.json()) as ReadyBody).checks.redis).toMatchObject({ ok: true });
		await redis.stop();
		res = await fetch(`${base}/readyz`);
		expect(res.status).toBe(503);
		expect(((await res.json()) as ReadyBody).checks.redis).toMatchObject({ ok: false });
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
