// The waveform shown on a voice message: 100 bars of 0..31 (Telegram's convention, 5 bits
// each), from decoded mono 16-bit PCM.
//
// Each bar is its window's RMS, not its peak. A single click (a tap on the phone, a
// plosive into the microphone) sets a window's peak as high as loud speech, and if it is
// the loudest sample of the file it would also squash every other bar; RMS follows how loud
// the window sounds. Bars are linear in RMS relative to the loudest window, so the shape
// reads the same whatever the recording level.

export const WAVEFORM_BARS = 100;
export const WAVEFORM_MAX = 31;
/** Windows quieter than this RMS (about -60 dBFS) are silence: bar 0, and a file with nothing
 * louder is all zeros instead of amplified noise. */
export const SILENCE_RMS = 32768 / 1000;
/** PCM is summed in blocks of this many samples as it streams in (10 ms at 8 kHz), so memory
 * grows by 8 bytes per block rather than 2 per sample. */
const BLOCK_SAMPLES = 80;

/** Consumes s16le mono PCM in chunks of any size; `finish()` returns the bars. */
export class WaveformAccumulator {
	#blockSums: number[] = [];
	#blockCounts: number[] = [];
	#sum = 0;
	#count = 0;
	/** An odd byte left over from the previous chunk (a sample split across chunks). */
	#carry: number | undefined;

	push(chunk: Buffer): void {
		let at = 0;
		if (this.#carry !== undefined && chunk.length > 0) {
			this.#add(Buffer.from([this.#carry, chunk[0] ?? 0]).readInt16LE(0));
			this.#carry = undefined;
			at = 1;
		}
		for (; at + 1 < chunk.length; at += 2) this.#add(chunk.readInt16LE(at));
		if (at < chunk.length) this.#carry = chunk[at];
	}

	finish(): number[] {
		if (this.#count > 0) this.#closeBlock();
		const blocks = this.#blockSums.length;
		const rms: number[] = [];
		for (let bar = 0; bar < WAVEFORM_BARS; bar++) {
			if (blocks === 0) {
				rms.push(0);
				continue;
			}
			// Equal windows over the blocks; under 100 blocks (audio under 1 s) a block feeds
			// several bars rather than leaving bars empty.
			const start = Math.floor((bar * blocks) / WAVEFORM_BARS);
			const end = Math.max(start + 1, Math.floor(((bar + 1) * blocks) / WAVEFORM_BARS));
			let sum = 0;
			let count = 0;
			for (let b = start; b < end; b++) {
				sum += this.#blockSums[b] ?? 0;
				count += this.#blockCounts[b] ?? 0;
			}
			rms.push(count > 0 ? Math.sqrt(sum / count) : 0);
		}
		const loudest = Math.max(...rms);
		if (loudest < SILENCE_RMS) return rms.map(() => 0);
		return rms.map((value) => (value < SILENCE_RMS ? 0 : Math.round((WAVEFORM_MAX * value) / loudest)));
	}

	#add(sample: number): void {
		this.#sum += sample * sample;
		this.#count += 1;
		if (this.#count === BLOCK_SAMPLES) this.#closeBlock();
	}

	#closeBlock(): void {
		this.#blockSums.push(this.#sum);
		this.#blockCounts.push(this.#count);
		this.#sum = 0;
		this.#count = 0;
	}
}

/** Bars of a whole PCM buffer (s16le mono). */
export function waveformFromPcm(pcm: Buffer): number[] {
	const accumulator = new WaveformAccumulator();
	accumulator.push(pcm);
	return accumulator.finish();
}
