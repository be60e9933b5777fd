// Metrics and spans for voice messages: the hooks VoiceMessageService and TusUploadServer
// call, and a wrapper that times (and traces) each ffmpeg job the service asks for.
import type { AudioTools, VoiceMessageEvents } from '../voice/VoiceMessageService.js';
import { TranscodeError } from '../voice/transcode/TranscodeError.js';
import type { UploadEvents } from '../voice/upload/TusUploadServer.js';
import { recordingEndReason, type ParleyMetrics, type TranscodeOperation } from './metrics.js';
import { inSpan } from './tracing.js';

export function voiceMessageEvents(metrics: ParleyMetrics): VoiceMessageEvents {
	return {
		recordingStarted: () => metrics.recordingsStarted.inc(),
		recordingFinished: (result) => {
			metrics.recordingsFinished.inc({ reason: recordingEndReason(result.reason) });
			metrics.recordingDuration.observe(result.durationMs / 1000);
		},
		messageFinished: (message) => {
			metrics.messagesFinished.inc({ source: message.source, status: message.status });
			if (message.status === 'ready') metrics.storageBytesWritten.inc(message.sizeBytes ?? 0);
			else if (message.source === 'upload') metrics.uploadsFailed.inc({ stage: 'processing' });
		},
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
	};
}

/** `tools` with every job timed, its failures counted by TranscodeError code, and a span. */
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
