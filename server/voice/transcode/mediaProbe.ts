// What ffprobe says about an input's first audio stream, validated (ffprobe's JSON describes
// an untrusted file, so it is parsed with a schema, not trusted), plus an exact duration from
// the packets when the container has none or ffprobe only estimated one.
import { z } from 'zod';
import type { AudioFormat } from './audioFormat.js';
import { globalArgs, inputArgs, seconds } from './ffmpegArgs.js';
import { TranscodeError } from './TranscodeError.js';
import { lastErrorLine, runTool, ToolStartError } from './toolProcess.js';

export interface MediaInfo {
	codec: string;
	sampleRate: number;
	channels: number;
	bitrateBps?: number;
	/** From the container; undefined when it has none (e.g. WebM from MediaRecorder). */
	durationMs?: number;
	/** ffprobe guessed durationMs from the bitrate (MP3 without a Xing header, ADTS, AMR, a
	 * WAV whose header does not fit the file): a hint, not a fact. */
	durationEstimated: boolean;
	/** With countFrames: packets read and frames decoded from them. */
	packetsRead?: number;
	framesDecoded?: number;
}

const decimal = z.string().regex(/^-?\d+(\.\d+)?$/);
const ffprobeOutputSchema = z.looseObject({
	streams: z
		.array(
			z.looseObject({
				codec_name: z.string().max(64).optional(),
				sample_rate: decimal.optional(),
				channels: z.number().int().min(0).max(255).optional(),
				duration: decimal.optional(),
				bit_rate: decimal.optional(),
				nb_read_frames: decimal.optional(),
				nb_read_packets: decimal.optional(),
			}),
		)
		.max(1)
		.optional(),
	format: z.looseObject({ duration: decimal.optional(), bit_rate: decimal.optional() }).optional(),
});

/** ffprobe's warning when it divides the file size by a bitrate instead of reading a length. */
const ESTIMATED_DURATION = /Estimating duration from bitrate/;

export interface ProbeRun {
	ffprobePath: string;
	signal: AbortSignal;
}

export function toolUnavailable(error: ToolStartError): TranscodeError {
	return new TranscodeError('unavailable', 'The audio tools are not installed on this server.', { cause: error });
}

export function decodeFailed(stderrTail: string, paths: readonly string[]): TranscodeError {
	return new TranscodeError('decode-failed', `The audio could not be decoded: ${lastErrorLine(stderrTail, paths)}`);
}

function toNumber(text: string | undefined): number | undefined {
	if (text === undefined) return undefined;
	const value = Number(text);
	return Number.isFinite(value) ? value : undefined;
}

/** Stream info of the first audio stream. With countFrames every packet (up to
 * countLimitMs of them) is decoded: the proof that a file we keep as it is actually plays.
 * Otherwise only headers are read. */
export async function probeMedia(
	run: ProbeRun,
	format: Exclude<AudioFormat, 'unknown'>,
	filePath: string,
	options: { countFrames: false } | { countFrames: true; countLimitMs: number },
): Promise<MediaInfo> {
	const entries = 'format=duration,bit_rate:stream=codec_name,sample_rate,channels,duration,bit_rate,nb_read_frames,nb_read_packets';
	const args = [
		// `warning`, not `error`: the duration-estimate warning is information we act on.
		...globalArgs('ffprobe', 'warning'),
		'-select_streams',
		'a:0',
		'-show_entries',
		entries,
		...(options.countFrames ? ['-count_frames', '-count_packets', '-read_intervals', `%+${seconds(options.countLimitMs)}`] : []),
		'-of',
		'json',
		...inputArgs(format, filePath),
	];
	const result = await runTool(run.ffprobePath, args, { signal: run.signal, maxStdoutBytes: 64 * 1024 }).catch((error: unknown) => {
		throw error instanceof ToolStartError ? toolUnavailable(error) : error;
	});
	if (result.exitCode !== 0 || result.stdoutOverflow) throw decodeFailed(result.stderrTail, [filePath]);

	let json: unknown;
	try {
		json = JSON.parse(result.stdout.toString('utf8'));
	} catch {
		throw new TranscodeError('decode-failed', 'The audio could not be decoded: ffprobe gave no readable answer.');
	}
	const parsed = ffprobeOutputSchema.safeParse(json);
	if (!parsed.success) throw new TranscodeError('decode-failed', 'The audio could not be decoded: ffprobe gave an unexpected answer.');
	const stream = parsed.data.streams?.[0];
	const sampleRate = toNumber(stream?.sample_rate);
	if (stream === undefined || stream.codec_name === undefined || sampleRate === undefined || !stream.channels) {
		throw new TranscodeError('no-audio', 'The file contains no audio stream.');
	}
	// The audio stream's own length first: a container's is its longest stream (video, say).
	const durationS = toNumber(stream.duration) ?? toNumber(parsed.data.format?.duration);
	const bitrate = toNumber(stream.bit_rate) ?? toNumber(parsed.data.format?.bit_rate);
	const info: MediaInfo = {
		codec: stream.codec_name,
		sampleRate,
		channels: stream.channels,
		durationEstimated: ESTIMATED_DURATION.test(result.stderrTail),
	};
	if (durationS !== undefined && durationS > 0) info.durationMs = durationS * 1000;
	if (bitrate !== undefined && bitrate > 0) info.bitrateBps = Math.round(bitrate);
	const packets = toNumber(stream.nb_read_packets);
	const frames = toNumber(stream.nb_read_frames);
	if (packets !== undefined) info.packetsRead = packets;
	if (frames !== undefined) info.framesDecoded = frames;
	return info;
}

/** The audio's length from its packets' timestamps (last end minus first start), reading
 * at most `limitMs` (plus a second) of them: exact where the container has no duration, and
 * bounded so a file of endless packets costs no more than one just over the limit.
 * Undefined when there are no packets with timestamps. */
export async function packetDurationMs(
	run: ProbeRun,
	format: Exclude<AudioFormat, 'unknown'>,
	filePath: string,
	limitMs: number,
): Promise<number | undefined> {
	let firstStartS: number | undefined;
	let lastEndS: number | undefined;
	let partial = '';
	const onLine = (line: string): void => {
		const [ptsText, durationText] = line.split(',');
		const pts = toNumber(ptsText);
		if (pts === undefined) return;
		const end = pts + (toNumber(durationText) ?? 0);
		if (firstStartS === undefined || pts < firstStartS) firstStartS = pts;
		if (lastEndS === undefined || end > lastEndS) lastEndS = end;
	};
	const args = [
		...globalArgs('ffprobe'),
		'-select_streams',
		'a:0',
		'-read_intervals',
		`%+${seconds(limitMs + 1000)}`,
		'-show_entries',
		'packet=pts_time,duration_time',
		'-of',
		'csv=p=0',
		...inputArgs(format, filePath),
	];
	const result = await runTool(run.ffprobePath, args, {
		signal: run.signal,
		// Lines are parsed as they stream: a long file of tiny packets needs no buffer.
		onStdout: (chunk) => {
			const lines = (partial + chunk.toString('latin1')).split('\n');
			partial = lines.pop() ?? '';
			for (const line of lines) onLine(line);
		},
	}).catch((error: unknown) => {
		throw error instanceof ToolStartError ? toolUnavailable(error) : error;
	});
	onLine(partial);
	if (result.exitCode !== 0) throw decodeFailed(result.stderrTail, [filePath]);
	if (firstStartS === undefined || lastEndS === undefined) return undefined;
	return (lastEndS - firstStartS) * 1000;
}
