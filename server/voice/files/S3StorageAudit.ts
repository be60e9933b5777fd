// The startup storage audit for storage.backend s3 (StorageAudit runs it for an
// S3VoiceStorage): the same promises as on disk, with objects for files.
//   (a) a ready message whose object is missing, or whose size differs (or, with
//       voice.auditHashAll, whose sha256 does), is marked failed with the reason;
//   (b) a message-shaped object (<prefix><owner>/<yyyymm>/<id>.ogg) no message owns is moved
//       to <prefix>.orphans/<owner>/<yyyymm>/<id>.ogg (CopyObject, then DeleteObject) and
//       listed in the log: never deleted, it may be the only copy of something;
//   (c) leftovers are removed: checkpoints (<prefix>.recordings/<id>/) of messages that are
//       finished (ready, failed) or gone, readiness probes, multipart uploads of message keys
//       that a crash left open for over a day (lib-storage aborts the ones that fail), and
//       this node's work files (<storage.dir>/.work) of messages that are finished or gone.
//       Work files of messages still processing are the local spool: kept.
// What is written after this process started is never a leftover. The guards are the disk's:
// when most of what is checked looks lost (the wrong bucket, prefix or database) nothing is
// changed; with a shared store (a cluster) findings are reported and only leftovers older than
// two hours are removed (another node may be working on younger ones).
import { createHash } from 'node:crypto';
import { stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { AbortMultipartUploadCommand, CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { VOICE_MESSAGE_ID_PATTERN } from '../../../protocol/patterns.js';
import type { VoiceMessage } from '../voiceMessage.js';
import { isS3NotFound, s3Call, toStorageError } from './s3Errors.js';
import { PROBES_PREFIX, RECORDINGS_PREFIX, type S3VoiceStorage } from './S3VoiceStorage.js';
import { BATCH, DAMAGED_REASON, entries, MAX_ORPHANS_PER_RUN, MISSING_REASON, ORPHANS_SUBDIR, suspicious, type StorageAuditOptions, type StorageAuditReport } from './storageAuditReport.js';

const SHARED_STALE_MS = 2 * 3_600_000;
/** An open multipart upload of a message key this old is abandoned (commits take seconds). */
const STALE_MULTIPART_MS = 24 * 3_600_000;
const ID = VOICE_MESSAGE_ID_PATTERN.source.slice(1, -1);
/** `<owner>/<yyyymm>/<id>.ogg` after the prefix. */
const MESSAGE_KEY = new RegExp(`^([A-Za-z0-9][A-Za-z0-9._@-]{0,127})/(\\d{6})/(${ID})\\.ogg$`);
const WORK_FILE = new RegExp(`^(${ID})\\.ogg$`);
const WORK_TEMP = new RegExp(`^${ID}\\.ogg\\.[0-9a-f]{12}\\.part$`);

export class S3StorageAudit {
	readonly #o: StorageAuditOptions;
	readonly #s3: S3VoiceStorage;
	readonly #r: StorageAuditReport;
	#seen = 0;

	constructor(options: StorageAuditOptions, storage: S3VoiceStorage, report: StorageAuditReport) {
		this.#o = options;
		this.#s3 = storage;
		this.#r = report;
	}

	async run(): Promise<void> {
		await this.#checkReadyMessages();
		await this.#walkObjects();
		await this.#abortStaleMultipart();
		await this.#cleanWorkFolder();
	}

	async #tick(): Promise<void> {
		if (++this.#seen % BATCH === 0) {
			this.#o.signal?.throwIfAborted();
			await yieldToEventLoop();
		}
	}

	/** What may be removed as a leftover: written before this process started (shared: hours ago). */
	#stale(modifiedMs: number | undefined): boolean {
		if (modifiedMs === undefined) return false;
		return modifiedMs < (this.#o.shared ? Date.now() - SHARED_STALE_MS : this.#o.startedAtMs);
	}

	// ---- (a) ready messages ------------------------------------------------------------

	async #checkReadyMessages(): Promise<void> {
		const r = this.#r;
		const lost: { message: VoiceMessage; reason: string }[] = [];
		for (const m of await this.#o.store.listByStatus('ready')) {
			await this.#tick();
			r.readyChecked++;
			const problem = await this.#checkObject(m).catch((err: unknown) => {
				r.errors++;
				this.#o.log.warn({ err, voiceMessageId: m.id }, 'storage audit: cannot check the object of a ready message');
				return undefined;
			});
			if (problem === 'missing') r.missing++;
			if (problem === 'damaged') r.damaged++;
			if (problem) lost.push({ message: m, reason: problem === 'missing' ? MISSING_REASON : DAMAGED_REASON });
		}
		if (lost.length === 0) return;
		for (const { message, reason } of lost.slice(0, 20)) this.#o.log.warn({ voiceMessageId: message.id, ownerId: message.ownerId, key: this.#s3.objectKey(message), reason }, 'storage audit: ready message without a good object');
		if (this.#o.shared) return;
		if (suspicious(lost.length, r.readyChecked)) {
			r.repaired = false;
			this.#o.log.error({ lost: lost.length, readyChecked: r.readyChecked, bucket: this.#s3.bucket, keyPrefix: this.#s3.keyPrefix }, 'storage audit: most ready messages have no good object; is this the right bucket and prefix? Nothing marked failed');
			return;
		}
		for (const { message, reason } of lost) {
			this.#o.signal?.throwIfAborted();
			try {
				if (await this.#o.store.update(message.id, { status: 'failed', failureReason: reason })) r.markedFailed++;
			} catch (err) {
				r.errors++;
				this.#o.log.error({ err, voiceMessageId: message.id }, 'storage audit: cannot mark a message failed');
			}
		}
	}

	async #checkObject(m: VoiceMessage): Promise<'missing' | 'damaged' | undefined> {
		const Key = this.#s3.objectKey(m);
		let size: number;
		try {
			const head = await this.#s3.client.send(new HeadObjectCommand({ Bucket: this.#s3.bucket, Key }));
			size = head.ContentLength ?? 0;
		} catch (err) {
			if (isS3NotFound(err)) return 'missing';
			throw toStorageError('audit head', err);
		}
		if (m.sizeBytes !== undefined && size !== m.sizeBytes) return 'damaged';
		// Hashing downloads the object: only when asked to (voice.auditHashAll).
		if (m.sha256 === undefined || !this.#o.hashAll) return undefined;
		const res = await s3Call('audit get', () => this.#s3.client.send(new GetObjectCommand({ Bucket: this.#s3.bucket, Key })));
		const hash = createHash('sha256');
		await s3Call('audit get', async () => {
			for await (const chunk of res.Body as Readable) hash.update(chunk as Buffer);
		});
		this.#r.hashed++;
		return hash.digest('hex') === m.sha256 ? undefined : 'damaged';
	}

	// ---- (b) orphans, (c) checkpoints and probes ----------------------------------------

	async #walkObjects(): Promise<void> {
		const prefix = this.#s3.keyPrefix;
		const orphans: { key: string; rest: string }[] = [];
		let tooMany = false;
		/** Checkpoint folders already judged: message id -> remove its objects? */
		const checkpointVerdict = new Map<string, boolean>();
		const leftovers: string[] = [];
		for await (const o of this.#list(prefix)) {
			await this.#tick();
			const rest = o.key.slice(prefix.length);
			if (rest.startsWith(RECORDINGS_PREFIX)) {
				const id = rest.slice(RECORDINGS_PREFIX.length).split('/')[0] ?? '';
				if (!VOICE_MESSAGE_ID_PATTERN.test(id)) continue;
				let remove = checkpointVerdict.get(id);
				if (remove === undefined) {
					remove = await this.#checkpointsFinished(id);
					checkpointVerdict.set(id, remove);
				}
				if (remove && this.#stale(o.lastModifiedMs)) leftovers.push(o.key);
				continue;
			}
			if (rest.startsWith(PROBES_PREFIX)) {
				if (this.#stale(o.lastModifiedMs)) leftovers.push(o.key);
				continue;
			}
			// .uploads/ (the upload store's), .orphans/ and anything else dotted are not messages.
			const match = MESSAGE_KEY.exec(rest);
			if (!match) continue;
			this.#r.files++;
			if (await this.#isOrphan(match[3]!, o.key)) {
				this.#r.orphans++;
				if (orphans.length < MAX_ORPHANS_PER_RUN) orphans.push({ key: o.key, rest });
				else tooMany = true;
			}
		}
		for (const key of leftovers) {
			this.#o.signal?.throwIfAborted();
			await this.#delete(key);
		}
		if (orphans.length === 0) return;
		for (const { key } of orphans.slice(0, 20)) this.#o.log.warn({ key }, 'storage audit: object without a voice message');
		if (this.#o.shared) return;
		if (tooMany || suspicious(this.#r.orphans, this.#r.files)) {
			this.#r.repaired = false;
			this.#o.log.error({ orphans: this.#r.orphans, files: this.#r.files, bucket: this.#s3.bucket, keyPrefix: prefix }, 'storage audit: most objects have no voice message; is this the right database? Nothing moved');
			return;
		}
		for (const orphan of orphans) {
			this.#o.signal?.throwIfAborted();
			await this.#quarantine(orphan.key, orphan.rest).catch((err: unknown) => {
				this.#r.errors++;
				this.#o.log.error({ err, key: orphan.key }, 'storage audit: cannot move an orphan object');
			});
		}
	}

	/** True when a recording's checkpoints are no longer needed: its message is finished or gone. */
	async #checkpointsFinished(id: string): Promise<boolean> {
		try {
			const m = await this.#o.store.get(id);
			return !m || m.status === 'ready' || m.status === 'failed';
		} catch (err) {
			this.#r.errors++;
			this.#o.log.warn({ err, voiceMessageId: id }, 'storage audit: cannot look up the message of checkpoints');
			return false;
		}
	}

	async #isOrphan(id: string, key: string): Promise<boolean> {
		try {
			const m = await this.#o.store.get(id);
			return !m || this.#s3.objectKey(m) !== key;
		} catch (err) {
			// A store that cannot answer proves nothing: keep the object.
			this.#r.errors++;
			this.#o.log.warn({ err, voiceMessageId: id }, "storage audit: cannot look up an object's voice message");
			return false;
		}
	}

	async #quarantine(key: string, rest: string): Promise<void> {
		const { bucket, keyPrefix, client } = this.#s3;
		let target = `${keyPrefix}${ORPHANS_SUBDIR}/${rest}`;
		// Never overwrite an earlier quarantined copy.
		const taken = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: target })).then(
			() => true,
			(err: unknown) => {
				if (isS3NotFound(err)) return false;
				throw toStorageError('audit head', err);
			},
		);
		if (taken) target = `${target}.${Date.now()}`;
		const copySource = `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
		try {
			await client.send(new CopyObjectCommand({ Bucket: bucket, Key: target, CopySource: copySource }));
		} catch (err) {
			if (isS3NotFound(err)) return; // deleted meanwhile
			throw toStorageError('audit copy', err);
		}
		await s3Call('audit delete', () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
		this.#r.quarantined++;
		this.#o.log.warn({ key, movedTo: target }, 'storage audit: orphan object quarantined');
	}

	async #delete(key: string): Promise<void> {
		try {
			await s3Call('audit delete', () => this.#s3.client.send(new DeleteObjectCommand({ Bucket: this.#s3.bucket, Key: key })));
			this.#r.tempRemoved++;
		} catch (err) {
			this.#r.errors++;
			this.#o.log.warn({ err, key }, 'storage audit: cannot remove a leftover object');
		}
	}

	async *#list(prefix: string): AsyncGenerator<{ key: string; lastModifiedMs: number | undefined }> {
		let token: string | undefined;
		do {
			const page = await s3Call('audit list', () => this.#s3.client.send(new ListObjectsV2Command({ Bucket: this.#s3.bucket, Prefix: prefix, ...(token && { ContinuationToken: token }) })));
			for (const o of page.Contents ?? []) if (o.Key) yield { key: o.Key, lastModifiedMs: o.LastModified?.getTime() };
			token = page.IsTruncated ? page.NextContinuationToken : undefined;
		} while (token);
	}

	// ---- (c) abandoned multipart uploads of message keys ---------------------------------

	async #abortStaleMultipart(): Promise<void> {
		const { bucket, keyPrefix, client } = this.#s3;
		let keyMarker: string | undefined;
		let uploadIdMarker: string | undefined;
		do {
			const page = await s3Call('audit list multipart', () =>
				client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: keyPrefix, ...(keyMarker && { KeyMarker: keyMarker }), ...(uploadIdMarker && { UploadIdMarker: uploadIdMarker }) })),
			);
			for (const u of page.Uploads ?? []) {
				await this.#tick();
				// Only message keys: staged tus uploads (.uploads/) belong to the upload store.
				if (!u.Key || !u.UploadId || !MESSAGE_KEY.test(u.Key.slice(keyPrefix.length))) continue;
				const startedMs = u.Initiated?.getTime();
				if (startedMs === undefined || startedMs > Date.now() - STALE_MULTIPART_MS) continue;
				try {
					await s3Call('audit abort multipart', () => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId })));
					this.#r.tempRemoved++;
					this.#o.log.warn({ key: u.Key, initiated: u.Initiated }, 'storage audit: abandoned multipart upload aborted');
				} catch (err) {
					this.#r.errors++;
					this.#o.log.warn({ err, key: u.Key }, 'storage audit: cannot abort a multipart upload');
				}
			}
			keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
			uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
		} while (keyMarker);
	}

	// ---- (c) this node's work folder ---------------------------------------------------

	async #cleanWorkFolder(): Promise<void> {
		const root = this.#s3.workRoot;
		for await (const owner of entries(root)) {
			if (!owner.isDirectory() || owner.name.startsWith('.')) continue;
			for await (const month of entries(path.join(root, owner.name))) {
				if (!month.isDirectory() || !/^\d{6}$/.test(month.name)) continue;
				const dir = path.join(root, owner.name, month.name);
				for await (const entry of entries(dir)) {
					await this.#tick();
					if (!entry.isFile()) continue;
					const file = path.join(dir, entry.name);
					const id = WORK_FILE.exec(entry.name)?.[1];
					if (!id && !WORK_TEMP.test(entry.name)) continue;
					// Work files of unfinished messages are recordings in progress or the spool.
					if (id && !(await this.#checkpointsFinished(id))) continue;
					const info = await stat(file).catch(() => undefined);
					// Local files: this node alone writes them, so "before this start" is safe even in a cluster.
					if (!info || Math.max(info.mtimeMs, info.ctimeMs) >= this.#o.startedAtMs) continue;
					await unlink(file).then(
						() => this.#r.tempRemoved++,
						(err: unknown) => {
							if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
							this.#r.errors++;
							this.#o.log.warn({ err, file }, 'storage audit: cannot remove a leftover work file');
						},
					);
				}
			}
		}
	}
}


