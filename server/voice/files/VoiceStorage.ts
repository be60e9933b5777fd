// Where voice-message files live, behind one interface: the embedded default is a local
// directory laid out as <root>/<user>/<yyyymm>/<id>.ogg, every part of it from validated
// ids; S3VoiceStorage keeps the same keys in a bucket.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { ByteSource } from '../../http/HttpServer.js';
import { checkStorageWritable } from './storageDirectory.js';
import { USER_ID_PATTERN, VOICE_MESSAGE_ID_PATTERN } from '../../../protocol/patterns.js';

export interface StorageKey {
	ownerId: string;
	id: string;
	/** Milliseconds since the epoch: picks the yyyymm folder. */
	createdAt: number;
}

/**
 * Voice-message files. Every file is made in a local work file first (a recording as it is
 * written, a conversion's output), post-processed there (hash, waveform), then committed:
 *   workPath() -> write -> commit() -> ready
 * On disk the work file is the stored file and commit() does nothing; on S3 the work file is
 * node-local and commit() uploads it.
 */
export interface VoiceStorage {
	readonly backend: 'disk' | 's3';
	/** The local path the file for `key` is written at (its folder exists). */
	workPath(key: StorageKey): Promise<string>;
	/** Makes the complete file at workPath(key) the stored file (S3: uploads it, then removes
	 * the local copy and the key's checkpoints). */
	commit(key: StorageKey): Promise<void>;
	/**
	 * Makes sure workPath(key) holds the file, for post-processing after a restart or on a node
	 * that did not write it: disk has it already; S3 downloads the committed object, or else
	 * concatenates the key's checkpoints. Resolves the path, or undefined when there is nothing.
	 */
	fetchToWorkPath(key: StorageKey): Promise<string | undefined>;
	/**
	 * Stores bytes [offset, offset + bytes.length) of a recording still being written
	 * (checkpoint `index`, from 0, contiguous), so another node can finish it if this one dies.
	 * Absent on disk (the work file is the stored file).
	 */
	putCheckpoint?(key: StorageKey, index: number, offset: number, bytes: Buffer): Promise<void>;
	/** Size of the stored (committed) file, or undefined when there is none. */
	size(key: StorageKey): Promise<number | undefined>;
	/** The stored file opened for reading with its size (they agree), or undefined when there is
	 * none. The caller closes the source. */
	openRead(key: StorageKey): Promise<{ handle: ByteSource; size: number } | undefined>;
	/** A short-lived URL a client can GET the file from directly, when configured (S3 presigned). */
	downloadUrl?(key: StorageKey): Promise<string | undefined>;
	/** Removes the stored file, its work file and its checkpoints (nothing there is fine). */
	remove(key: StorageKey): Promise<void>;
	/** Rejects when files cannot be stored now (disk not writable, S3 unreachable or refusing). */
	checkWritable(): Promise<void>;
}

export class InvalidStorageKeyError extends Error {
	override readonly name = 'InvalidStorageKeyError';
}

/**
 * `<owner>/<yyyymm>/<id>.ogg`: the one place a file's name is made from a key, for the disk
 * (a path under the root) and S3 (a key under the prefix) alike. Throws
 * InvalidStorageKeyError for ids that are not ours, so nothing is ever built from them: the
 * patterns allow no separators or dot-dot, and an owner never starts with '.', so a message
 * key cannot land among .uploads/, .recordings/, .orphans/ or .work/.
 */
export function storageKeyPath(key: StorageKey): string {
	if (typeof key.ownerId !== 'string' || !USER_ID_PATTERN.test(key.ownerId) || key.ownerId.startsWith('.')) throw new InvalidStorageKeyError('invalid owner id');
	if (typeof key.id !== 'string' || !VOICE_MESSAGE_ID_PATTERN.test(key.id)) throw new InvalidStorageKeyError('invalid voice message id');
	const d = new Date(key.createdAt);
	if (Number.isNaN(d.getTime())) throw new InvalidStorageKeyError('invalid creation time');
	const year = d.getUTCFullYear();
	// Years before 1000 or after 9999 would not make six digits (and are no real messages).
	if (year < 1000 || year > 9999) throw new InvalidStorageKeyError('invalid creation time');
	const yyyymm = `${year}${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
	return `${key.ownerId}/${yyyymm}/${key.id}.ogg`;
}

export class LocalVoiceStorage implements VoiceStorage {
	readonly root: string;

	constructor(root: string) {
		this.root = path.resolve(root);
	}

	/** The file's path; throws for ids that are not ours (never builds a path from them). */
	pathOf(key: StorageKey): string {
		const file = path.join(this.root, ...storageKeyPath(key).split('/'));
		// Belt and braces: the patterns above already rule out separators and dot-dot.
		if (!file.startsWith(this.root + path.sep)) throw new InvalidStorageKeyError('path escapes the storage root');
		return file;
	}

	readonly backend = 'disk' as const;

	async workPath(key: StorageKey): Promise<string> {
		const file = this.pathOf(key);
		await mkdir(path.dirname(file), { recursive: true });
		return file;
	}

	/** The work file is the stored file. */
	async commit(key: StorageKey): Promise<void> {
		this.pathOf(key);
	}

	/** Undefined when the file (or its folder) is absent. A folder that cannot be reached
	 * (replaced by a file, no permission, I/O error) rejects with the open's error, so the
	 * caller reports (and counts) a storage failure, not a missing file. */
	async fetchToWorkPath(key: StorageKey): Promise<string | undefined> {
		const file = this.pathOf(key);
		try {
			await (await open(file, 'r')).close();
			return file;
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
			throw err;
		}
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
