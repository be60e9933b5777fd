import { describe, expect, it } from 'vitest';
import { WAVEFORM_BARS, WaveformAccumulator, waveformFromPcm } from './waveform.js';

const RATE = 8000;

/** s16le mono PCM from a function of the sample index. */
function pcm(samples: number, value: (i: number) => number): Buffer {
	const out = Buffer.alloc(samples * 2);
	for (let i = 0; i < samples; i++) out.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(value(i)))), i * 2);
	return out;
}

// 500 Hz: a whole number of periods per 10 ms block, so every full window has the same RMS.
const tone = (amplitude: number) => (i: number) => amplitude * Math.sin((2 * Math.PI * 500 * i) / RATE);

describe('WaveformAccumulator', () => {
	it('gives 100 zeros for silence and for no samples at all', () => {
		expect(waveformFromPcm(pcm(3 * RATE, () => 0))).toEqual(new Array(WAVEFORM_BARS).fill(0));
		expect(waveformFromPcm(Buffer.alloc(0))).toEqual(new Array(WAVEFORM_BARS).fill(0));
	});

	it('treats faint noise (below -60 dBFS) as silence instead of amplifying it', () => {
		expect(waveformFromPcm(pcm(RATE, (i) => (i % 2 ? 8 : -8)))).toEqual(new Array(WAVEFORM_BARS).fill(0));
	});

	it('shows a loud first half and a silent second half', () => {
		const bars = waveformFromPcm(pcm(2 * RATE, (i) => (i < RATE ? tone(20000)(i) : 0)));
		expect(bars).toHaveLength(WAVEFORM_BARS);
		expect(bars.slice(0, 50).every((v) => v === 31)).toBe(true);
		expect(bars.slice(50).every((v) => v === 0)).toBe(true);
	});

	it('scales linearly in RMS relative to the loudest window', () => {
		const bars = waveformFromPcm(pcm(2 * RATE, (i) => (i < RATE ? tone(20000)(i) : tone(10000)(i))));
		expect(bars[10]).toBe(31);
		expect(bars[90]).toBe(16); // half the RMS: round(31 / 2)
	});

	it('is not fooled by a click: one full-scale sample does not squash the other bars', () => {
		// Scaled by peaks, the click's bar would be 31 and every other bar round(31 * 8000 / 32767) = 8.
		const bars = waveformFromPcm(pcm(2 * RATE, (i) => (i === RATE + 400 ? 32767 : tone(8000)(i))));
		expect(Math.max(...bars)).toBe(31);
		expect(Math.min(...bars)).toBeGreaterThanOrEqual(28);
	});

	it('gives the same bars whatever the chunking, odd byte splits included', () => {
		const data = pcm(RATE + 123, (i) => tone(15000)(i) * (i / RATE));
		const whole = waveformFromPcm(data);
		const accumulator = new WaveformAccumulator();
		for (let at = 0; at < data.length; at += 777) accumulator.push(data.subarray(at, at + 777));
		expect(accumulator.finish()).toEqual(whole);
	});

	it('fills every bar for audio shorter than 100 blocks (under a second)', () => {
		const bars = waveformFromPcm(pcm(RATE / 4, tone(20000)));
		expect(bars).toHaveLength(WAVEFORM_BARS);
		expect(bars.every((v) => v === 31)).toBe(true);
	});
});
