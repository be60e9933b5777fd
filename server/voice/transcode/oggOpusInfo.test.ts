import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { opusPacketSamples, readOggOpusInfo } from './oggOpusInfo.js';
import { ffmpegEncode, makeTempDir, opusinfoDurationMs, run, speechWav } from './testAudio.js';

describe('readOggOpusInfo', () => {
	let tmp: ReturnType<typeof makeTempDir>;
	let mono: string;
	let stereo: string;
	let offset: string;
	let bigTags: string;
	beforeAll(() => {
		tmp = makeTempDir('oggopus');
		const wav = speechWav(tmp.dir);
		mono = ffmpegEncode(wav, path.join(tmp.dir, 'mono.opus'), ['-c:a', 'libopus', '-b:a', '24000']);
		stereo = ffmpegEncode(wav, path.join(tmp.dir, 'stereo.opus'), ['-c:a', 'libopus', '-ac', '2', '-ar', '16000']);
		// Re-encoding WebM's Opus (which starts at a negative timestamp) makes ffmpeg start
		// the Ogg stream at a granule offset: the first audio page's granule is not its samples.
		const webm = ffmpegEncode(wav, path.join(tmp.dir, 'speech.webm'), ['-c:a', 'libopus']);
		offset = ffmpegEncode(webm, path.join(tmp.dir, 'offset.opus'), ['-c:a', 'libopus', '-f', 'ogg']);
		// 200 kB of tags: OpusTags spans several pages.
		const tagFile = path.join(tmp.dir, 'tags.txt');
		writeFileSync(tagFile, `;FFMETADATA1\ncomment=${'x'.repeat(200_000)}\n`);
		bigTags = path.join(tmp.dir, 'big-tags.opus');
		run('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', wav, '-i', tagFile, '-map_metadata', '1', '-c:a', 'libopus', bigTags]);
	});
	afterAll(() => tmp.remove());

	it('reads the length opusinfo reads (granule minus start minus pre-skip), to the millisecond', async () => {
		expect(readFileSync(bigTags).length).toBeGreaterThan(200_000);
		for (const file of [mono, stereo, offset, bigTags]) {
			const info = await readOggOpusInfo(file);
			expect(Math.abs(info.durationMs - opusinfoDurationMs(file))).toBeLessThan(1);
		}
	});

	it('reads the OpusHead fields', async () => {
		expect(await readOggOpusInfo(stereo)).toMatchObject({ channels: 2, preSkip: 312, inputSampleRate: 16000 });
		expect((await readOggOpusInfo(mono)).channels).toBe(1);
	});

	it('counts samples per Opus packet from the TOC byte', () => {
		expect(opusPacketSamples(Buffer.from([(1 << 3) | 0]))).toBe(960); // SILK 20 ms, one frame
		expect(opusPacketSamples(Buffer.from([(31 << 3) | 1]))).toBe(1920); // CELT 20 ms, two frames
		expect(opusPacketSamples(Buffer.from([(16 << 3) | 3, 0x06]))).toBe(720); // CELT 2.5 ms, six frames
		expect(opusPacketSamples(Buffer.from([(3 << 3) | 0]))).toBe(2880); // SILK 60 ms
		expect(opusPacketSamples(Buffer.alloc(0))).toBe(0);
	});

	it('throws for a cut-off file, a damaged first page and a file that is not Ogg', async () => {
		const bytes = readFileSync(mono);
		const cut = path.join(tmp.dir, 'cut.opus');
		writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
		await expect(readOggOpusInfo(cut)).rejects.toThrow('no valid Ogg page ends the file');
		const damaged = Buffer.from(bytes);
		damaged[40] = (damaged[40] ?? 0) ^ 0xff; // inside OpusHead: the page CRC no longer matches
		writeFileSync(cut, damaged);
		await expect(readOggOpusInfo(cut)).rejects.toThrow('first Ogg page');
		writeFileSync(cut, 'not ogg at all');
		await expect(readOggOpusInfo(cut)).rejects.toThrow();
	});
});
