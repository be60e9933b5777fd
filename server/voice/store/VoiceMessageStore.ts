// Voice-message metadata. Behind an interface: the SQL store (SqlVoiceMessageStore: SQLite
// embedded on one node, MySQL/MariaDB or PostgreSQL for a cluster) and the older Redis store.
import { type VoiceEventListener } from '../voiceEvents.js';
import { type Destination, type VoiceMessage } from '../voiceMessage.js';
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
	/** One owner's messages (every destination), newest first, same cursor as listFor. */
	listByOwner(ownerId: string, options: ListOptions): Promise<VoiceMessagePage>;
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

/** The cursor a page request names (`before`), or undefined for the first page; throws
 * InvalidCursorError for a malformed one. Shared by every store. */
export function pageCursor(before: string | undefined): { createdAt: number; id: string } | undefined {
	if (!before) return undefined;
	const cursor = parseCursor(before);
	if (!cursor) throw new InvalidCursorError('invalid cursor');
	return cursor;
}

/** A page from `limit + 1` rows fetched newest first: the extra row only says there is more. */
export function pageOf(rows: VoiceMessage[], limit: number): VoiceMessagePage {
	const messages = rows.slice(0, limit);
	const last = messages.at(-1);
	return rows.length > limit && last ? { messages, nextCursor: formatCursor(last) } : { messages };
}

export class DuplicateVoiceMessageError extends Error {
	override readonly name = 'DuplicateVoiceMessageError';
}

/** The store cannot be reached (SQL server or Redis down): callers answer E_STORAGE_UNAVAILABLE / 503, as
 * for a disk that is not writable (storageFailure() knows the code). */
export class VoiceStoreUnavailableError extends Error {
	override readonly name = 'VoiceStoreUnavailableError';
	readonly code = 'EVOICESTOREUNAVAILABLE';
}
