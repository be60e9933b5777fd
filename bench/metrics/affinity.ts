// CPU pinning with taskset (util-linux): the worker under test on one core, the bench on the
// others, so the load generator does not steal the worker's core and "a core saturates"
// means the worker's core.
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export function canPin(): boolean {
	if (os.availableParallelism() < 2) return false;
	try {
		execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
		return true;
	} catch {
		return false;
	}
}

/** Pins a process (all its threads) to the given cores. */
export function pin(pid: number, cores: number[]): void {
	execFileSync('taskset', ['-a', '-p', '-c', cores.join(','), String(pid)], { stdio: 'ignore' });
}

export function allCores(): number[] {
	return Array.from({ length: os.availableParallelism() }, (_, i) => i);
}
