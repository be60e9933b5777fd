// Voice-message metadata. Behind an interface: SQLite (better-sqlite3) is the embedded
// default for one node; a cluster needs a shared store (the cluster issue).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Destination, VoiceMessage, VoiceMessageStatus } from './voiceMessage.js';

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

export interface VoiceMessageStore {
	insert(message: VoiceMessage): void;
	/** Applies `patch` (and a new updatedAt); returns the new record, or undefined if none. */
	update(id: string, patch: Partial<Omit<VoiceMessage, 'id' | 'ownerId' | 'createdAt'>>): VoiceMessage | undefined;
	get(id: string): VoiceMessage | undefined;
	/** Newest first. */
	listFor(destination: Destination, options: ListOptions): VoiceMessagePage;
	listByStatus(status: VoiceMessageStatus): VoiceMessage[];
	delete(id: string): boolean;
	close(): void;
}

function destinationKey(d: Destination): string {
	return d.kind === 'channel' ? `channel:${d.channel}` : `user:${d.userId}`;
}

/** Cursor: "<createdAt>:<id>", so messages created in the same millisecond page correctly. */
function parseCursor(cursor: string): { createdAt: number; id: string } | undefined {
	const m = /^(\d{1,16}):([0-9a-f-]{36})$/.exec(cursor);
	return m ? { createdAt: Number(m[1]), id: m[2]! } : undefined;
}

export class InvalidCursorError extends Error {
	override readonly name = 'InvalidCursorError';
}

export class SqliteVoiceMessageStore implements VoiceMessageStore {
	readonly #db: Database.Database;
	readonly #insert: Database.Statement;
	readonly #update: Database.Statement;
	readonly #get: Database.Statement;
	readonly #list: Database.Statement;
	readonly #listBefore: Database.Statement;
	readonly #byStatus: Database.Statement;
	readonly #delete: Database.Statement;

	constructor(file: string) {
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
		`);
		this.#insert = this.#db.prepare('INSERT INTO voice_messages (id, owner_id, destination, status, created_at, record) VALUES (?, ?, ?, ?, ?, ?)');
		this.#update = this.#db.prepare('UPDATE voice_messages SET status = ?, record = ? WHERE id = ?');
		this.#get = this.#db.prepare('SELECT record FROM voice_messages WHERE id = ?');
		this.#list = this.#db.prepare('SELECT record FROM voice_messages WHERE destination = ? ORDER BY created_at DESC, id DESC LIMIT ?');
		this.#listBefore = this.#db.prepare(
			'SELECT record FROM voice_messages WHERE destination = ? AND (created_at < ? OR (created_at = ? AND id < ?)) ORDER BY created_at DESC, id DESC LIMIT ?',
		);
		this.#byStatus = this.#db.prepare('SELECT record FROM voice_messages WHERE status = ?');
		this.#delete = this.#db.prepare('DELETE FROM voice_messages WHERE id = ?');
	}

	insert(m: VoiceMessage): void {
		this.#insert.run(m.id, m.ownerId, destinationKey(m.destination), m.status, m.createdAt, JSON.stringify(m));
	}

	update(id: string, patch: Partial<Omit<VoiceMessage, 'id' | 'ownerId' | 'createdAt'>>): VoiceMessage | undefined {
		return this.#db.transaction(() => {
			const current = this.get(id);
			if (!current) return undefined;
			const next: VoiceMessage = { ...current, ...patch, updatedAt: Date.now() };
			this.#update.run(next.status, JSON.stringify(next), id);
			return next;
		})();
	}

	get(id: string): VoiceMessage | undefined {
		const row = this.#get.get(id) as { record: string } | undefined;
		return row ? (JSON.parse(row.record) as VoiceMessage) : undefined;
	}

	listFor(destination: Destination, { limit, before }: ListOptions): VoiceMessagePage {
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
		return rows.length > limit && last ? { messages, nextCursor: `${last.createdAt}:${last.id}` } : { messages };
	}

	listByStatus(status: VoiceMessageStatus): VoiceMessage[] {
		return (this.#byStatus.all(status) as { record: string }[]).map((r) => JSON.parse(r.record) as VoiceMessage);
	}

	delete(id: string): boolean {
		return this.#delete.run(id).changes > 0;
	}

	close(): void {
		this.#db.close();
	}
}
