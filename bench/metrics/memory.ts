// Resident memory from /proc: VmRSS of any process (the mediasoup workers), and of this one.
import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import v8 from 'node:v8';

/** VmRSS of a process in bytes (0 when it is gone). */
export function processRssBytes(pid: number): number {
	try {
		const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
		return m ? Number(m[1]) * 1024 : 0;
	} catch {
		return 0;
	}
}

let collect: (() => void) | undefined;

/** What this process's JavaScript holds after a full garbage collection: V8 heap in use plus
 * memory outside it owned by JS objects (Buffers). Not RSS: V8 and the allocator keep freed
 * pages, so in one long-lived process RSS after a step says more about earlier steps (here it
 * fell below its idle figure) than about this one. The collector is reached without
 * --expose-gc on the command line (the bench runs through tsx). */
export function settledOwnHeapBytes(): number {
	if (!collect) {
		v8.setFlagsFromString('--expose-gc');
		collect = runInNewContext('gc') as () => void;
	}
	collect();
	const m = process.memoryUsage();
	return m.heapUsed + m.external;
}
