// Speech-like test audio: a few sentences spoken by espeak-ng, resampled by sox to 48 kHz
// mono 16-bit. Speech (voiced/unvoiced segments, pauses) exercises Opus' SILK/hybrid modes,
// where in-band FEC lives; a pure tone would not. Cached per text and voice in the temp dir.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const SAMPLE_RATE = 48_000;
/** 20 ms at 48 kHz. */
export const FRAME_SAMPLES = 960;
export const FRAME_MS = 20;

export const DEFAULT_SENTENCES = [
	'The quick brown fox jumps over the lazy dog.',
	'Please call Stella and ask her to bring these things with her from the store.',
	'Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.',
	'We also need a small plastic snake and a big toy frog for the kids.',
	'She can scoop these things into three red bags, and we will go meet her Wednesday at the train station.',
];

export interface SpeechOptions {
	sentences?: string[];
	/** espeak-ng voices, used in turn per sentence (a male and a female variant by default). */
	voices?: string[];
	/** Words per minute. */
	speedWpm?: number;
	cacheDir?: string;
}

/** Mono 48 kHz Int16 samples of the sentences, with ~300 ms pauses between them. */
export function speechPcm(options: SpeechOptions = {}): Int16Array {
	const sentences = options.sentences ?? DEFAULT_SENTENCES;
	const voices = options.voices ?? ['en-us', 'en-us+f3'];
	const speed = options.speedWpm ?? 160;
	const key = createHash('sha256').update(JSON.stringify({ sentences, voices, speed, v: 1 })).digest('hex').slice(0, 16);
	const dir = options.cacheDir ?? path.join(os.tmpdir(), 'parley-bench-audio');
	const file = path.join(dir, `speech-${key}.s16`);
	if (!existsSync(file)) {
		mkdirSync(dir, { recursive: true });
		const work = path.join(dir, `work-${process.pid}-${key}`);
		mkdirSync(work, { recursive: true });
		try {
			const wavs = sentences.map((text, i) => {
				const wav = path.join(work, `${i}.wav`);
				execFileSync('espeak-ng', ['-v', voices[i % voices.length]!, '-s', String(speed), '-w', wav, text]);
				return wav;
			});
			const raw = path.join(work, 'speech.s16');
			// Concatenate, resample to 48 kHz mono 16-bit, add a pause after each sentence.
			const parts = wavs.flatMap((w) => [w, '|sox -V1 -n -r 22050 -c 1 -b 16 -t wav - trim 0 0.3']);
			execFileSync('sox', ['-V1', ...parts, '-t', 'raw', '-r', String(SAMPLE_RATE), '-e', 'signed', '-b', '16', '-c', '1', '-L', raw, 'rate', '-h']);
			renameSync(raw, file);
		} finally {
			rmSync(work, { recursive: true, force: true });
		}
	}
	const bytes = readFileSync(file);
	return new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2).slice();
}

/** `frames` consecutive 20 ms frames of `pcm`, looping it, starting at frame `startFrame`. */
export function loopFrames(pcm: Int16Array, frames: number, startFrame = 0): Int16Array[] {
	const out: Int16Array[] = [];
	let pos = (startFrame * FRAME_SAMPLES) % pcm.length;
	for (let f = 0; f < frames; f++) {
		const frame = new Int16Array(FRAME_SAMPLES);
		for (let i = 0; i < FRAME_SAMPLES; i++) {
			frame[i] = pcm[pos]!;
			pos = pos + 1 === pcm.length ? 0 : pos + 1;
		}
		out.push(frame);
	}
	return out;
}
