// Turns an uploaded audio file into the Ogg Opus Parley stores and plays, with ffmpeg and
// ffprobe as child processes, and computes its waveform.
//
// Safety, in the order a job meets it: the format comes from the magic bytes (unknown fails
// before any process runs) and is forced on ffmpeg; inputs open through the file protocol
// only; the queue bounds how many processes run and wait; every job has a hard deadline that
// SIGKILLs its process; a file longer than maxDurationMs (by its header, or counted from its
// packets) is refused before decoding, and `-t` stops anything that got past that; output
// is written to a temp name and renamed into place only when it is complete and checked.
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { detectFileFormat, type AudioFormat } from './audioFormat.js';
import { fileUrl, globalArgs, inputArgs, inputFilters, seconds } from './ffmpegArgs.js';
import { JobQueue } from './JobQueue.js';
import { decodeFailed, packetDurationMs, probeMedia, toolUnavailable, type MediaInfo, type ProbeRun } from './mediaProbe.js';
import { readOggOpusInfo } from './oggOpusInfo.js';
import { runTool, ToolStartError, type ToolRun } from './toolProcess.js';
import { formatDuration, TranscodeError } from './TranscodeError.js';
import { WaveformAccumulator } from './waveform.js';
import { wavDeclaredDurationMs } from './wavHeader.js';

export type { AudioFormat } from './audioFormat.js';
export { TranscodeError, type TranscodeErrorCode } from './TranscodeError.js';

export interface TranscodeResult {
	detectedFormat: AudioFormat;
	/** False when Ogg Opus input was kept as it was encoded (remuxed, not re-encoded). */
	transcoded: boolean;
	durationMs: number;
	sampleRate: number;
	channels: number;
	/** Average over the output file, container included. */
	bitrateBps?: number;
}

export interface AudioProbe {
	durationMs: number;
	codec: string;
	sampleRate: number;
	channels: number;
	bitrateBps?: number;
}

export interface AudioTranscoderOptions {
	/** Default 'ffmpeg' / 'ffprobe' (looked up on PATH; Debian installs them in /usr/bin). */
	ffmpegPath?: string;
	ffprobePath?: string;
	/** Jobs (each runs one process at a time) running at once. */
	maxConcurrent: number;
	/** Jobs waiting for a slot; one more is refused with 'busy'. */
	maxQueued: number;
	/** Hard deadline per job from when it starts running. */
	timeoutMs: number;
	/** Opus target bitrate (libopus accepts 6000-510000). */
	bitrateBps: number;
	/** Longer inputs are refused. */
	maxDurationMs: number;
}

/** Output: Opus always decodes at 48 kHz; voice messages are mono. */
const OUTPUT_SAMPLE_RATE = 48_000;
/** 20 ms frames: Opus's default and the best size for speech (10 ms costs bitrate, 40-60 ms
 * costs quality on transients). */
const OUTPUT_FRAME_MS = 20;
/** The waveform decodes at 8 kHz: plenty for a loudness envelope, 6x less PCM than 48 kHz. */
const WAVEFORM_SAMPLE_RATE = 8000;
/** `-t` is the limit plus this, so output longer than the limit shows that the input was. */
const BACKSTOP_EXTRA_MS = 100;
/** A declared duration longer than what decoded by more than this (and 2 %) means the file was
 * cut off. Codec delay and padding differ by a frame or two (< 100 ms), never by this much. */
const TRUNCATION_TOLERANCE_MS = 250;

export class AudioTranscoder {
	readonly #ffmpegPath: string;
	readonly #ffprobePath: string;
	readonly #bitrateBps: number;
	readonly #maxDurationMs: number;
	readonly #timeoutMs: number;
	readonly #queue: JobQueue;

	constructor(options: AudioTranscoderOptions) {
		if (!Number.isInteger(options.bitrateBps) || options.bitrateBps < 6000 || options.bitrateBps > 510_000) {
			throw new TypeError('bitrateBps must be an integer from 6000 to 510000');
		}
		if (!Number.isInteger(options.maxDurationMs) || options.maxDurationMs < 1) throw new TypeError('maxDurationMs must be a positive integer');
		this.#ffmpegPath = options.ffmpegPath ?? 'ffmpeg';
		this.#ffprobePath = options.ffprobePath ?? 'ffprobe';
		this.#bitrateBps = options.bitrateBps;
		this.#maxDurationMs = options.maxDurationMs;
		this.#timeoutMs = options.timeoutMs;
		this.#queue = new JobQueue({
			maxConcurrent: options.maxConcurrent,
			maxQueued: options.maxQueued,
			timeoutMs: options.timeoutMs,
			errors: {
				busy: () => new TranscodeError('busy', 'Parley is busy converting other voice messages; try again in a moment.'),
				closed: () => new TranscodeError('closed', 'The audio converter has shut down.'),
				timeout: () => new TranscodeError('timeout', `Transcoding took longer than ${formatDuration(this.#timeoutMs)}.`),
			},
		});
	}

	get queued(): number {
		return this.#queue.queued;
	}

	get running(): number {
		return this.#queue.running;
	}

	/** Refuses new jobs, rejects queued ones, kills running processes (their jobs reject with
	 * 'closed' and remove their temp files). */
	close(): void {
		this.#queue.close();
	}

	/** Writes Ogg Opus mono (48 kHz; libopus, -application voip, bitrateBps, 20 ms frames) to
	 * outputPath. Ogg Opus input is validated (every packet decodes, codec opus, 1-2 channels,
	 * duration within the limit) and remuxed without re-encoding: tags, pictures and other
	 * streams are dropped, the audio is untouched. */
	toOggOpus(inputPath: string, outputPath: string): Promise<TranscodeResult> {
		return this.#queue.run((signal) => this.#toOggOpus(inputPath, outputPath, signal));
	}

	/** Duration and stream info of the first audio stream. Where the container states no
	 * length (or ffprobe only estimated one) it is counted from packets, reading at most
	 * maxDurationMs + 1 s of them: a longer file reports at least that. */
	probe(filePath: string): Promise<AudioProbe> {
		return this.#queue.run(async (signal) => {
			const { format, head } = await this.#detect(filePath);
			const run = this.#probeRun(signal);
			const info = await probeMedia(run, format, filePath, { countFrames: false });
			const length = await this.#measure(run, format, head, filePath, info);
			const result: AudioProbe = {
				durationMs: Math.round(length.declaredMs ?? length.packetMs ?? info.durationMs ?? 0),
				codec: info.codec,
				sampleRate: info.sampleRate,
				channels: info.channels,
			};
			if (info.bitrateBps !== undefined) result.bitrateBps = info.bitrateBps;
			return result;
		});
	}

	/** 100 bars of 0..31 (Telegram's convention): the audio decoded to mono s16le at 8 kHz,
	 * split into 100 equal windows, each window's RMS scaled to the loudest window (RMS
	 * rather than peak so a click does not look like speech; see waveform.ts). Decodes at
	 * most maxDurationMs. */
	waveform(filePath: string): Promise<number[]> {
		return this.#queue.run(async (signal) => {
			const { format } = await this.#detect(filePath);
			const filters = inputFilters(format, undefined);
			const accumulator = new WaveformAccumulator();
			const args = [
				...globalArgs('ffmpeg'),
				...inputArgs(format, filePath),
				'-map',
				'0:a:0',
				...(filters.length > 0 ? ['-af', filters.join(',')] : []),
				'-ac',
				'1',
				'-ar',
				String(WAVEFORM_SAMPLE_RATE),
				'-t',
				seconds(this.#maxDurationMs),
				'-c:a',
				'pcm_s16le',
				'-f',
				's16le',
				'pipe:1',
			];
			let samples = 0;
			const result = await this.#ffmpeg(args, signal, (chunk) => {
				samples += chunk.length / 2;
				accumulator.push(chunk);
			});
			if (result.exitCode !== 0) throw decodeFailed(result.stderrTail, [filePath]);
			if (samples < 1) throw new TranscodeError('no-audio', 'The file contains no audio that could be decoded.');
			return accumulator.finish();
		});
	}

	async #toOggOpus(inputPath: string, outputPath: string, signal: AbortSignal): Promise<TranscodeResult> {
		const { format, head } = await this.#detect(inputPath);
		const run = this.#probeRun(signal);
		const info = await probeMedia(run, format, inputPath, { countFrames: false });
		const length = await this.#measure(run, format, head, inputPath, info);
		const keep = format === 'ogg-opus' && info.codec === 'opus' && info.channels <= 2;
		// Decoding every packet comes after the length check, so a ten-hour file is refused
		// from its last page instead of being decoded first.
		if (keep) await this.#checkEveryPacketDecodes(run, inputPath);
		signal.throwIfAborted();

		const tempPath = `${outputPath}.${randomBytes(6).toString('hex')}.part`;
		let renamed = false;
		try {
			const filters = inputFilters(format, length.packetMs);
			const output = [
				'-map',
				'0:a:0',
				'-map_metadata',
				'-1',
				'-map_chapters',
				'-1',
				...(keep
					? ['-c:a', 'copy']
					: [
							...(filters.length > 0 ? ['-af', filters.join(',')] : []),
							'-ac',
							'1',
							'-ar',
							String(OUTPUT_SAMPLE_RATE),
							'-c:a',
							'libopus',
							'-application',
							'voip',
							'-b:a',
							String(this.#bitrateBps),
							'-frame_duration',
							String(OUTPUT_FRAME_MS),
						]),
				'-t',
				seconds(this.#maxDurationMs + BACKSTOP_EXTRA_MS),
				'-f',
				'ogg',
				// Never overwrite: the temp name is ours alone; a clash is a bug to see.
				'-n',
				fileUrl(tempPath),
			];
			const result = await this.#ffmpeg([...globalArgs('ffmpeg'), ...inputArgs(format, inputPath), ...output], signal);
			if (result.exitCode !== 0) throw decodeFailed(result.stderrTail, [inputPath, tempPath]);

			const written = await readOggOpusInfo(tempPath).catch((error: unknown) => {
				throw new TranscodeError('decode-failed', 'The audio could not be decoded: ffmpeg wrote no valid Ogg Opus.', { cause: error });
			});
			if (written.durationMs <= 0) throw new TranscodeError('no-audio', 'The file contains no audio that could be decoded.');
			this.#checkLength(written.durationMs, 'decoded');
			const declared = length.declaredMs;
			if (declared !== undefined && written.durationMs < declared - Math.max(TRUNCATION_TOLERANCE_MS, declared * 0.02)) {
				throw new TranscodeError(
					'truncated',
					`The file is incomplete: it declares ${formatDuration(declared)} of audio but only ${formatDuration(written.durationMs)} could be decoded.`,
				);
			}
			signal.throwIfAborted();
			await commitFile(tempPath, outputPath);
			renamed = true;
			return {
				detectedFormat: format,
				transcoded: !keep,
				durationMs: Math.round(written.durationMs),
				sampleRate: OUTPUT_SAMPLE_RATE,
				channels: written.channels,
				bitrateBps: Math.round((written.sizeBytes * 8 * 1000) / written.durationMs),
			};
		} finally {
			if (!renamed) await unlink(tempPath).catch(ignoreMissing);
		}
	}

	/** Ogg Opus that is kept must play: ffprobe decodes each packet (ffmpeg's Opus decoder
	 * rejects malformed ones) and every packet read must give a frame. */
	async #checkEveryPacketDecodes(run: ProbeRun, inputPath: string): Promise<void> {
		const counted = await probeMedia(run, 'ogg-opus', inputPath, { countFrames: true, countLimitMs: this.#maxDurationMs + BACKSTOP_EXTRA_MS });
		const packets = counted.packetsRead ?? 0;
		const frames = counted.framesDecoded ?? 0;
		if (packets === 0 || frames !== packets) {
			throw new TranscodeError('decode-failed', `The audio could not be decoded: ${packets - frames} of ${packets} Opus packets are damaged.`);
		}
	}

	/** The input's length as declared (WAV header, or a container duration ffprobe read rather
	 * than estimated) and, when nothing was declared, as counted from packets; refuses it when
	 * either is over the limit. */
	async #measure(
		run: ProbeRun,
		format: Exclude<AudioFormat, 'unknown'>,
		head: Buffer,
		filePath: string,
		info: MediaInfo,
	): Promise<{ declaredMs?: number; packetMs?: number }> {
		const headerMs = format === 'wav' ? wavDeclaredDurationMs(head) : undefined;
		const declaredMs = headerMs ?? (info.durationEstimated ? undefined : info.durationMs);
		if (declaredMs !== undefined) {
			this.#checkLength(declaredMs, 'declared');
			return { declaredMs };
		}
		const packetMs = await packetDurationMs(run, format, filePath, this.#maxDurationMs);
		if (packetMs === undefined) return {};
		this.#checkLength(packetMs, 'counted');
		return { packetMs };
	}

	#checkLength(durationMs: number, how: 'declared' | 'counted' | 'decoded'): void {
		if (durationMs <= this.#maxDurationMs) return;
		const limit = formatDuration(this.#maxDurationMs);
		// Counted and decoded lengths stop a little past the limit, so they only prove "longer".
		throw new TranscodeError(
			'too-long',
			how === 'declared'
				? `The file declares ${formatDuration(durationMs)} of audio; voice messages can be at most ${limit} long.`
				: `The audio is longer than ${limit}, the most a voice message can be.`,
		);
	}

	async #detect(filePath: string): Promise<{ format: Exclude<AudioFormat, 'unknown'>; head: Buffer }> {
		const { format, head } = await detectFileFormat(filePath).catch((error: unknown) => {
			const code = (error as NodeJS.ErrnoException).code ?? 'error';
			throw new TranscodeError('unreadable', `The file could not be read (${code}).`, { cause: error });
		});
		if (format === 'unknown') throw new TranscodeError('unknown-format', 'The file is not audio Parley can read (unknown format).');
		return { format, head };
	}

	#probeRun(signal: AbortSignal): ProbeRun {
		return { ffprobePath: this.#ffprobePath, signal };
	}

	async #ffmpeg(args: string[], signal: AbortSignal, onStdout?: (chunk: Buffer) => void): Promise<ToolRun> {
		try {
			return await runTool(this.#ffmpegPath, args, onStdout === undefined ? { signal } : { signal, onStdout });
		} catch (error) {
			throw error instanceof ToolStartError ? toolUnavailable(error) : error;
		}
	}
}

/** Makes the finished temp file durable, then atomically gives it the final name, so a
 * reader (or a crash) sees either no file or the whole one. */
async function commitFile(tempPath: string, finalPath: string): Promise<void> {
	const file = await open(tempPath, 'r+');
	try {
		await file.sync();
	} finally {
		await file.close();
	}
	await rename(tempPath, finalPath);
	const dir = await open(path.dirname(finalPath), 'r');
	try {
		await dir.sync();
	} finally {
		await dir.close();
	}
}

function ignoreMissing(error: unknown): void {
	if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}
