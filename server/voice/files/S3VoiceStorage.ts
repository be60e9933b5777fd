// Voice-message files in an S3-compatible bucket (storage.backend s3): AWS S3, MinIO, Ceph,
// R2, OpenStack Swift's s3api. Nodes share no directory; each has its own work folder.
//
//   <prefix><owner>/<yyyymm>/<id>.ogg          a finished message (one object, audio/ogg)
//   <prefix>.recordings/<id>/<index 8 digits>  checkpoints of a recording still being written:
//                                              bytes [offset, offset + length) of its file,
//                                              x-amz-meta-offset = offset
//   <prefix>.probes/...                        readiness probes (written and deleted at once)
//   <storage.dir>/.work/<owner>/<yyyymm>/<id>.ogg   this node's work file (node-local)
//
// Choices an operator of a voice server would ask about:
// - A finished file is uploaded from the work file with lib-storage's Upload: one PUT below
//   the part size, multipart above, and a failed multipart is aborted (no parts left behind
//   to be billed; StorageAudit also aborts multipart uploads older than a day under our keys).
//   The local copy and the recording's checkpoints are removed only after S3 has the object.
// - While S3 is unreachable or refusing, every operation fails with StorageUnavailableError
//   (503 E_STORAGE_UNAVAILABLE upstream); the work file stays, so VoiceMessageService can
//   retry the commit (the local spool) and a restart resumes it.
// - Downloads are streamed: openRead() answers HEAD's size at once and opens one ranged GET
//   only when the HTTP server asks for the first bytes, then reads the body as the client
//   drains (never the whole file in memory); a seek reopens the GET at the new position.
// - With storage.s3.presignedDownloadTtlS > 0, downloadUrl() gives a presigned GET with the
//   Ogg content type; the route answers 302 to it after its ownership and ready checks.
// - Keys are built only from validated ids (storageKeyPath), so none escapes the prefix.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { ByteSource } from '../../http/HttpServer.js';
import { ConfigError } from '../../config/loadConfig.js';
import type { Logger } from '../../telemetry/logger.js';
import { VOICE_MESSAGE_ID_PATTERN } from '../../../protocol/patterns.js';
import { isS3NotFound, s3Call, s3Unavailability, StorageUnavailableError, toStorageError } from './s3Errors.js';
import type { S3Location } from './s3Client.js';
import { checkStorageWritable } from './storageDirectory.js';
import { fileExists, InvalidStorageKeyError, storageKeyPath, type StorageKey, type VoiceStorage } from './VoiceStorage.js';

/** The Content-Type of stored messages (and of presigned downloads). */
export const OGG_OPUS_OBJECT_TYPE = 'audio/ogg; codecs=opus';
/** Under the key prefix: checkpoints of live recordings. */
export const RECORDINGS_PREFIX = '.recordings/';
/** Under the key prefix: readiness probes. */
export const PROBES_PREFIX = '.probes/';
/** Under storage.dir: this node's work files. */
export const WORK_SUBDIR = '.work';
/** Multipart part size of commits (S3's minimum is 5 MiB; voice messages are mostly below
 * it, so one PUT). */
const DEFAULT_PART_SIZE_BYTES = 8 * 1024 * 1024;
/** Checkpoint deletions in flight at once (one recording hour is 1800 of them at 2 s). */
const DELETE_CONCURRENCY = 8;

export interface S3VoiceStorageOptions {
	location: S3Location;
	/** storage.dir: this node's work folder lives in its .work/ subfolder. */
	dir: string;
	/** storage.s3.presignedDownloadTtlS: 0 streams downloads through the node. */
	presignedDownloadTtlS?: number;
	/** Part size of multipart commits (tests make it small). */
	partSizeBytes?: number;
	log?: Logger;
}

/** How long one checkpoint PUT may take (a few seconds of Opus: tens of KiB). */
const CHECKPOINT_PUT_TIMEOUT_MS = 10_000;

export class S3VoiceStorage implements VoiceStorage {
	readonly backend = 's3' as const;
	readonly bucket: string;
	readonly keyPrefix: string;
	/** <storage.dir>/.work */
	readonly workRoot: string;
	readonly #client: S3Client;
	readonly #presignTtlS: number;
	readonly #partSizeBytes: number;
	readonly #log: Logger | undefined;

	constructor(o: S3VoiceStorageOptions) {
		this.#client = o.location.client;
		this.bucket = o.location.bucket;
		this.keyPrefix = o.location.keyPrefix;
		this.workRoot = path.join(path.resolve(o.dir), WORK_SUBDIR);
		this.#presignTtlS = o.presignedDownloadTtlS ?? 0;
		this.#partSizeBytes = o.partSizeBytes ?? DEFAULT_PART_SIZE_BYTES;
		this.#log = o.log;
	}

	/** The shared client (StorageAudit lists and moves objects with it). */
	get client(): S3Client {
		return this.#client;
	}

	/** `<prefix><owner>/<yyyymm>/<id>.ogg`; throws InvalidStorageKeyError for ids that are not ours. */
	objectKey(key: StorageKey): string {
		return this.keyPrefix + storageKeyPath(key);
	}

	/** `<prefix>.recordings/<id>/`: the folder of a recording's checkpoints. */
	checkpointPrefix(key: Pick<StorageKey, 'id'>): string {
		if (typeof key.id !== 'string' || !VOICE_MESSAGE_ID_PATTERN.test(key.id)) throw new InvalidStorageKeyError('invalid voice message id');
		return `${this.keyPrefix}${RECORDINGS_PREFIX}${key.id}/`;
	}

	/** The work file's path (without creating its folder). */
	workFile(key: StorageKey): string {
		const file = path.join(this.workRoot, ...storageKeyPath(key).split('/'));
		if (!file.startsWith(this.workRoot + path.sep)) throw new InvalidStorageKeyError('path escapes the work folder');
		return file;
	}

	async workPath(key: StorageKey): Promise<string> {
		const file = this.workFile(key);
		await mkdir(path.dirname(file), { recursive: true });
		return file;
	}

	async commit(key: StorageKey): Promise<void> {
		const file = this.workFile(key);
		const Key = this.objectKey(key);
		const upload = new Upload({
			client: this.#client,
			params: { Bucket: this.bucket, Key, Body: createReadStream(file), ContentType: OGG_OPUS_OBJECT_TYPE },
			partSize: this.#partSizeBytes,
			queueSize: 2,
			// A failed multipart upload is aborted, so no orphaned parts stay behind.
			leavePartsOnError: false,
		});
		await s3Call('upload', () => upload.done());
		// Only now is the object the stored copy: the checkpoints and the work file can go.
		await this.#removeCheckpoints(key);
		await rm(file, { force: true });
	}

	async putCheckpoint(key: StorageKey, index: number, offset: number, bytes: Buffer): Promise<void> {
		if (!Number.isSafeInteger(index) || index < 0 || index > 99_999_999) throw new RangeError(`checkpoint index ${index} out of range`);
		if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`checkpoint offset ${offset} out of range`);
		storageKeyPath(key); // the whole key is checked, as for the object it becomes
		const Key = `${this.checkpointPrefix(key)}${String(index).padStart(8, '0')}`;
		await s3Call('checkpoint put', () =>
			this.#client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: bytes, ContentLength: bytes.length, ContentType: 'application/octet-stream', Metadata: { offset: String(offset) } }), {
				// One checkpoint is in flight at a time: a PUT stuck on a connection the server
				// dropped must not hold back every later one for the client's minute-long idle
				// timeout; it is abandoned and the checkpointer retries from the same offset.
				abortSignal: AbortSignal.timeout(CHECKPOINT_PUT_TIMEOUT_MS),
			}),
		);
	}

	async fetchToWorkPath(key: StorageKey): Promise<string | undefined> {
		const file = this.workFile(key);
		if (await fileExists(file)) return file;
		await mkdir(path.dirname(file), { recursive: true });
		// Written beside, then renamed: a crash or an outage mid-way leaves no partial work file
		// that would be taken for the whole one.
		const temp = `${file}.${randomBytes(6).toString('hex')}.part`;
		try {
			if (await this.#download(this.objectKey(key), temp)) {
				await rename(temp, file);
				return file;
			}
			if (await this.#assembleCheckpoints(key, temp)) {
				await rename(temp, file);
				return file;
			}
			return undefined;
		} finally {
			await rm(temp, { force: true });
		}
	}

	/** GETs an object into `file`, streamed to disk. False when there is no such object. */
	async #download(objectKey: string, file: string): Promise<boolean> {
		let body: Readable;
		try {
			const res = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }));
			body = res.Body as Readable;
		} catch (err) {
			if (isS3NotFound(err)) return false;
			throw toStorageError('download', err);
		}
		await s3Call('download', () => pipeline(body, createWriteStream(file)));
		return true;
	}

	/**
	 * Concatenates a recording's checkpoints in index order into `file`: from index 0, up to
	 * the first missing index or the first whose offset does not continue the bytes so far
	 * (what follows a gap cannot be placed). False when there is no checkpoint 0.
	 */
	async #assembleCheckpoints(key: StorageKey, file: string): Promise<boolean> {
		const indexes = await this.#checkpointIndexes(key);
		if (indexes[0] !== 0) return false;
		const prefix = this.checkpointPrefix(key);
		const out = await open(file, 'w');
		let written = 0;
		let used = 0;
		try {
			for (const [i, index] of indexes.entries()) {
				if (index !== i) {
					this.#log?.warn({ voiceMessageId: key.id, missingIndex: i, checkpoints: indexes.length }, 'recording checkpoints have a gap; assembled up to it');
					break;
				}
				const res = await s3Call('checkpoint get', () => this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: `${prefix}${String(index).padStart(8, '0')}` })));
				const offset = Number(res.Metadata?.offset);
				if (offset !== written) {
					(res.Body as Readable | undefined)?.destroy();
					this.#log?.warn({ voiceMessageId: key.id, index, offset: res.Metadata?.offset, expected: written }, 'recording checkpoint does not continue the bytes before it; assembled up to it');
					break;
				}
				await s3Call('checkpoint get', async () => {
					for await (const chunk of res.Body as Readable) {
						await out.write(chunk as Buffer);
						written += (chunk as Buffer).length;
					}
				});
				used++;
			}
		} finally {
			await out.close();
		}
		return used > 0;
	}

	/** The indexes of a recording's checkpoints, ascending (non-checkpoint names ignored). */
	async #checkpointIndexes(key: StorageKey): Promise<number[]> {
		const prefix = this.checkpointPrefix(key);
		const indexes: number[] = [];
		for await (const object of this.#list(prefix, 'checkpoint list')) {
			const name = object.key.slice(prefix.length);
			if (/^\d{8}$/.test(name)) indexes.push(Number(name));
		}
		return indexes.sort((a, b) => a - b);
	}

	/** Every object under `prefix`, page by page. */
	async *#list(prefix: string, operation: string): AsyncGenerator<{ key: string; size: number; lastModified: Date | undefined }> {
		let token: string | undefined;
		do {
			const page = await s3Call(operation, () => this.#client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ...(token && { ContinuationToken: token }) })));
			for (const o of page.Contents ?? []) if (o.Key) yield { key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified };
			token = page.IsTruncated ? page.NextContinuationToken : undefined;
		} while (token);
	}

	async #removeCheckpoints(key: StorageKey): Promise<void> {
		const keys: string[] = [];
		for await (const object of this.#list(this.checkpointPrefix(key), 'checkpoint list')) keys.push(object.key);
		await this.#deleteAll(keys, 'checkpoint delete');
	}

	/** DeleteObject per key, a few at a time (DeleteObjects needs Content-MD5, which not every
	 * S3-compatible server takes in the SDK's newer checksum form). */
	async #deleteAll(keys: string[], operation: string): Promise<void> {
		let next = 0;
		const worker = async (): Promise<void> => {
			while (next < keys.length) {
				const Key = keys[next++]!;
				await s3Call(operation, () => this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })));
			}
		};
		await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, keys.length) }, worker));
	}

	async size(key: StorageKey): Promise<number | undefined> {
		return (await this.#head(this.objectKey(key)))?.size;
	}

	async #head(objectKey: string): Promise<{ size: number; etag: string | undefined } | undefined> {
		try {
			const res = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
			return { size: res.ContentLength ?? 0, etag: res.ETag };
		} catch (err) {
			if (isS3NotFound(err)) return undefined;
			throw toStorageError('head', err);
		}
	}

	async openRead(key: StorageKey): Promise<{ handle: ByteSource; size: number } | undefined> {
		const objectKey = this.objectKey(key);
		const head = await this.#head(objectKey);
		if (!head) return undefined;
		return { handle: new S3ObjectSource(this.#client, this.bucket, objectKey, head.size), size: head.size };
	}

	async downloadUrl(key: StorageKey): Promise<string | undefined> {
		if (this.#presignTtlS <= 0) return undefined;
		// Signing is local (no request): S3 being away shows when the client follows the link.
		return getSignedUrl(this.#client, new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), ResponseContentType: OGG_OPUS_OBJECT_TYPE }), { expiresIn: this.#presignTtlS });
	}

	async remove(key: StorageKey): Promise<void> {
		const objectKey = this.objectKey(key);
		await s3Call('delete', () => this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey })));
		await this.#removeCheckpoints(key);
		await rm(this.workFile(key), { force: true });
	}

	/** The work folder takes durable writes (recordings and the spool live there), and a small
	 * PUT and DELETE prove the credentials, the bucket and write access. */
	async checkWritable(): Promise<void> {
		await checkStorageWritable(this.workRoot);
		const Key = `${this.keyPrefix}${PROBES_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
		await s3Call('readiness probe put', () => this.#client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: 'ok', ContentLength: 2 })));
		await s3Call('readiness probe delete', () => this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })));
	}

	/**
	 * At startup: a bucket, key or secret that S3 says is wrong is a ConfigError naming the
	 * option (the process exits 78: restarting will not help). An endpoint that does not answer
	 * (or fails on its side) may be transient: resolves with the error so the node starts
	 * anyway, logs it, and /readyz stays 503 until S3 answers.
	 */
	async verifyConfig(): Promise<StorageUnavailableError | undefined> {
		try {
			// A listing (unlike HeadBucket) carries an error body, so S3 says which refusal it is.
			await s3Call('bucket check', () => this.#client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.keyPrefix, MaxKeys: 1 })));
			await this.checkWritable();
			return undefined;
		} catch (err) {
			const u = s3Unavailability(err);
			if (!u || !(err instanceof StorageUnavailableError)) throw err;
			if (u.kind !== 'refused') return err;
			throw configErrorFor(u.code, this.bucket, err);
		}
	}
}

/** The option to blame for a refusal S3 gave at startup. */
function configErrorFor(code: string | undefined, bucket: string, err: StorageUnavailableError): ConfigError {
	const detail = `(S3 answered ${code ?? `HTTP ${err.httpStatus ?? '?'}`})`;
	switch (code) {
		case 'NoSuchBucket':
			return new ConfigError(`storage.s3.bucket: bucket "${bucket}" does not exist ${detail}; create it first (Parley does not)`, ['storage.s3.bucket']);
		case 'InvalidAccessKeyId':
			return new ConfigError(`storage.s3.accessKeyId: the S3 server does not know this access key ${detail}`, ['storage.s3.accessKeyId']);
		case 'SignatureDoesNotMatch':
			// AWS says InvalidAccessKeyId for an unknown key; some servers (Swift's s3api) say this for both.
			return new ConfigError(
				`storage.s3.secretAccessKey: the S3 server rejected the request signature: the secret does not belong to the access key (or, on servers that do not tell them apart, storage.s3.accessKeyId is unknown) ${detail}`,
				['storage.s3.secretAccessKey', 'storage.s3.accessKeyId'],
			);
		case 'RequestTimeTooSkewed':
			return new ConfigError(`storage.s3.endpoint: the S3 server refuses requests because this machine's clock is off ${detail}`, ['storage.s3.endpoint']);
		default:
			return new ConfigError(`storage.s3.accessKeyId: the S3 server refuses this key access to bucket "${bucket}" (reading and writing are needed) ${detail}`, ['storage.s3.accessKeyId', 'storage.s3.bucket']);
	}
}

/**
 * An object read as a ByteSource: the first read(position) opens one ranged GET from there,
 * later reads continue the same body as far as they ask (the socket is read only as the
 * HTTP client drains); a read elsewhere reopens. close() destroys the body.
 */
export class S3ObjectSource implements ByteSource {
	readonly #client: S3Client;
	readonly #bucket: string;
	readonly #key: string;
	readonly #size: number;
	#body: Readable | undefined;
	#chunks: AsyncIterator<Buffer> | undefined;
	#leftover: Buffer = Buffer.alloc(0);
	/** Where the next byte of #body is in the object. */
	#position = -1;
	#closed = false;
	/** GETs opened (tests check a sequential read opens one). */
	opens = 0;

	constructor(client: S3Client, bucket: string, key: string, size: number) {
		this.#client = client;
		this.#bucket = bucket;
		this.#key = key;
		this.#size = size;
	}

	async read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
		if (this.#closed) throw new Error('S3ObjectSource is closed');
		if (length <= 0 || position >= this.#size) return { bytesRead: 0 };
		if (!this.#chunks || position !== this.#position) await this.#open(position);
		let filled = 0;
		while (filled < length) {
			if (this.#leftover.length === 0) {
				const chunks = this.#chunks!;
				const next = await s3Call('download', () => chunks.next());
				if (next.done) break;
				this.#leftover = next.value;
			}
			const n = Math.min(length - filled, this.#leftover.length);
			this.#leftover.copy(buffer, offset + filled, 0, n);
			this.#leftover = this.#leftover.subarray(n);
			filled += n;
		}
		this.#position += filled;
		return { bytesRead: filled };
	}

	async #open(position: number): Promise<void> {
		this.#dropBody();
		const res = await s3Call('download', () => this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key, Range: `bytes=${position}-` })));
		this.opens++;
		const body = res.Body as Readable;
		// The object changed since HEAD gave its size: the reply's Content-Length would lie.
		const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
		if (total !== undefined && Number(total) !== this.#size) {
			body.destroy();
			throw new Error(`S3 object ${this.#key} changed size while being read (${this.#size} -> ${total})`);
		}
		if (this.#closed) {
			body.destroy();
			throw new Error('S3ObjectSource is closed');
		}
		this.#body = body;
		this.#chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
		this.#position = position;
	}

	#dropBody(): void {
		this.#body?.destroy();
		this.#body = undefined;
		this.#chunks = undefined;
		this.#leftover = Buffer.alloc(0);
	}

	async close(): Promise<void> {
		this.#closed = true;
		this.#dropBody();
	}
}
