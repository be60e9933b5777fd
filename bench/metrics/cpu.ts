// CPU time from the OS: /proc/<pid>/stat (utime + stime of a process and its threads) and
// /proc/stat (per-core busy time), so server and bench CPU are measured, not estimated.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticksPerSecond: number | undefined;

/** USER_HZ, the unit of /proc CPU times (100 on Linux almost everywhere; asked, not assumed). */
export function clockTicksPerSecond(): number {
	if (ticksPerSecond === undefined) {
		try {
			ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
		} catch {
			ticksPerSecond = 100;
		}
	}
	return ticksPerSecond;
}

/** CPU seconds (user + system) a process has used so far. */
export function processCpuSeconds(pid: number): number {
	const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
	// The command name (field 2) may contain spaces and parentheses: split after the last ')'.
	const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	// Fields 14 and 15 of the file are utime and stime; here they are at 11 and 12.
	return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond();
}

/** The core a process last ran on (field 39 of /proc/<pid>/stat). */
export function processLastCore(pid: number): number {
	const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
	const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	return Number(fields[36]);
}

/** Idle ticks (idle + iowait) per core from /proc/stat. Only idle time is used: on a tickless
 * kernel it is measured exactly, while user/system time per core is sampled at ticks and
 * misses a worker's many short bursts (seen here: a worker at 14% of a core by its own
 * /proc/<pid>/stat, its core 1-2% busy by /proc/stat's user+system). */
export function coreIdleTicks(): number[] {
	const cores: number[] = [];
	for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
		const m = /^cpu(\d+) (.*)$/.exec(line);
		if (!m) continue;
		const f = m[2]!.trim().split(/\s+/).map(Number);
		cores[Number(m[1])] = f[3]! + f[4]!;
	}
	return cores;
}

/** Ticks spent in niced user processes (the `nice` column of the aggregate cpu line). */
export function niceTicks(): number {
	const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
	return Number(line.trim().split(/\s+/)[2]);
}

/** A CPU meter over a window: processes by pid plus every core. */
export class CpuMeter {
	readonly #pids: number[];
	#startedAt = 0;
	#procStart: number[] = [];
	#idleStart: number[] = [];
	#niceStart = 0;
	#selfStart: NodeJS.CpuUsage | undefined;

	constructor(pids: number[]) {
		this.#pids = pids;
	}

	start(): void {
		this.#startedAt = performance.now();
		this.#procStart = this.#pids.map(processCpuSeconds);
		this.#idleStart = coreIdleTicks();
		this.#niceStart = niceTicks();
		this.#selfStart = process.cpuUsage();
	}

	/**
	 * Shares of one core (1 = one core fully busy) over the window since start(). `niced` is
	 * CPU of processes running at a positive nice value (background jobs on a shared machine:
	 * they yield to the bench and the worker, so they disturb little); it is tick-sampled,
	 * which is fine for the long-running jobs it is meant for.
	 */
	stop(): { wallS: number; processes: number[]; bench: number; cores: number[]; niced: number } {
		const wallS = (performance.now() - this.#startedAt) / 1000;
		const processes = this.#pids.map((pid, i) => (processCpuSeconds(pid) - this.#procStart[i]!) / wallS);
		const self = process.cpuUsage(this.#selfStart);
		const ticks = wallS * clockTicksPerSecond();
		const cores = coreIdleTicks().map((idle, i) => Math.min(1, Math.max(0, 1 - (idle - this.#idleStart[i]!) / ticks)));
		const niced = Math.max(0, (niceTicks() - this.#niceStart) / ticks);
		return { wallS, processes, bench: (self.user + self.system) / 1e6 / wallS, cores, niced };
	}
}

/**
 * On a shared machine, waits until other processes leave the cores mostly idle: samples of
 * `sampleMs` until two in a row show less than `maxOtherCpu` cores used by anything but
 * `ownPids` and this process, or `maxWaitMs` passed. Returns how long it waited and the last
 * sample's figure.
 */
export async function waitForQuietMachine(
	ownPids: number[],
	maxOtherCpu: number,
	maxWaitMs: number,
	/** Shared by the steps of a run, so a machine that never quietens does not stall it. */
	budget: { remainingMs: number } = { remainingMs: Infinity },
	sampleMs = 500,
): Promise<{ waitedMs: number; otherCpu: number }> {
	const started = performance.now();
	maxWaitMs = Math.min(maxWaitMs, Math.max(0, budget.remainingMs));
	if (maxWaitMs <= 0) return { waitedMs: 0, otherCpu: NaN };
	let quiet = 0;
	let other = 0;
	for (;;) {
		const meter = new CpuMeter(ownPids);
		meter.start();
		await new Promise((r) => setTimeout(r, sampleMs));
		const u = meter.stop();
		other = Math.max(0, u.cores.reduce((a, b) => a + b, 0) - u.processes.reduce((a, b) => a + b, 0) - u.bench - u.niced);
		quiet = other < maxOtherCpu ? quiet + 1 : 0;
		const waitedMs = performance.now() - started;
		if (quiet >= 2 || waitedMs >= maxWaitMs) {
			budget.remainingMs -= waitedMs;
			return { waitedMs, otherCpu: other };
		}
	}
}
