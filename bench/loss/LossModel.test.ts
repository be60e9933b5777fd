import { describe, expect, it } from 'vitest';
import { BernoulliLoss, createLossModel, GilbertElliottLoss, measureLoss, NoLoss } from './LossModel.js';
import { seededRandom } from './random.js';

const PACKETS = 400_000;

function run(model: { drop(): boolean }, n = PACKETS): boolean[] {
	return Array.from({ length: n }, () => model.drop());
}

describe('BernoulliLoss', () => {
	it.each([0.01, 0.05, 0.1, 0.2, 0.3])('drops %f of packets, in bursts of 1/(1-p) on average', (p) => {
		const m = measureLoss(run(new BernoulliLoss(p, seededRandom(7))));
		expect(m.lossRate).toBeGreaterThan(p * 0.95);
		expect(m.lossRate).toBeLessThan(p * 1.05);
		// Runs of independent losses are geometric: mean length 1/(1-p).
		expect(m.meanBurstLength).toBeCloseTo(1 / (1 - p), 1);
	});

	it('rejects rates outside [0, 1]', () => {
		expect(() => new BernoulliLoss(1.5, seededRandom(1))).toThrow(RangeError);
		expect(() => new BernoulliLoss(-0.1, seededRandom(1))).toThrow(RangeError);
	});
});

describe('GilbertElliottLoss', () => {
	it.each([
		[0.05, 2],
		[0.1, 3],
		[0.2, 3],
		[0.3, 5],
	])('drops %f of packets with a mean burst length of %d', (p, burst) => {
		const m = measureLoss(run(new GilbertElliottLoss(p, burst, seededRandom(11))));
		expect(m.lossRate).toBeGreaterThan(p * 0.93);
		expect(m.lossRate).toBeLessThan(p * 1.07);
		expect(m.meanBurstLength).toBeGreaterThan(burst * 0.95);
		expect(m.meanBurstLength).toBeLessThan(burst * 1.05);
	});

	it('is burstier than random loss at the same rate', () => {
		const ge = measureLoss(run(new GilbertElliottLoss(0.1, 4, seededRandom(3))));
		const be = measureLoss(run(new BernoulliLoss(0.1, seededRandom(3))));
		expect(ge.meanBurstLength).toBeGreaterThan(2 * be.meanBurstLength);
	});

	it('refuses a loss rate its burst length cannot reach', () => {
		expect(() => new GilbertElliottLoss(0.6, 1, seededRandom(1))).toThrow(RangeError);
		expect(() => new GilbertElliottLoss(0.1, 0.5, seededRandom(1))).toThrow(RangeError);
	});
});

describe('createLossModel', () => {
	it('repeats the same pattern for the same seed', () => {
		const a = run(createLossModel({ kind: 'bursty', lossRate: 0.1, meanBurstLength: 3 }, 42), 5000);
		const b = run(createLossModel({ kind: 'bursty', lossRate: 0.1, meanBurstLength: 3 }, 42), 5000);
		expect(a).toEqual(b);
	});

	it('treats 0% as no loss', () => {
		expect(createLossModel({ kind: 'random', lossRate: 0 }, 1)).toBeInstanceOf(NoLoss);
		expect(run(createLossModel({ kind: 'bursty', lossRate: 0, meanBurstLength: 3 }, 1), 1000).some(Boolean)).toBe(false);
	});
});
