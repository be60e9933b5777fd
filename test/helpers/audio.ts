// Test audio: a sine tone as 20 ms Opus frames, and the dominant frequency of decoded PCM.
import { execFileSync } from 'node:child_process';
import { Decoder, Encoder } from '@evan/opus';

export const SAMPLE_RATE = 48_000;
export const FRAME_SAMPLES = 960; // 20 ms at 48 kHz

/** `frames` Opus packets (stereo, 20 ms each) of a sine tone at `frequencyHz`. */
export function encodeTone(frequencyHz: number, frames: number, bitrateBps = 32_000): Uint8Array[] {
	const encoder = new Encoder({ channels: 2, sample_rate: SAMPLE_RATE, application: 'audio' });
	encoder.bitrate = bitrateBps;
	const packets: Uint8Array[] = [];
	for (let f = 0; f < frames; f++) {
		const pcm = new Int16Array(FRAME_SAMPLES * 2);
		for (let i = 0; i < FRAME_SAMPLES; i++) {
			const t = (f * FRAME_SAMPLES + i) / SAMPLE_RATE;
			const v = Math.round(12_000 * Math.sin(2 * Math.PI * frequencyHz * t));
			pcm[2 * i] = v;
			pcm[2 * i + 1] = v;
		}
		packets.push(encoder.encode(pcm).slice());
	}
	return packets;
}

/** Decodes Opus packets to mono float samples (left channel). */
export function decodeToMono(packets: Uint8Array[]): Float32Array {
	const decoder = new Decoder({ channels: 2, sample_rate: SAMPLE_RATE });
	const chunks: Int16Array[] = [];
	for (const p of packets) {
		const bytes = decoder.decode(p);
		chunks.push(new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2).slice());
	}
	const total = chunks.reduce((n, c) => n + c.length / 2, 0);
	const mono = new Float32Array(total);
	let o = 0;
	for (const c of chunks) for (let i = 0; i < c.length; i += 2) mono[o++] = c[i]! / 32768;
	return mono;
}

/** Power of `samples` at `frequencyHz` (Goertzel). */
function goertzelPower(samples: Float32Array, frequencyHz: number): number {
	const coeff = 2 * Math.cos((2 * Math.PI * frequencyHz) / SAMPLE_RATE);
	let s1 = 0;
	let s2 = 0;
	for (const x of samples) {
		const s = x + coeff * s1 - s2;
		s2 = s1;
		s1 = s;
	}
	return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

/** The strongest frequency between 100 Hz and 4 kHz, to `stepHz`. */
export function dominantFrequency(samples: Float32Array, stepHz = 5): number {
	let best = 0;
	let bestPower = -1;
	for (let f = 100; f <= 4000; f += stepHz) {
		const p = goertzelPower(samples, f);
		if (p > bestPower) {
			bestPower = p;
			best = f;
		}
	}
	return best;
}

export function rms(samples: Float32Array): number {
	let sum = 0;
	for (const x of samples) sum += x * x;
	return Math.sqrt(sum / Math.max(1, samples.length));
}

/** Decodes any audio file with ffmpeg to mono float samples at 48 kHz. */
export function decodeFileToMono(path: string): Float32Array {
	const pcm = execFileSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-i', path, '-f', 's16le', '-ac', '1', '-ar', String(SAMPLE_RATE), '-'], {
		maxBuffer: 256 * 1024 * 1024,
	});
	const ints = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.byteLength / 2);
	return Float32Array.from(ints, (v) => v / 32768);
}

/** Duration in ms as ffprobe reports it for the file's container. */
export function probeDurationMs(path: string): number {
	const out = execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', path], { encoding: 'utf8' });
	return Math.round(Number(out.trim()) * 1000);
}
