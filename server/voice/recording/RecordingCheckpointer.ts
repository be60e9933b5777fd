// Checkpoints of a live recording in object storage, so that a node that dies (SIGKILL, power)
// loses at most the last interval of it: another node concatenates the checkpoints and
// finalizes the message (VoiceMessageService.recoverUnfinished -> VoiceStorage.fetchToWorkPath).
//
// Every `intervalMs` the recording writes the page in progress (ProducerRecording
// .checkpointBoundary, so a checkpoint carries everything the repair buffer released, cut at
// a page boundary) and the bytes written since the last checkpoint are read back from the
// work file and stored as checkpoint `index` (0, 1, ...; each [offset, offset + length),
// contiguous). Concatenated in order they are a prefix of the file made of whole pages.
//
// Choices:
// - One checkpoint in flight at a time. A tick that finds one still in flight does nothing;
//   a failed PUT is logged and counted, and the next tick stores the same index from the same
//   offset with whatever was written since (a retry that landed after all is overwritten by
//   the same bytes and more). So a slow or failing store widens what a crash would lose; it
//   never fails the recording nor touches the RTP path (reading the file is asynchronous, the
//   page flush is the same small synchronous write the RTP path makes once a second).
// - No final checkpoint at stop: the finished file is committed whole right after.
// - stop() waits for a checkpoint in flight (at most `stopWaitMs`) so that commit, which
//   removes the checkpoints, does not race a PUT that would leave one behind.
import { open } from 'node:fs/promises';
import type { Logger } from '../../telemetry/logger.js';
import type { StorageKey, VoiceStorage } from '../files/VoiceStorage.js';
import type { ProducerRecording } from './ProducerRecording.js';

export interface RecordingCheckpointerOptions {
	/** The work file the recording writes. */
	path: string;
	intervalMs: number;
	/** Bytes of whole pages in the file now (flushing the page in progress first). */
	boundary: () => number;
	/** Stores checkpoint `index`: bytes [offset, offset + bytes.length) of the file. */
	put: (index: number, offset: number, bytes: Buffer) => Promise<void>;
	log: Logger;
	/** Longest stop() waits for a checkpoint in flight (default 5 s). */
	stopWaitMs?: number;
	/** A checkpoint could not be stored (it is retried at the next tick). */
	onFailure?: (err: unknown) => void;
}

export interface CheckpointStats {
	/** Checkpoints stored. */
	stored: number;
	/** Bytes of the file they hold (the offset the next one starts at). */
	bytes: number;
	/** PUTs that failed (each retried at a later tick). */
	failures: number;
	/** Ticks skipped because the previous checkpoint was still in flight. */
	busyTicks: number;
}

export class RecordingCheckpointer {
	readonly #o: RecordingCheckpointerOptions;
	readonly #timer: NodeJS.Timeout;
	#index = 0;
	#offset = 0;
	#failures = 0;
	#busyTicks = 0;
	#inFlight: Promise<void> | undefined;
	#stopped = false;

	constructor(options: RecordingCheckpointerOptions) {
		if (!(options.intervalMs > 0)) throw new RangeError('intervalMs must be positive');
		this.#o = options;
		this.#timer = setInterval(() => this.#tick(), options.intervalMs);
		this.#timer.unref();
	}

	/**
	 * Checkpoints `recording` into `storage` under `key` every `intervalMs`, or undefined when
	 * that is off (0) or the storage keeps the work file itself (disk: no putCheckpoint).
	 */
	static forRecording(
		storage: VoiceStorage,
		key: StorageKey,
		recording: ProducerRecording,
		options: { intervalMs: number | undefined; log: Logger; onFailure?: (err: unknown) => void },
	): RecordingCheckpointer | undefined {
		const intervalMs = options.intervalMs ?? 0;
		if (intervalMs <= 0 || !storage.putCheckpoint) return undefined;
		const putCheckpoint = storage.putCheckpoint.bind(storage);
		return new RecordingCheckpointer({
			path: recording.path,
			intervalMs,
			boundary: () => recording.checkpointBoundary(),
			put: (index, offset, bytes) => putCheckpoint(key, index, offset, bytes),
			log: options.log.child({ voiceMessageId: key.id }),
			...(options.onFailure && { onFailure: options.onFailure }),
		});
	}

	get stats(): CheckpointStats {
		return { stored: this.#index, bytes: this.#offset, failures: this.#failures, busyTicks: this.#busyTicks };
	}

	#tick(): void {
		if (this.#stopped) return;
		if (this.#inFlight) {
			this.#busyTicks++;
			return;
		}
		const end = this.#o.boundary();
		if (end <= this.#offset) return; // nothing new (silence without DTX packets)
		this.#inFlight = this.#store(end).finally(() => {
			this.#inFlight = undefined;
		});
	}

	async #store(end: number): Promise<void> {
		const index = this.#index;
		const offset = this.#offset;
		try {
			const bytes = await readRange(this.#o.path, offset, end - offset);
			await this.#o.put(index, offset, bytes);
			this.#index = index + 1;
			this.#offset = offset + bytes.length;
		} catch (err) {
			this.#failures++;
			this.#o.log.warn({ err, checkpoint: index, offset, failures: this.#failures }, 'recording checkpoint not stored; retrying at the next one');
			this.#o.onFailure?.(err);
		}
	}

	/** Stops checkpointing; resolves once a checkpoint in flight settled (or stopWaitMs passed). */
	async stop(): Promise<CheckpointStats> {
		if (!this.#stopped) {
			this.#stopped = true;
			clearInterval(this.#timer);
			const inFlight = this.#inFlight;
			if (inFlight) {
				let timeout: NodeJS.Timeout | undefined;
				const waited = await Promise.race([
					inFlight.then(() => true),
					new Promise<false>((resolve) => (timeout = setTimeout(() => resolve(false), this.#o.stopWaitMs ?? 5000))),
				]);
				clearTimeout(timeout);
				if (!waited) this.#o.log.warn({ checkpoint: this.#index }, 'a recording checkpoint was still being stored at stop; it may be left behind');
			}
			this.#o.log.info(this.stats, 'recording checkpoints stopped');
		}
		return this.stats;
	}
}

/** Bytes [offset, offset + length) of `file` (short when the file is). */
async function readRange(file: string, offset: number, length: number): Promise<Buffer> {
	const handle = await open(file, 'r');
	try {
		const bytes = Buffer.alloc(length);
		let got = 0;
		while (got < length) {
			const { bytesRead } = await handle.read(bytes, got, length - got, offset + got);
			if (bytesRead === 0) break;
			got += bytesRead;
		}
		return bytes.subarray(0, got);
	} finally {
		await handle.close();
	}
}
