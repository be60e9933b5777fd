// Parley as a child process (`node --import tsx server/main.ts`, as `npm start` runs it) for
// the signaling and HTTP figures: its JavaScript thread then does not share an event loop
// with the bench's clients, and its CPU is its own in /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../testkit/ports.js';
import { benchParleyEnv } from '../targets/ParleyTarget.js';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;

export class ParleyProcess {
	readonly child: ChildProcess;
	readonly port: number;
	readonly jwtSecret: string;
	readonly #dataDir: string;
	#stderr = '';

	private constructor(child: ChildProcess, port: number, jwtSecret: string, dataDir: string) {
		this.child = child;
		this.port = port;
		this.jwtSecret = jwtSecret;
		this.#dataDir = dataDir;
		child.stderr!.on('data', (d: Buffer) => (this.#stderr = (this.#stderr + d.toString()).slice(-4000)));
	}

	static async start(options: { jwtSecret: string; env?: Record<string, string> }): Promise<ParleyProcess> {
		const dataDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-proc-'));
		const port = await freePort();
		const env = {
			...(await benchParleyEnv({ workers: 1, opusNack: false, dataDir, jwtSecret: options.jwtSecret, env: options.env })),
			PARLEY_HTTP_PORT: String(port),
		};
		// BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"): Node flags for the
		// server process, to profile what the signaling figures cost it.
		const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
		const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'server/main.ts'], {
			cwd: REPO_ROOT,
			env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
			stdio: ['ignore', 'ignore', 'pipe'],
		});
		const proc = new ParleyProcess(child, port, options.jwtSecret, dataDir);
		const deadline = Date.now() + 30_000;
		for (;;) {
			if (child.exitCode !== null) throw new Error(`Parley exited with ${child.exitCode}: ${proc.#stderr}`);
			try {
				if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
			} catch {
				// Not listening yet.
			}
			if (Date.now() > deadline) {
				child.kill('SIGKILL');
				throw new Error(`Parley did not become ready: ${proc.#stderr}`);
			}
			await new Promise((r) => setTimeout(r, 100));
		}
		return proc;
	}

	get pid(): number {
		return this.child.pid!;
	}

	/** The mediasoup worker processes (children of the server process, by their parent pid). */
	workerPids(): number[] {
		const pids: number[] = [];
		for (const entry of readdirSync('/proc')) {
			if (!/^\d+$/.test(entry)) continue;
			try {
				const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
				const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
				if (Number(fields[1]) === this.pid && stat.includes('(mediasoup-worke')) pids.push(Number(entry));
			} catch {
				// The process ended meanwhile.
			}
		}
		return pids;
	}

	async stop(): Promise<void> {
		if (this.child.exitCode === null) {
			const exited = once(this.child, 'exit');
			this.child.kill('SIGTERM');
			const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
			await exited;
			clearTimeout(timer);
		}
		rmSync(this.#dataDir, { recursive: true, force: true });
	}
}
