// Test fixtures for server/voice/transcode: real audio files made with espeak-ng, sox and
// ffmpeg in a temp directory, and independent measurements of the results (ffprobe,
// opusinfo). Used by the *.test.ts files only.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export function makeTempDir(prefix: string): { dir: string; remove: () => void } {
	const dir = mkdtempSync(path.join(tmpdir(), `parley-${prefix}-`));
	return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function run(command: string, args: string[]): string {
	return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** About 2.8 s of synthetic speech, 22050 Hz mono s16 WAV. */
export function speechWav(dir: string, name = 'speech.wav'): string {
	const file = path.join(dir, name);
	run('espeak-ng', ['-w', file, 'Hello from Parley, this is a short voice message.']);
	return file;
}

/** Encodes `input` with ffmpeg (output options before the output name). */
export function ffmpegEncode(input: string, output: string, options: string[]): string {
	run('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', '-i', input, ...options, output]);
	return output;
}

/** Encodes to a pipe, as a live recorder does (no seeking back: e.g. WebM without a
 * duration or cues, like a browser's MediaRecorder writes). */
export function ffmpegEncodeStreamed(input: string, output: string, options: string[]): string {
	const bytes = execFileSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-i', input, ...options, 'pipe:1'], {
		stdio: ['ignore', 'pipe', 'pipe'],
		maxBuffer: 64 * 1024 * 1024,
	});
	writeFileSync(output, bytes);
	return output;
}

/** A sox command producing `output` (e.g. ['-n', '-r', '8000', out, 'synth', '3', 'sine', '440']). */
export function sox(args: string[]): void {
	run('sox', args);
}

export interface ProbedStream {
	codec: string;
	sampleRate: number;
	channels: number;
	durationMs: number;
}

/** ffprobe's view of the first audio stream (format duration). */
export function ffprobeStream(file: string): ProbedStream {
	const out = run('ffprobe', [
		'-v',
		'error',
		'-select_streams',
		'a:0',
		'-show_entries',
		'stream=codec_name,sample_rate,channels:format=duration',
		'-of',
		'json',
		file,
	]);
	const json = JSON.parse(out) as {
		streams: Array<{ codec_name: string; sample_rate: string; channels: number }>;
		format: { duration: string };
	};
	const stream = json.streams[0];
	if (stream === undefined) throw new Error(`no audio stream in ${file}`);
	return {
		codec: stream.codec_name,
		sampleRate: Number(stream.sample_rate),
		channels: stream.channels,
		durationMs: Number(json.format.duration) * 1000,
	};
}

/** opusinfo's "Playback length: 0m:03.622s" in milliseconds. */
export function opusinfoDurationMs(file: string): number {
	const out = run('opusinfo', [file]);
	const m = /Playback length:\s*(\d+)m:(\d+(?:\.\d+)?)s/.exec(out);
	if (!m) throw new Error(`opusinfo gave no playback length for ${file}:\n${out}`);
	return (Number(m[1]) * 60 + Number(m[2])) * 1000;
}

/** Names of this process's child processes that are ffmpeg or ffprobe. */
export async function ffmpegChildren(): Promise<string[]> {
	const { stdout } = await execFileAsync('ps', ['-o', 'comm=', '--ppid', String(process.pid)]).catch(
		// ps exits 1 when no process matches.
		(error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }),
	);
	return stdout
		.split('\n')
		.map((line) => line.trim())
		.filter((name) => name === 'ffmpeg' || name === 'ffprobe');
}

/** Resolves once an ffmpeg child runs (polls `ps`); rejects after `withinMs`. */
export async function waitForFfmpegChild(withinMs = 5000): Promise<void> {
	const deadline = Date.now() + withinMs;
	while (Date.now() < deadline) {
		if ((await ffmpegChildren()).includes('ffmpeg')) return;
		await new Promise((resolve) => setTimeout(resolve, 10));
	}
	throw new Error('no ffmpeg child process appeared');
}
