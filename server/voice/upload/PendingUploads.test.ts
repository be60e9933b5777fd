import { describe, expect, it } from 'vitest';
import { PendingUploads } from './PendingUploads.js';

describe('PendingUploads', () => {
	it('refuses past the limit with the wait until the oldest expires, and forgets expired ones', () => {
		const pending = new PendingUploads(2);
		const now = 1_000_000;
		const first = pending.reserve('ada', { expiresAt: now + 5000, lengthBytes: 10 }, now);
		const second = pending.reserve('ada', { expiresAt: now + 9000, lengthBytes: 20 }, now);
		if (!('key' in first) || !('key' in second)) throw new Error('refused');
		pending.settle('ada', first.key, 'u1');
		pending.settle('ada', second.key, 'u2');
		expect(pending.promised('ada', now)).toEqual({ messages: 2, bytes: 30 });
		expect(pending.reserve('ada', { expiresAt: now + 9000, lengthBytes: 1 }, now)).toEqual({ refused: { limit: 2, retryAfterMs: 5000 } });
		expect('key' in pending.reserve('bob', { expiresAt: now + 9000, lengthBytes: 1 }, now)).toBe(true);
		// Past the first one's expiry it no longer counts.
		expect(pending.count('ada', now + 5000)).toBe(1);
		pending.release('ada', 'u2');
		expect(pending.count('ada', now + 5000)).toBe(0);
	});

	it('a reservation given back (creation failed) frees its place', () => {
		const pending = new PendingUploads(1);
		const place = pending.reserve('ada', { expiresAt: Date.now() + 1000, lengthBytes: 1 });
		if (!('key' in place)) throw new Error('refused');
		expect('refused' in pending.reserve('ada', { expiresAt: Date.now() + 1000, lengthBytes: 1 })).toBe(true);
		pending.settle('ada', place.key, undefined);
		expect(pending.count('ada')).toBe(0);
	});

	it('tracks promised bytes without a count limit when asked to', () => {
		const pending = new PendingUploads(0, true);
		for (let i = 0; i < 10; i++) {
			const place = pending.reserve('ada', { expiresAt: Date.now() + 1000, lengthBytes: 100 });
			if (!('key' in place)) throw new Error('refused');
			pending.settle('ada', place.key, `u${i}`);
		}
		expect(pending.promised('ada').bytes).toBe(1000);
		expect(new PendingUploads(0).enabled).toBe(false);
	});
});
