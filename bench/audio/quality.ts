// Objective audio quality of a decoded stream against the lossless decode of the same packets
// (so codec loss is factored out and only the damage done by packet loss remains).
//
// - snrDb: plain SNR over the whole stream. Dominated by loud passages.
// - segmentalSnrDb: the mean of per-20-ms SNRs clamped to [-10, 35] dB over frames with speech
//   (Quackenbush et al., "Objective Measures of Speech Quality"): every frame weighs the same,
//   so a concealed syllable counts as much as a loud one, which tracks listeners better.
// - damaged-frame SNRs: over FEC-recovered frames and over concealed frames only, which shows
//   how good each repair is (FEC rebuilds the waveform; concealment only extrapolates it).
import { FRAME_SAMPLES } from './speech.js';

const SEG_MIN_DB = -10;
const SEG_MAX_DB = 35;
/** Frames quieter than this (mean square, full scale = 1) are pauses, skipped by segmental SNR. */
const SILENCE_POWER = 1e-6;

export interface QualityScores {
	snrDb: number;
	segmentalSnrDb: number;
	recoveredSnrDb: number | null;
	concealedSnrDb: number | null;
}

function db(signal: number, noise: number): number {
	if (noise <= 0) return Infinity;
	return 10 * Math.log10(signal / noise);
}

/** `frameKinds[i]` says how frame i was produced: 'delivered' | 'recovered' | 'concealed'. */
export function qualityScores(reference: Int16Array, decoded: Int16Array, frameKinds: readonly string[]): QualityScores {
	const n = Math.min(reference.length, decoded.length);
	let sig = 0;
	let err = 0;
	let segSum = 0;
	let segCount = 0;
	const byKind: Record<string, { sig: number; err: number }> = { recovered: { sig: 0, err: 0 }, concealed: { sig: 0, err: 0 } };
	for (let f = 0; f * FRAME_SAMPLES < n; f++) {
		let fs = 0;
		let fe = 0;
		const end = Math.min(n, (f + 1) * FRAME_SAMPLES);
		for (let i = f * FRAME_SAMPLES; i < end; i++) {
			const r = reference[i]! / 32768;
			const d = r - decoded[i]! / 32768;
			fs += r * r;
			fe += d * d;
		}
		sig += fs;
		err += fe;
		const k = byKind[frameKinds[f] ?? ''];
		if (k) {
			k.sig += fs;
			k.err += fe;
		}
		if (fs / FRAME_SAMPLES > SILENCE_POWER) {
			segSum += Math.min(SEG_MAX_DB, Math.max(SEG_MIN_DB, fe === 0 ? SEG_MAX_DB : db(fs, fe)));
			segCount++;
		}
	}
	const kindDb = (k: { sig: number; err: number }): number | null => (k.sig === 0 && k.err === 0 ? null : Math.min(99, db(k.sig, k.err)));
	return {
		snrDb: Math.min(99, db(sig, err)),
		segmentalSnrDb: segCount ? segSum / segCount : SEG_MAX_DB,
		recoveredSnrDb: kindDb(byKind.recovered!),
		concealedSnrDb: kindDb(byKind.concealed!),
	};
}

export function concatFrames(frames: Int16Array[]): Int16Array {
	const out = new Int16Array(frames.reduce((n, f) => n + f.length, 0));
	let o = 0;
	for (const f of frames) {
		out.set(f, o);
		o += f.length;
	}
	return out;
}
