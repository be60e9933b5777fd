// Voice messages end to end: recordings from live producers, uploads handed over by the
// upload server, post-processing (hash, waveform, transcode), metadata, and the status
// notifications recipients get. Owns every running recording and closes them at shutdown.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { types as ms } from 'mediasoup';
import { channelAllowed, type AccessClaims } from '../signaling/accessToken.js';
import type { VoiceMessageInfo } from '../signaling/protocol.js';
import { RequestError } from '../signaling/RequestError.js';
import type { Logger } from '../telemetry/logger.js';
import { recoverOggOpus, UnrecoverableFileError } from './ogg/recoverOggOpus.js';
import { ProducerRecording, type RecordingResult, type StopReason } from './recording/ProducerRecording.js';
import { storageFailure, storageFailureText } from './storageDirectory.js';
import { TranscodeError } from './transcode/TranscodeError.js';
import type { CompletedUpload } from './upload/TusUploadServer.js';
import type { VoiceMessageStore } from './VoiceMessageStore.js';
import type { VoiceStorage } from './VoiceStorage.js';
import type { Destination, VoiceMessage } from './voiceMessage.js';

/** What post-processing needs from the transcoder (server/voice/transcode). */
export interface AudioTools {
	waveform(path: string): Promise<number[]>;
	toOggOpus(inputPath: string, outputPath: string): Promise<{ detectedFormat: string; transcoded: boolean; durationMs: number; sampleRate: number; channels: number; bitrateBps?: number }>;
}

/** An upload the upload server received in full. Its id becomes the voice message id, so a
 * repeated hand-over is harmless; its file stays the upload server's (we take a hard link). */
export type ReceivedUpload = CompletedUpload;

/** What metrics count; every hook is optional. */
export interface VoiceMessageEvents {
	recordingStarted?(): void;
	recordingFinished?(result: RecordingResult): void;
	/** A message reached a final status (ready or failed). */
	messageFinished?(message: VoiceMessage): void;
}

export interface VoiceMessageServiceOptions {
	store: VoiceMessageStore;
	storage: VoiceStorage;
	tools: AudioTools | undefined;
	/** Delivers a status change to the recipients that are connected. */
	notify: (info: VoiceMessageInfo, reason?: string) => void;
	maxDurationMs: number;
	maxConcurrentRecordings: number;
	/** The upload server's directory (uploads are `<id>.part` there): where an upload whose
	 * conversion a shutdown interrupted is found again at the next start. */
	uploadsDir?: string;
	log: Logger;
	events?: VoiceMessageEvents;
}

export class VoiceMessageService {
	readonly #o: VoiceMessageServiceOptions;
	readonly #recordings = new Map<string, { recording: ProducerRecording; ownerId: string }>();
	/** Post-processing in flight, so shutdown can wait for it. */
	readonly #processing = new Set<Promise<void>>();

	constructor(options: VoiceMessageServiceOptions) {
		this.#o = options;
	}

	get activeRecordings(): number {
		return this.#recordings.size;
	}

	/** The client view of a message. */
	static info(m: VoiceMessage): VoiceMessageInfo {
		return {
			id: m.id,
			ownerId: m.ownerId,
			destination: m.destination,
			source: m.source,
			status: m.status,
			...(m.failureReason !== undefined && { failureReason: m.failureReason }),
			...(m.durationMs !== undefined && { durationMs: m.durationMs }),
			...(m.sizeBytes !== undefined && { sizeBytes: m.sizeBytes }),
			...(m.waveform !== undefined && { waveform: m.waveform }),
			...(m.status === 'ready' && { audioUrl: `/voice/messages/${m.id}/audio` }),
			...(m.originalName !== undefined && { originalName: m.originalName }),
			...(m.originalSha256 !== undefined && { originalSha256: m.originalSha256 }),
			createdAt: m.createdAt,
		};
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

	#update(id: string, patch: Parameters<VoiceMessageStore['update']>[1], reason?: string): VoiceMessage | undefined {
		const m = this.#o.store.update(id, patch);
		if (m) {
			this.#publish(m, reason);
			if (m.status === 'ready' || m.status === 'failed') this.#o.events?.messageFinished?.(m);
		}
		return m;
	}

	// ---- recording ----------------------------------------------------------------------

	async startRecording(ownerId: string, destination: Destination, router: ms.Router, producer: ms.Producer): Promise<VoiceMessage> {
		if (this.#recordings.size >= this.#o.maxConcurrentRecordings) throw new RequestError('E_TOO_MANY_RECORDINGS');
		for (const r of this.#recordings.values()) {
			if (r.recording.producerId === producer.id) throw new RequestError('E_INVALID_STATE', 'This producer is already being recorded.');
		}
		const now = Date.now();
		const message: VoiceMessage = { id: randomUUID(), ownerId, destination, source: 'recording', status: 'recording', createdAt: now, updatedAt: now };
		const path = await this.#o.storage.writablePath(message).catch((err: unknown) => {
			throw storageRequestError(err) ?? err;
		});
		// The record exists before the file, so a crash leaves nothing unaccounted for.
		this.#o.store.insert(message);
		let recording: ProducerRecording;
		try {
			recording = await ProducerRecording.start(router, producer, path, this.#o.maxDurationMs);
		} catch (err) {
			const failure = storageFailure(err);
			this.#update(message.id, { status: 'failed', failureReason: failure ? `The recording could not start: ${storageFailureText(failure)}.` : 'The recording could not start.' });
			await rm(path, { force: true }).catch(() => undefined);
			throw storageRequestError(err) ?? err;
		}
		this.#recordings.set(message.id, { recording, ownerId });
		recording.once('finished', (result) => this.#onRecordingFinished(message.id, result));
		this.#o.events?.recordingStarted?.();
		this.#publish(message);
		this.#o.log.info({ voiceMessageId: message.id, producerId: producer.id }, 'recording started');
		return message;
	}

	/** Stops the owner's recording; resolves once the file is complete on disk. */
	async stopRecording(ownerId: string, id: string): Promise<VoiceMessage> {
		const entry = this.#recordings.get(id);
		if (!entry || entry.ownerId !== ownerId) {
			const m = this.#o.store.get(id);
			if (m && m.ownerId === ownerId && m.source === 'recording') return m; // already stopped
			throw new RequestError('E_NOT_FOUND', `No recording ${id} of yours.`);
		}
		await entry.recording.stop('stopped');
		return this.#o.store.get(id)!;
	}

	#onRecordingFinished(id: string, result: RecordingResult): void {
		this.#recordings.delete(id);
		this.#o.events?.recordingFinished?.(result);
		const recording = { ...result.counts, ...(result.consumerPacketCount !== undefined && { packetsForwarded: result.consumerPacketCount }) };
		const base = { durationMs: Math.round(result.durationMs), sizeBytes: result.sizeBytes, recording, codec: { codec: 'opus', sampleRate: 48_000, channels: 1 } };
		this.#o.log.info({ voiceMessageId: id, reason: result.reason, finalizeMs: result.finalizeMs, ...result.counts, consumerPacketCount: result.consumerPacketCount }, 'recording finished');
		if (result.error) {
			// The file is incomplete (a write failed): never reported ready; its space is given back.
			const failure = storageFailure(result.error);
			this.#o.log.error({ err: result.error, voiceMessageId: id }, 'recording could not be written');
			const m = this.#update(
				id,
				{ ...base, status: 'failed', failureReason: `The recording could not be saved: ${failure ? storageFailureText(failure) : 'the server could not write it'}.` },
				result.reason,
			);
			if (m) void this.#o.storage.remove(m).catch(() => undefined);
			return;
		}
		if (result.counts.packetsWritten === 0) {
			const m = this.#update(id, { ...base, status: 'failed', failureReason: 'No audio was received.' }, result.reason);
			if (m) void this.#o.storage.remove(m);
			return;
		}
		this.#update(id, { ...base, status: 'processing' }, reasonText(result.reason));
		this.#track(this.#finishProcessing(id));
	}

	#track(work: Promise<void>): void {
		this.#processing.add(work);
		void work.finally(() => this.#processing.delete(work));
	}

	/** Hash and waveform of a complete Ogg Opus file, then ready. */
	async #finishProcessing(id: string, extra: Partial<VoiceMessage> = {}): Promise<void> {
		const m = this.#o.store.get(id);
		if (!m) return;
		try {
			const path = await this.#o.storage.writablePath(m);
			const sha256 = await sha256File(path);
			const waveform = this.#o.tools ? await this.#waveformIfAvailable(id, path) : undefined;
			this.#update(id, { ...extra, status: 'ready', sha256, ...(waveform && { waveform }) });
		} catch (err) {
			if (err instanceof TranscodeError && err.code === 'closed') {
				// Shutting down: the file is complete; the next start finishes it (recoverUnfinished).
				this.#o.store.update(id, { ...extra });
				this.#o.log.warn({ voiceMessageId: id }, 'post-processing cut off by shutdown; left for the next start');
				return;
			}
			this.#o.log.error({ err, voiceMessageId: id }, 'voice message post-processing failed');
			this.#update(id, { status: 'failed', failureReason: 'The recorded file could not be processed.' });
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
	async acceptUpload(upload: ReceivedUpload): Promise<VoiceMessage> {
		const existing = this.#o.store.get(upload.uploadId);
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
			createdAt: now,
			updatedAt: now,
		};
		this.#o.store.insert(message);
		this.#publish(message);
		this.#track(this.#transcodeUpload(message, { ...upload, path: input }));
		return message;
	}

	async #transcodeUpload(message: VoiceMessage, upload: Pick<ReceivedUpload, 'path'>): Promise<void> {
		const tools = this.#o.tools;
		let keepInput = false;
		try {
			if (!tools) throw new Error('no transcoder configured');
			const target = await this.#o.storage.writablePath(message);
			const result = await tools.toOggOpus(upload.path, target);
			if (result.durationMs > this.#o.maxDurationMs) {
				await this.#o.storage.remove(message);
				this.#update(message.id, { status: 'failed', failureReason: `The audio is longer than the ${this.#o.maxDurationMs / 1000} s limit.` });
				return;
			}
			const sizeBytes = (await this.#o.storage.size(message)) ?? 0;
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
			this.#update(message.id, { status: 'failed', failureReason: reason });
		} finally {
			if (!keepInput) await rm(upload.path, { force: true });
		}
	}

	// ---- lifecycle ----------------------------------------------------------------------

	/**
	 * At startup: recordings a crash interrupted are closed with what reached the disk (or
	 * marked failed), and messages caught mid-processing are processed again.
	 */
	async recoverUnfinished(): Promise<{ finalized: number; failed: number }> {
		let finalized = 0;
		let failed = 0;
		for (const m of this.#o.store.listByStatus('recording')) {
			try {
				const path = await this.#o.storage.writablePath(m);
				const recovered = recoverOggOpus(path);
				this.#o.store.update(m.id, { status: 'processing', durationMs: Math.round(recovered.durationMs), sizeBytes: recovered.sizeBytes, failureReason: undefined });
				await this.#finishProcessing(m.id);
				finalized++;
			} catch (err) {
				const reason = err instanceof UnrecoverableFileError ? 'The server stopped before any audio was saved.' : 'The recording was interrupted and could not be saved.';
				this.#o.store.update(m.id, { status: 'failed', failureReason: reason });
				failed++;
			}
		}
		for (const m of this.#o.store.listByStatus('processing')) {
			if (m.source === 'recording') {
				await this.#finishProcessing(m.id);
				continue;
			}
			// An upload whose conversion a shutdown cut off: its input was kept, convert it again
			// (or, when the conversion had finished, finish the post-processing).
			const input = this.#o.uploadsDir && acceptedInputPath(path.join(this.#o.uploadsDir, `${m.id}.part`));
			if (input && (await fileExists(input))) this.#track(this.#transcodeUpload(m, { path: input }));
			else if (m.durationMs !== undefined && (await this.#o.storage.size(m)) !== undefined) this.#track(this.#finishProcessing(m.id));
			else this.#o.store.update(m.id, { status: 'failed', failureReason: 'The server restarted while converting the upload; upload it again.' });
		}
		if (finalized + failed > 0) this.#o.log.warn({ finalized, failed }, 'unfinished recordings recovered');
		return { finalized, failed };
	}

	/** Finalizes every recording and waits for post-processing (shutdown). */
	async stopAll(reason: StopReason): Promise<void> {
		await this.stopRecordings(reason);
		await this.drainProcessing();
	}

	/** Finalizes every running recording (fast: the files are complete once this resolves). */
	async stopRecordings(reason: StopReason): Promise<void> {
		await Promise.all([...this.#recordings.values()].map((r) => r.recording.stop(reason)));
	}

	/** Waits for post-processing in flight (hash, waveform, upload transcodes), which can be
	 * slow: shutdown tells clients to go before it waits for this. */
	async drainProcessing(): Promise<void> {
		await Promise.all([...this.#processing]);
	}

	/** Deletes a message (owner only): file first, then the record. */
	async delete(claims: AccessClaims, id: string): Promise<boolean> {
		const m = this.#o.store.get(id);
		if (!m || !VoiceMessageService.canRead(claims, m)) return false;
		if (m.ownerId !== claims.userId) throw new RequestError('E_FORBIDDEN', 'Only the sender can delete a voice message.');
		await this.#recordings.get(id)?.recording.stop('stopped');
		await this.#o.storage.remove(m);
		return this.#o.store.delete(id);
	}
}

function reasonText(reason: StopReason): string | undefined {
	return reason === 'stopped' ? undefined : reason;
}

/** Where acceptUpload keeps its own hard link to a complete upload until it is converted. */
function acceptedInputPath(uploadPath: string): string {
	return `${uploadPath}.accepted`;
}

async function fileExists(file: string): Promise<boolean> {
	return stat(file).then(
		() => true,
		() => false,
	);
}

/** E_STORAGE_UNAVAILABLE for a disk that is full or not writable, undefined for other errors. */
function storageRequestError(err: unknown): RequestError | undefined {
	const failure = storageFailure(err);
	return failure && new RequestError('E_STORAGE_UNAVAILABLE', `Voice messages cannot be stored right now: ${storageFailureText(failure)}.`);
}

async function sha256File(path: string): Promise<string> {
	const hash = createHash('sha256');
	for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
	return hash.digest('hex');
}
