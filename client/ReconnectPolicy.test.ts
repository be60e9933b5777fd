import { describe, expect, it } from 'vitest';
import { BackoffReconnectPolicy, DEFAULT_RECONNECT_DELAYS_MS } from './ReconnectPolicy.js';

/** A random source returning the given values in turn (then the last one). */
function sequence(...values: number[]): () => number {
	let i = 0;
	return () => values[Math.min(i++, values.length - 1)]!;
}

describe('BackoffReconnectPolicy', () => {
	it('follows the explicit schedule when jitter is centred', () => {
		const policy = new BackoffReconnectPolicy({ random: () => 0.5 });
		const delays = DEFAULT_RECONNECT_DELAYS_MS.map((_, attempt) => policy.nextDelayMs(attempt));
		expect(delays).toEqual([0, 300, 1000, 2000, 4000, 8000]);
	});

	it('doubles past the schedule up to the cap', () => {
		const policy = new BackoffReconnectPolicy({ delaysMs: [0, 100], maxDelayMs: 1000, maxAttempts: 10, random: () => 0.5 });
		expect([2, 3, 4, 5, 9].map((a) => policy.nextDelayMs(a))).toEqual([200, 400, 800, 1000, 1000]);
	});

	it('applies +-30% jitter from the injected random source', () => {
		const policy = new BackoffReconnectPolicy({ random: sequence(0, 0.999999, 0.25) });
		expect(policy.nextDelayMs(2)).toBe(700); // 1000 * 0.7
		expect(policy.nextDelayMs(2)).toBe(1300); // 1000 * ~1.3
		expect(policy.nextDelayMs(3)).toBe(1700); // 2000 * 0.85
	});

	it('keeps the first, immediate retry immediate whatever the jitter', () => {
		const policy = new BackoffReconnectPolicy({ random: () => 0.999 });
		expect(policy.nextDelayMs(0)).toBe(0);
	});

	it('jitters around the cap, not above 130% of it', () => {
		const policy = new BackoffReconnectPolicy({ maxDelayMs: 5000, maxAttempts: Infinity, random: () => 0.999999 });
		expect(policy.nextDelayMs(50)).toBe(6500);
		expect(policy.nextDelayMs(5000)).toBe(6500);
	});

	it('gives up (null) after maxAttempts', () => {
		const policy = new BackoffReconnectPolicy({ maxAttempts: 3, random: () => 0.5 });
		expect(policy.nextDelayMs(2)).toBe(1000);
		expect(policy.nextDelayMs(3)).toBeNull();
		expect(policy.nextDelayMs(100)).toBeNull();
		expect(new BackoffReconnectPolicy({ maxAttempts: 0 }).nextDelayMs(0)).toBeNull();
	});

	it('stays within the jitter band for any random value', () => {
		const policy = new BackoffReconnectPolicy({ jitterRatio: 0.3 });
		for (let i = 0; i < 200; i += 1) {
			const delay = policy.nextDelayMs(4)!;
			expect(delay).toBeGreaterThanOrEqual(2800);
			expect(delay).toBeLessThanOrEqual(5200);
		}
	});

	it('rejects bad options and attempts with TypeError', () => {
		expect(() => new BackoffReconnectPolicy({ delaysMs: [] })).toThrow(TypeError);
		expect(() => new BackoffReconnectPolicy({ delaysMs: [0, -1] })).toThrow(TypeError);
		expect(() => new BackoffReconnectPolicy({ jitterRatio: 1 })).toThrow(TypeError);
		expect(() => new BackoffReconnectPolicy({ maxAttempts: 1.5 })).toThrow(TypeError);
		expect(() => new BackoffReconnectPolicy({ maxDelayMs: Number.NaN })).toThrow(TypeError);
		const policy = new BackoffReconnectPolicy();
		expect(() => policy.nextDelayMs(-1)).toThrow(TypeError);
		expect(() => policy.nextDelayMs(0.5)).toThrow(TypeError);
	});
});
