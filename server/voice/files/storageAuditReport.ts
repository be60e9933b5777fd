// What the storage audits share (StorageAudit for the disk, S3StorageAudit for a bucket):
// their options, report and reasons, in a module of its own so neither imports the other back.
import type { Logger } from '../../telemetry/logger.js';
import type { VoiceMessageStore } from '../store/VoiceMessageStore.js';
import type { LocalVoiceStorage } from './VoiceStorage.js';
import type { S3VoiceStorage } from './S3VoiceStorage.js';
import type { Dirent } from 'node:fs';
import { opendir } from 'node:fs/promises';
import type { VoiceMessage } from '../voiceMessage.js';
import { VOICE_MESSAGE_ID_PATTERN } from '../../../protocol/patterns.js';
import { ACCEPTED_UPLOAD_SUFFIX } from '../VoiceMessageService.js';

export const ORPHANS_SUBDIR = '.orphans';
/** With a shared store, temp files younger than this may belong to another node's job
 * (transcodes and recordings last at most an hour: voice.transcodeTimeoutMs, maxDurationMs). */
export const SHARED_STALE_TEMP_MS = 2 * 3_600_000;
/** Guards: more lost than this share of what was checked (and at least this many) looks like
 * the wrong disk or database rather than lost files. */
export const SUSPICIOUS_SHARE = 0.5;
export const SUSPICIOUS_MIN = 20;
/** Orphans remembered for the move (beyond: counted, reported, not moved this time). */
export const MAX_ORPHANS_PER_RUN = 100_000;
/** Items between yields to the event loop. */
export const BATCH = 64;
/** mtime of a file is at most its message's updatedAt (written, then marked ready); this much
 * slack covers coarse or skewed file-system clocks. */
export const MTIME_SLACK_MS = 1000;

export const OGG_FILE = new RegExp(`^(${VOICE_MESSAGE_ID_PATTERN.source.slice(1, -1)})\\.ogg$`);
export const TRANSCODE_TEMP = /^[0-9a-f-]{36}\.ogg\.[0-9a-f]{12}\.part$/;
/** `<id>.part.accepted` in the uploads folder: the id, else undefined. */
export function acceptedInputId(name: string): string | undefined {
	const suffix = `.part${ACCEPTED_UPLOAD_SUFFIX}`;
	const id = name.endsWith(suffix) ? name.slice(0, -suffix.length) : '';
	return /^[0-9a-f-]{36}$/.test(id) ? id : undefined;
}
export const YYYYMM = /^\d{6}$/;

export const MISSING_REASON = 'The audio file of this voice message is missing from storage.';
export const DAMAGED_REASON = 'The stored audio file of this voice message is damaged (its size or checksum changed).';

export interface StorageAuditOptions {
	store: VoiceMessageStore;
	/** The disk, or a bucket (S3StorageAudit does the same checks with objects). */
	storage: LocalVoiceStorage | S3VoiceStorage;
	/** The upload server's directory (accepted inputs are kept there). */
	uploadsDir: string;
	/** The store is shared with other nodes (a cluster): report, change nothing but old temp files. */
	shared: boolean;
	/** Hash every ready file (reads the whole store); otherwise only files modified after their
	 * message became ready are hashed (a changed size is always caught). */
	hashAll: boolean;
	/** When this process started (ms since the epoch): what it writes is newer. */
	startedAtMs: number;
	log: Logger;
	signal?: AbortSignal;
}

export interface StorageAuditReport {
	/** Ready messages whose file was checked, and what was wrong with them. */
	readyChecked: number;
	missing: number;
	damaged: number;
	markedFailed: number;
	/** Hashes computed. */
	hashed: number;
	/** .ogg files found under storage; those no message owns; those moved to .orphans. */
	files: number;
	orphans: number;
	quarantined: number;
	tempRemoved: number;
	/** Operations that failed (unreadable entries, a store error); the audit goes on. */
	errors: number;
	/** False when a guard or a shared store kept the audit from changing anything. */
	repaired: boolean;
	/** Stopped early (shutdown). */
	aborted: boolean;
	durationMs: number;
}

/** Too much looks lost to be believed (the wrong disk, bucket or database): change nothing. */
export function suspicious(lost: number, checked: number): boolean {
	return lost >= SUSPICIOUS_MIN && lost > checked * SUSPICIOUS_SHARE;
}

/** A directory's entries, streamed (nothing when it does not exist). */
export async function* entries(dir: string): AsyncGenerator<Dirent> {
	let handle;
	try {
		handle = await opendir(dir, { bufferSize: 64 });
	} catch (err) {
		const code = (err as NodeJS.ErrnoException).code;
		if (code === 'ENOENT' || code === 'ENOTDIR') return;
		throw err;
	}
	// The iterator closes the handle when the loop ends or breaks.
	yield* handle;
}
