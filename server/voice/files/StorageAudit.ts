// The startup check that voice-message metadata and files agree, both ways:
//   (a) a message marked ready whose file is missing, or whose size (or sha256) no longer
//       matches, is marked failed with the reason: a ready message must be playable, and
//       recipients asking for it learn why it is not instead of getting a 404;
//   (b) an .ogg file under storage that no message owns is moved to <storage>/.orphans/
//       (same relative path), never deleted: it may be the only copy of something;
//   (c) temp files of interrupted work are removed: transcode outputs never renamed into place
//       (<id>.ogg.<hex>.part), readiness probes (.ready-probe-*), and an upload's accepted
//       input (.uploads/<id>.part.accepted) once its message is no longer being converted.
// It runs in the background after startup (the node serves meanwhile), walks the directory
// tree with streaming readdir (memory does not grow with the number of files), yields to the
// event loop between batches, and stops early when aborted (shutdown). With storage.backend
// s3 the same checks run against the bucket (S3StorageAudit.ts: objects for files, orphans
// moved under <prefix>.orphans/, stale checkpoints, probes and work files removed).
//
// What makes it safe while the node serves: a message's record is written before its file
// and removed after it, so a file found before its record is looked up always has one unless
// it is an orphan; temp files count as leftovers only when nothing of this process can be
// writing them (older than the process on a single node).
//
// Two guards keep a mistake from doing damage: when most of what is checked looks lost
// (storage not mounted, or the database of another install), nothing is changed and the
// finding is reported. And with a shared store (a cluster) nothing is changed at all: other
// nodes write the same store and the same shared directory, and one node's view of a mount
// is no proof that a file is gone for everyone; only temp files older than a couple of hours
// (longer than any job lasts) are removed.
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from '../../telemetry/logger.js';
import type { VoiceMessageStore } from '../store/VoiceMessageStore.js';
import { fileExists, sha256File, type LocalVoiceStorage } from './VoiceStorage.js';
import type { S3VoiceStorage } from './S3VoiceStorage.js';
import { S3StorageAudit } from './S3StorageAudit.js';
import { type VoiceMessage } from '../voiceMessage.js';
import { VOICE_MESSAGE_ID_PATTERN } from '../../../protocol/patterns.js';
import { READY_PROBE_PREFIX } from './storageDirectory.js';
import { ACCEPTED_UPLOAD_SUFFIX } from '../VoiceMessageService.js';

/** Quarantine for orphan files, under the storage root (user ids never start with a dot). */
export * from './storageAuditReport.js';
import { acceptedInputId, entries, suspicious, SHARED_STALE_TEMP_MS,SUSPICIOUS_SHARE,SUSPICIOUS_MIN,MAX_ORPHANS_PER_RUN,BATCH,MTIME_SLACK_MS,OGG_FILE,TRANSCODE_TEMP,YYYYMM, DAMAGED_REASON, MISSING_REASON, ORPHANS_SUBDIR, type StorageAuditOptions, type StorageAuditReport } from './storageAuditReport.js';

export class StorageAudit {
	readonly #o: StorageAuditOptions;
	readonly #report: StorageAuditReport = {
		readyChecked: 0,
		missing: 0,
		damaged: 0,
		markedFailed: 0,
		hashed: 0,
		files: 0,
		orphans: 0,
		quarantined: 0,
		tempRemoved: 0,
		errors: 0,
		repaired: true,
		aborted: false,
		durationMs: 0,
	};

	private constructor(options: StorageAuditOptions) {
		this.#o = options;
	}

	/** Runs the whole audit once; never rejects (failures are counted and logged). */
	static async run(options: StorageAuditOptions): Promise<StorageAuditReport> {
		return new StorageAudit(options).#run();
	}

	async #run(): Promise<StorageAuditReport> {
		const started = performance.now();
		const r = this.#report;
		const log = this.#o.log;
		if (this.#o.shared) r.repaired = false;
		try {
			if (this.#o.storage.backend === 's3') await new S3StorageAudit(this.#o, this.#o.storage, r).run();
			else {
				await this.#checkReadyMessages();
				await this.#walkStorage();
			}
			await this.#cleanAcceptedInputs();
		} catch (err) {
			if (!this.#o.signal?.aborted) {
				r.errors++;
				log.error({ err }, 'storage audit stopped by an error');
			}
		}
		r.aborted = this.#o.signal?.aborted === true;
		r.durationMs = Math.round(performance.now() - started);
		const level = r.missing + r.damaged + r.orphans + r.errors > 0 ? 'warn' : 'info';
		log[level]({ ...r, shared: this.#o.shared }, 'storage audit finished');
		return r;
	}

	/** The disk storage (the walk below runs only for it). */
	get #disk(): LocalVoiceStorage {
		return this.#o.storage as LocalVoiceStorage;
	}

	#stopIfAborted(): void {
		this.#o.signal?.throwIfAborted();
	}

	// ---- (a) ready messages whose file is missing or damaged ---------------------------

	async #checkReadyMessages(): Promise<void> {
		const r = this.#report;
		const lost: { message: VoiceMessage; reason: string }[] = [];
		let i = 0;
		for (const m of await this.#o.store.listByStatus('ready')) {
			if (++i % BATCH === 0) {
				this.#stopIfAborted();
				await yieldToEventLoop();
			}
			r.readyChecked++;
			const problem = await this.#checkFile(m).catch((err: unknown) => {
				r.errors++;
				this.#o.log.warn({ err, voiceMessageId: m.id }, 'storage audit: cannot check the file of a ready message');
				return undefined;
			});
			if (problem === 'missing') r.missing++;
			if (problem === 'damaged') r.damaged++;
			if (problem) lost.push({ message: m, reason: problem === 'missing' ? MISSING_REASON : DAMAGED_REASON });
		}
		if (lost.length === 0) return;
		for (const { message, reason } of lost.slice(0, 20)) this.#o.log.warn({ voiceMessageId: message.id, ownerId: message.ownerId, reason }, 'storage audit: ready message without a good file');
		if (this.#o.shared) return;
		if (suspicious(lost.length, r.readyChecked)) {
			r.repaired = false;
			this.#o.log.error(
				{ lost: lost.length, readyChecked: r.readyChecked, storageDir: this.#disk.root },
				'storage audit: most ready messages have no good file; is storage mounted? Nothing marked failed',
			);
			return;
		}
		for (const { message, reason } of lost) {
			this.#stopIfAborted();
			try {
				const updated = await this.#o.store.update(message.id, { status: 'failed', failureReason: reason });
				if (updated) r.markedFailed++;
			} catch (err) {
				r.errors++;
				this.#o.log.error({ err, voiceMessageId: message.id }, 'storage audit: cannot mark a message failed');
			}
		}
	}

	async #checkFile(m: VoiceMessage): Promise<'missing' | 'damaged' | undefined> {
		const file = this.#disk.pathOf(m);
		const info = await stat(file).catch((err: unknown) => {
			if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
			throw err;
		});
		if (!info) return 'missing';
		if (m.sizeBytes !== undefined && info.size !== m.sizeBytes) return 'damaged';
		if (m.sha256 === undefined) return undefined;
		if (!this.#o.hashAll && info.mtimeMs <= m.updatedAt + MTIME_SLACK_MS) return undefined;
		this.#report.hashed++;
		return (await sha256File(file)) === m.sha256 ? undefined : 'damaged';
	}

	// ---- (b) orphan files, (c) temp files under storage --------------------------------

	async #walkStorage(): Promise<void> {
		const root = this.#disk.root;
		const orphans: string[] = [];
		let tooMany = false;
		let seen = 0;
		const tick = async (): Promise<void> => {
			if (++seen % BATCH === 0) {
				this.#stopIfAborted();
				await yieldToEventLoop();
			}
		};
		for await (const top of entries(root)) {
			await tick();
			const topPath = path.join(root, top.name);
			if (top.isFile() && top.name.startsWith(READY_PROBE_PREFIX)) {
				await this.#removeIfStale(topPath);
				continue;
			}
			// .uploads, .orphans and anything else hidden are not user folders.
			if (!top.isDirectory() || top.name.startsWith('.')) continue;
			for await (const month of entries(topPath)) {
				await tick();
				if (!month.isDirectory() || !YYYYMM.test(month.name)) continue;
				const monthPath = path.join(topPath, month.name);
				for await (const entry of entries(monthPath)) {
					await tick();
					if (!entry.isFile()) continue;
					const file = path.join(monthPath, entry.name);
					if (TRANSCODE_TEMP.test(entry.name)) {
						await this.#removeIfStale(file);
						continue;
					}
					const id = OGG_FILE.exec(entry.name)?.[1];
					if (!id) continue;
					this.#report.files++;
					if (await this.#isOrphan(id, file)) {
						this.#report.orphans++;
						if (orphans.length < MAX_ORPHANS_PER_RUN) orphans.push(file);
						else tooMany = true;
					}
				}
			}
		}
		if (orphans.length === 0) return;
		for (const file of orphans.slice(0, 20)) this.#o.log.warn({ file: path.relative(root, file) }, 'storage audit: file without a voice message');
		if (this.#o.shared) return;
		if (tooMany || suspicious(this.#report.orphans, this.#report.files)) {
			this.#report.repaired = false;
			this.#o.log.error(
				{ orphans: this.#report.orphans, files: this.#report.files, databaseFiles: 'voice.databasePath' },
				'storage audit: most files have no voice message; is this the right database? Nothing moved',
			);
			return;
		}
		for (const file of orphans) {
			this.#stopIfAborted();
			await this.#quarantine(file).catch((err: unknown) => {
				this.#report.errors++;
				this.#o.log.error({ err, file }, 'storage audit: cannot move an orphan file');
			});
		}
	}

	/** True when no message owns this file: no record, or a record whose file is elsewhere. */
	async #isOrphan(id: string, file: string): Promise<boolean> {
		try {
			const m = await this.#o.store.get(id);
			return !m || this.#disk.pathOf(m) !== file;
		} catch (err) {
			// A store that cannot answer proves nothing: keep the file.
			this.#report.errors++;
			this.#o.log.warn({ err, voiceMessageId: id }, 'storage audit: cannot look up a file\'s voice message');
			return false;
		}
	}

	async #quarantine(file: string): Promise<void> {
		const root = this.#disk.root;
		let target = path.join(root, ORPHANS_SUBDIR, path.relative(root, file));
		await mkdir(path.dirname(target), { recursive: true });
		// Never overwrite an earlier quarantined copy.
		if (await fileExists(target)) target = `${target}.${Date.now()}`;
		try {
			await rename(file, target);
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // deleted meanwhile
			throw err;
		}
		this.#report.quarantined++;
		this.#o.log.warn({ file: path.relative(root, file), movedTo: path.relative(root, target) }, 'storage audit: orphan file quarantined');
	}

	// ---- (c) accepted upload inputs ------------------------------------------------------

	async #cleanAcceptedInputs(): Promise<void> {
		let seen = 0;
		for await (const entry of entries(this.#o.uploadsDir)) {
			if (++seen % BATCH === 0) {
				this.#stopIfAborted();
				await yieldToEventLoop();
			}
			const id = acceptedInputId(entry.name);
			if (!id || !entry.isFile()) continue;
			// Kept while its message is being converted (recovery converts it again after a crash).
			const m = await this.#o.store.get(id).catch(() => 'unknown' as const);
			if (m === 'unknown' || m?.status === 'processing') continue;
			await this.#removeIfStale(path.join(this.#o.uploadsDir, entry.name));
		}
	}

	/** Removes a temp file nothing of this process (or, with a shared store, of any node) can
	 * still be writing. ctime too: a hard link (an accepted input) keeps the old mtime. */
	async #removeIfStale(file: string): Promise<void> {
		const info = await stat(file).catch(() => undefined);
		if (!info) return;
		const changedMs = Math.max(info.mtimeMs, info.ctimeMs);
		const staleBefore = this.#o.shared ? Date.now() - SHARED_STALE_TEMP_MS : this.#o.startedAtMs;
		if (changedMs >= staleBefore) return;
		try {
			await unlink(file);
			this.#report.tempRemoved++;
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
			this.#report.errors++;
			this.#o.log.warn({ err, file }, 'storage audit: cannot remove a temp file');
		}
	}
}



