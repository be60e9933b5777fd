// Why an audio file could not be turned into a voice message: a stable code for programs and
// a sentence for people (it becomes VoiceMessage.failureReason, so it never names server paths).

export type TranscodeErrorCode =
	/** Not a format Parley reads (by its magic bytes); ffmpeg was not run. */
	| 'unknown-format'
	/** The file has no audio stream, or none that decodes to any sound. */
	| 'no-audio'
	/** ffmpeg / ffprobe could not read or decode it. */
	| 'decode-failed'
	/** The file declares more audio than it contains (cut off during upload or recording). */
	| 'truncated'
	/** Longer than maxDurationMs (by its header, by its packets, or by what decoded). */
	| 'too-long'
	/** The job took longer than timeoutMs; its process was killed. */
	| 'timeout'
	/** maxConcurrent jobs run and maxQueued wait already. */
	| 'busy'
	/** The transcoder was closed. */
	| 'closed'
	/** The input file could not be opened. */
	| 'unreadable'
	/** ffmpeg or ffprobe is missing on this server. */
	| 'unavailable';

export class TranscodeError extends Error {
	override readonly name = 'TranscodeError';
	readonly code: TranscodeErrorCode;
	/** A sentence for people, e.g. 'Transcoding took longer than 60 s.' */
	readonly reason: string;
	constructor(code: TranscodeErrorCode, reason: string, options?: { cause?: unknown }) {
		super(reason, options);
		this.code = code;
		this.reason = reason;
	}
}

/** "3.6 s", "12 min 5 s", "13.5 h": durations in reasons people read. */
export function formatDuration(ms: number): string {
	if (ms < 60_000) return `${Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0))} s`;
	if (ms < 3_600_000) {
		const s = Math.round(ms / 1000);
		return s % 60 === 0 ? `${s / 60} min` : `${Math.floor(s / 60)} min ${s % 60} s`;
	}
	return `${Number((ms / 3_600_000).toFixed(1))} h`;
}
