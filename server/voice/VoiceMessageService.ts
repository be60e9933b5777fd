// Voice messages end to end: recordings from live producers, uploads handed over by the
// upload server, post-processing (hash, waveform, transcode), metadata, and the status
// notifications recipients get. Owns every running recording and closes them at shutdown.
import { randomUUID } from 'node:crypto';
import { copyFile, link, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { types as ms } from 'mediasoup';
import { channelAllowed, type AccessClaims } from '../auth/accessToken.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { RequestError } from '../../protocol/RequestError.js';
import type { Logger } from '../telemetry/logger.js';
import { inSpan } from '../telemetry/tracing.js';
import { recoverOggOpus, UnrecoverableFileError } from './ogg/recoverOggOpus.js';
import { ProducerRecording, type RecordingResult, type StopReason } from './recording/ProducerRecording.js';
import { RecordingCheckpointer } from './recording/RecordingCheckpointer.js';
import { storageFailure, storageFailureText } from './files/storageDirectory.js';
import { TranscodeError } from './transcode/TranscodeError.js';
import type { CompletedUpload } from './upload/TusUploadServer.js';
import { DuplicateVoiceMessageError, type VoiceMessagePatch, type VoiceMessageStore, VoiceStoreUnavailableError } from './store/VoiceMessageStore.js';
import { fileExists, sha256File, type VoiceStorage } from './files/VoiceStorage.js';
import { StorageUnavailableError } from './files/s3Errors.js';
import { voiceMessageInfo, type Destination, type VoiceMessage } from './voiceMessage.js';

/** What post-processing needs from the transcoder (server/voice/transcode). */
export interface AudioTools {
	waveform(path: string): Promise<number[]>;
	toOggOpus(inputPath: string, outputPath: string): Promise<{ detectedFormat: string; transcoded: boolean; durationMs: number; sampleRate: number; channels: number; bitrateBps?: number }>;
}

/** An upload the upload server received in full. Its id becomes the voice message id, so a
 * repeated hand-over is harmless; its file stays the upload server's (we take a hard link). */
export type ReceivedUpload = CompletedUpload;

/** Where a recording is taken from: the channel of its router and the peer of its producer
 * (the appData the channel layer sets), for room events. */
export interface RecordingSource {
	channel?: string;
	peerId?: string;
}

/** What metrics and room events count; every hook is optional. */
export interface VoiceMessageEvents {
	recordingStarted?(message?: VoiceMessage, source?: RecordingSource): void;
	recordingFinished?(result: RecordingResult, message?: VoiceMessage, source?: RecordingSource): void;
	/** A message reached a final status (ready or failed). */
	messageFinished?(message: VoiceMessage): void;
	/** A disk or metadata operation failed (the error says which). */
	storageFailed?(error: unknown): void;
}

export interface VoiceMessageServiceOptions {
	store: VoiceMessageStore;
	storage: VoiceStorage;
	tools: AudioTools | undefined;
	/** Delivers a status change to the recipients that are connected. */
	notify: (info: VoiceMessageInfo, reason?: string) => void;
	/** Resolves when the object and metadata stores answer (the readiness checks). While
	 * messages are spooled it is tried every second, and all of them are tried again as soon as
	 * it succeeds: without it, they wait for the end of their backoff (up to 30 s). */
	probeStores?: () => Promise<void>;
	maxDurationMs: number;
	maxConcurrentRecordings: number;
	/** Recordings one user may run at once on this node; 0 or absent: no limit. */
	maxRecordingsPerUser?: number;
	/** Bytes and messages one user may store (voice.maxStored*PerUser); 0 or absent: no limit. */
	maxStoredBytesPerUser?: number;
	maxStoredMessagesPerUser?: number;
	/** How often a running recording's file size is compared with its owner's bytes left (default 1 s). */
	quotaCheckIntervalMs?: number;
	/** How often a running recording's new pages are stored as a checkpoint when the storage
	 * takes them (voice.recordingCheckpointMs; S3); 0 or absent: never. */
	recordingCheckpointMs?: number;
	/** The upload server's directory (uploads are `<id>.part` there): where an upload whose
	 * conversion a shutdown interrupted is found again at the next start. */
	uploadsDir?: string;
	/** This node (cluster.nodeId): recorded on the messages it records or converts, so that
	 * after a crash only this node, or one that finds it gone, finishes them. */
	nodeId: string;
	log: Logger;
	events?: VoiceMessageEvents;
}

export class VoiceMessageService {
	readonly #o: VoiceMessageServiceOptions;
	readonly #recordings = new Map<string, RecordingEntry>();
	/** Post-processing in flight, so shutdown can wait for it. */
	readonly #processing = new Set<Promise<void>>();
	/** Messages waiting for the object or metadata store to come back: the timer of their next try, and the try. */
	readonly #spooled = new Map<string, { timer: NodeJS.Timeout; retry: () => void }>();
	/** While messages are spooled: the timer that probes the stores (probeStores). */
	#spoolProbe: NodeJS.Timeout | undefined;
	/** The last probe failed: the next that succeeds sends the spooled messages again. */
	#storesSeenDown = false;
	/** startRecording calls past their checks and not yet registered, per owner: two starts
	 * of one user at once (two connections) cannot both pass the per-user check. */
	readonly #startingByOwner = new Map<string, number>();

	constructor(options: VoiceMessageServiceOptions) {
		this.#o = options;
	}

	get activeRecordings(): number {
		return this.#recordings.size;
	}

	/** The client view of a message. */
	static info(m: VoiceMessage): VoiceMessageInfo {
		return voiceMessageInfo(m);
	}

	/** Owner, the addressed user, or anyone whose token allows the channel. */
	static canRead(claims: AccessClaims, m: VoiceMessage): boolean {
		if (claims.userId === m.ownerId) return true;
		if (m.destination.kind === 'user') return claims.userId === m.destination.userId;
		return channelAllowed(claims.channels, m.destination.channel);
	}

	#publish(m: VoiceMessage, reason?: string): void {
		this.#o.notify(VoiceMessageService.info(m), reason);
	}

	async #update(id: string, patch: VoiceMessagePatch, reason?: string): Promise<VoiceMessage | undefined> {
		const m = await this.#o.store.update(id, patch);
		if (m) {
			this.#publish(m, reason);
			if (m.status === 'ready' || m.status === 'failed') this.#o.events?.messageFinished?.(m);
		}
		return m;
	}

	// ---- recording ----------------------------------------------------------------------

	async startRecording(ownerId: string, destination: Destination, router: ms.Router, producer: ms.Producer): Promise<VoiceMessage> {
		if (this.#recordings.size >= this.#o.maxConcurrentRecordings) throw new RequestError('E_TOO_MANY_RECORDINGS');
		const perUser = this.#o.maxRecordingsPerUser ?? 0;
		if (perUser > 0 && this.recordingsOf(ownerId) >= perUser) {
			throw new RequestError('E_TOO_MANY_USER_RECORDINGS', `You are already recording ${perUser} voice messages at once; stop one first.`);
		}
		for (const r of this.#recordings.values()) {
			if (r.recording.producerId === producer.id) throw new RequestError('E_INVALID_STATE', 'This producer is already being recorded.');
		}
		this.#startingByOwner.set(ownerId, (this.#startingByOwner.get(ownerId) ?? 0) + 1);
		try {
			return await this.#startRecording(ownerId, destination, router, producer);
		} finally {
			const left = (this.#startingByOwner.get(ownerId) ?? 1) - 1;
			if (left > 0) this.#startingByOwner.set(ownerId, left);
			else this.#startingByOwner.delete(ownerId);
		}
	}

	/**
	 * Why `ownerId` may not store `adding` more (bytes and messages, e.g. an upload's
	 * Upload-Length and 1, plus what their unfinished uploads promise), or undefined.
	 * Resolves the bytes still free too (Infinity without a limit).
	 */
	async storedQuota(ownerId: string, adding: { bytes: number; messages: number }): Promise<{ refusal: RequestError | undefined; bytesLeft: number }> {
		const maxBytes = this.#o.maxStoredBytesPerUser ?? 0;
		const maxMessages = this.#o.maxStoredMessagesPerUser ?? 0;
		if (maxBytes === 0 && maxMessages === 0) return { refusal: undefined, bytesLeft: Infinity };
		const usage = await this.#o.store.usageOf(ownerId);
		const bytesLeft = maxBytes === 0 ? Infinity : maxBytes - usage.bytes - adding.bytes;
		if (maxMessages > 0 && usage.messages + adding.messages > maxMessages) {
			return { refusal: new RequestError('E_STORED_MESSAGES_QUOTA', `You store ${usage.messages} voice messages of the ${maxMessages} you may (unfinished uploads included); delete some first.`), bytesLeft };
		}
		if (bytesLeft < 0 || (adding.bytes === 0 && bytesLeft <= 0)) {
			return {
				refusal: new RequestError('E_STORED_BYTES_QUOTA', `Your voice messages use ${usage.bytes} bytes of the ${maxBytes} you may store${adding.bytes > 0 ? `; ${adding.bytes} more do not fit` : ''}; delete some first.`),
				bytesLeft,
			};
		}
		return { refusal: undefined, bytesLeft };
	}

	/** Recordings of `ownerId` running or starting on this node. */
	recordingsOf(ownerId: string): number {
		let count = this.#startingByOwner.get(ownerId) ?? 0;
		for (const r of this.#recordings.values()) if (r.ownerId === ownerId) count++;
		return count;
	}

	/**
	 * Takes back a recording whose start the client never learned of (its request timed out,
	 * or its socket closed, before the start finished): nobody would ever stop it, so it is
	 * stopped now and its message failed, its file removed.
	 */
	async discardRecording(ownerId: string, id: string): Promise<void> {
		const entry = this.#recordings.get(id);
		if (!entry || entry.ownerId !== ownerId) return;
		entry.discarded = true;
		await entry.recording.stop('stopped');
		await entry.committed;
	}

	async #startRecording(ownerId: string, destination: Destination, router: ms.Router, producer: ms.Producer): Promise<VoiceMessage> {
		const quota = await this.storedQuota(ownerId, { bytes: 0, messages: 1 });
		if (quota.refusal) throw quota.refusal;
		const now = Date.now();
		const message: VoiceMessage = { id: randomUUID(), ownerId, destination, source: 'recording', status: 'recording', nodeId: this.#o.nodeId, createdAt: now, updatedAt: now };
		const refused = (err: unknown): never => {
			if (storageFailure(err)) this.#o.events?.storageFailed?.(err);
			throw storageRequestError(err) ?? err;
		};
		const path = await this.#o.storage.workPath(message).catch(refused);
		// The record exists before the file, so a crash leaves nothing unaccounted for.
		await this.#o.store.insert(message).catch(refused);
		let recording: ProducerRecording;
		try {
			recording = await ProducerRecording.start(router, producer, path, this.#o.maxDurationMs);
		} catch (err) {
			const failure = storageFailure(err);
			// Best effort: on a full disk the metadata may not take it either.
			await this.#update(message.id, { status: 'failed', failureReason: failure ? `The recording could not start: ${storageFailureText(failure)}.` : 'The recording could not start.' }).catch(
				(updateErr: unknown) => this.#o.log.error({ err: updateErr, voiceMessageId: message.id }, 'cannot mark the recording failed'),
			);
			await rm(path, { force: true }).catch(() => undefined);
			return refused(err);
		}
		const source: RecordingSource = {
			...(typeof router.appData.channel === 'string' && { channel: router.appData.channel }),
			...(typeof producer.appData.peerId === 'string' && { peerId: producer.appData.peerId }),
		};
		const entry: RecordingEntry = { recording, ownerId, message, source, committed: undefined, discarded: false, quotaReached: false };
		this.#recordings.set(message.id, entry);
		const quotaWatch = Number.isFinite(quota.bytesLeft) ? this.#watchStoredBytes(entry, path, quota.bytesLeft) : undefined;
		const checkpoints = RecordingCheckpointer.forRecording(this.#o.storage, message, recording, {
			intervalMs: this.#o.recordingCheckpointMs,
			log: this.#o.log,
			onFailure: (err) => this.#o.events?.storageFailed?.(err),
		});
		// 'finished' fires before stop() resolves, so stopRecording can wait for the commit.
		recording.once('finished', (result) => {
			clearInterval(quotaWatch);
			// Checkpoints stop before the file is committed (which removes them).
			const finished = () => this.#onRecordingFinished(message.id, result, entry);
			entry.committed = (checkpoints ? checkpoints.stop().then(finished) : finished()).catch(async (err: unknown) => {
				await this.#failUnsaved(message.id, err);
				throw storageRequestError(err)!; // stopRecording answers it
			});
			this.#track(entry.committed);
		});
		this.#o.events?.recordingStarted?.(message, source);
		this.#publish(message);
		this.#o.log.info({ voiceMessageId: message.id, producerId: producer.id }, 'recording started');
		return message;
	}

	/** Stops the owner's recording; resolves once the file is complete on disk. */
	async stopRecording(ownerId: string, id: string): Promise<VoiceMessage> {
		const entry = this.#recordings.get(id);
		if (!entry || entry.ownerId !== ownerId) {
			const m = await this.#o.store.get(id);
			if (m && m.ownerId === ownerId && m.source === 'recording') return m; // already stopped
			throw new RequestError('E_NOT_FOUND', `No recording ${id} of yours.`);
		}
		await entry.recording.stop('stopped');
		await entry.committed;
		return (await this.#o.store.get(id))!;
	}

	/** Stops the recording once its file takes the owner's last stored bytes (checked every
	 * quotaCheckIntervalMs: it may pass them by what one interval records, a few KiB). */
	#watchStoredBytes(entry: RecordingEntry, file: string, bytesLeft: number): NodeJS.Timeout {
		const timer = setInterval(() => {
			void stat(file).then(
				(info) => {
					if (info.size < bytesLeft || entry.quotaReached) return;
					entry.quotaReached = true;
					clearInterval(timer);
					void entry.recording.stop('stopped');
				},
				() => undefined,
			);
		}, this.#o.quotaCheckIntervalMs ?? 1000);
		timer.unref();
		return timer;
	}

	async #onRecordingFinished(id: string, result: RecordingResult, entry: RecordingEntry): Promise<void> {
		const { discarded } = entry;
		this.#recordings.delete(id);
		this.#o.events?.recordingFinished?.(result, entry.message, entry.source);
		const recording = { ...result.counts, ...(result.consumerPacketCount !== undefined && { packetsForwarded: result.consumerPacketCount }) };
		const base = { durationMs: Math.round(result.durationMs), sizeBytes: result.sizeBytes, recording, codec: { codec: 'opus', sampleRate: 48_000, channels: 1 } };
		this.#o.log.info({ voiceMessageId: id, reason: result.reason, finalizeMs: result.finalizeMs, discarded, ...result.counts, consumerPacketCount: result.consumerPacketCount }, 'recording finished');
		if (discarded) {
			const m = await this.#update(id, { ...base, status: 'failed', failureReason: 'The recording started after its request had timed out, and was discarded.' });
			if (m) await this.#o.storage.remove(m).catch(() => undefined);
			return;
		}
		if (result.error) {
			// The file is incomplete (a write failed): never reported ready; its space is given back.
			const failure = storageFailure(result.error);
			this.#o.log.error({ err: result.error, voiceMessageId: id }, 'recording could not be written');
			const m = await this.#update(
				id,
				{ ...base, status: 'failed', failureReason: `The recording could not be saved: ${failure ? storageFailureText(failure) : 'the server could not write it'}.` },
				result.reason,
			);
			if (m) void this.#o.storage.remove(m).catch(() => undefined);
			return;
		}
		if (result.counts.packetsWritten === 0) {
			const m = await this.#update(id, { ...base, status: 'failed', failureReason: 'No audio was received.' }, result.reason);
			if (m) void this.#o.storage.remove(m);
			return;
		}
		await this.#update(id, { ...base, status: 'processing' }, entry.quotaReached ? STORED_BYTES_QUOTA_REASON : reasonText(result.reason));
		this.#track(this.#finishProcessing(id));
	}

	/** Keeps work for drainProcessing; a failure (the store unreachable) is logged, not thrown
	 * into nowhere. */
	#track(work: Promise<void>): void {
		const tracked = work.catch((err: unknown) => this.#o.log.error({ err }, 'voice message work failed'));
		this.#processing.add(tracked);
		void tracked.finally(() => this.#processing.delete(tracked));
	}

	/** Hash and waveform of a complete Ogg Opus file, then ready. `retry`: how many times the
	 * object store was away before (the local spool). */
	async #finishProcessing(id: string, extra: Partial<VoiceMessage> = {}, retry = 0): Promise<void> {
		try {
			const m = await this.#o.store.get(id);
			if (!m) return;
			// Local already, unless this node did not write it (S3: downloaded, or assembled from
			// the checkpoints of a recording whose node died).
			const path = await this.#o.storage.fetchToWorkPath(m);
			if (!path) {
				await this.#update(id, { status: 'failed', failureReason: 'The audio file of this voice message is missing from storage.' });
				return;
			}
			const sha256 = await sha256File(path);
			const waveform = this.#o.tools ? await this.#waveformIfAvailable(id, path) : undefined;
			// Stored before it is called ready: a ready message always has its file.
			await this.#o.storage.commit(m);
			await this.#update(id, { ...extra, status: 'ready', sha256, ...(waveform && { waveform }) });
			if (retry > 0) this.#retrySpooledNow();
		} catch (err) {
			if (err instanceof TranscodeError && err.code === 'closed') {
				// Shutting down: the file is complete; the next start finishes it (recoverUnfinished).
				await this.#o.store.update(id, { ...extra });
				this.#o.log.warn({ voiceMessageId: id }, 'post-processing cut off by shutdown; left for the next start');
				return;
			}
			if (err instanceof StorageUnavailableError || err instanceof VoiceStoreUnavailableError) {
				// The object store or the metadata store (SQL restarting) is away: the message was
				// acknowledged, so its file is kept and it is finished again later, not failed.
				await this.#spool(id, extra, retry, err);
				return;
			}
			this.#o.log.error({ err, voiceMessageId: id }, 'voice message post-processing failed');
			if (storageFailure(err)) {
				await this.#failUnsaved(id, err);
				return;
			}
			await this.#update(id, { status: 'failed', failureReason: 'The recorded file could not be processed.' }).catch((updateErr: unknown) => this.#failUnsaved(id, updateErr));
		}
	}

	/**
	 * The object store (S3) is away or refusing: the message is not failed and its work file is
	 * kept (the local spool). It stays processing, with what post-processing learnt stored, and
	 * is finished again after 1 s, 2 s, 4 s, ... up to 30 s between tries until the store takes
	 * it, or at once when another spooled message went through; a restart resumes it
	 * (recoverUnfinished finds it processing with its work file).
	 */
	async #spool(id: string, extra: Partial<VoiceMessage>, retry: number, err: StorageUnavailableError | VoiceStoreUnavailableError): Promise<void> {
		const metadataAway = err instanceof VoiceStoreUnavailableError;
		if (!metadataAway) this.#o.events?.storageFailed?.(err);
		// A first failure: the stores' next answer to the probe sends it (and the others) again.
		if (retry === 0) this.#storesSeenDown = true;
		const delayMs = Math.min(SPOOL_RETRY_MAX_MS, SPOOL_RETRY_FIRST_MS * 2 ** Math.min(retry, 16));
		this.#o.log.warn({ err, voiceMessageId: id, retry, retryInMs: delayMs }, `${metadataAway ? 'metadata store' : 'object storage'} unavailable: voice message kept in the local spool`);
		// With the metadata store away the details cannot be stored now: the retry carries them.
		if (metadataAway) {
			this.#retryLater(id, delayMs, () => this.#finishProcessing(id, extra, retry + 1));
			return;
		}
		if (Object.keys(extra).length > 0) {
			await this.#o.store.update(id, { ...extra }).catch((updateErr: unknown) => this.#o.log.error({ err: updateErr, voiceMessageId: id }, 'cannot store a spooled message\'s details'));
		}
		this.#retryLater(id, delayMs, () => this.#finishProcessing(id, {}, retry + 1));
	}

	#retryLater(id: string, delayMs: number, work: () => Promise<void>): void {
		clearTimeout(this.#spooled.get(id)?.timer);
		const retry = () => {
			clearTimeout(entry.timer);
			this.#spooled.delete(id);
			this.#track(work());
		};
		const entry = { timer: setTimeout(retry, delayMs), retry };
		this.#spooled.set(id, entry);
		this.#probeWhileSpooled();
	}

	/** Probes the stores every second while anything is spooled; when they answer again after
	 * failing, every spooled message is sent again at once (the stores come back long before a
	 * 30 s backoff ends). Only a failure then an answer does that: stores that answer the probe
	 * but still refuse the messages (throttling) leave them to their backoff, not to a 1 s loop. */
	#probeWhileSpooled(): void {
		const probe = this.#o.probeStores;
		if (!probe || this.#spoolProbe || this.#spooled.size === 0) return;
		this.#spoolProbe = setTimeout(() => {
			void probe().then(
				() => {
					this.#spoolProbe = undefined;
					if (this.#storesSeenDown) {
						this.#storesSeenDown = false;
						this.#retrySpooledNow();
					}
					this.#probeWhileSpooled();
				},
				() => {
					this.#spoolProbe = undefined;
					this.#storesSeenDown = true;
					this.#probeWhileSpooled();
				},
			);
		}, SPOOL_PROBE_MS);
		this.#spoolProbe.unref();
	}

	/** A spooled message went through: the store is back, so every other one is tried now
	 * rather than at the end of its backoff (up to SPOOL_RETRY_MAX_MS away). */
	#retrySpooledNow(): void {
		for (const { retry } of [...this.#spooled.values()]) retry();
	}

	/**
	 * A message whose file or metadata could not be saved (a full or read-only disk, the
	 * metadata database full): it must not become ready later either, so its file is removed
	 * (the next start's recovery then fails a record left unfinished), its recipients are told
	 * it failed, and failed is stored if the store still takes it. Errors that are not storage
	 * failures are rethrown.
	 */
	async #failUnsaved(id: string, err: unknown): Promise<void> {
		const failure = storageFailure(err);
		if (!failure) throw err;
		this.#o.events?.storageFailed?.(err);
		this.#o.log.error({ err, voiceMessageId: id }, 'voice message could not be saved');
		const failureReason = `The voice message could not be saved: ${storageFailureText(failure)}.`;
		const m = await this.#o.store.get(id).catch(() => undefined);
		if (m && m.status !== 'failed') {
			await this.#o.storage.remove(m).catch(() => undefined);
			const stored = await this.#o.store.update(id, { status: 'failed', failureReason }).catch(() => undefined);
			const failed = stored ?? { ...m, status: 'failed' as const, failureReason, updatedAt: Date.now() };
			this.#publish(failed);
			this.#o.events?.messageFinished?.(failed);
		}
	}

	/** The waveform is decoration: a complete file is not failed because the transcoder was
	 * too busy or slow to draw it (it is then ready without one). */
	async #waveformIfAvailable(id: string, path: string): Promise<number[] | undefined> {
		try {
			return await this.#o.tools!.waveform(path);
		} catch (err) {
			if (!(err instanceof TranscodeError) || (err.code !== 'busy' && err.code !== 'timeout')) throw err;
			this.#o.log.warn({ voiceMessageId: id, reason: err.code }, 'no waveform for this voice message');
			return undefined;
		}
	}

	// ---- uploads ------------------------------------------------------------------------

	/**
	 * Turns a complete upload into a voice message: transcode (or validate) into storage.
	 * Resolves once the message exists (status processing); the transcode runs after.
	 */
	acceptUpload(upload: ReceivedUpload): Promise<VoiceMessage> {
		return inSpan('voice.upload.complete', { 'parley.upload_id': upload.uploadId, 'parley.size_bytes': upload.sizeBytes }, () => this.#acceptUpload(upload));
	}

	async #acceptUpload(upload: ReceivedUpload): Promise<VoiceMessage> {
		const existing = await this.#o.store.get(upload.uploadId);
		if (existing) return existing;
		// The upload server deletes its file once we return: keep our own name for it.
		const input = acceptedInputPath(upload.path);
		await rm(input, { force: true });
		await link(upload.path, input).catch(() => copyFile(upload.path, input));
		const now = Date.now();
		const message: VoiceMessage = {
			id: upload.uploadId,
			ownerId: upload.ownerId,
			destination: upload.destination,
			source: 'upload',
			status: 'processing',
			originalName: upload.fileName,
			originalType: upload.fileType,
			originalSizeBytes: upload.sizeBytes,
			originalSha256: upload.sha256,
			nodeId: this.#o.nodeId,
			createdAt: now,
			updatedAt: now,
		};
		try {
			await this.#o.store.insert(message);
		} catch (err) {
			await rm(input, { force: true });
			// The upload server answers a storage failure 507/503 and keeps the upload for a retry.
			if (!(err instanceof DuplicateVoiceMessageError)) throw err;
			// The same upload handed over twice at once (two nodes, or a retry): the first won.
			return (await this.#o.store.get(upload.uploadId)) ?? message;
		}
		this.#publish(message);
		this.#track(this.#transcodeUpload(message, { ...upload, path: input }));
		return message;
	}

	async #transcodeUpload(message: VoiceMessage, upload: Pick<ReceivedUpload, 'path'>): Promise<void> {
		const tools = this.#o.tools;
		let keepInput = false;
		try {
			if (!tools) throw new Error('no transcoder configured');
			const target = await this.#o.storage.workPath(message);
			const result = await tools.toOggOpus(upload.path, target);
			if (result.durationMs > this.#o.maxDurationMs) {
				await this.#o.storage.remove(message);
				await this.#update(message.id, { status: 'failed', failureReason: `The audio is longer than the ${this.#o.maxDurationMs / 1000} s limit.` });
				return;
			}
			// The work file's: on S3 nothing is stored until the commit.
			const sizeBytes = (await stat(target)).size;
			await this.#finishProcessing(message.id, {
				durationMs: Math.round(result.durationMs),
				sizeBytes,
				detectedFormat: result.detectedFormat,
				codec: { codec: 'opus', sampleRate: result.sampleRate, channels: result.channels, ...(result.bitrateBps && { bitrateBps: result.bitrateBps }) },
			});
		} catch (err) {
			if (err instanceof TranscodeError && err.code === 'closed') {
				// Shutting down: the upload was acknowledged, so keep its input; the next start
				// converts it again (recoverUnfinished).
				keepInput = true;
				this.#o.log.warn({ voiceMessageId: message.id }, 'upload conversion cut off by shutdown; left for the next start');
				return;
			}
			const reason = (err as { reason?: string }).reason ?? 'The file could not be converted to Ogg Opus.';
			this.#o.log.warn({ err, voiceMessageId: message.id }, 'upload transcode failed');
			await this.#o.storage.remove(message).catch(() => undefined);
			await this.#update(message.id, { status: 'failed', failureReason: reason }).catch((updateErr: unknown) => this.#failUnsaved(message.id, updateErr));
		} finally {
			if (!keepInput) await rm(upload.path, { force: true });
		}
	}

	// ---- lifecycle ----------------------------------------------------------------------

	/**
	 * At startup: recordings a crash interrupted are closed with what reached the disk (or
	 * marked failed), and messages caught mid-processing are processed again. With a shared
	 * store only this node's messages are touched (and, with `ownAndUnowned`, those with no
	 * node), plus those whose node `isGone` says is gone: such a message is taken over by a
	 * compare-and-set of its nodeId, so two nodes never finish the same one. Run again when
	 * another node is lost (`ownAndUnowned` false: this node's own work is running).
	 */
	async recoverUnfinished(
		isGone: (nodeId: string) => boolean | Promise<boolean> = () => true,
		{ ownAndUnowned = true }: { ownAndUnowned?: boolean } = {},
	): Promise<{ finalized: number; failed: number; skipped: number }> {
		let finalized = 0;
		let failed = 0;
		let skipped = 0;
		const store = this.#o.store;
		const claim = async (m: VoiceMessage): Promise<VoiceMessage | undefined> => {
			if (m.nodeId === this.#o.nodeId || m.nodeId === undefined) {
				if (!ownAndUnowned) return undefined;
				if (m.nodeId === this.#o.nodeId) return m;
			} else if (!(await isGone(m.nodeId))) {
				return undefined;
			}
			return store.update(m.id, { nodeId: this.#o.nodeId }, { nodeId: m.nodeId });
		};
		for (const found of await store.listByStatus('recording')) {
			const m = await claim(found);
			if (!m || m.status !== 'recording') {
				skipped++;
				continue;
			}
			try {
				const path = await this.#o.storage.fetchToWorkPath(m);
				if (!path) throw new UnrecoverableFileError('nothing of the recording reached storage');
				const recovered = recoverOggOpus(path);
				await this.#update(m.id, { status: 'processing', durationMs: Math.round(recovered.durationMs), sizeBytes: recovered.sizeBytes, failureReason: undefined });
				await this.#finishProcessing(m.id);
				finalized++;
			} catch (err) {
				const reason = err instanceof UnrecoverableFileError ? 'The server stopped before any audio was saved.' : 'The recording was interrupted and could not be saved.';
				await this.#update(m.id, { status: 'failed', failureReason: reason });
				failed++;
			}
		}
		for (const found of await store.listByStatus('processing')) {
			const m = await claim(found);
			if (!m || m.status !== 'processing') {
				skipped++;
				continue;
			}
			if (m.source === 'recording') {
				await this.#finishProcessing(m.id);
				continue;
			}
			// An upload whose conversion a shutdown cut off: its input was kept, convert it again
			// (or, when the conversion had finished, finish the post-processing).
			const input = this.#o.uploadsDir && acceptedInputPath(path.join(this.#o.uploadsDir, `${m.id}.part`));
			if (input && (await fileExists(input))) this.#track(this.#transcodeUpload(m, { path: input }));
			// A converted file: still in the work folder (spooled while S3 was away) or stored.
			else if (m.durationMs !== undefined && (await this.#hasFile(m))) this.#track(this.#finishProcessing(m.id));
			else await this.#update(m.id, { status: 'failed', failureReason: 'The server restarted while converting the upload; upload it again.' });
		}
		if (finalized + failed > 0) this.#o.log.warn({ finalized, failed }, 'unfinished recordings recovered');
		if (skipped > 0) this.#o.log.info({ skipped }, 'unfinished voice messages of other live nodes left to them');
		return { finalized, failed, skipped };
	}

	/** Whether the message's file is in the work folder or in storage; true when the object
	 * store cannot tell now (finishing it then spools it until the store is back). */
	async #hasFile(m: VoiceMessage): Promise<boolean> {
		try {
			return (await this.#o.storage.fetchToWorkPath(m)) !== undefined;
		} catch (err) {
			if (err instanceof StorageUnavailableError) return true;
			throw err;
		}
	}

	/** Finalizes every recording and waits for post-processing (shutdown). */
	async stopAll(reason: StopReason): Promise<void> {
		await this.stopRecordings(reason);
		await this.drainProcessing();
	}

	/** Finalizes every running recording (fast: the files are complete once this resolves). */
	async stopRecordings(reason: StopReason): Promise<void> {
		await Promise.all(
			[...this.#recordings.values()].map(async (r) => {
				await r.recording.stop(reason);
				await r.committed;
			}),
		);
	}

	/** Waits for post-processing in flight (hash, waveform, upload transcodes), which can be
	 * slow: shutdown tells clients to go before it waits for this. */
	async drainProcessing(): Promise<void> {
		// Work in flight may start more (a finished recording starts its post-processing).
		while (this.#processing.size > 0) await Promise.all([...this.#processing]);
		// Spooled messages are waiting for S3, not working: their files stay in the work folder
		// and the next start resumes them.
		for (const { timer } of this.#spooled.values()) clearTimeout(timer);
		this.#spooled.clear();
		clearTimeout(this.#spoolProbe);
	}

	/** Deletes a message (owner only): file first, then the record. */
	async delete(claims: AccessClaims, id: string): Promise<boolean> {
		const m = await this.#o.store.get(id);
		if (!m || !VoiceMessageService.canRead(claims, m)) return false;
		if (m.ownerId !== claims.userId) throw new RequestError('E_FORBIDDEN', 'Only the sender can delete a voice message.');
		return this.#remove(m);
	}

	/** Deletes a message whoever sent it (the backend API, which has checked its grants); false
	 * when there is none. Its `deleted` event commits with the record's removal. */
	async removeById(id: string): Promise<boolean> {
		const m = await this.#o.store.get(id);
		return m ? this.#remove(m) : false;
	}

	/** A recording in progress is stopped first, then the file, then the record. */
	async #remove(m: VoiceMessage): Promise<boolean> {
		const entry = this.#recordings.get(m.id);
		if (entry) {
			await entry.recording.stop('stopped');
			await entry.committed;
		}
		await this.#o.storage.remove(m);
		return this.#o.store.delete(m.id);
	}
}

interface RecordingEntry {
	recording: ProducerRecording;
	ownerId: string;
	message: VoiceMessage;
	source: RecordingSource;
	/** The store update after the recording finished (set when it finishes). */
	committed: Promise<void> | undefined;
	/** Started for a request whose client was told it failed: failed, not kept, when it ends. */
	discarded: boolean;
	/** Stopped because its file took the owner's last stored bytes. */
	quotaReached: boolean;
}

/** The local spool's retry schedule while the object store is away. */
const SPOOL_RETRY_FIRST_MS = 1000;
const SPOOL_RETRY_MAX_MS = 30_000;
/** How often the stores are probed while messages are spooled (probeStores). */
const SPOOL_PROBE_MS = 1000;

/** The reason a recording stopped by voice.maxStoredBytesPerUser is sent with. */
export const STORED_BYTES_QUOTA_REASON = 'stored bytes quota reached';

function reasonText(reason: StopReason): string | undefined {
	return reason === 'stopped' ? undefined : reason;
}

/** acceptUpload keeps its own hard link to a complete upload, named with this suffix, until
 * it is converted (StorageAudit recognises leftovers by it). */
export const ACCEPTED_UPLOAD_SUFFIX = '.accepted';

function acceptedInputPath(uploadPath: string): string {
	return `${uploadPath}${ACCEPTED_UPLOAD_SUFFIX}`;
}

/** E_STORAGE_UNAVAILABLE for a disk that is full or not writable, undefined for other errors. */
function storageRequestError(err: unknown): RequestError | undefined {
	const failure = storageFailure(err);
	return failure && new RequestError('E_STORAGE_UNAVAILABLE', `Voice messages cannot be stored right now: ${storageFailureText(failure)}.`);
}

