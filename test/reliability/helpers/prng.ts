// A small seeded PRNG (mulberry32) for fuzz and soak tests: a failure prints its seed, and
// PARLEY_FUZZ_SEED=<seed> replays the exact same inputs.

export class Prng {
	readonly seed: number;
	#state: number;

	constructor(seed: number) {
		this.seed = seed >>> 0;
		this.#state = this.seed;
	}

	/** The seed from PARLEY_FUZZ_SEED, else `fallback` (fixed, so CI runs are reproducible). */
	static fromEnv(fallback: number): Prng {
		const given = process.env.PARLEY_FUZZ_SEED;
		return new Prng(given ? Number(given) : fallback);
	}

	/** Uniform in [0, 1). */
	next(): number {
		let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	}

	/** Integer in [min, max]. */
	int(min: number, max: number): number {
		return min + Math.floor(this.next() * (max - min + 1));
	}

	chance(p: number): boolean {
		return this.next() < p;
	}

	pick<T>(items: readonly T[]): T {
		return items[Math.floor(this.next() * items.length)]!;
	}

	/** A child generator, so one stream of choices does not shift another's. */
	fork(): Prng {
		return new Prng(this.int(0, 0xffffffff));
	}

	bytes(length: number): Buffer {
		const out = Buffer.alloc(length);
		for (let i = 0; i < length; i++) out[i] = this.int(0, 255);
		return out;
	}

	/** Text from a hostile alphabet: path tricks, quotes, control and non-BMP characters. */
	string(maxLength: number): string {
		const alphabet = ['a', 'Z', '0', '.', '/', '\\', '..', '%2e', '%2f', '%00', '\u0000', '\n', '"', "'", '<', '{', '}', '$', '*', ':', ' ', 'é', '\u202e', '😀', '\ud800'];
		const length = this.int(0, maxLength);
		let s = '';
		while (s.length < length) s += this.pick(alphabet);
		return s.slice(0, length);
	}
}
