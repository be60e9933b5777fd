// Voice-message metadata. Behind an interface: SQLite (better-sqlite3) is the embedded
// default for one node; a cluster needs a shared store (the cluster issue).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { lifecycleEvent, type VoiceEventListener } from '../voiceEvents.js';
import { formatDestination, type Destination, type VoiceMessage } from '../voiceMessage.js';
import { type VoiceMessageStatus } from '../../../protocol/schemas.js';

export interface ListOptions {
	limit: number;
	/** Only messages created before this cursor (from a previous page). */
	before?: string;
}

export interface VoiceMessagePage {
	messages: VoiceMessage[];
	/** Pass as `before` for the next (older) page; absent on the last page. */
	nextCursor?: string;
}

export type VoiceMessagePatch = Partial<Omit<VoiceMessage, 'id' | 'ownerId' | 'createdAt'>>;

/** A precondition of update(): the change applies only while it holds (compare-and-set). */
export interface UpdateCondition {
	/** The record's nodeId must be this one (undefined: the record has none). */
	nodeId: string | undefined;
}

/**
 * Voice-message metadata. Promise-based, so a shared store (Redis, for a cluster) fits behind
 * it; every implementation commits a message and its indexes atomically and reports each
 * lifecycle change (created, status changed, deleted) once, right after committing it.
 */
export interface VoiceMessageStore {
	/** Rejects with DuplicateVoiceMessageError when the id exists. */
	insert(message: VoiceMessage): Promise<void>;
	/** Applies `patch` (and a new updatedAt); resolves with the new record, or undefined when
	 * there is none (or `condition` does not hold). */
	update(id: string, patch: VoiceMessagePatch, condition?: UpdateCondition): Promise<VoiceMessage | undefined>;
	get(id: string): Promise<VoiceMessage | undefined>;
	/** Newest first. Rejects with InvalidCursorError for a malformed cursor. */
	listFor(destination: Destination, options: ListOptions): Promise<VoiceMessagePage>;
	listByStatus(status: VoiceMessageStatus): Promise<VoiceMessage[]>;
	/** What `ownerId` stores now (the per-user quotas): see usageOfMessages. */
	usageOf(ownerId: string): Promise<StoredUsage>;
	delete(id: string): Promise<boolean>;
	close(): Promise<void>;
}

/** One owner's stored voice messages: how many, and their bytes. */
export interface StoredUsage {
	messages: number;
	bytes: number;
}

/**
 * Failed messages count for nothing (their files are removed). A message's bytes are its
 * stored file's (sizeBytes) once known, until then its upload's (originalSizeBytes): what it
 * is about to take. A running recording counts as a message of 0 bytes (its own cap bounds it).
 */
export function usageOfMessages(messages: Iterable<VoiceMessage>): StoredUsage {
	let count = 0;
	let bytes = 0;
	for (const m of messages) {
		if (m.status === 'failed') continue;
		count++;
		bytes += m.sizeBytes ?? m.originalSizeBytes ?? 0;
	}
	return { messages: count, bytes };
}

export interface VoiceMessageStoreOptions {
	/** Names this node in lifecycle events. */
	nodeId: string;
	/** Called once per committed lifecycle change (webhooks, tests). Must not throw. */
	onEvent?: VoiceEventListener;
}

const destinationKey = formatDestination;

/** Cursor: "<createdAt>:<id>", so messages created in the same millisecond page correctly. */
export function parseCursor(cursor: string): { createdAt: number; id: string } | undefined {
	const m = /^(\d{1,16}):([0-9a-f-]{36})$/.exec(cursor);
	return m ? { createdAt: Number(m[1]), id: m[2]! } : undefined;
}

export function formatCursor(m: Pick<VoiceMessage, 'createdAt' | 'id'>): string {
	return `${m.createdAt}:${m.id}`;
}

export class InvalidCursorError extends Error {
	override readonly name = 'InvalidCursorError';
}

export class DuplicateVoiceMessageError extends Error {
	override readonly name = 'DuplicateVoiceMessageError';
}

/** The store cannot be reached (Redis down): callers answer E_STORAGE_UNAVAILABLE / 503, as
 * for a disk that is not writable (storageFailure() knows the code). */
export class VoiceStoreUnavailableError extends Error {
	override readonly name = 'VoiceStoreUnavailableError';
	readonly code = 'EVOICESTOREUNAVAILABLE';
}

export class SqliteVoiceMessageStore implements VoiceMessageStore {
	readonly #db: Database.Database;
	readonly #insert: Database.Statement;
	readonly #update: Database.Statement;
	readonly #get: Database.Statement;
	readonly #list: Database.Statement;
	readonly #listBefore: Database.Statement;
	readonly #byStatus: Database.Statement;
	readonly #byOwner: Database.Statement;
	readonly #delete: Database.Statement;
	readonly #o: VoiceMessageStoreOptions;

	constructor(file: string, options: VoiceMessageStoreOptions) {
		this.#o = options;
		if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
		this.#db = new Database(file);
		// WAL: readers do not block the writer; synchronous=FULL: a committed status survives a crash.
		this.#db.pragma('journal_mode = WAL');
		this.#db.pragma('synchronous = FULL');
		this.#db.exec(`
			CREATE TABLE IF NOT EXISTS voice_messages (
				id TEXT PRIMARY KEY,
				owner_id TEXT NOT NULL,
				destination TEXT NOT NULL,
				status TEXT NOT NULL,
				created_at INTEGER NOT NULL,
				record TEXT NOT NULL
			);
			CREATE INDEX IF NOT EXISTS voice_messages_by_destination ON voice_messages (destination, created_at DESC, id DESC);
			CREATE INDEX IF NOT EXISTS voice_messages_by_status ON voice_messages (status);
			CREATE INDEX IF NOT EXISTS voice_messages_by_owner ON voice_messages (owner_id);
		`);
		this.#insert = this.#db.prepare('INSERT INTO voice_messages (id, owner_id, destination, status, created_at, record) VALUES (?, ?, ?, ?, ?, ?)');
		this.#update = this.#db.prepare('UPDATE voice_messages SET status = ?, record = ? WHERE id = ?');
		this.#get = this.#db.prepare('SELECT record FROM voice_messages WHERE id = ?');
		this.#list = this.#db.prepare('SELECT record FROM voice_messages WHERE destination = ? ORDER BY created_at DESC, id DESC LIMIT ?');
		this.#listBefore = this.#db.prepare(
			'SELECT record FROM voice_messages WHERE destination = ? AND (created_at < ? OR (created_at = ? AND id < ?)) ORDER BY created_at DESC, id DESC LIMIT ?',
		);
		this.#byStatus = this.#db.prepare('SELECT record FROM voice_messages WHERE status = ?');
		this.#byOwner = this.#db.prepare("SELECT record FROM voice_messages WHERE owner_id = ? AND status != 'failed'");
		this.#delete = this.#db.prepare('DELETE FROM voice_messages WHERE id = ?');
	}

	// better-sqlite3 is synchronous: each method commits before it returns, and the async
	// signatures only match the interface. Events are emitted after the commit.
	async insert(m: VoiceMessage): Promise<void> {
		try {
			this.#insert.run(m.id, m.ownerId, destinationKey(m.destination), m.status, m.createdAt, JSON.stringify(m));
		} catch (err) {
			if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new DuplicateVoiceMessageError(`voice message ${m.id} exists`);
			throw err;
		}
		this.#emit(undefined, m);
	}

	async update(id: string, patch: VoiceMessagePatch, condition?: UpdateCondition): Promise<VoiceMessage | undefined> {
		const changed = this.#db.transaction(() => {
			const current = this.#read(id);
			if (!current) return undefined;
			if (condition && current.nodeId !== condition.nodeId) return undefined;
			const next: VoiceMessage = { ...current, ...patch, updatedAt: Date.now() };
			this.#update.run(next.status, JSON.stringify(next), id);
			return { current, next };
		})();
		if (!changed) return undefined;
		this.#emit(changed.current, changed.next);
		return changed.next;
	}

	async get(id: string): Promise<VoiceMessage | undefined> {
		return this.#read(id);
	}

	#read(id: string): VoiceMessage | undefined {
		const row = this.#get.get(id) as { record: string } | undefined;
		return row ? (JSON.parse(row.record) as VoiceMessage) : undefined;
	}

	async listFor(destination: Destination, { limit, before }: ListOptions): Promise<VoiceMessagePage> {
		const key = destinationKey(destination);
		let rows: { record: string }[];
		if (before) {
			const c = parseCursor(before);
			if (!c) throw new InvalidCursorError('invalid cursor');
			rows = this.#listBefore.all(key, c.createdAt, c.createdAt, c.id, limit + 1) as { record: string }[];
		} else {
			rows = this.#list.all(key, limit + 1) as { record: string }[];
		}
		const messages = rows.slice(0, limit).map((r) => JSON.parse(r.record) as VoiceMessage);
		const last = messages.at(-1);
		return rows.length > limit && last ? { messages, nextCursor: formatCursor(last) } : { messages };
	}

	async listByStatus(status: VoiceMessageStatus): Promise<VoiceMessage[]> {
		return (this.#byStatus.all(status) as { record: string }[]).map((r) => JSON.parse(r.record) as VoiceMessage);
	}

	async usageOf(ownerId: string): Promise<StoredUsage> {
		const rows = this.#byOwner.all(ownerId) as { record: string }[];
		return usageOfMessages(rows.map((r) => JSON.parse(r.record) as VoiceMessage));
	}

	async delete(id: string): Promise<boolean> {
		const removed = this.#db.transaction(() => {
			const current = this.#read(id);
			if (current) this.#delete.run(id);
			return current;
		})();
		if (!removed) return false;
		this.#emit(removed, undefined);
		return true;
	}

	async close(): Promise<void> {
		if (this.#db.open) this.#db.close();
	}

	#emit(previous: VoiceMessage | undefined, current: VoiceMessage | undefined): void {
		const event = this.#o.onEvent && lifecycleEvent(previous, current, this.#o.nodeId);
		if (event) this.#o.onEvent!(event);
	}
}
