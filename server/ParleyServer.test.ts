// A start that fails part-way closes everything it had opened (the same Teardown as shutdown):
// no listener left bound, no mediasoup worker left running, no background retry going on.
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../testkit/ports.js';
import { testConfig } from '../test/helpers/config.js';
import { ParleyServer } from './ParleyServer.js';
import { createLogger } from './telemetry/logger.js';

/** Pids of this process's mediasoup-worker children. */
function workerChildren(): number[] {
	const pids: number[] = [];
	for (const entry of readdirSync('/proc')) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
			const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
			const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
			if (ppid === process.pid && comm.startsWith('mediasoup-work')) pids.push(Number(entry));
		} catch {
			// the process ended meanwhile
		}
	}
	return pids;
}

function canListen(port: number): Promise<boolean> {
	return new Promise((resolve) => {
		const probe = net.createServer();
		probe.once('error', () => resolve(false));
		probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
	});
}

/** A logger that keeps every line (JSON objects), as a test reads them. */
function capturingLogger(): { log: ReturnType<typeof createLogger>; lines: { msg: string; component?: string }[] } {
	const lines: { msg: string; component?: string }[] = [];
	const sink = new Writable({
		write(chunk: Buffer, _enc, done) {
			for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as { msg: string });
			done();
		},
	});
	return { log: createLogger('info', sink), lines };
}

describe('ParleyServer.create', () => {
	let blocker: net.Server | undefined;
	afterEach(async () => {
		await new Promise((resolve) => (blocker ? blocker.close(resolve) : resolve(undefined)));
		blocker = undefined;
	});

	it('closes what it opened when a later step fails (HTTP listener, workers, Redis retries)', async () => {
		const httpPort = await freePort();
		const metricsPort = await freePort();
		// The metrics listener starts after the HTTP listener and the shared-store recovery: make it fail.
		blocker = net.createServer();
		await new Promise<void>((resolve) => blocker!.listen(metricsPort, '127.0.0.1', resolve));
		const before = workerChildren();
		const { log, lines } = capturingLogger();
		const config = await testConfig({
			PARLEY_HTTP_PORT: String(httpPort),
			PARLEY_METRICS_PORT: String(metricsPort),
			PARLEY_METRICS_HOST: '127.0.0.1',
			// Nothing listens there: recovery of the shared store retries with backoff.
			PARLEY_CLUSTER_REDIS_URL: 'redis://127.0.0.1:1',
		});
		await expect(ParleyServer.create(config, log)).rejects.toThrow();
		const failedAt = lines.length;

		expect(await canListen(httpPort)).toBe(true);
		expect(workerChildren().filter((pid) => !before.includes(pid))).toEqual([]);
		// Recovery retries start at 500 ms and double: none may come after the failure.
		await new Promise((resolve) => setTimeout(resolve, 2500));
		expect(lines.slice(failedAt).filter((l) => l.msg.includes('retrying'))).toEqual([]);
		const closing = lines.filter((l) => l.msg === 'closing failed');
		expect(closing).toEqual([]);
	});

	it('starts and shuts down cleanly on embedded defaults, leaving no worker behind', async () => {
		const before = workerChildren();
		const server = await ParleyServer.create(await testConfig(), createLogger('silent'));
		expect(workerChildren().length).toBeGreaterThan(before.length);
		const port = server.http.port;
		const result = await server.shutdown('test');
		expect(result.clean).toBe(true);
		expect(await canListen(port)).toBe(true);
		expect(workerChildren().filter((pid) => !before.includes(pid))).toEqual([]);
	});
});
