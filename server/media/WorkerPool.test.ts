import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { processAlive } from '../../test/helpers/process.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { ROUTER_MEDIA_CODECS } from './mediaCodecs.js';
import { WorkerPool, type WorkerDiedEvent, type WorkerReplacedEvent } from './WorkerPool.js';
import { workerPoolOptions } from './workerSettings.js';


/** mediasoup-worker processes whose parent is this test process. */
function childWorkerPids(): number[] {
	const out = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' });
	return out
		.split('\n')
		.filter((l) => l.includes('mediasoup-work'))
		.map((l) => Number(l.trim().split(/\s+/)[0]));
}

describe('WorkerPool', () => {
	let pool: WorkerPool;

	beforeEach(async () => {
		pool = await WorkerPool.create(workerPoolOptions(await testConfig({ PARLEY_MEDIA_WORKERS: '2' })), testLogger());
	});

	afterEach(async () => {
		await pool.close();
	});

	it('starts the configured number of workers, each listening on its own port pair', () => {
		const info = pool.info();
		expect(info).toHaveLength(2);
		expect(info.every((w) => w.alive && typeof w.pid === 'number')).toBe(true);
		expect(info[1]!.rtcPort).toBe(info[0]!.rtcPort + 1);
		expect(new Set(info.map((w) => w.pid)).size).toBe(2);
		expect(pool.healthy).toBe(true);
	});

	it('places each new router on the least-loaded worker', async () => {
		const a = await pool.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS });
		const b = await pool.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS });
		expect(pool.workerIndexOf(a)).not.toBe(pool.workerIndexOf(b));
		// Load worker of `a` with transports: the next router goes to the other worker.
		const server = pool.webRtcServerFor(a);
		for (let i = 0; i < 3; i++) await a.createWebRtcTransport({ webRtcServer: server });
		const c = await pool.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS });
		expect(pool.workerIndexOf(c)).toBe(pool.workerIndexOf(b));
		expect(pool.info()[pool.workerIndexOf(a)!]!.transports).toBe(3);
		a.close();
		expect(pool.info().reduce((n, w) => n + w.routers, 0)).toBe(2);
	});

	it('replaces a worker killed with SIGKILL and reports its routers', async () => {
		const router = await pool.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS });
		const index = pool.workerIndexOf(router)!;
		const victim = pool.info()[index]!.pid!;
		const died = once(pool, 'workerDied') as Promise<[WorkerDiedEvent]>;
		const replaced = once(pool, 'workerReplaced') as Promise<[WorkerReplacedEvent]>;
		process.kill(victim, 'SIGKILL');

		const [diedEvent] = await died;
		expect(diedEvent).toMatchObject({ index, pid: victim, routerIds: [router.id] });
		expect(router.closed).toBe(true);
		const [replacedEvent] = await replaced;
		expect(replacedEvent.index).toBe(index);
		expect(replacedEvent.previousPid).toBe(victim);
		expect(replacedEvent.pid).not.toBe(victim);
		expect(processAlive(replacedEvent.pid)).toBe(true);
		expect(pool.healthy).toBe(true);
		// The replacement serves on the same port and takes routers again.
		expect(pool.info()[index]!.pid).toBe(replacedEvent.pid);
		const again = await pool.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS });
		expect(pool.webRtcServerFor(again).closed).toBe(false);
	});

	it('close() leaves no worker process behind', async () => {
		const pids = pool.info().map((w) => w.pid!);
		expect(childWorkerPids().sort()).toEqual([...pids].sort());
		await pool.close();
		expect(pids.filter(processAlive)).toEqual([]);
		expect(childWorkerPids()).toEqual([]);
		expect(pool.healthy).toBe(false);
		await expect(pool.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS })).rejects.toThrow(/closed/);
	});

	it('fails to start with a clear message when its media port is taken', async () => {
		const port = pool.info()[0]!.rtcPort;
		const options = { ...workerPoolOptions(await testConfig()), rtcPort: port };
		await expect(WorkerPool.create(options, testLogger())).rejects.toThrow(new RegExp(`cannot listen on 127.0.0.1:${port}`));
	});
});
