// The Parley server as a child process, run the way `npm start` runs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export interface ServerProcess {
	child: ChildProcess;
	stdout: () => string;
	stderr: () => string;
	exited: Promise<number | null>;
}

export function startServerProcess(env: Record<string, string>): ServerProcess {
	const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
		env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	let out = '';
	let err = '';
	child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
	child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
	const exited = once(child, 'exit').then(([code]) => code as number | null);
	return { child, stdout: () => out, stderr: () => err, exited };
}

/** The first JSON log line whose msg is `msg`, waiting for it to appear. */
export async function logLine(s: ServerProcess, msg: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		for (const line of s.stdout().split('\n')) {
			if (!line.startsWith('{')) continue;
			const entry = JSON.parse(line) as Record<string, unknown>;
			if (entry.msg === msg) return entry;
		}
		if (s.child.exitCode !== null || Date.now() > deadline) {
			throw new Error(`no "${msg}" log line; stdout:\n${s.stdout()}\nstderr:\n${s.stderr()}`);
		}
		await new Promise((r) => setTimeout(r, 50));
	}
}
