// The local directory that holds voice-message files.
import { randomBytes } from 'node:crypto';
import { mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';

/** Names of the files checkStorageWritable writes and removes (StorageAudit skips leftovers). */
export const READY_PROBE_PREFIX = '.ready-probe-';

/** How a storage operation failed, when the cause is the disk rather than a bug. */
export type StorageFailure = 'full' | 'unavailable';

/** Full (ENOSPC, EDQUOT, EFBIG: the file-size limit) or unusable (read-only, not a
 * directory, no permission, I/O error, and ENOENT: Node reports a recursive mkdir that a
 * read-only disk refused as ENOENT); the same for the SQLite metadata database (SQLITE_FULL;
 * read-only, I/O error, cannot open, locked); S3 unreachable or refusing (ES3UNAVAILABLE,
 * files/s3Errors.ts) is unusable too; undefined for any other error. */
export function storageFailure(err: unknown): StorageFailure | undefined {
	const code = (err as NodeJS.ErrnoException | undefined)?.code;
	if (typeof code === 'string' && code.startsWith('SQLITE_')) return sqliteFailure(code);
	if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return 'full';
	// The voice-message store (Redis) is unreachable: VoiceStoreUnavailableError.
	if (code === 'EVOICESTOREUNAVAILABLE') return 'unavailable';
	// The object store (storage.backend s3) is unreachable, failing or refusing us: StorageUnavailableError.
	if (code === 'ES3UNAVAILABLE') return 'unavailable';
	if (code === 'EROFS' || code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM' || code === 'EIO' || code === 'ENOENT') return 'unavailable';
	return undefined;
}

function sqliteFailure(code: string): StorageFailure | undefined {
	if (code === 'SQLITE_FULL') return 'full';
	if (/^SQLITE_(IOERR|READONLY|CANTOPEN|BUSY|LOCKED)/.test(code)) return 'unavailable';
	return undefined;
}

/** The sentence clients get for a storage failure (no paths, no errno). */
export function storageFailureText(failure: StorageFailure): string {
	return failure === 'full' ? "the server's voice-message storage is full" : "the server's voice-message storage is not writable";
}

/** Proves the directory accepts durable writes: creates it if missing, then writes, fsyncs
 * and removes a probe file. A full disk, a read-only mount or a path that is a file fail. */
export async function checkStorageWritable(dir: string): Promise<void> {
	await mkdir(dir, { recursive: true });
	const probe = path.join(dir, `${READY_PROBE_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
	const file = await open(probe, 'wx');
	try {
		await file.writeFile('ok');
		await file.sync();
	} finally {
		await file.close();
		await unlink(probe);
	}
}
