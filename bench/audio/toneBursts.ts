// The mouth-to-ear scenario's fake microphone: short voiced bursts with silence between, as a
// 48 kHz mono WAV that Chromium loops (--use-file-for-fake-audio-capture).
//
// A burst is a harmonic complex (a 200 Hz fundamental and its harmonics up to 3 kHz, falling
// 1/k, like a sustained vowel) rather than a pure tone: Opus codes a steady tone in CELT mode,
// which carries no in-band FEC (../shared/notes/real-services.md), while a voiced sound goes
// through SILK, as speech does, so a lost onset frame can come back from the next packet's FEC.
// The onset is sharp (a 1 ms rise) so its instant does not depend on the level it is heard at;
// the gaps between onsets vary (minGapMs + 0..95 ms) so onsets fall on every phase of the 10 ms
// capture chunks and 20 ms Opus frames instead of always the same one.
import { writeFileSync } from 'node:fs';

export interface BurstTrain {
	sampleRate: number;
	burstMs: number;
	/** Onsets within one loop of the file, ms from its start. */
	onsetsMs: number[];
	/** Length of one loop of the file. */
	loopMs: number;
}

export const BURST_FUNDAMENTAL_HZ = 200;
const TOP_HARMONIC_HZ = 3000;
const RISE_MS = 1;
const FALL_MS = 5;

/** Gaps between onsets: minGapMs + 0, 19, ..., 95 ms, then again (20 bursts a loop: about 10.9 s at 500 ms). */
export function burstTrain({ burstMs = 60, minGapMs = 500, bursts = 20, sampleRate = 48_000 } = {}): BurstTrain {
	const onsetsMs: number[] = [];
	let t = 200;
	for (let i = 0; i < bursts; i++) {
		onsetsMs.push(t);
		t += minGapMs + ((i * 19) % 100);
	}
	// The next loop's first onset comes one more gap after the last: the loop is seamless.
	return { sampleRate, burstMs, onsetsMs, loopMs: t - 200 };
}

/** Writes the train as a mono 16-bit PCM WAV (peak amplitude `peak` of full scale). */
export function writeBurstWav(file: string, train: BurstTrain, peak = 0.5): void {
	const { sampleRate } = train;
	const samples = Math.round((train.loopMs * sampleRate) / 1000);
	const pcm = new Float64Array(samples);
	const harmonics: number[] = [];
	for (let k = 1; k * BURST_FUNDAMENTAL_HZ <= TOP_HARMONIC_HZ; k++) harmonics.push(k);
	const burstSamples = Math.round((train.burstMs * sampleRate) / 1000);
	const rise = Math.round((RISE_MS * sampleRate) / 1000);
	const fall = Math.round((FALL_MS * sampleRate) / 1000);
	// The complex's peak over one period, to scale it to `peak`.
	let maxAbs = 0;
	const wave = new Float64Array(burstSamples);
	for (let i = 0; i < burstSamples; i++) {
		let v = 0;
		for (const k of harmonics) v += Math.sin((2 * Math.PI * k * BURST_FUNDAMENTAL_HZ * i) / sampleRate) / k;
		wave[i] = v;
		maxAbs = Math.max(maxAbs, Math.abs(v));
	}
	for (const onsetMs of train.onsetsMs) {
		const start = Math.round((onsetMs * sampleRate) / 1000);
		for (let i = 0; i < burstSamples && start + i < samples; i++) {
			const envelope = i < rise ? 0.5 - 0.5 * Math.cos((Math.PI * i) / rise) : i >= burstSamples - fall ? 0.5 + 0.5 * Math.cos((Math.PI * (i - (burstSamples - fall))) / fall) : 1;
			pcm[start + i] = (peak * envelope * wave[i]!) / maxAbs;
		}
	}
	const data = Buffer.alloc(samples * 2);
	for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(Math.max(-1, Math.min(1, pcm[i]!)) * 32767), i * 2);
	const header = Buffer.alloc(44);
	header.write('RIFF', 0);
	header.writeUInt32LE(36 + data.length, 4);
	header.write('WAVE', 8);
	header.write('fmt ', 12);
	header.writeUInt32LE(16, 16);
	header.writeUInt16LE(1, 20); // PCM
	header.writeUInt16LE(1, 22); // mono
	header.writeUInt32LE(sampleRate, 24);
	header.writeUInt32LE(sampleRate * 2, 28);
	header.writeUInt16LE(2, 32);
	header.writeUInt16LE(16, 34);
	header.write('data', 36);
	header.writeUInt32LE(data.length, 40);
	writeFileSync(file, Buffer.concat([header, data]));
}
