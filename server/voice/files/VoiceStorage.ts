// Where voice-message files live. Kept behind a small interface so an S3-compatible
// backend can be added; the embedded default is a local directory laid out as
// <root>/<user>/<yyyymm>/<id>.ogg, every part of it from validated ids.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { checkStorageWritable } from './storageDirectory.js';
import { USER_ID_PATTERN, VOICE_MESSAGE_ID_PATTERN } from '../../../protocol/patterns.js';

export interface StorageKey {
	ownerId: string;
	id: string;
	/** Milliseconds since the epoch: picks the yyyymm folder. */
	createdAt: number;
}

export interface VoiceStorage {
	/** A local path to write the file for `key` to (its folder exists). */
	writablePath(key: StorageKey): Promise<string>;
	/** Size of the stored file, or undefined when there is none. */
	size(key: StorageKey): Promise<number | undefined>;
	/** The stored file opened for reading with its size (one stat of the open file, so the two
	 * agree), or undefined when there is none. The caller closes the handle. */
	openRead(key: StorageKey): Promise<{ handle: FileHandle; size: number } | undefined>;
	remove(key: StorageKey): Promise<void>;
	checkWritable(): Promise<void>;
}

export class InvalidStorageKeyError extends Error {
	override readonly name = 'InvalidStorageKeyError';
}

export class LocalVoiceStorage implements VoiceStorage {
	readonly root: string;

	constructor(root: string) {
		this.root = path.resolve(root);
	}

	/** The file's path; throws for ids that are not ours (never builds a path from them). */
	pathOf(key: StorageKey): string {
		if (!USER_ID_PATTERN.test(key.ownerId) || key.ownerId.startsWith('.')) throw new InvalidStorageKeyError(`invalid owner id`);
		if (!VOICE_MESSAGE_ID_PATTERN.test(key.id)) throw new InvalidStorageKeyError(`invalid voice message id`);
		const d = new Date(key.createdAt);
		if (Number.isNaN(d.getTime())) throw new InvalidStorageKeyError('invalid creation time');
		const yyyymm = `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
		const file = path.join(this.root, key.ownerId, yyyymm, `${key.id}.ogg`);
		// Belt and braces: the patterns above already rule out separators and dot-dot.
		if (!file.startsWith(this.root + path.sep)) throw new InvalidStorageKeyError('path escapes the storage root');
		return file;
	}

	async writablePath(key: StorageKey): Promise<string> {
		const file = this.pathOf(key);
		await mkdir(path.dirname(file), { recursive: true });
		return file;
	}

	async size(key: StorageKey): Promise<number | undefined> {
		try {
			return (await stat(this.pathOf(key))).size;
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
			throw err;
		}
	}

	async openRead(key: StorageKey): Promise<{ handle: FileHandle; size: number } | undefined> {
		let handle: FileHandle;
		try {
			handle = await open(this.pathOf(key), 'r');
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
			throw err;
		}
		try {
			return { handle, size: (await handle.stat()).size };
		} catch (err) {
			await handle.close();
			throw err;
		}
	}

	async remove(key: StorageKey): Promise<void> {
		await rm(this.pathOf(key), { force: true });
	}

	checkWritable(): Promise<void> {
		return checkStorageWritable(this.root);
	}
}

/** Whether anything is at `file` (any error reading it counts as no). */
export async function fileExists(file: string): Promise<boolean> {
	return stat(file).then(
		() => true,
		() => false,
	);
}

/** Hex sha256 of a file's bytes, streamed. */
export async function sha256File(file: string): Promise<string> {
	const hash = createHash('sha256');
	for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
	return hash.digest('hex');
}
