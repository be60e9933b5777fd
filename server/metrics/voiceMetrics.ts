// Metrics and spans for voice messages: the hooks VoiceMessageService and TusUploadServer
// call, and a wrapper that times (and traces) each ffmpeg job the service asks for.
import type { AudioTools, VoiceMessageEvents } from '../voice/VoiceMessageService.js';
import { TranscodeError } from '../voice/transcode/TranscodeError.js';
import type { UploadEvents } from '../voice/upload/TusUploadServer.js';
import type { StorageAuditReport } from '../voice/files/StorageAudit.js';
import { recordingEndReason, STORAGE_AUDIT_KINDS, type ParleyMetrics, type StorageOperation, type TranscodeOperation } from './metrics.js';
import { inSpan } from '../telemetry/tracing.js';

export function voiceMessageEvents(metrics: ParleyMetrics): VoiceMessageEvents {
	return {
		recordingStarted: () => metrics.recordingsStarted.inc(),
		recordingFinished: (result) => {
			metrics.recordingsFinished.inc({ reason: recordingEndReason(result.reason) });
			metrics.recordingDuration.observe(result.durationMs / 1000);
			metrics.recordingFramesRepaired.inc({ source: 'red' }, result.counts.framesFromRed ?? 0);
			metrics.recordingFramesRepaired.inc({ source: 'retransmission' }, result.counts.framesFromRetransmission ?? 0);
			metrics.recordingFramesMissing.inc(result.counts.packetsMissing);
			if (result.error) countStorageFailure(metrics, result.error);
		},
		messageFinished: (message) => {
			metrics.messagesFinished.inc({ source: message.source, status: message.status });
			if (message.status === 'ready') metrics.storageBytesWritten.inc(message.sizeBytes ?? 0);
			else if (message.source === 'upload') metrics.uploadsFailed.inc({ stage: 'processing' });
		},
		storageFailed: (error) => countStorageFailure(metrics, error),
	};
}

export function uploadEvents(metrics: ParleyMetrics): UploadEvents {
	return {
		created: () => metrics.uploadsStarted.inc(),
		resumed: () => metrics.uploadsResumed.inc(),
		received: (bytes) => metrics.uploadBytes.inc(bytes),
		completed: () => metrics.uploadsCompleted.inc(),
		completeFailed: () => metrics.uploadsFailed.inc({ stage: 'complete' }),
		expired: () => metrics.uploadsFailed.inc({ stage: 'expired' }),
		storageFailed: (error) => countStorageFailure(metrics, error),
	};
}

/** `tools` with every job timed, its failures counted by TranscodeError code, and a span. */
/** The startup storage audit's findings as parley_storage_audit_items{kind}. */
export function recordStorageAudit(metrics: ParleyMetrics, report: StorageAuditReport): void {
	const items: Record<(typeof STORAGE_AUDIT_KINDS)[number], number> = {
		ready_checked: report.readyChecked,
		missing: report.missing,
		damaged: report.damaged,
		marked_failed: report.markedFailed,
		files: report.files,
		orphans: report.orphans,
		quarantined: report.quarantined,
		temp_removed: report.tempRemoved,
		errors: report.errors,
	};
	for (const kind of STORAGE_AUDIT_KINDS) metrics.storageAuditItems.set({ kind }, items[kind]);
}

export function instrumentAudioTools(tools: AudioTools, metrics: ParleyMetrics): AudioTools {
	const run = <T>(operation: TranscodeOperation, job: () => Promise<T>, describe: (result: T) => Record<string, string | number | boolean>): Promise<T> =>
		inSpan(`voice.${operation}`, { 'parley.operation': operation }, async (span) => {
			const started = performance.now();
			try {
				const result = await job();
				span.setAttributes(describe(result));
				return result;
			} catch (err) {
				const reason = err instanceof TranscodeError ? err.code : 'other';
				metrics.transcodeFailures.inc({ operation, reason });
				// Committing the converted file (fsync, rename) on a full disk fails here.
				countStorageFailure(metrics, err);
				span.setAttribute('parley.failure', reason);
				throw err;
			} finally {
				metrics.transcodeDuration.observe({ operation }, (performance.now() - started) / 1000);
			}
		});
	return {
		waveform: (path) => run('waveform', () => tools.waveform(path), (bars) => ({ 'parley.bars': bars.length })),
		toOggOpus: (inputPath, outputPath) =>
			run(
				'transcode',
				() => tools.toOggOpus(inputPath, outputPath),
				(r) => ({ 'parley.detected_format': r.detectedFormat, 'parley.transcoded': r.transcoded, 'parley.duration_ms': Math.round(r.durationMs) }),
			),
	};
}

// ---- storage failures ------------------------------------------------------------------

/** Errors already counted: one failure passes several layers (the store, then the upload
 * server that answers 507 for it) and must be counted once. */
const countedErrors = new WeakSet<object>();

/** What a Node fs error (its syscall) or a SQLite error was doing; undefined for errors that
 * are not the disk's or the database's (bugs, bad input). */
export function storageOperationOf(err: unknown): StorageOperation | undefined {
	const e = err as { code?: unknown; syscall?: unknown; operation?: unknown } | undefined;
	if (typeof e?.code === 'string' && e.code.startsWith('SQLITE_')) return 'metadata';
	// S3 unreachable or refusing (StorageUnavailableError): there is no syscall, the operation
	// it names says which way the bytes went.
	if (e?.code === 'ES3UNAVAILABLE' && typeof e.operation === 'string') return /get|download|list|head|read/.test(e.operation) ? 'read' : 'write';
	if (typeof e?.syscall !== 'string') return undefined;
	switch (e.syscall) {
		case 'fsync':
		case 'fdatasync':
			return 'fsync';
		case 'rename':
			return 'rename';
		case 'read':
		case 'pread':
		case 'stat':
		case 'lstat':
		case 'fstat':
		case 'scandir':
		case 'opendir':
		case 'access':
			return 'read';
		case 'open':
			// Opening a stored file that is gone is a failed read; any other refusal to open
			// (full, read-only, not a directory) is a failed write.
			return e.code === 'ENOENT' ? 'read' : 'write';
		default:
			return 'write';
	}
}

/** Counts `err` once in parley_storage_failures_total, when it is a storage failure (or as
 * `operation` when given: the metadata store's errors are its own whatever their kind). */
export function countStorageFailure(metrics: ParleyMetrics, err: unknown, operation?: StorageOperation): void {
	const op = operation ?? storageOperationOf(err);
	if (!op) return;
	if (typeof err === 'object' && err !== null) {
		if (countedErrors.has(err)) return;
		countedErrors.add(err);
	}
	metrics.storageFailures.inc({ operation: op });
}

/** Errors a metadata store throws for its caller's mistakes, not for a failed write. */
const CALLER_ERRORS = new Set(['InvalidCursorError', 'DuplicateVoiceMessageError']);

/**
 * `store` with every failed call counted as a metadata failure (SQLite full or read-only,
 * Redis unreachable). A Proxy rather than a wrapper class, so every method of the store's
 * interface is covered, sync or async, as it changes.
 */
export function instrumentVoiceMessageStore<T extends object>(store: T, metrics: ParleyMetrics): T {
	return instrumentMethods(store, (err) => {
		if (!CALLER_ERRORS.has((err as Error | undefined)?.name ?? '')) countStorageFailure(metrics, err, 'metadata');
	});
}

/** `storage` (voice-message files) with failed disk operations counted by operation. */
export function instrumentVoiceStorage<T extends object>(storage: T, metrics: ParleyMetrics): T {
	return instrumentMethods(storage, (err) => countStorageFailure(metrics, err));
}

function instrumentMethods<T extends object>(target: T, onError: (err: unknown) => void): T {
	return new Proxy(target, {
		get(t, key) {
			const value: unknown = Reflect.get(t, key, t);
			if (typeof value !== 'function') return value;
			return (...args: unknown[]): unknown => {
				try {
					// Called on the target itself: its #private fields are not on the proxy.
					const result: unknown = value.apply(t, args);
					if (result instanceof Promise) {
						return result.catch((err: unknown) => {
							onError(err);
							throw err;
						});
					}
					return result;
				} catch (err) {
					onError(err);
					throw err;
				}
			};
		},
	});
}
