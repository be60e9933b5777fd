// The local directory that holds voice-message files.
import { randomBytes } from 'node:crypto';
import { mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';

/** Proves the directory accepts durable writes: creates it if missing, then writes, fsyncs
 * and removes a probe file. A full disk, a read-only mount or a path that is a file fail. */
export async function checkStorageWritable(dir: string): Promise<void> {
	await mkdir(dir, { recursive: true });
	const probe = path.join(dir, `.ready-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
	const file = await open(probe, 'wx');
	try {
		await file.writeFile('ok');
		await file.sync();
	} finally {
		await file.close();
		await unlink(probe);
	}
}
