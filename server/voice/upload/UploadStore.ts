// Partial uploads: the UploadStore interface TusUploadServer works against, the record every
// implementation keeps (one zod schema), and the disk implementation. S3UploadStore keeps the
// same record and the bytes in object storage, for nodes that share no directory.
//
// DiskUploadStore: each upload is two files in one directory:
//   <id>.part  the bytes received so far; its size IS the offset (the truth after a restart)
//   <id>.json  what the upload is (length, owner, metadata, expiry), written atomically
// Every change is fsynced (file, and directory when names change) before it is reported,
// so whatever a client was told survives a crash. All work on one upload goes through
// withUpload(), which serializes it: two PATCHes never interleave their writes.
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Logger } from '../../telemetry/logger.js';
import { formatDestination, parseDestination, type Destination } from '../voiceMessage.js';
import { KeyedMutex } from './KeyedMutex.js';

/** Upload ids are UUIDs we generate; nothing else ever reaches a file name. */
export const UPLOAD_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const recordSchema = z.strictObject({
	version: z.literal(1),
	id: z.string().regex(UPLOAD_ID_PATTERN),
	ownerId: z.string().min(1),
	lengthBytes: z.number().int().positive(),
	/** `channel:<name>` or `user:<id>`, checked again with parseDestination on load. */
	destination: z.string().refine((text) => parseDestination(text) !== undefined, 'not a destination'),
	fileName: z.string().max(255),
	fileType: z.string().max(255),
	/** Upload-Metadata exactly as the client sent it: HEAD must echo it. */
	metadataHeader: z.string(),
	/** Milliseconds since the epoch. */
	createdAt: z.number().int(),
	expiresAt: z.number().int(),
	/** Set once onComplete accepted the file; the .part file is gone then. */
	completed: z.strictObject({ sha256: z.string().regex(/^[0-9a-f]{64}$/), completedAt: z.number().int() }).optional(),
});

type RecordOnDisk = z.infer<typeof recordSchema>;
export type UploadRecord = Omit<RecordOnDisk, 'destination'> & { destination: Destination };
export type NewUpload = Omit<UploadRecord, 'version' | 'id' | 'createdAt' | 'completed'>;

/** The record as stored (JSON text), for every implementation. */
export function serializeUploadRecord(record: UploadRecord): string {
	const stored: RecordOnDisk = { ...record, destination: formatDestination(record.destination) };
	return JSON.stringify(stored);
}

/** Parses and validates a stored record; throws when it is not one, or not upload `id`'s. */
export function parseUploadRecord(text: string, id: string, where: string): UploadRecord {
	let json: unknown;
	try {
		json = JSON.parse(text);
	} catch {
		throw new Error(`upload record ${where} is not JSON`);
	}
	const parsed = recordSchema.safeParse(json);
	if (!parsed.success || parsed.data.id !== id) throw new Error(`upload record ${where} is not valid: ${parsed.error?.message ?? 'id mismatch'}`);
	return { ...parsed.data, destination: parseDestination(parsed.data.destination)! };
}

/** The complete file of an upload, on this node's disk, for onComplete. */
export interface CompleteFile {
	/** Absolute path; stays until markCompleted or abandonCompleteFile. */
	path: string;
	/** Hex sha256 of the whole file. */
	sha256: string;
}

/** One upload as stored. Use it only inside the withUpload() callback that handed it out. */
export interface StoredUpload {
	readonly record: Readonly<UploadRecord>;
	/** Bytes durably stored (the whole length once completed). */
	readonly offsetBytes: number;
	/** False once the in-memory view may differ from what is stored, or the upload is gone. */
	readonly current: boolean;
	/** Stores `chunk` at the current offset; the offset moves only once it is durable. */
	append(chunk: Buffer): Promise<void>;
	/** The whole file (offset equals length) as a local file, checked and hashed. */
	completeFile(): Promise<CompleteFile>;
	/** Records that the file was handed over, then removes the bytes (the record stays until expiry). */
	markCompleted(sha256: string): Promise<void>;
	/** onComplete refused the file: drop what completeFile made for it (the upload's bytes stay). */
	abandonCompleteFile(): Promise<void>;
	/** Deletes the upload: record and bytes. */
	remove(): Promise<void>;
}

/** Where partial uploads live; TusUploadServer speaks tus, this keeps the bytes. */
export interface UploadStore {
	create(fields: NewUpload): Promise<StoredUpload>;
	/**
	 * Runs `task` with the upload (undefined when there is none), after every earlier task on
	 * the same upload on this node finished. Ids that are not upload ids are never looked up.
	 */
	withUpload<T>(id: string, task: (upload: StoredUpload | undefined) => Promise<T>): Promise<T>;
	/** Ids of every upload with a record. */
	ids(): Promise<string[]>;
	/** Removes leftovers of crashes and races older than `maxAgeMs`; returns how many. */
	removeStrays(maxAgeMs: number): Promise<number>;
	/** Uploads held in memory (tests check the count returns to zero). */
	readonly cachedCount: number;
}

interface UploadPaths {
	part: string;
	record: string;
}

class DiskStoredUpload implements StoredUpload {
	readonly #store: DiskUploadStore;
	readonly #paths: UploadPaths;
	#record: UploadRecord;
	#offsetBytes: number;
	/** sha256 over bytes [0, offset); after a restart it is rebuilt from the file when first needed. */
	#hash: Hash | undefined;
	/** False once the in-memory view may differ from the disk (a failed write) or the files are gone. */
	#current = true;

	constructor(store: DiskUploadStore, paths: UploadPaths, record: UploadRecord, offsetBytes: number, hash?: Hash) {
		this.#store = store;
		this.#paths = paths;
		this.#record = record;
		this.#offsetBytes = offsetBytes;
		this.#hash = hash;
	}

	get record(): Readonly<UploadRecord> {
		return this.#record;
	}

	get offsetBytes(): number {
		return this.#offsetBytes;
	}

	/** Absolute path of the bytes (gone once the upload is marked completed). */
	get partPath(): string {
		return this.#paths.part;
	}

	get current(): boolean {
		return this.#current;
	}

	/** Writes `chunk` at the current offset and fsyncs it; the offset moves only once it is durable. */
	async append(chunk: Buffer): Promise<void> {
		if (this.#record.completed) throw new Error(`upload ${this.#record.id} is already completed`);
		if (this.#offsetBytes + chunk.length > this.#record.lengthBytes) throw new RangeError(`chunk would pass the upload's length`);
		const hash = await this.#runningHash();
		const file = await open(this.#paths.part, 'r+');
		try {
			await writeAll(file, chunk, this.#offsetBytes);
			await file.sync();
		} catch (err) {
			// Reload from disk next time, and cut back what may not be durable: the client was
			// not told about these bytes and will send them again.
			this.#current = false;
			await file.truncate(this.#offsetBytes).catch((truncateErr: unknown) => {
				this.#store.log.error({ err: truncateErr, uploadId: this.#record.id }, 'cannot truncate after a failed write');
			});
			throw err;
		} finally {
			await file.close();
		}
		hash.update(chunk);
		this.#offsetBytes += chunk.length;
	}

	/** Hex sha256 of the bytes so far (the whole file once offset equals length). */
	async sha256(): Promise<string> {
		if (this.#record.completed) return this.#record.completed.sha256;
		return (await this.#runningHash()).copy().digest('hex');
	}

	async completeFile(): Promise<CompleteFile> {
		// The .part file itself: it is complete, fsynced and stays until markCompleted.
		return { path: this.#paths.part, sha256: await this.sha256() };
	}

	async abandonCompleteFile(): Promise<void> {
		// Nothing was made for it: the .part file is the upload's bytes.
	}

	/** Records that the file was handed over, then removes the bytes (the record stays until expiry). */
	async markCompleted(sha256: string): Promise<void> {
		this.#record = { ...this.#record, completed: { sha256, completedAt: Date.now() } };
		try {
			await this.#store.writeRecord(this.#paths.record, this.#record);
		} catch (err) {
			this.#current = false;
			throw err;
		}
		await unlinkIfPresent(this.#paths.part);
		await this.#store.syncDirectory();
	}

	/** Deletes both files: the record first, so a crash in between leaves only a stray .part for the sweep. */
	async remove(): Promise<void> {
		this.#current = false;
		await unlinkIfPresent(this.#paths.record);
		await unlinkIfPresent(this.#paths.part);
		await this.#store.syncDirectory();
	}

	async #runningHash(): Promise<Hash> {
		if (!this.#hash) {
			const hash = createHash('sha256');
			if (this.#offsetBytes > 0) {
				for await (const data of createReadStream(this.#paths.part, { start: 0, end: this.#offsetBytes - 1 })) hash.update(data as Buffer);
			}
			this.#hash = hash;
		}
		return this.#hash;
	}
}

export class DiskUploadStore implements UploadStore {
	/** Absolute, so paths handed to others (CompletedUpload.path) are absolute too. */
	readonly dir: string;
	readonly log: Logger;
	readonly #mutex = new KeyedMutex();
	/** Unfinished uploads seen by this process, so the running hash is not recomputed per chunk. */
	readonly #cache = new Map<string, DiskStoredUpload>();

	constructor(dir: string, log: Logger) {
		this.dir = path.resolve(dir);
		this.log = log;
		try {
			mkdirSync(this.dir, { recursive: true });
		} catch (err) {
			// Not fatal: the node serves live channels without storage; create() tries again.
			log.warn({ err, dir: this.dir }, 'upload directory not available');
		}
	}

	/** Creates the empty .part, then the record: a record always has its bytes file. */
	async create(fields: NewUpload): Promise<DiskStoredUpload> {
		const record: UploadRecord = { version: 1, id: randomUUID(), createdAt: Date.now(), ...fields };
		const paths = this.#paths(record.id);
		await mkdir(this.dir, { recursive: true });
		const part = await open(paths.part, 'wx');
		try {
			await part.sync();
		} finally {
			await part.close();
		}
		await this.writeRecord(paths.record, record);
		const upload = new DiskStoredUpload(this, paths, record, 0, createHash('sha256'));
		this.#cache.set(record.id, upload);
		return upload;
	}

	/** Ids that are not upload ids never reach the file system. */
	withUpload<T>(id: string, task: (upload: StoredUpload | undefined) => Promise<T>): Promise<T> {
		if (!UPLOAD_ID_PATTERN.test(id)) return task(undefined);
		return this.#mutex.run(id, async () => {
			const upload = this.#cache.get(id) ?? (await this.#load(id));
			if (upload) this.#cache.set(id, upload);
			try {
				return await task(upload);
			} finally {
				// Completed uploads are cheap to reload (no hash to rebuild): keep memory for live ones.
				if (upload && (!upload.current || upload.record.completed)) this.#cache.delete(id);
			}
		});
	}

	/** Ids of every upload with a record on disk. */
	async ids(): Promise<string[]> {
		const names = await readdir(this.dir);
		return names.filter((n) => n.endsWith('.json') && UPLOAD_ID_PATTERN.test(n.slice(0, -5))).map((n) => n.slice(0, -5));
	}

	/**
	 * Removes leftovers of crashes older than `maxAgeMs`: .part files without a record (crash
	 * during creation or removal) and unfinished record rewrites. Returns how many.
	 */
	async removeStrays(maxAgeMs: number): Promise<number> {
		const names = new Set(await readdir(this.dir));
		let removed = 0;
		for (const name of names) {
			const m = /^([0-9a-f-]{36})\.(part|json\.tmp)$/.exec(name);
			if (!m || !UPLOAD_ID_PATTERN.test(m[1]!)) continue;
			if (m[2] === 'part' && names.has(`${m[1]}.json`)) continue;
			await this.#mutex.run(m[1]!, async () => {
				const file = path.join(this.dir, name);
				const info = await stat(file).catch(() => undefined);
				if (!info || Date.now() - info.mtimeMs < maxAgeMs) return;
				// Re-check under the lock: a creation may have written the record meanwhile.
				if (m[2] === 'part' && (await exists(path.join(this.dir, `${m[1]}.json`)))) return;
				await unlinkIfPresent(file);
				removed++;
			});
		}
		if (removed > 0) await this.syncDirectory();
		return removed;
	}

	/** Uploads held in memory (tests check the count returns to zero). */
	get cachedCount(): number {
		return this.#cache.size;
	}

	/** Atomic replace: a crash leaves the old record or the new one, never half of one. */
	async writeRecord(file: string, record: UploadRecord): Promise<void> {
		const tmp = `${file}.tmp`;
		const handle = await open(tmp, 'w');
		try {
			await handle.writeFile(serializeUploadRecord(record));
			await handle.sync();
		} finally {
			await handle.close();
		}
		await rename(tmp, file);
		await this.syncDirectory();
	}

	/** Makes created, renamed and removed names durable (fsync of the file alone does not). */
	async syncDirectory(): Promise<void> {
		const handle = await open(this.dir, 'r');
		try {
			await handle.sync();
		} finally {
			await handle.close();
		}
	}

	async #load(id: string): Promise<DiskStoredUpload | undefined> {
		const paths = this.#paths(id);
		let text: string;
		try {
			text = await readFile(paths.record, 'utf8');
		} catch (err) {
			if (isNotFound(err)) return undefined;
			throw err;
		}
		const record = parseUploadRecord(text, id, paths.record);
		if (record.completed) {
			// A crash between writing the record and removing the bytes leaves the bytes behind.
			await unlinkIfPresent(paths.part);
			return new DiskStoredUpload(this, paths, record, record.lengthBytes);
		}
		const { size } = await stat(paths.part);
		if (size > record.lengthBytes) throw new Error(`upload ${id} holds ${size} bytes, more than its length ${record.lengthBytes}`);
		return new DiskStoredUpload(this, paths, record, size);
	}

	#paths(id: string): UploadPaths {
		// Defence in depth: callers validate ids too, but a file name is built only from a UUID.
		if (!UPLOAD_ID_PATTERN.test(id)) throw new TypeError(`not an upload id: ${JSON.stringify(id)}`);
		return { part: path.join(this.dir, `${id}.part`), record: path.join(this.dir, `${id}.json`) };
	}
}

/** A positional write may write less than asked; loop until the whole chunk is in. */
export async function writeAll(file: FileHandle, data: Buffer, position: number): Promise<void> {
	let written = 0;
	while (written < data.length) {
		const { bytesWritten } = await file.write(data, written, data.length - written, position + written);
		written += bytesWritten;
	}
}

/** Removes a file; one that is already gone is fine. */
export async function unlinkIfPresent(file: string): Promise<void> {
	try {
		await unlink(file);
	} catch (err) {
		if (!isNotFound(err)) throw err;
	}
}

async function exists(file: string): Promise<boolean> {
	try {
		await stat(file);
		return true;
	} catch (err) {
		if (isNotFound(err)) return false;
		throw err;
	}
}

function isNotFound(err: unknown): boolean {
	return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
