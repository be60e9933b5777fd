import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIO_HEAD_BYTES, detectAudioFormat, detectFileFormat, id3v2TagBytes, type AudioFormat } from './audioFormat.js';
import { ffmpegEncode, makeTempDir, sox, speechWav } from './testAudio.js';

function head(file: string, bytes = AUDIO_HEAD_BYTES): Buffer {
	return readFileSync(file).subarray(0, bytes);
}

/** Deterministic noise (an LCG), so the "random bytes" case never flakes. */
function noise(bytes: number, seed = 12345): Buffer {
	const out = Buffer.alloc(bytes);
	let x = seed;
	for (let i = 0; i < bytes; i++) {
		x = (Math.imul(x, 1103515245) + 12345) >>> 0;
		out[i] = x >>> 24;
	}
	return out;
}

/** An ID3v2.4 tag of `bodyBytes` (syncsafe size). */
function id3Tag(bodyBytes: number): Buffer {
	const size = [21, 14, 7, 0].map((shift) => (bodyBytes >> shift) & 0x7f);
	return Buffer.concat([Buffer.from('ID3\x04\x00\x00', 'latin1'), Buffer.from(size), Buffer.alloc(bodyBytes)]);
}

describe('detectAudioFormat on files made by ffmpeg and sox', () => {
	let tmp: ReturnType<typeof makeTempDir>;
	const files: Record<string, string> = {};

	beforeAll(() => {
		tmp = makeTempDir('format');
		const wav = speechWav(tmp.dir);
		const at = (name: string): string => path.join(tmp.dir, name);
		files.wav = wav;
		sox([wav, '-r', '8000', '-c', '1', at('speech.amr-nb')]);
		files['amr-nb'] = at('speech.amr-nb');
		files.m4a = ffmpegEncode(wav, at('speech.m4a'), ['-c:a', 'aac']);
		files['3gp'] = ffmpegEncode(wav, at('speech.3gp'), ['-c:a', 'aac', '-ar', '16000']);
		files['mp3 (ID3)'] = ffmpegEncode(wav, at('speech.mp3'), ['-c:a', 'libmp3lame']);
		files['mp3 (bare frames)'] = ffmpegEncode(wav, at('bare.mp3'), ['-c:a', 'libmp3lame', '-id3v2_version', '0', '-write_xing', '0']);
		files['mp2 (layer II)'] = ffmpegEncode(wav, at('speech.mp2'), ['-c:a', 'mp2']);
		files.webm = ffmpegEncode(wav, at('speech.webm'), ['-c:a', 'libopus']);
		files.mka = ffmpegEncode(wav, at('speech.mka'), ['-c:a', 'libopus']);
		files.flac = ffmpegEncode(wav, at('speech.flac'), ['-c:a', 'flac']);
		files.vorbis = ffmpegEncode(wav, at('speech.ogg'), ['-c:a', 'libvorbis']);
		files.opus = ffmpegEncode(wav, at('speech.opus'), ['-c:a', 'libopus']);
		files.adts = ffmpegEncode(wav, at('speech.aac'), ['-c:a', 'aac', '-f', 'adts']);
	});
	afterAll(() => tmp.remove());

	const expected: Array<[string, AudioFormat]> = [
		['wav', 'wav'],
		['amr-nb', 'amr-nb'],
		['m4a', 'mp4'],
		['3gp', 'mp4'],
		['mp3 (ID3)', 'mp3'],
		['mp3 (bare frames)', 'mp3'],
		['mp2 (layer II)', 'mp3'],
		['webm', 'webm'],
		['mka', 'webm'],
		['flac', 'flac'],
		['vorbis', 'ogg-other'],
		['opus', 'ogg-opus'],
		['adts', 'aac-adts'],
	];
	it.each(expected)('%s is %s', (name, format) => {
		const file = files[name];
		if (file === undefined) throw new Error(`no fixture ${name}`);
		expect(detectAudioFormat(head(file))).toBe(format);
	});

	it('goes by the bytes, never the file name', async () => {
		const misnamed = path.join(tmp.dir, 'actually-wav.mp3');
		copyFileSync(files.wav ?? '', misnamed);
		expect((await detectFileFormat(misnamed)).format).toBe('wav');
	});

	it('looks past an ID3 tag longer than the head (cover art) to find FLAC', async () => {
		const tagged = path.join(tmp.dir, 'tagged.flac');
		writeFileSync(tagged, Buffer.concat([id3Tag(100_000), readFileSync(files.flac ?? '')]));
		expect(id3v2TagBytes(head(tagged))).toBe(100_010);
		expect(detectAudioFormat(head(tagged))).toBe('mp3'); // the head alone cannot see past it
		expect((await detectFileFormat(tagged)).format).toBe('flac');
	});

	it('sees FLAC and ADTS behind a short ID3 tag within the head', () => {
		expect(detectAudioFormat(Buffer.concat([id3Tag(64), head(files.flac ?? '')]))).toBe('flac');
		expect(detectAudioFormat(Buffer.concat([id3Tag(64), head(files.adts ?? '')]))).toBe('aac-adts');
	});
});

describe('detectAudioFormat on synthetic heads', () => {
	it('tells AMR-WB from AMR-NB (sox here cannot encode AMR-WB)', () => {
		// Mode 8 (23.85 kbit/s) frame header 0x44 followed by its 60 payload bytes.
		expect(detectAudioFormat(Buffer.concat([Buffer.from('#!AMR-WB\n', 'latin1'), Buffer.from([0x44]), Buffer.alloc(60)]))).toBe('amr-wb');
		expect(detectAudioFormat(Buffer.from('#!AMR\n\x3c', 'latin1'))).toBe('amr-nb');
	});

	it('calls an Ogg stream whose first packet is not OpusHead ogg-other', () => {
		expect(detectAudioFormat(Buffer.from('OggS', 'latin1'))).toBe('ogg-other');
	});

	it('refuses noise, text, images in an ftyp box, and nothing', () => {
		expect(detectAudioFormat(noise(AUDIO_HEAD_BYTES))).toBe('unknown');
		expect(detectAudioFormat(Buffer.from('<html><body>not audio</body></html>'))).toBe('unknown');
		const heic = Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('ftypheic\0\0\0\0mif1heic', 'latin1')]);
		expect(detectAudioFormat(heic)).toBe('unknown');
		expect(detectAudioFormat(Buffer.alloc(0))).toBe('unknown');
	});

	it('needs a second MPEG frame where the head has room for one', () => {
		// A valid MPEG-1 layer III header (128 kbit/s, 44.1 kHz: 417-byte frames) then noise.
		const lone = Buffer.concat([Buffer.from([0xff, 0xfb, 0x90, 0x00]), noise(2000, 7)]);
		lone[417] = 0; // make sure the noise does not happen to hold a sync word there
		expect(detectAudioFormat(lone)).toBe('unknown');
		lone.set([0xff, 0xfb, 0x90, 0x00], 417);
		expect(detectAudioFormat(lone)).toBe('mp3');
	});

	it('does not take reserved MPEG header values for audio', () => {
		// Sample-rate index 3 is reserved.
		expect(detectAudioFormat(Buffer.from([0xff, 0xfb, 0x9c, 0x00]))).toBe('unknown');
	});
});
