// Our server-side recording, as the client sees it: none, starting, running, or ended by
// itself but not yet collected by stopRecording(). Answers and notifications can cross (the
// server may report a recording finished before its startRecording answer arrives), so the
// ids of recently ended recordings are kept to match them. The requests themselves are the
// caller's: this only decides what the answers mean.
import type { VoiceMessageDestination } from '../protocol/schemas.js';
import { isParleyError, ParleyError } from './ParleyError.js';
import { TypedEmitter } from './TypedEmitter.js';

/** A recording of our own live voice that the server is making. */
export interface VoiceRecording {
	voiceMessageId: string;
	destination: VoiceMessageDestination;
	/** The producer recorded (our microphone at the time). */
	producerId: string;
	/** Date.now() when the server confirmed the start. */
	startedAtMs: number;
	/** The server stops the recording by itself after this long. */
	maxDurationMs: number;
}

/** The server's startRecording answer, with what it recorded. */
export type StartedRecording = Omit<VoiceRecording, 'startedAtMs'>;

export interface VoiceRecorderEvents {
	/** A recording started (a recording) or ended (null, with why when not stopped). */
	recordingChanged: [recording: VoiceRecording | null, reason?: string];
}

export interface VoiceRecorderOptions {
	/** Clock for startedAtMs; injected by tests. */
	now?: () => number;
}

/** Recently ended recordings remembered, to match notifications and answers that cross. */
export const RECENT_ENDED_IDS_KEPT = 50;

export class VoiceRecorder extends TypedEmitter<VoiceRecorderEvents> {
	readonly #now: () => number;
	#recording: VoiceRecording | null = null;
	#starting = false;
	/** A recording that ended without stop() (max duration, lost producer): stop() still answers for it. */
	#unstoppedId: string | null = null;
	/** Our recordings the server reported finished, in case that comes before the start answer. */
	readonly #endedIds = new Set<string>();

	constructor({ now = Date.now }: VoiceRecorderOptions = {}) {
		super();
		this.#now = now;
	}

	/** The recording in progress, if any. */
	get recording(): VoiceRecording | null {
		return this.#recording;
	}

	/** A start is waiting for the server's answer. */
	get starting(): boolean {
		return this.#starting;
	}

	/** What stop() would stop: the recording in progress, or one that ended by itself; null when none. */
	get stoppableId(): string | null {
		return this.#recording?.voiceMessageId ?? this.#unstoppedId;
	}

	/**
	 * Runs one start: `request` asks the server and reports its answer with started().
	 * Refused with E_INVALID_STATE, without calling `request`, while a recording runs or
	 * another start is waiting.
	 */
	async start<T>(request: () => Promise<T>): Promise<T> {
		if (this.#recording || this.#starting) throw new ParleyError('E_INVALID_STATE', 'Already recording; stop the current recording first.');
		this.#starting = true;
		try {
			return await request();
		} finally {
			this.#starting = false;
		}
	}

	/**
	 * The server started `started`. `producerLive` is false when that producer was closed or
	 * replaced meanwhile: then, as when the server already reported it finished, it is over
	 * before it began, and only stop() can still collect it.
	 */
	started(started: StartedRecording, { producerLive }: { producerLive: boolean }): void {
		if (!this.#starting) throw new Error('VoiceRecorder.started() outside start()');
		// A new recording replaces one that ended by itself: stop() now answers for this one.
		this.#unstoppedId = null;
		if (this.#endedIds.has(started.voiceMessageId) || !producerLive) {
			this.#unstoppedId = started.voiceMessageId;
			return;
		}
		this.#recording = { ...started, startedAtMs: this.#now() };
		this.emit('recordingChanged', this.#recording);
	}

	/**
	 * Stops the recording in progress, or collects one that ended by itself: `request` asks
	 * the server for `voiceMessageId`. Afterwards the recording is forgotten, also when the
	 * server no longer knows it (E_NOT_FOUND: it restarted, nothing is left to stop); after
	 * any other failure (a timeout) it may still run, and stop() can be called again.
	 * E_INVALID_STATE when there is nothing to stop.
	 */
	async stop<T>(request: (voiceMessageId: string) => Promise<T>): Promise<T> {
		const voiceMessageId = this.stoppableId;
		if (voiceMessageId === null) throw new ParleyError('E_INVALID_STATE', 'Not recording.');
		try {
			const result = await request(voiceMessageId);
			this.#forget(voiceMessageId);
			return result;
		} catch (error) {
			if (isParleyError(error, 'E_NOT_FOUND')) this.#forget(voiceMessageId);
			throw error;
		}
	}

	/** The server reported one of our recordings finished (max duration, producer closed, ...). */
	ended(voiceMessageId: string, reason?: string): void {
		rememberBounded(this.#endedIds, voiceMessageId);
		if (this.#recording?.voiceMessageId !== voiceMessageId) return;
		this.#unstoppedId = voiceMessageId;
		this.#end(reason);
	}

	/** Our producer is gone (left, lost, replaced): so is the recording of it, on the server too. */
	lost(reason: string): void {
		const recording = this.#recording;
		if (!recording) return;
		this.#unstoppedId = recording.voiceMessageId;
		this.#end(reason);
	}

	#forget(voiceMessageId: string): void {
		if (this.#unstoppedId === voiceMessageId) this.#unstoppedId = null;
		if (this.#recording?.voiceMessageId === voiceMessageId) this.#end();
	}

	#end(reason?: string): void {
		if (!this.#recording) return;
		this.#recording = null;
		this.emit('recordingChanged', null, reason);
	}
}

/** Adds to a set that keeps only the newest RECENT_ENDED_IDS_KEPT entries. */
function rememberBounded(set: Set<string>, id: string): void {
	set.delete(id);
	set.add(id);
	if (set.size > RECENT_ENDED_IDS_KEPT) set.delete(set.values().next().value as string);
}
