// What a report records about where it ran: cores, CPU model, memory, kernel, versions of
// everything in the measured path, the commit, and the machine's load around the run.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as mediasoup from 'mediasoup';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;

export interface MachineInfo {
	cpuModel: string;
	cores: number;
	memoryGiB: number;
	kernel: string;
	platform: string;
	hypervisor: string | null;
	loadAverage: number[];
	/** The bench's nice value (its worker children inherit it): runs on a shared machine may
	 * use `nice -n -10` so neighbours do not starve the measurement. */
	nice: number;
}

export interface Versions {
	node: string;
	mediasoup: string;
	werift: string | null;
	evanOpus: string | null;
	uWebSocketsJs: string | null;
	/** The worker binary measured (MEDIASOUP_WORKER_BIN or mediasoup's default): before/after
	 * comparisons of worker builds need to say which one a run used. */
	mediasoupWorker?: WorkerBinaryInfo;
	gitCommit: string | null;
	/** Files changed in the working tree when the run started (others may be mid-edit). */
	gitDirty: boolean | null;
}

export interface WorkerBinaryInfo {
	path: string;
	sha256: string | null;
	/** Where its SRTP comes from: a shared libsrtp2 (and whether that pulls in NSS), or built in. */
	srtp: string;
}

export function workerBinaryInfo(bin = process.env.MEDIASOUP_WORKER_BIN || mediasoup.workerBin): WorkerBinaryInfo {
	let sha256: string | null = null;
	try {
		sha256 = createHash('sha256').update(readFileSync(bin)).digest('hex');
	} catch {
		// Unreadable: the run will fail to start a worker anyway.
	}
	let srtp = 'unknown (ldd failed)';
	try {
		const libs = execFileSync('ldd', [bin], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
		const shared = /libsrtp\S*\.so\S*/.exec(libs)?.[0];
		srtp = shared ? `shared ${shared}${/libnss3\.so/.test(libs) ? ' (NSS crypto)' : ''}` : 'linked in (no shared libsrtp)';
	} catch {
		// No ldd: leave it unknown.
	}
	return { path: bin, sha256, srtp };
}

export function machineInfo(): MachineInfo {
	let hypervisor: string | null = null;
	try {
		hypervisor = /Hypervisor vendor:\s*(.+)/.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1]?.trim() ?? null;
	} catch {
		// lscpu missing: leave it out.
	}
	return {
		cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
		cores: os.availableParallelism(),
		memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
		kernel: os.release(),
		platform: `${os.type()} ${os.arch()}`,
		hypervisor,
		loadAverage: os.loadavg().map((v) => Math.round(v * 100) / 100),
		nice: os.getPriority(),
	};
}

function packageVersion(name: string): string | null {
	try {
		return (JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
	} catch {
		return null;
	}
}

function git(args: string[]): string | null {
	try {
		return execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
	} catch {
		return null;
	}
}

export function versions(): Versions {
	const status = git(['status', '--porcelain']);
	return {
		node: process.version,
		mediasoup: mediasoup.version,
		werift: packageVersion('werift'),
		evanOpus: packageVersion('@evan/opus'),
		uWebSocketsJs: packageVersion('uWebSockets.js'),
		mediasoupWorker: workerBinaryInfo(),
		gitCommit: git(['rev-parse', '--short', 'HEAD']),
		gitDirty: status === null ? null : status.length > 0,
	};
}
