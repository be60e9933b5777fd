// Small tmpfs mounts for disk tests (a full or read-only disk on demand). Needs root with
// CAP_SYS_ADMIN; CAN_MOUNT says whether this process has it, so tests can skip themselves.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN). */
export const CAN_MOUNT = (() => {
	const probe = mkdtempSync(path.join(os.tmpdir(), 'parley-mount-probe-'));
	try {
		execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
		execFileSync('umount', [probe], { stdio: 'ignore' });
		return true;
	} catch {
		return false;
	} finally {
		rmSync(probe, { recursive: true, force: true });
	}
})();

/** Mounts tmpfs filesystems of a given size; unmountAll() (lazily) unmounts them. */
export class TmpfsMounts {
	readonly #mounts: string[] = [];

	mount(sizeBytes: number): string {
		const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-tmpfs-'));
		execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir]);
		this.#mounts.push(dir);
		return dir;
	}

	unmountAll(): void {
		for (const m of this.#mounts.splice(0)) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
	}
}

/** Fills the filesystem of `dir` until `leaveBytes` are free; returns the filler's path. */
export function fill(dir: string, leaveBytes: number): string {
	const { bavail, bsize } = statfsSync(dir);
	const filler = path.join(dir, `filler-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
	writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - leaveBytes)));
	return filler;
}
