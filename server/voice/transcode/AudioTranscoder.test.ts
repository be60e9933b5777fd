import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AudioTranscoder, TranscodeError, type AudioFormat, type AudioTranscoderOptions } from './AudioTranscoder.js';
import { oggPageCrc } from './oggOpusInfo.js';
import {
	ffmpegChildren,
	ffmpegEncode,
	ffmpegEncodeStreamed,
	ffprobeStream,
	makeTempDir,
	opusinfoDurationMs,
	run,
	sox,
	speechWav,
	waitForFfmpegChild,
} from './testAudio.js';

const OPTIONS: AudioTranscoderOptions = {
	maxConcurrent: 2,
	maxQueued: 8,
	timeoutMs: 30_000,
	bitrateBps: 24_000,
	maxDurationMs: 10 * 60_000,
};

/** How far an output may be from the source's length, in ms. 60 ms for codecs whose
 * container lets ffmpeg trim encoder delay and padding (WAV, FLAC, MP3 with its LAME tag,
 * Vorbis, Opus; Matroska's Opus may keep up to one 20 ms frame of padding). */
const TOLERANCE_MS = 60;
/** AMR: sox pads the last 20 ms frame with silence. */
const AMR_TOLERANCE_MS = TOLERANCE_MS + 20;
/** AAC: ffmpeg 5.1 keeps the encoder's 1024-sample priming and the last frame's padding (up
 * to 1023 samples): up to 2048 samples at the source's 22050 Hz (93 ms), plus 10 ms. */
const AAC_TOLERANCE_MS = (2048 / 22050) * 1000 + 10;

async function rejection(promise: Promise<unknown>): Promise<TranscodeError> {
	try {
		await promise;
	} catch (error) {
		if (error instanceof TranscodeError) return error;
		throw error;
	}
	throw new Error('expected a TranscodeError, the promise resolved');
}

/** Files in dir that are temp outputs (`*.part`). */
function partFiles(dir: string): string[] {
	return readdirSync(dir).filter((name) => name.endsWith('.part'));
}

describe('AudioTranscoder', () => {
	let tmp: ReturnType<typeof makeTempDir>;
	let outDir: string;
	let sourceMs: number;
	const inputs: Record<string, string> = {};
	const timings: string[] = [];
	let transcoder: AudioTranscoder;
	let outputs = 0;
	const output = (): string => path.join(outDir, `out-${++outputs}.ogg`);
	const at = (name: string): string => path.join(tmp.dir, name);

	beforeAll(() => {
		tmp = makeTempDir('transcode');
		outDir = at('out');
		mkdirSync(outDir);
		const wav = speechWav(tmp.dir);
		sourceMs = ffprobeStream(wav).durationMs;
		inputs.wav = wav;
		sox([wav, '-r', '8000', '-c', '1', at('speech.amr-nb')]); // ffmpeg here cannot encode AMR
		inputs['amr-nb'] = at('speech.amr-nb');
		inputs.m4a = ffmpegEncode(wav, at('speech.m4a'), ['-c:a', 'aac']);
		inputs.adts = ffmpegEncode(wav, at('speech.aac'), ['-c:a', 'aac', '-f', 'adts']);
		inputs.mp3 = ffmpegEncode(wav, at('speech.mp3'), ['-c:a', 'libmp3lame']);
		inputs.webm = ffmpegEncode(wav, at('speech.webm'), ['-c:a', 'libopus']);
		inputs.flac = ffmpegEncode(wav, at('speech.flac'), ['-c:a', 'flac']);
		inputs.vorbis = ffmpegEncode(wav, at('speech.ogg'), ['-c:a', 'libvorbis']);
		inputs.opus = ffmpegEncode(wav, at('speech.opus'), ['-c:a', 'libopus', '-b:a', '32000']);
		// A browser's MediaRecorder writes WebM as a stream: no duration in the header.
		inputs['streamed webm'] = ffmpegEncodeStreamed(wav, at('streamed.webm'), ['-c:a', 'libopus', '-f', 'webm']);
	});
	afterAll(() => {
		if (timings.length > 0) console.info(`transcode times for ${(sourceMs / 1000).toFixed(2)} s of speech: ${timings.join(', ')}`);
		tmp.remove();
	});

	beforeEach(() => {
		transcoder = new AudioTranscoder(OPTIONS);
	});
	afterEach(async () => {
		transcoder.close();
		expect([transcoder.running, transcoder.queued]).toEqual([0, 0]);
		expect(await ffmpegChildren()).toEqual([]);
		expect(partFiles(outDir)).toEqual([]);
	});

	const formats: Array<[string, AudioFormat, number]> = [
		['wav', 'wav', TOLERANCE_MS],
		['amr-nb', 'amr-nb', AMR_TOLERANCE_MS],
		['m4a', 'mp4', AAC_TOLERANCE_MS],
		['adts', 'aac-adts', AAC_TOLERANCE_MS],
		['mp3', 'mp3', TOLERANCE_MS],
		['webm', 'webm', TOLERANCE_MS],
		['streamed webm', 'webm', TOLERANCE_MS],
		['flac', 'flac', TOLERANCE_MS],
		['vorbis', 'ogg-other', TOLERANCE_MS],
	];
	it.each(formats)('%s becomes Ogg Opus mono 48 kHz of the same length', async (name, format, toleranceMs) => {
		const input = inputs[name] ?? '';
		const out = output();
		const started = performance.now();
		const result = await transcoder.toOggOpus(input, out);
		timings.push(`${name} ${Math.round(performance.now() - started)} ms`);

		expect(result).toMatchObject({ detectedFormat: format, transcoded: true, sampleRate: 48_000, channels: 1 });
		expect(Math.abs(result.durationMs - sourceMs)).toBeLessThanOrEqual(toleranceMs);
		// ~24 kbit/s plus Ogg overhead (about 1 kbit/s at 20 ms frames).
		expect(result.bitrateBps).toBeGreaterThan(18_000);
		expect(result.bitrateBps).toBeLessThan(32_000);

		const probed = ffprobeStream(out);
		expect(probed).toMatchObject({ codec: 'opus', sampleRate: 48_000, channels: 1 });
		// ffprobe 5.1 counts the 6.5 ms pre-skip into the duration; opusinfo does not.
		expect(Math.abs(probed.durationMs - sourceMs)).toBeLessThanOrEqual(toleranceMs + 7);
		expect(Math.abs(opusinfoDurationMs(out) - sourceMs)).toBeLessThanOrEqual(toleranceMs);
		expect(Math.abs(opusinfoDurationMs(out) - result.durationMs)).toBeLessThanOrEqual(1);
	});

	it('keeps Ogg Opus input as encoded: the same packets, remuxed, not re-encoded', async () => {
		const out = output();
		const started = performance.now();
		const result = await transcoder.toOggOpus(inputs.opus ?? '', out);
		timings.push(`ogg-opus (kept) ${Math.round(performance.now() - started)} ms`);
		expect(result).toMatchObject({ detectedFormat: 'ogg-opus', transcoded: false, sampleRate: 48_000, channels: 1 });
		expect(Math.abs(result.durationMs - opusinfoDurationMs(inputs.opus ?? ''))).toBeLessThanOrEqual(1);
		// The per-packet checksum of the audio stream is the same before and after.
		const packets = (file: string): string => run('ffmpeg', ['-nostdin', '-loglevel', 'error', '-i', file, '-map', '0:a', '-c', 'copy', '-f', 'framemd5', '-']).replace(/^#.*\n/gm, '');
		expect(packets(out)).toBe(packets(inputs.opus ?? ''));
	});

	it('refuses Ogg Opus with a packet that does not decode, instead of keeping it', async () => {
		const bytes = Buffer.from(readFileSync(inputs.opus ?? ''));
		// The first audio page is the third; make its first packet's TOC claim zero frames
		// (code 3, count 0: invalid per RFC 6716) and fix the page CRC so only the codec objects.
		const pages: number[] = [];
		for (let at = bytes.indexOf('OggS'); at >= 0; at = bytes.indexOf('OggS', at + 4)) pages.push(at);
		const [page, next] = [pages[2] ?? 0, pages[3] ?? bytes.length];
		const payload = page + 27 + (bytes[page + 26] ?? 0);
		bytes[payload] = (31 << 3) | 3;
		bytes[payload + 1] = 0;
		bytes.writeUInt32LE(oggPageCrc(bytes.subarray(page, next)), page + 22);
		const damaged = at('damaged.opus');
		writeFileSync(damaged, bytes);
		const error = await rejection(transcoder.toOggOpus(damaged, output()));
		expect(error.code).toBe('decode-failed');
		expect(error.reason).toMatch(/^The audio could not be decoded: 1 of \d+ Opus packets are damaged\.$/);
	});

	it('keeps stereo Ogg Opus stereo (it is copied, not re-encoded)', async () => {
		const stereo = ffmpegEncode(inputs.wav ?? '', at('stereo.opus'), ['-c:a', 'libopus', '-ac', '2']);
		const result = await transcoder.toOggOpus(stereo, output());
		expect(result).toMatchObject({ transcoded: false, channels: 2 });
	});

	it('writes nothing but the output file, and replaces an older one at that name', async () => {
		const out = output();
		writeFileSync(out, 'old');
		await transcoder.toOggOpus(inputs.flac ?? '', out);
		expect(readFileSync(out).subarray(0, 4).toString('latin1')).toBe('OggS');
		expect(partFiles(outDir)).toEqual([]);
	});

	it('refuses random bytes as an unknown format without running ffmpeg or ffprobe', async () => {
		const noise = at('noise.bin');
		const bytes = Buffer.from(Array.from({ length: 65_536 }, () => Math.floor(Math.random() * 256)));
		bytes[0] = 0; // no magic starts with 0x00 except an ftyp box, which needs 'ftyp' at 4
		writeFileSync(noise, bytes);
		// With tools that do not exist, running one would fail with 'unavailable'.
		const blind = new AudioTranscoder({ ...OPTIONS, ffmpegPath: '/nonexistent/ffmpeg', ffprobePath: '/nonexistent/ffprobe' });
		const out = output();
		const error = await rejection(blind.toOggOpus(noise, out));
		expect(error.code).toBe('unknown-format');
		expect(error.reason).toBe('The file is not audio Parley can read (unknown format).');
		expect(existsSync(out)).toBe(false);
		blind.close();
	});

	it('says the tools are missing when they are', async () => {
		const blind = new AudioTranscoder({ ...OPTIONS, ffprobePath: '/nonexistent/ffprobe' });
		expect((await rejection(blind.toOggOpus(inputs.wav ?? '', output()))).code).toBe('unavailable');
		blind.close();
	});

	it('reports a truncated MP3 (first 30 % of its bytes) as incomplete', async () => {
		const bytes = readFileSync(inputs.mp3 ?? '');
		const cut = at('cut.mp3');
		writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.3)));
		const out = output();
		const error = await rejection(transcoder.toOggOpus(cut, out));
		expect(error.code).toBe('truncated');
		expect(error.reason).toMatch(/^The file is incomplete: it declares 2\.\d s of audio but only 0\.\d s could be decoded\.$/);
		expect(existsSync(out)).toBe(false);
	});

	it('reports a truncated M4A (first 30 % of its bytes) with ffmpeg\'s reason', async () => {
		const bytes = readFileSync(inputs.m4a ?? '');
		const cut = at('cut.m4a');
		writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.3)));
		const error = await rejection(transcoder.toOggOpus(cut, output()));
		expect(error.code).toBe('decode-failed');
		expect(error.reason).toBe('The audio could not be decoded: moov atom not found (Invalid data found when processing input)');
		expect(error.reason).not.toContain(tmp.dir);
	});

	it('reports garbage behind valid magic bytes as undecodable', async () => {
		const fake = at('fake.flac');
		writeFileSync(fake, Buffer.concat([Buffer.from('fLaC', 'latin1'), Buffer.alloc(10_000, 0x5a)]));
		const error = await rejection(transcoder.toOggOpus(fake, output()));
		expect(error.code).toBe('decode-failed');
		expect(error.reason).toMatch(/^The audio could not be decoded: ./);
		expect(error.reason).not.toContain(tmp.dir);
	});

	it('refuses a WAV whose header declares a huge length, before decoding it', async () => {
		const speech = readFileSync(inputs.wav ?? '');
		const bomb = Buffer.from(speech);
		bomb.writeUInt32LE(0x7ffffff0, 40); // the data chunk's size: 13.5 hours at 22050 Hz s16
		const file = at('bomb.wav');
		writeFileSync(file, bomb);
		const out = output();
		const error = await rejection(transcoder.toOggOpus(file, out));
		expect(error.code).toBe('too-long');
		expect(error.reason).toBe('The file declares 13.5 h of audio; voice messages can be at most 10 min long.');
		expect(existsSync(out)).toBe(false);
	});

	it('refuses a 10 s file when the limit is 5 s, whether its length is declared or counted', async () => {
		const limited = new AudioTranscoder({ ...OPTIONS, maxDurationMs: 5000 });
		const long = at('ten.wav');
		sox(['-n', '-r', '16000', '-b', '16', '-c', '1', long, 'synth', '10', 'sine', '300']);
		const declared = await rejection(limited.toOggOpus(long, output()));
		expect(declared.code).toBe('too-long');
		expect(declared.reason).toBe('The file declares 10 s of audio; voice messages can be at most 5 s long.');

		const streamed = ffmpegEncodeStreamed(long, at('ten.webm'), ['-c:a', 'libopus', '-f', 'webm']);
		const counted = await rejection(limited.toOggOpus(streamed, output()));
		expect(counted.code).toBe('too-long');
		expect(counted.reason).toBe('The audio is longer than 5 s, the most a voice message can be.');
		limited.close();
	});

	it('runs at most maxConcurrent jobs, queues maxQueued, and refuses the next one as busy', async () => {
		transcoder.close();
		transcoder = new AudioTranscoder({ ...OPTIONS, maxConcurrent: 1, maxQueued: 1 });
		const first = transcoder.toOggOpus(inputs.flac ?? '', output());
		const second = transcoder.toOggOpus(inputs.mp3 ?? '', output());
		const third = transcoder.toOggOpus(inputs.wav ?? '', output());
		expect([transcoder.running, transcoder.queued]).toEqual([1, 1]);
		const busy = await rejection(third);
		expect(busy.code).toBe('busy');
		expect(busy.reason).toBe('Parley is busy converting other voice messages; try again in a moment.');
		await expect(first).resolves.toMatchObject({ detectedFormat: 'flac' });
		await expect(second).resolves.toMatchObject({ detectedFormat: 'mp3' });
	});

	describe('with ten minutes of noise', () => {
		let long: string;
		beforeAll(() => {
			long = at('long.wav');
			sox(['-n', '-r', '8000', '-b', '16', '-c', '1', long, 'synth', '600', 'whitenoise', 'vol', '0.3']);
		});

		it('kills ffmpeg at the job deadline and leaves no file behind', async () => {
			transcoder.close();
			// 1.5 s: long enough that the ffprobe step before ffmpeg fits in it on a busy machine
			// (at 0.5 s it once ran out there, before ffmpeg started), short beside the seconds
			// encoding 600 s takes, so ffmpeg is what gets killed.
			transcoder = new AudioTranscoder({ ...OPTIONS, timeoutMs: 1500 });
			const out = output();
			const started = Date.now();
			const job = transcoder.toOggOpus(long, out);
			await waitForFfmpegChild();
			const error = await rejection(job);
			expect(error.code).toBe('timeout');
			expect(error.reason).toBe('Transcoding took longer than 1.5 s.');
			expect(Date.now() - started).toBeLessThan(2500);
			expect(await ffmpegChildren()).toEqual([]);
			expect(existsSync(out)).toBe(false);
		});

		it('close() kills running ffmpeg and rejects queued jobs', async () => {
			const running = transcoder.toOggOpus(long, output());
			const alsoRunning = transcoder.toOggOpus(long, output());
			const queued = transcoder.toOggOpus(inputs.wav ?? '', output());
			await waitForFfmpegChild();
			transcoder.close();
			const errors = await Promise.all([running, alsoRunning, queued].map(rejection));
			expect(errors.map((error) => error.code)).toEqual(['closed', 'closed', 'closed']);
			expect(await ffmpegChildren()).toEqual([]);
			expect((await rejection(transcoder.toOggOpus(inputs.wav ?? '', output()))).code).toBe('closed');
		});
	});

	it('probes stream info, counting packets where the container states no length', async () => {
		expect(await transcoder.probe(inputs.wav ?? '')).toEqual({
			durationMs: Math.round(sourceMs),
			codec: 'pcm_s16le',
			sampleRate: 22050,
			channels: 1,
			bitrateBps: 352_800,
		});
		const streamed = await transcoder.probe(inputs['streamed webm'] ?? '');
		expect(streamed).toMatchObject({ codec: 'opus', sampleRate: 48_000, channels: 1 });
		expect(Math.abs(streamed.durationMs - sourceMs)).toBeLessThanOrEqual(TOLERANCE_MS);
		// AMR: ffprobe only estimates from the bitrate (DTX frames are small); packets are exact.
		const amr = await transcoder.probe(inputs['amr-nb'] ?? '');
		expect(amr).toMatchObject({ codec: 'amr_nb', sampleRate: 8000, channels: 1 });
		expect(Math.abs(amr.durationMs - sourceMs)).toBeLessThanOrEqual(AMR_TOLERANCE_MS);
	});

	describe('waveform', () => {
		it('gives 100 zeros for a silent file', async () => {
			const silent = at('silent.wav');
			sox(['-n', '-r', '48000', '-b', '16', '-c', '1', silent, 'trim', '0', '3']);
			expect(await transcoder.waveform(silent)).toEqual(new Array(100).fill(0));
		});

		it('follows a tone that is loud in the first half and silent in the second, before and after transcoding', async () => {
			const tone = at('half-tone.wav');
			sox(['-n', '-r', '48000', '-b', '16', '-c', '1', tone, 'synth', '1.5', 'sine', '500', 'vol', '0.7', 'pad', '0', '1.5']);
			const encoded = output();
			await transcoder.toOggOpus(tone, encoded);
			for (const file of [tone, encoded]) {
				const bars = await transcoder.waveform(file);
				expect(bars).toHaveLength(100);
				expect(bars.every((v) => Number.isInteger(v) && v >= 0 && v <= 31)).toBe(true);
				// One bar either side of the middle may straddle the edge (Opus smears it by a few ms).
				expect(Math.min(...bars.slice(0, 49))).toBeGreaterThanOrEqual(29);
				expect(Math.max(...bars.slice(51))).toBeLessThanOrEqual(1);
			}
		});

		it('shows speech as varying bars with pauses', async () => {
			const bars = await transcoder.waveform(inputs.wav ?? '');
			expect(Math.max(...bars)).toBe(31);
			expect(bars.filter((v) => v === 0).length).toBeGreaterThan(0);
			expect(new Set(bars).size).toBeGreaterThan(10);
		});

		it('refuses an unknown format', async () => {
			const text = at('notes.txt');
			writeFileSync(text, 'not audio');
			expect((await rejection(transcoder.waveform(text))).code).toBe('unknown-format');
		});
	});

	it('rejects bad options with TypeError', () => {
		expect(() => new AudioTranscoder({ ...OPTIONS, bitrateBps: 1000 })).toThrow(TypeError);
		expect(() => new AudioTranscoder({ ...OPTIONS, maxDurationMs: 0 })).toThrow(TypeError);
		expect(() => new AudioTranscoder({ ...OPTIONS, maxConcurrent: 0 })).toThrow(TypeError);
	});
});
