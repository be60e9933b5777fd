// Percentiles and CDFs of latency samples.

export interface LatencySummary {
	count: number;
	p50: number;
	p95: number;
	p99: number;
	max: number;
	mean: number;
}

/** Nearest-rank percentile of sorted samples (q in [0, 1]). */
export function percentile(sorted: ArrayLike<number>, q: number): number {
	if (sorted.length === 0) return NaN;
	const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
	return sorted[rank]!;
}

export function sortedCopy(samples: ArrayLike<number>): Float64Array {
	return Float64Array.from(samples).sort();
}

export function summarize(samples: ArrayLike<number>): LatencySummary {
	const s = sortedCopy(samples);
	let sum = 0;
	for (const v of s) sum += v;
	return {
		count: s.length,
		p50: percentile(s, 0.5),
		p95: percentile(s, 0.95),
		p99: percentile(s, 0.99),
		max: s.length ? s[s.length - 1]! : NaN,
		mean: s.length ? sum / s.length : NaN,
	};
}

/** Up to `points` (value, cumulative share) pairs of the empirical CDF, for charts. */
export function cdfPoints(samples: ArrayLike<number>, points = 200): [number, number][] {
	const s = sortedCopy(samples);
	if (s.length === 0) return [];
	const out: [number, number][] = [];
	const step = Math.max(1, Math.floor(s.length / points));
	for (let i = 0; i < s.length; i += step) out.push([s[i]!, (i + 1) / s.length]);
	out.push([s[s.length - 1]!, 1]);
	return out;
}

export function round(v: number, digits = 2): number {
	if (!Number.isFinite(v)) return v;
	const f = 10 ** digits;
	return Math.round(v * f) / f;
}
