// A real, throwaway redis-server on a free loopback port (Debian's redis-server).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { freePort } from '../../testkit/ports.js';

export interface TestRedis {
	url: string;
	port: number;
	stop(): Promise<void>;
}

async function accepts(port: number): Promise<boolean> {
	return new Promise((resolve) => {
		const s = net.connect(port, '127.0.0.1');
		s.once('connect', () => (s.destroy(), resolve(true)));
		s.once('error', () => resolve(false));
	});
}

/** `port`: start on that port (e.g. again on the port of one that was stopped, so clients
 * reconnect to the same URL), retrying for up to 10 s while the old one lets go of it.
 * Default: a free one. */
export async function startRedis(options: { port?: number } = {}): Promise<TestRedis> {
	if (options.port === undefined) return spawnRedis(await freePort());
	const deadline = Date.now() + 10_000;
	for (;;) {
		try {
			return await spawnRedis(options.port);
		} catch (err) {
			if (Date.now() > deadline) throw err;
			await new Promise((r) => setTimeout(r, 100));
		}
	}
}

async function spawnRedis(port: number): Promise<TestRedis> {
	const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
		stdio: 'ignore',
	});
	const deadline = Date.now() + 5000;
	while (!(await accepts(port))) {
		if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start on ${port}`);
		await new Promise((r) => setTimeout(r, 25));
	}
	return {
		url: `redis://127.0.0.1:${port}`,
		port,
		stop: async () => {
			if (child.exitCode !== null || child.signalCode !== null) return;
			const exited = once(child, 'exit');
			child.kill('SIGKILL');
			await exited;
		},
	};
}
