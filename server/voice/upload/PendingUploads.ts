// Unfinished uploads per owner, for voice.maxPendingUploadsPerUser: a user may hold only a
// few uploads created and not finished, so one token cannot promise the disk gigabytes in
// seconds. Kept in memory, seeded once from the upload store (uploads outlive restarts).
//
// Per node, also with S3UploadStore (nodes sharing the bucket): counting from the shared state
// at every creation would mean listing every upload of every user per POST. Each node counts
// the uploads it saw at its first creation (the seed reads the shared store) plus those
// created through it, so across N nodes a user may hold up to N times the limit at worst.
// Uploads a node knows of may be finished, deleted or expired through another node: before a
// refusal, recheck() asks the store about the owner's uploads, so a user is never refused for
// uploads that no longer exist.
import type { UploadStore } from './UploadStore.js';

export interface PendingUploadRefusal {
	/** How many the owner holds (the limit). */
	limit: number;
	/** Until the oldest of them expires (then it no longer counts). */
	retryAfterMs: number;
}

export interface PendingUpload {
	expiresAt: number;
	lengthBytes: number;
}

export class PendingUploads {
	readonly #limit: number;
	/** ownerId -> upload id -> its expiry (ms since epoch) and Upload-Length. Reservations use their own keys. */
	readonly #byOwner = new Map<string, Map<string, PendingUpload>>();
	#seeded: Promise<void> | undefined;

	readonly #tracked: boolean;

	/** `limit` 0: no count limit. `tracked`: keep the index even so (the stored-bytes quota
	 * counts the promised bytes); nothing is tracked when neither needs it. */
	constructor(limit: number, tracked = limit > 0) {
		this.#limit = limit;
		this.#tracked = tracked || limit > 0;
	}

	get enabled(): boolean {
		return this.#tracked;
	}

	/** What `ownerId`'s unexpired unfinished uploads promise: how many, and their Upload-Lengths. */
	promised(ownerId: string, nowMs = Date.now()): { messages: number; bytes: number } {
		const messages = this.count(ownerId, nowMs);
		let bytes = 0;
		for (const p of this.#byOwner.get(ownerId)?.values() ?? []) bytes += p.lengthBytes;
		return { messages, bytes };
	}

	/** Reads the records on disk once: uploads created before this start count too. */
	seed(store: UploadStore): Promise<void> {
		this.#seeded ??= (async () => {
			for (const id of await store.ids().catch(() => [])) {
				await store
					.withUpload(id, async (upload) => {
						if (upload && !upload.record.completed) this.#entries(upload.record.ownerId).set(id, { expiresAt: upload.record.expiresAt, lengthBytes: upload.record.lengthBytes });
					})
					.catch(() => undefined); // an unreadable record is the sweep's to report
			}
		})();
		return this.#seeded;
	}

	/** Drops the uploads of `ownerId` that the store no longer holds unfinished (finished,
	 * deleted or expired through another node). Reservations in flight are kept. */
	async recheck(ownerId: string, store: UploadStore): Promise<void> {
		const entries = this.#byOwner.get(ownerId);
		if (!entries) return;
		for (const id of [...entries.keys()]) {
			if (id.startsWith('reserved:')) continue;
			const gone = await store.withUpload(id, async (upload) => !upload || upload.record.completed !== undefined);
			if (gone) this.release(ownerId, id);
		}
	}

	/** Unexpired unfinished uploads of `ownerId` (expired ones are forgotten on the way). */
	count(ownerId: string, nowMs = Date.now()): number {
		const entries = this.#byOwner.get(ownerId);
		if (!entries) return 0;
		for (const [id, p] of entries) if (p.expiresAt <= nowMs) entries.delete(id);
		if (entries.size === 0) this.#byOwner.delete(ownerId);
		return entries.size;
	}

	/**
	 * Takes a place for one more upload of `ownerId` (synchronously, so concurrent creations
	 * cannot both take the last one): a key to confirm or release, or the refusal.
	 */
	reserve(ownerId: string, upload: PendingUpload, nowMs = Date.now()): { key: string } | { refused: PendingUploadRefusal } {
		if (!this.enabled) return { key: '' };
		if (this.#limit > 0 && this.count(ownerId, nowMs) >= this.#limit) {
			const oldest = Math.min(...[...this.#byOwner.get(ownerId)!.values()].map((p) => p.expiresAt));
			return { refused: { limit: this.#limit, retryAfterMs: Math.max(1, oldest - nowMs) } };
		}
		const key = `reserved:${Math.random().toString(36).slice(2)}:${nowMs}`;
		this.#entries(ownerId).set(key, upload);
		return { key };
	}

	/** The reserved place now holds upload `id` (or is given back when `id` is undefined). */
	settle(ownerId: string, key: string, id: string | undefined): void {
		if (!this.enabled) return;
		const entries = this.#entries(ownerId);
		const reserved = entries.get(key);
		entries.delete(key);
		if (id !== undefined && reserved) entries.set(id, reserved);
		else if (entries.size === 0) this.#byOwner.delete(ownerId);
	}

	/** Upload `id` is finished, terminated or expired: it no longer counts. */
	release(ownerId: string, id: string): void {
		const entries = this.#byOwner.get(ownerId);
		if (!entries) return;
		entries.delete(id);
		if (entries.size === 0) this.#byOwner.delete(ownerId);
	}

	#entries(ownerId: string): Map<string, PendingUpload> {
		let entries = this.#byOwner.get(ownerId);
		if (!entries) {
			entries = new Map();
			this.#byOwner.set(ownerId, entries);
		}
		return entries;
	}
}
