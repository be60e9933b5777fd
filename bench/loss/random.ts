// A small seeded PRNG so loss patterns repeat run to run (and FEC on/off see the same losses).
// mulberry32: 32-bit state, good enough statistical quality for loss draws, not for crypto.

export type Random = () => number;

/** Uniform in [0, 1), deterministic for a given seed. */
export function seededRandom(seed: number): Random {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/** A seed derived from a label, so each stream of a run gets its own reproducible pattern. */
export function seedFrom(label: string, base = 1): number {
	let h = (2166136261 ^ base) >>> 0;
	for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 16777619) >>> 0;
	return h;
}
