import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { testLogger } from '../../../test/helpers/logger.js';
import { PendingUploads } from './PendingUploads.js';
import { DiskUploadStore } from './UploadStore.js';

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

	it('recheck() forgets uploads the store no longer holds unfinished (finished or removed through another node)', async () => {
		const dir = mkdtempSync(path.join(tmpdir(), 'parley-pending-'));
		try {
			const store = new DiskUploadStore(dir, testLogger());
			const pending = new PendingUploads(3);
			const fields = { ownerId: 'ada', lengthBytes: 1, destination: { kind: 'user', userId: 'bob' } as const, fileName: '', fileType: '', metadataHeader: '', expiresAt: Date.now() + 60_000 };
			const ids: string[] = [];
			for (let i = 0; i < 3; i++) {
				const place = pending.reserve('ada', { expiresAt: fields.expiresAt, lengthBytes: 1 });
				if (!('key' in place)) throw new Error('refused');
				const upload = await store.create(fields);
				pending.settle('ada', place.key, upload.record.id);
				ids.push(upload.record.id);
			}
			const inFlight = pending.reserve('bob', { expiresAt: fields.expiresAt, lengthBytes: 1 });
			expect('refused' in pending.reserve('ada', { expiresAt: fields.expiresAt, lengthBytes: 1 })).toBe(true);
			// Another node removed one and finished another: this node's map still counts them.
			await store.withUpload(ids[0]!, async (u) => u!.remove());
			await store.withUpload(ids[1]!, async (u) => {
				await u!.append(Buffer.from('x'));
				await u!.markCompleted((await u!.completeFile()).sha256);
			});
			expect(pending.count('ada')).toBe(3);
			await pending.recheck('ada', store);
			expect(pending.count('ada')).toBe(1);
			await pending.recheck('bob', store);
			expect('key' in inFlight && pending.count('bob')).toBe(1);
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	});
});
