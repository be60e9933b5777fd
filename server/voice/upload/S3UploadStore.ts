// Partial tus uploads in S3-compatible object storage, for nodes that share no directory:
// an upload created through node A is resumed through node B because everything about it
// (record, bytes, offset) is in the bucket.
//
//   <prefix>.uploads/<id>/upload.json        the record (the same zod schema as on disk)
//   <prefix>.uploads/<id>/<offset, 16 digits> one staged object per PATCH: bytes [offset, offset+size)
//
// Why staged objects, not an S3 multipart upload: a multipart part must be at least 5 MiB
// (except the last), and tus clients send chunks of any size (tus-js-client's default is
// one request, browsers often use 64 KiB-5 MiB). Buffering small chunks into 5 MiB parts
// would keep acknowledged bytes only in one node's memory or disk, which is exactly what a
// node-independent resume cannot have; a multipart upload also holds invisible, billed
// parts until it is completed or aborted, and an upload id per tus upload that every node
// would have to find again. A staged object is durable the moment PutObject answers, any
// node can list it, and deleting the prefix leaves nothing behind. The cost is one more
// copy at the end (the parts are read back in order, see completeFile), which a voice
// message (a few MB at most) pays in well under a second.
//
// The offset is not stored anywhere: it is the sum of the contiguous parts listed under the
// upload's prefix (sizes from the listing; a part that does not start where the previous one
// ended, or would pass Upload-Length, is ignored), so HEAD on any node answers the durable
// offset and a PATCH is acknowledged only after its part object is stored. PATCHes of one
// upload are serialized per node (KeyedMutex); across nodes a tus client sends one request at
// a time. A duplicate racing on two nodes at the same offset writes the same key: the last
// write wins and holds the same bytes of the same file (an honest client's chunk at an offset
// is always those bytes), so the offset and the assembled file stay right.
//
// Another node may move an upload on (or delete or complete it) between two requests, so
// every request lists the upload's prefix again; what this node learnt before (the record, the
// contiguous parts) is kept, so the listing starts after the last known part (StartAfter) and
// costs one short request however many parts there are (a full listing per PATCH would be
// quadratic: 20 MiB in 64 KiB chunks is 320 parts). upload.json sorts after the digits, so
// the same listing says whether the record is still there and, by its ETag, whether it
// changed (completed elsewhere): then it is read again. Before assembling, the parts are
// listed in full once, so a part another node replaced with one of a different size is seen.
//
// Completion: the parts are streamed in order into <workDir>/<id>.part on this node (hashed
// on the way, lengths checked against the listing and Upload-Length), handed to onComplete,
// then the record is marked completed and the parts are deleted; the record answers a
// repeated final PATCH or HEAD until the upload's expiry, as on disk. No multipart upload is
// ever started here, so none can be orphaned. DELETE and expiry remove every object under
// the upload's prefix; removeStrays removes prefixes without a record (a PATCH that raced a
// DELETE on another node) once their objects are older than the expiry.
//
// S3 unreachable or refusing (connection refused/reset, timeouts, 5xx, throttling, bad
// credentials, missing bucket) throws StorageUnavailableError (files/s3Errors.ts, the one
// classification every S3 user shares): the tus server answers 503 E_STORAGE_UNAVAILABLE with
// Retry-After, the chunk is not acknowledged, the client resumes from HEAD later.
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
	DeleteObjectsCommand,
	GetObjectCommand,
	ListObjectsV2Command,
	PutObjectCommand,
	type ListObjectsV2CommandOutput,
	type S3Client,
} from '@aws-sdk/client-s3';
import type { S3Location } from '../files/s3Client.js';
import { isS3NotFound, s3Call, toStorageError } from '../files/s3Errors.js';
import type { Logger } from '../../telemetry/logger.js';
import { KeyedMutex } from './KeyedMutex.js';
import {
	parseUploadRecord,
	serializeUploadRecord,
	UPLOAD_ID_PATTERN,
	type CompleteFile,
	type NewUpload,
	type StoredUpload,
	type UploadRecord,
	type UploadStore,
	unlinkIfPresent,
	writeAll,
} from './UploadStore.js';

/** Folder of the staged uploads under the key prefix (user ids never start with '.'). */
export const S3_UPLOADS_FOLDER = '.uploads/';
const RECORD_NAME = 'upload.json';
const PART_NAME = /^\d{16}$/;
/** Uploads whose record and parts this node remembers (a few hundred bytes each). */
const MAX_KNOWN_UPLOADS = 2000;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

export interface S3UploadStoreOptions {
	location: S3Location;
	/** This node's folder for assembled files (storage.dir/.uploads-work); created if missing. */
	workDir: string;
	log: Logger;
}

interface Part {
	offsetBytes: number;
	sizeBytes: number;
	key: string;
}

/** What this node learnt of an unfinished upload (refreshed by every request's listing). */
interface KnownUpload {
	record: UploadRecord;
	/** ETag of upload.json when it was read: a different one means it changed. */
	recordEtag: string;
	/** The contiguous parts from 0, in order. */
	parts: Part[];
}

class S3StoredUpload implements StoredUpload {
	readonly #store: S3UploadStore;
	#record: UploadRecord;
	/** The contiguous parts from 0, in order (empty once completed). */
	readonly #parts: Part[];
	#offsetBytes: number;
	#current = true;
	#assembled: string | undefined;

	constructor(store: S3UploadStore, record: UploadRecord, parts: Part[]) {
		this.#store = store;
		this.#record = record;
		this.#parts = parts;
		this.#offsetBytes = record.completed ? record.lengthBytes : parts.reduce((sum, p) => sum + p.sizeBytes, 0);
	}

	get record(): Readonly<UploadRecord> {
		return this.#record;
	}

	get offsetBytes(): number {
		return this.#offsetBytes;
	}

	get current(): boolean {
		return this.#current;
	}

	async append(chunk: Buffer): Promise<void> {
		if (this.#record.completed) throw new Error(`upload ${this.#record.id} is already completed`);
		if (this.#offsetBytes + chunk.length > this.#record.lengthBytes) throw new RangeError(`chunk would pass the upload's length`);
		const key = this.#store.partKey(this.#record.id, this.#offsetBytes);
		try {
			// Content-MD5: the store checks the bytes it received are the bytes we sent.
			await this.#store.send('store a chunk', new PutObjectCommand({ ...this.#store.target(key), Body: chunk, ContentLength: chunk.length, ContentMD5: createHash('md5').update(chunk).digest('base64') }));
		} catch (err) {
			// Whether the part landed is unknown: the next request lists again.
			this.#current = false;
			throw err;
		}
		this.#parts.push({ offsetBytes: this.#offsetBytes, sizeBytes: chunk.length, key });
		this.#offsetBytes += chunk.length;
	}

	async completeFile(): Promise<CompleteFile> {
		if (this.#record.completed) throw new Error(`upload ${this.#record.id} is already completed`);
		if (this.#offsetBytes !== this.#record.lengthBytes) throw new Error(`upload ${this.#record.id} holds ${this.#offsetBytes} of ${this.#record.lengthBytes} bytes`);
		// Listed in full, not from what this node remembers: a part replaced by another node
		// with one of another size would otherwise fail the assembly (or pass it wrongly).
		const parts = await this.#store.contiguousParts(this.#record);
		const listedBytes = parts.reduce((sum, p) => sum + p.sizeBytes, 0);
		if (listedBytes !== this.#record.lengthBytes) {
			// The next request lists afresh and answers the true offset; the client resumes there.
			this.#current = false;
			throw new Error(`upload ${this.#record.id}: its parts cover ${listedBytes} of ${this.#record.lengthBytes} bytes`);
		}
		const file = await this.#store.assemble(this.#record, parts);
		this.#assembled = file.path;
		return file;
	}

	async abandonCompleteFile(): Promise<void> {
		if (this.#assembled) await unlinkIfPresent(this.#assembled);
		this.#assembled = undefined;
	}

	async markCompleted(sha256: string): Promise<void> {
		const record: UploadRecord = { ...this.#record, completed: { sha256, completedAt: Date.now() } };
		try {
			await this.#store.putRecord(record);
		} catch (err) {
			this.#current = false;
			throw err;
		}
		this.#record = record;
		// onComplete took its own copy (hard link) of the assembled file.
		await this.abandonCompleteFile();
		// The file was taken: failing to delete the parts now must not fail the upload; they
		// go with the record at its expiry. Every part, also strays the offset ignored.
		await this.#store.removePrefix(record.id, { keepRecord: true }).catch((err: unknown) => {
			this.#store.log.warn({ err, uploadId: record.id }, 'staged parts of a completed upload not deleted; they go at its expiry');
		});
		this.#parts.length = 0;
	}

	async remove(): Promise<void> {
		this.#current = false;
		await this.abandonCompleteFile();
		await this.#store.removePrefix(this.#record.id);
	}
}

/** Parts fetched ahead while assembling, and the largest part fetched ahead (bigger ones
 * stream): at most 8 MiB held in memory per assembly. */
const ASSEMBLY_PREFETCH_PARTS = 8;
const ASSEMBLY_PREFETCH_MAX_PART_BYTES = 1024 * 1024;

export class S3UploadStore implements UploadStore {
	readonly log: Logger;
	readonly #client: S3Client;
	readonly #bucket: string;
	/** `<keyPrefix>.uploads/` */
	readonly #root: string;
	readonly #workDir: string;
	readonly #mutex = new KeyedMutex();
	/** Unfinished uploads seen by this node, oldest first (bounded: MAX_KNOWN_UPLOADS). */
	readonly #known = new Map<string, KnownUpload>();

	constructor(options: S3UploadStoreOptions) {
		this.log = options.log;
		this.#client = options.location.client;
		this.#bucket = options.location.bucket;
		this.#root = `${options.location.keyPrefix}${S3_UPLOADS_FOLDER}`;
		this.#workDir = path.resolve(options.workDir);
	}

	/** Unfinished uploads whose record and parts this node remembers. */
	get cachedCount(): number {
		return this.#known.size;
	}

	async create(fields: NewUpload): Promise<StoredUpload> {
		const record: UploadRecord = { version: 1, id: randomUUID(), createdAt: Date.now(), ...fields };
		const recordEtag = await this.putRecord(record);
		const parts: Part[] = [];
		this.#remember(record.id, { record, recordEtag, parts });
		return new S3StoredUpload(this, record, parts);
	}

	withUpload<T>(id: string, task: (upload: StoredUpload | undefined) => Promise<T>): Promise<T> {
		if (!UPLOAD_ID_PATTERN.test(id)) return task(undefined);
		return this.#mutex.run(id, async () => {
			const upload = await this.#load(id);
			try {
				return await task(upload);
			} finally {
				// A failed write leaves the parts unknown; finished and removed uploads need no memory.
				if (!upload || !upload.current || upload.record.completed) this.#known.delete(id);
			}
		});
	}

	async ids(): Promise<string[]> {
		const ids: string[] = [];
		for await (const page of this.#list(this.#root, '/')) {
			for (const p of page.CommonPrefixes ?? []) {
				const id = p.Prefix?.slice(this.#root.length, -1) ?? '';
				if (UPLOAD_ID_PATTERN.test(id)) ids.push(id);
			}
		}
		return ids;
	}

	/**
	 * Upload prefixes without a record whose newest object is older than `maxAgeMs` (a part
	 * written by a PATCH that raced a DELETE or the expiry on another node), and this node's
	 * assembled files left by a crash. Returns how many uploads' leftovers were removed.
	 */
	async removeStrays(maxAgeMs: number): Promise<number> {
		const byId = new Map<string, { keys: string[]; hasRecord: boolean; newestMs: number }>();
		for await (const page of this.#list(this.#root)) {
			for (const o of page.Contents ?? []) {
				const rest = o.Key?.slice(this.#root.length) ?? '';
				const slash = rest.indexOf('/');
				const id = rest.slice(0, slash);
				if (slash < 0 || !UPLOAD_ID_PATTERN.test(id)) continue;
				const entry = byId.get(id) ?? { keys: [], hasRecord: false, newestMs: 0 };
				entry.keys.push(o.Key!);
				if (rest.slice(slash + 1) === RECORD_NAME) entry.hasRecord = true;
				entry.newestMs = Math.max(entry.newestMs, o.LastModified?.getTime() ?? Date.now());
				byId.set(id, entry);
			}
		}
		let removed = 0;
		for (const [id, entry] of byId) {
			if (entry.hasRecord || Date.now() - entry.newestMs < maxAgeMs) continue;
			await this.#mutex.run(id, async () => {
				// Re-check under the lock: a record may be there now.
				if ((await this.#getRecordText(id)) !== undefined) return;
				await this.removePrefix(id);
				removed++;
			});
		}
		removed += await this.#removeStaleWorkFiles(maxAgeMs);
		return removed;
	}

	partKey(id: string, offsetBytes: number): string {
		return `${this.#prefixOf(id)}${String(offsetBytes).padStart(16, '0')}`;
	}

	target(key: string): { Bucket: string; Key: string } {
		return { Bucket: this.#bucket, Key: key };
	}

	/** Sends one S3 command; store-down errors become StorageUnavailableError. */
	send<O>(operation: string, command: { input: object }): Promise<O> {
		// The SDK's overloads are per command; one generic entry point keeps them in one place.
		return s3Call(operation, async () => (await this.#client.send(command as Parameters<S3Client['send']>[0])) as O);
	}

	/** Stores the record; resolves with its ETag. */
	async putRecord(record: UploadRecord): Promise<string> {
		const body = serializeUploadRecord(record);
		const out = await this.send<{ ETag?: string }>('store the upload record', new PutObjectCommand({ ...this.target(this.#recordKey(record.id)), Body: body, ContentType: 'application/json', ContentMD5: createHash('md5').update(body).digest('base64') }));
		return unquote(out.ETag);
	}

	/** Streams the parts in order into <workDir>/<id>.part, hashing and counting on the way. */
	/** One staged part's bytes, whole (for parts of at most ASSEMBLY_PREFETCH_MAX_PART_BYTES). */
	async #readPart(part: Part): Promise<Buffer> {
		const out = await this.send<{ Body?: unknown }>('read a staged chunk', new GetObjectCommand(this.target(part.key)));
		const chunks: Buffer[] = [];
		try {
			for await (const data of out.Body as Readable) chunks.push(data as Buffer);
		} catch (err) {
			throw toStorageError('read a staged chunk', err);
		}
		return Buffer.concat(chunks);
	}

	async assemble(record: UploadRecord, parts: readonly Part[]): Promise<CompleteFile> {
		await mkdir(this.#workDir, { recursive: true });
		const final = path.join(this.#workDir, `${record.id}.part`);
		// Written under a temporary name and renamed: an earlier file of this name may be
		// hard-linked by whoever took it (onComplete), and must not change under them.
		const tmp = `${final}.${process.pid}.tmp`;
		const hash = createHash('sha256');
		let written = 0;
		const file = await open(tmp, 'w');
		// Small parts (a client's 64 KiB chunks: hundreds of objects) are fetched several at a
		// time ahead of the one being written, so assembly costs a few round trips per window,
		// not one per part (10 s for 20 MiB in 64 KiB chunks one GET after another); big parts
		// are streamed one at a time, so memory stays bounded either way.
		const ahead = new Map<number, Promise<Buffer>>();
		const prefetch = (from: number): void => {
			for (let j = from; j < parts.length && j < from + ASSEMBLY_PREFETCH_PARTS; j++) {
				if (ahead.has(j) || parts[j]!.sizeBytes > ASSEMBLY_PREFETCH_MAX_PART_BYTES) continue;
				const fetched = this.#readPart(parts[j]!);
				fetched.catch(() => {}); // awaited in order below; one that is never awaited (an earlier failure) is dropped
				ahead.set(j, fetched);
			}
		};
		try {
			for (const [i, part] of parts.entries()) {
				if (part.offsetBytes !== written) throw new Error(`upload ${record.id}: part at ${part.offsetBytes} where ${written} was expected`);
				prefetch(i);
				let partBytes = 0;
				const inMemory = ahead.get(i);
				if (inMemory) {
					ahead.delete(i);
					const buf = await inMemory;
					hash.update(buf);
					await writeAll(file, buf, written);
					partBytes = buf.length;
				} else {
					const out = await this.send<{ Body?: unknown }>('read a staged chunk', new GetObjectCommand(this.target(part.key)));
					try {
						for await (const data of out.Body as Readable) {
							const buf = data as Buffer;
							hash.update(buf);
							await writeAll(file, buf, written + partBytes);
							partBytes += buf.length;
						}
					} catch (err) {
						// The connection may break after the headers, while the body streams.
						throw toStorageError('read a staged chunk', err);
					}
				}
				if (partBytes !== part.sizeBytes) throw new Error(`upload ${record.id}: part at ${part.offsetBytes} has ${partBytes} bytes, the listing said ${part.sizeBytes}`);
				written += partBytes;
			}
			if (written !== record.lengthBytes) throw new Error(`upload ${record.id}: assembled ${written} bytes, Upload-Length is ${record.lengthBytes}`);
			await file.sync();
		} catch (err) {
			await file.close();
			await unlinkIfPresent(tmp);
			throw err;
		}
		await file.close();
		await rename(tmp, final);
		return { path: final, sha256: hash.digest('hex') };
	}

	/** Deletes every object under the upload's prefix, the record last (so a failure half-way
	 * leaves a record the sweep finds again), or all but the record. */
	async removePrefix(id: string, { keepRecord = false } = {}): Promise<void> {
		const keys: string[] = [];
		for await (const page of this.#list(this.#prefixOf(id))) for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
		const record = this.#recordKey(id);
		await this.deleteKeys(keys.filter((k) => k !== record));
		if (!keepRecord) await this.deleteKeys([record]);
	}

	async deleteKeys(keys: readonly string[]): Promise<void> {
		for (let i = 0; i < keys.length; i += DELETE_BATCH) {
			const batch = keys.slice(i, i + DELETE_BATCH);
			const command = new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } });
			withContentMd5(command);
			const out = await this.send<{ Errors?: { Key?: string; Code?: string; Message?: string }[] }>('delete staged chunks', command);
			const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
			if (failed.length > 0) throw new Error(`could not delete ${failed.length} staged objects, e.g. ${failed[0]!.Key}: ${failed[0]!.Code} ${failed[0]!.Message ?? ''}`);
		}
	}

	async #load(id: string): Promise<S3StoredUpload | undefined> {
		const known = this.#known.get(id);
		// Only what came after the last part this node knows of (and upload.json, which sorts last).
		const listing = await this.#listUpload(id, known?.parts.at(-1)?.key);
		if (listing.recordEtag === undefined) return undefined;
		let entry = known;
		if (!entry || entry.recordEtag !== listing.recordEtag) {
			const text = await this.#getRecordText(id);
			if (text === undefined) return undefined;
			const record = parseUploadRecord(text, id, this.#recordKey(id));
			if (record.completed) return new S3StoredUpload(this, record, []);
			entry = { record, recordEtag: listing.recordEtag, parts: entry?.parts ?? [] };
		}
		entry.parts.push(...chainFrom(entry.parts, listing.parts, entry.record.lengthBytes));
		this.#remember(id, entry);
		return new S3StoredUpload(this, entry.record, entry.parts);
	}

	#remember(id: string, entry: KnownUpload): void {
		// Re-inserted, so the Map's order is least recently used first.
		this.#known.delete(id);
		this.#known.set(id, entry);
		if (this.#known.size > MAX_KNOWN_UPLOADS) this.#known.delete(this.#known.keys().next().value!);
	}

	/** The upload's part objects (after `startAfter`, in offset order) and its record's ETag. */
	async #listUpload(id: string, startAfter?: string): Promise<{ parts: Part[]; recordEtag: string | undefined }> {
		const prefix = this.#prefixOf(id);
		const parts: Part[] = [];
		let recordEtag: string | undefined;
		for await (const page of this.#list(prefix, undefined, startAfter)) {
			for (const o of page.Contents ?? []) {
				const name = o.Key?.slice(prefix.length) ?? '';
				if (name === RECORD_NAME) recordEtag = unquote(o.ETag);
				else if (PART_NAME.test(name)) parts.push({ offsetBytes: Number(name), sizeBytes: o.Size ?? 0, key: o.Key! });
			}
		}
		// Keys are zero-padded, so the listing is in offset order already; sort anyway (cheap, and
		// not every S3-compatible server lists in binary key order).
		parts.sort((a, b) => a.offsetBytes - b.offsetBytes);
		return { parts, recordEtag };
	}

	/** The parts that make up bytes [0, offset), from a full listing. */
	async contiguousParts(record: UploadRecord): Promise<Part[]> {
		return chainFrom([], (await this.#listUpload(record.id)).parts, record.lengthBytes);
	}

	async #getRecordText(id: string): Promise<string | undefined> {
		try {
			const out = await this.send<{ Body?: { transformToString(): Promise<string> } }>('read the upload record', new GetObjectCommand(this.target(this.#recordKey(id))));
			return await out.Body!.transformToString();
		} catch (err) {
			if (isS3NotFound(err)) return undefined;
			throw err;
		}
	}

	async *#list(prefix: string, delimiter?: string, startAfter?: string): AsyncGenerator<ListObjectsV2CommandOutput> {
		let token: string | undefined;
		do {
			const page = await this.send<ListObjectsV2CommandOutput>(
				'list staged chunks',
				new ListObjectsV2Command({
					Bucket: this.#bucket,
					Prefix: prefix,
					...(delimiter && { Delimiter: delimiter }),
					...(token ? { ContinuationToken: token } : startAfter && { StartAfter: startAfter }),
				}),
			);
			yield page;
			token = page.IsTruncated ? page.NextContinuationToken : undefined;
		} while (token);
	}

	async #removeStaleWorkFiles(maxAgeMs: number): Promise<number> {
		let names: string[];
		try {
			names = await readdir(this.#workDir);
		} catch {
			return 0; // not made yet
		}
		let removed = 0;
		for (const name of names) {
			// Only what assemble() writes: <id>.part and its temporary names. `.accepted` links
			// belong to the voice-message service (its recovery reads them).
			const m = /^([0-9a-f-]{36})\.part(\.\d+\.tmp)?$/.exec(name);
			if (!m || !UPLOAD_ID_PATTERN.test(m[1]!)) continue;
			const file = path.join(this.#workDir, name);
			const info = await stat(file).catch(() => undefined);
			if (!info || Date.now() - info.mtimeMs < maxAgeMs) continue;
			await unlinkIfPresent(file);
			removed++;
		}
		return removed;
	}

	#prefixOf(id: string): string {
		// Defence in depth: callers validate ids too, but a key is built only from a UUID.
		if (!UPLOAD_ID_PATTERN.test(id)) throw new TypeError(`not an upload id: ${JSON.stringify(id)}`);
		return `${this.#root}${id}/`;
	}

	#recordKey(id: string): string {
		return `${this.#prefixOf(id)}${RECORD_NAME}`;
	}
}

/**
 * The parts of `listed` (in offset order) that continue the chain `known` (contiguous from 0):
 * each starting where the previous one ended. Empty parts, overlaps (a racing duplicate of
 * another size), gaps and bytes past the length do not move the offset.
 */
function chainFrom(known: readonly Part[], listed: readonly Part[], lengthBytes: number): Part[] {
	let offset = known.reduce((sum, p) => sum + p.sizeBytes, 0);
	const next: Part[] = [];
	for (const part of listed) {
		if (part.offsetBytes !== offset || part.sizeBytes === 0 || offset + part.sizeBytes > lengthBytes) continue;
		next.push(part);
		offset += part.sizeBytes;
	}
	return next;
}

function unquote(etag: string | undefined): string {
	return (etag ?? '').replace(/^"|"$/g, '');
}

/**
 * DeleteObjects must carry a body checksum; the SDK sends a CRC32 trailer, which several
 * S3-compatible servers (Swift's s3api among them) do not take: they require Content-MD5.
 * Set it on this command only (MD5 of the XML body), before signing.
 */
function withContentMd5(command: DeleteObjectsCommand): void {
	command.middlewareStack.add(
		(next) => async (args) => {
			const request = args.request as { headers?: Record<string, string>; body?: unknown };
			if (request.headers && (typeof request.body === 'string' || request.body instanceof Uint8Array)) {
				for (const name of Object.keys(request.headers)) {
					const lower = name.toLowerCase();
					if (lower.startsWith('x-amz-checksum-') || lower === 'x-amz-sdk-checksum-algorithm') delete request.headers[name];
				}
				request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
			}
			return next(args);
		},
		{ step: 'build', name: 'parleyDeleteObjectsContentMd5', priority: 'low' },
	);
}

