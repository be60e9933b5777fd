// What the service fixtures share: a temp folder per instance, daemons spawned as direct
// children (so their PID is ours to signal; no pid-file guessing), stop by PID with a
// signal and wait for the exit, and a backstop that kills whatever is still running and
// removes the folders when the test process exits, also after a failed test or a SIGTERM
// from the test runner.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** What the exit backstop must undo: daemons still running, folders not removed yet. */
const liveChildren = new Map<ChildProcess, NodeJS.Signals>();
const liveFolders = new Set<string>();
let hooked = false;

function backstop(): void {
	for (const [child, signal] of liveChildren) {
		try {
			if (child.exitCode === null && child.signalCode === null) child.kill(signal);
		} catch {
			// Already gone: nothing to stop.
		}
	}
	liveChildren.clear();
	for (const dir of liveFolders) rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
	liveFolders.clear();
}

function hookExit(): void {
	if (hooked) return;
	hooked = true;
	process.once('exit', backstop);
	// A runner that ends its worker with a signal skips 'exit': clean up, then let the signal
	// do what it would have done had nobody listened.
	for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
		process.once(signal, () => {
			backstop();
			if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
		});
	}
}

/** A fresh folder under os.tmpdir(), removed by the backstop unless removed before. */
export function makeTempFolder(prefix: string): string {
	hookExit();
	const dir = mkdtempSync(path.join(os.tmpdir(), `parley-${prefix}-`));
	liveFolders.add(dir);
	return dir;
}

export function removeTempFolder(dir: string): void {
	liveFolders.delete(dir);
	rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
}

export interface Daemon {
	readonly child: ChildProcess;
	readonly pid: number;
	/** True until the process has exited. */
	running(): boolean;
	/** Sends `signal`, waits for the exit; SIGKILL after `graceMs` if it is still there. */
	stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/**
 * Spawns `command` as a direct child. `backstopSignal` is what the exit hook sends (it can
 * only send, not wait): SIGKILL unless a daemon needs a signal that also ends its children.
 * Output goes to `logFile`'s descriptor or nowhere.
 */
export function spawnDaemon(
	command: string,
	args: string[],
	options: SpawnOptions & { backstopSignal?: NodeJS.Signals; defaultStopSignal?: NodeJS.Signals } = {},
): Daemon {
	hookExit();
	const { backstopSignal = 'SIGKILL', defaultStopSignal = 'SIGTERM', ...spawnOptions } = options;
	const child = spawn(command, args, { stdio: 'ignore', ...spawnOptions });
	if (child.pid === undefined) throw new Error(`${command} did not start`);
	const pid = child.pid;
	liveChildren.set(child, backstopSignal);
	let ended = false;
	// A spawn error (ENOENT) may come without an 'exit'; either ends the daemon.
	const exited = new Promise<void>((resolve) => {
		child.once('exit', () => resolve());
		child.once('error', () => resolve());
	}).then(() => {
		ended = true;
		liveChildren.delete(child);
	});
	const running = (): boolean => !ended && child.exitCode === null && child.signalCode === null;
	return {
		child,
		pid,
		running,
		stop: async (signal = defaultStopSignal, graceMs = 10_000) => {
			if (!running()) return;
			child.kill(signal);
			const timer = setTimeout(() => running() && child.kill('SIGKILL'), graceMs);
			await exited;
			clearTimeout(timer);
		},
	};
}

export async function sleep(ms: number): Promise<void> {
	await new Promise((r) => setTimeout(r, ms));
}

/** Polls `ready` every `intervalMs` until it is true; fails early when `daemon` exits. */
export async function waitUntil(
	what: string,
	ready: () => Promise<boolean>,
	options: { timeoutMs?: number; intervalMs?: number; daemons?: Daemon[]; log?: () => string } = {},
): Promise<void> {
	const { timeoutMs = 15_000, intervalMs = 25, daemons = [], log } = options;
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		if (await ready()) return;
		const dead = daemons.find((d) => !d.running());
		if (dead || Date.now() > deadline) {
			const why = dead ? `exited with ${dead.child.exitCode ?? dead.child.signalCode}` : `not ready after ${timeoutMs} ms`;
			throw new Error(`${what}: ${why}${log ? `\n${log()}` : ''}`);
		}
		await sleep(intervalMs);
	}
}

export async function acceptsTcp(port: number): Promise<boolean> {
	return new Promise((resolve) => {
		const s = net.connect(port, '127.0.0.1');
		s.once('connect', () => (s.destroy(), resolve(true)));
		s.once('error', () => resolve(false));
	});
}

/** Runs a command to completion; rejects with its output when it fails. */
export async function run(command: string, args: string[], options: SpawnOptions = {}): Promise<string> {
	const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
	let output = '';
	child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
	child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
	const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
	if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${code ?? signal}):\n${output}`);
	return output;
}

/**
 * A folder built once per machine and kept under os.tmpdir() as `parley-template-<key>`
 * (key: service + version, so an upgrade builds a new one), for the slow one-time steps
 * (initdb, mariadb-install-db, ring building). Built in a private folder and renamed into
 * place, so two test processes starting together never see half a template.
 */
export async function cachedTemplate(key: string, build: (dir: string) => Promise<void>): Promise<string> {
	const dir = path.join(os.tmpdir(), `parley-template-${key.replace(/[^A-Za-z0-9._-]/g, '_')}`);
	if (existsSync(path.join(dir, '.complete'))) return dir;
	const staging = mkdtempSync(`${dir}.building-`);
	try {
		await build(staging);
		writeFileSync(path.join(staging, '.complete'), '');
		try {
			renameSync(staging, dir);
		} catch (err) {
			// Another process finished first: use its template.
			if (!existsSync(path.join(dir, '.complete'))) throw err;
		}
	} finally {
		rmSync(staging, { recursive: true, force: true });
	}
	return dir;
}

/** Copies what a template holds into the folder `to`, owners and modes kept (`cp -a`: a data
 * folder owned by nobody stays so). */
export async function copyTemplate(template: string, to: string): Promise<void> {
	await run('cp', ['-a', `${template}/.`, to]);
	rmSync(path.join(to, '.complete'), { force: true });
}
