import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, speechWav } from './testAudio.js';
import { wavDeclaredDurationMs } from './wavHeader.js';

/** A canonical 44-byte PCM WAV header (mono, s16) declaring `dataBytes`. */
function wavHeader(dataBytes: number, sampleRate = 8000): Buffer {
	const h = Buffer.alloc(44);
	h.write('RIFF', 0, 'latin1');
	h.writeUInt32LE(Math.min(0xffffffff, dataBytes + 36), 4);
	h.write('WAVEfmt ', 8, 'latin1');
	h.writeUInt32LE(16, 16);
	h.writeUInt16LE(1, 20);
	h.writeUInt16LE(1, 22);
	h.writeUInt32LE(sampleRate, 24);
	h.writeUInt32LE(sampleRate * 2, 28);
	h.writeUInt16LE(2, 32);
	h.writeUInt16LE(16, 34);
	h.write('data', 36, 'latin1');
	h.writeUInt32LE(dataBytes, 40);
	return h;
}

describe('wavDeclaredDurationMs', () => {
	let tmp: ReturnType<typeof makeTempDir>;
	let speech: Buffer;
	beforeAll(() => {
		tmp = makeTempDir('wav');
		speech = readFileSync(speechWav(tmp.dir));
	});
	afterAll(() => tmp.remove());

	it('reads what espeak-ng wrote: data bytes over byte rate', () => {
		const dataBytes = speech.length - 44;
		expect(wavDeclaredDurationMs(speech)).toBeCloseTo((dataBytes / (22050 * 2)) * 1000, 6);
	});

	it('reports a header declaring a huge length as such', () => {
		expect(wavDeclaredDurationMs(wavHeader(0x7ffffff0))).toBeGreaterThan(36 * 3600 * 1000);
	});

	it('finds the data chunk after other chunks', () => {
		const h = wavHeader(16000);
		const list = Buffer.concat([Buffer.from('LIST', 'latin1'), Buffer.from([5, 0, 0, 0]), Buffer.from('INFOx\0', 'latin1')]);
		expect(wavDeclaredDurationMs(Buffer.concat([h.subarray(0, 36), list, h.subarray(36)]))).toBe(1000);
	});

	it('says nothing for unknown sizes or heads without the chunks', () => {
		expect(wavDeclaredDurationMs(wavHeader(0xffffffff))).toBeUndefined();
		expect(wavDeclaredDurationMs(wavHeader(0))).toBeUndefined();
		expect(wavDeclaredDurationMs(wavHeader(16000).subarray(0, 30))).toBeUndefined();
	});
});
