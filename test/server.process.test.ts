// The server as users run it (`npm start` = tsx server/main.ts), as a child process:
// configuration errors, the uWebSockets.js native check, health, and SIGTERM shutdown.
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { testEnv } from './helpers/config.js';
import { processAlive } from './helpers/process.js';
import { logLine, startServerProcess, type ServerProcess } from './helpers/serverProcess.js';

describe('parley server process', () => {
	const children: ChildProcess[] = [];
	const run = (env: Record<string, string>): ServerProcess => {
		const s = startServerProcess(env);
		children.push(s.child);
		return s;
	};

	afterEach(() => {
		for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
	});

	it('refuses a negative port, naming the option, with exit code 78', async () => {
		const s = run(await testEnv({ PARLEY_HTTP_PORT: '-1' }));
		expect(await s.exited).toBe(78);
		expect(s.stderr()).toContain('option "http.port" (from env PARLEY_HTTP_PORT="-1")');
	});

	it('refuses an unknown log level, naming the option', async () => {
		const s = run(await testEnv({ PARLEY_LOG_LEVEL: 'loud' }));
		expect(await s.exited).toBe(78);
		expect(s.stderr()).toContain('option "logLevel"');
	});

	it('refuses to run on the uWebSockets.js JS fallback', async () => {
		const s = run({ ...(await testEnv()), UWS_USE_FALLBACK: '1' });
		expect(await s.exited).toBe(1);
		expect(s.stderr()).toContain('uWebSockets.js native binary did not load');
	});

	it('serves health, then on SIGTERM drains, exits 0 and leaves no worker behind', async () => {
		const s = run(await testEnv({ PARLEY_MEDIA_WORKERS: '2', PARLEY_LOG_LEVEL: 'info' }));
		const started = await logLine(s, 'mediasoup workers started');
		const pids = started.pids as number[];
		expect(pids).toHaveLength(2);
		const listening = await logLine(s, 'parley listening');
		const base = String(listening.http);
		expect((await fetch(`${base}/healthz`)).status).toBe(200);
		expect((await fetch(`${base}/readyz`)).status).toBe(200);

		const t0 = Date.now();
		s.child.kill('SIGTERM');
		expect(await s.exited).toBe(0);
		expect(Date.now() - t0).toBeLessThan(5000);
		expect(pids.filter(processAlive)).toEqual([]);
		// Parley closed the workers itself, after draining (not mediasoup on the signal).
		expect((await logLine(s, 'mediasoup workers closed')).pids).toEqual(pids);
		const done = await logLine(s, 'shutdown complete');
		expect(done.clean).toBe(true);
		await expect(fetch(`${base}/healthz`)).rejects.toThrow();
	});

	it('fails to start with a clear message when the HTTP port is taken', async () => {
		const first = run(await testEnv({ PARLEY_LOG_LEVEL: 'info' }));
		const port = new URL(String((await logLine(first, 'parley listening')).http)).port;
		const second = run(await testEnv({ PARLEY_HTTP_PORT: port }));
		expect(await second.exited).toBe(1);
		expect(second.stderr()).toContain(`cannot listen on 127.0.0.1:${port}`);
		first.child.kill('SIGTERM');
		expect(await first.exited).toBe(0);
	});
});
