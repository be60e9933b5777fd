import { describe, expect, it } from 'vitest';
import { TokenBucket } from './TokenBucket.js';

describe('TokenBucket', () => {
	it('lets a burst through, then paces in call order', () => {
		let now = 0;
		const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3, nowMs: () => now });
		expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
		expect(bucket.reserve()).toBe(100);
		expect(bucket.reserve()).toBe(200);
		now = 200;
		expect(bucket.reserve()).toBe(100);
	});

	it('refills over time, up to the burst', () => {
		let now = 0;
		const bucket = new TokenBucket({ ratePerSecond: 10, burst: 2, nowMs: () => now });
		bucket.reserve();
		bucket.reserve();
		now = 10_000;
		expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 100]);
	});

	it('refuses without going into debt when used as a limit', () => {
		let now = 0;
		const bucket = new TokenBucket({ ratePerSecond: 10, burst: 2, nowMs: () => now });
		expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, false, false]);
		now = 100;
		expect([bucket.tryTake(), bucket.tryTake()]).toEqual([true, false]);
	});

	it('rejects bad options with TypeError', () => {
		expect(() => new TokenBucket({ ratePerSecond: 0, burst: 1 })).toThrow(TypeError);
		expect(() => new TokenBucket({ ratePerSecond: 1, burst: 0 })).toThrow(TypeError);
	});
});
