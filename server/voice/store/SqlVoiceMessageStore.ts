// Voice-message metadata in SQL: SQLite (the embedded default), MySQL/MariaDB or PostgreSQL,
// one implementation over Kysely's three dialects (sql/connect.ts), with versioned
// migrations run at startup under the migrator's lock (sql/migrations.ts).
//
// Tables:
//   voice_messages  id, owner_id, destination, status, created_at, updated_at, node_id,
//                   event_sequence, revision, record (the JSON of the VoiceMessage; the
//                   columns are its indexed copy). Indexes: (destination, created_at, id) for
//                   pages, (status, updated_at) for recovery, (owner_id, status) for quotas.
//   voice_outbox    one row per lifecycle event, written in the transaction of its change
//                   (VoiceOutbox: the relay in server/voice/outbox publishes them).
//
// Writes: insert is one transaction (message + outbox row). update and delete read the row,
// build the next record in JS (the same merge as every store: fields set to undefined are
// dropped), then commit it in one transaction whose first statement is a compare-and-set on
// `revision` (UPDATE ... WHERE id = ? AND revision = ?), followed by the outbox row; a lost
// race reads again. Starting the transaction with the write takes SQLite's write lock at once
// (no read-to-write upgrade that could fail under another connection) and needs no row locks
// on the servers. The event's sequence is the row's event_sequence + 1, in the same write.
//
// Pages are newest first with the cursor "<createdAt>:<id>" and no OFFSET: PostgreSQL gets a
// row-value comparison ((created_at, id) < (?, ?)), which it turns into an index range;
// MySQL/MariaDB and SQLite get the equivalent `created_at <= ? AND (created_at < ? OR id < ?)`,
// whose first term bounds the range of the (destination, created_at, id) index for them.
//
// claim() leases outbox entries with a conditional UPDATE (only rows still free or whose lease
// ran out), tagged with a token of this claim, then reads back what it got: two nodes that
// pick the same candidates cannot both win a row. Lease times come from each node's clock
// (keep them in sync, as for the cluster's node registry).
//
// Failing to reach a server (refused, reset, gone, pool timeout) becomes
// VoiceStoreUnavailableError (503 E_STORAGE_UNAVAILABLE); SQLite's own errors keep their
// SQLITE_* codes, which storageFailure() already classifies.
import { randomBytes } from 'node:crypto';
import { sql, type Kysely, type SelectQueryBuilder, type Transaction, type Updateable } from 'kysely';
import { lifecycleEvent, type VoiceMessageEvent } from '../voiceEvents.js';
import { formatDestination, type Destination, type VoiceMessage } from '../voiceMessage.js';
import { VOICE_MESSAGE_ID_PATTERN } from '../../../protocol/patterns.js';
import type { VoiceMessageStatus } from '../../../protocol/schemas.js';
import {
	DuplicateVoiceMessageError,
	pageCursor,
	pageOf,
	usageOfMessages,
	VoiceStoreUnavailableError,
	type ListOptions,
	type StoredUsage,
	type UpdateCondition,
	type VoiceMessagePage,
	type VoiceMessagePatch,
	type VoiceMessageStore,
	type VoiceMessageStoreOptions,
} from './VoiceMessageStore.js';
import { OUTBOX_TARGETS, type OutboxEntry, type OutboxTarget, type VoiceOutbox } from './VoiceOutbox.js';
import {
	EventLogOutOfRangeError,
	InvalidEventPositionError,
	matchesFilter,
	type LoggedVoiceEvent,
	type VoiceEventBatch,
	type VoiceEventFilter,
	type VoiceEventLog,
} from './VoiceEventLog.js';
import { connectSql, isDuplicateKey, isSqlUnavailable, type SqlConnectOptions } from './sql/connect.js';
import { migrateToLatest } from './sql/migrations.js';
import type { MetadataDatabase, SqlDialectName, VoiceOutboxTable } from './sql/schema.js';

/** Compare-and-set attempts before an update gives up (only under heavy contention on one id). */
const MAX_CAS_ATTEMPTS = 50;

export interface SqlVoiceMessageStoreOptions extends VoiceMessageStoreOptions, SqlConnectOptions {}

type Db = Kysely<MetadataDatabase>;
type PageQuery = SelectQueryBuilder<MetadataDatabase, 'voice_messages', { record: string }>;

function columnsOf(target: OutboxTarget) {
	return {
		doneAt: `${target}_done_at`,
		leaseOwner: `${target}_lease_owner`,
		leaseUntil: `${target}_lease_until`,
		attempts: `${target}_attempts`,
		retryAt: `${target}_retry_at`,
	} as const;
}

export class SqlVoiceMessageStore implements VoiceMessageStore, VoiceOutbox, VoiceEventLog {
	readonly dialect: SqlDialectName;
	/** The URL without its password, for logs. */
	readonly url: string;
	readonly #db: Db;
	readonly #o: SqlVoiceMessageStoreOptions;
	#closed = false;

	private constructor(db: Db, dialect: SqlDialectName, url: string, options: SqlVoiceMessageStoreOptions) {
		this.#db = db;
		this.dialect = dialect;
		this.url = url;
		this.#o = options;
	}

	/** Connects to `url` (sqlite:<file>, mysql://, mariadb://, postgres://), brings the schema
	 * up to date and returns the store. */
	static async open(url: string, options: SqlVoiceMessageStoreOptions): Promise<SqlVoiceMessageStore> {
		const { db, dialect, redactedUrl } = connectSql(url, options);
		try {
			await (dialect === 'sqlite' ? whileSqliteBusy(() => migrateToLatest(db, dialect)) : migrateToLatest(db, dialect));
		} catch (err) {
			await db.destroy().catch(() => {});
			const cause = (err as Error).cause ?? err;
			if (isSqlUnavailable(cause)) throw new VoiceStoreUnavailableError(`the voice-message store (${redactedUrl}) is unreachable: ${(cause as Error).message}`, { cause });
			throw err;
		}
		return new SqlVoiceMessageStore(db, dialect, redactedUrl, options);
	}

	async insert(m: VoiceMessage): Promise<void> {
		const event = lifecycleEvent(undefined, m, this.#o.nodeId, 1)!;
		await this.#reach(async () => {
			try {
				await this.#db.transaction().execute(async (trx) => {
					await trx
						.insertInto('voice_messages')
						.values({
							id: m.id,
							owner_id: m.ownerId,
							destination: formatDestination(m.destination),
							status: m.status,
							created_at: m.createdAt,
							updated_at: m.updatedAt,
							node_id: m.nodeId ?? null,
							event_sequence: 1,
							revision: 1,
							record: JSON.stringify(m),
						})
						.execute();
					await this.#appendEvent(trx, event);
				});
			} catch (err) {
				if (isDuplicateKey(err)) throw new DuplicateVoiceMessageError(`voice message ${m.id} exists`);
				throw err;
			}
		});
		this.#emit(event);
	}

	async update(id: string, patch: VoiceMessagePatch, condition?: UpdateCondition): Promise<VoiceMessage | undefined> {
		for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
			const current = await this.#readRow(id);
			if (!current) return undefined;
			if (condition && current.message.nodeId !== condition.nodeId) return undefined;
			// JSON drops keys whose value is undefined: a patch field set to undefined removes it.
			const next = JSON.parse(JSON.stringify({ ...current.message, ...patch, updatedAt: Date.now() })) as VoiceMessage;
			const sequence = current.eventSequence + 1;
			const event = lifecycleEvent(current.message, next, this.#o.nodeId, sequence);
			const written = await this.#reach(() =>
				this.#db.transaction().execute(async (trx) => {
					const result = await trx
						.updateTable('voice_messages')
						.set({
							status: next.status,
							updated_at: next.updatedAt,
							node_id: next.nodeId ?? null,
							record: JSON.stringify(next),
							revision: current.revision + 1,
							...(event && { event_sequence: sequence }),
						})
						.where('id', '=', id)
						.where('revision', '=', current.revision)
						.executeTakeFirst();
					if (Number(result.numUpdatedRows) !== 1) return false;
					if (event) await this.#appendEvent(trx, event);
					return true;
				}),
			);
			if (written) {
				if (event) this.#emit(event);
				return next;
			}
			await backOff(attempt);
		}
		throw new Error(`voice message ${id}: too many concurrent updates`);
	}

	async get(id: string): Promise<VoiceMessage | undefined> {
		return (await this.#readRow(id))?.message;
	}

	async listFor(destination: Destination, { limit, before }: ListOptions): Promise<VoiceMessagePage> {
		const cursor = pageCursor(before);
		const rows = await this.#reach(() => {
			let q = this.#db.selectFrom('voice_messages').select('record').where('destination', '=', formatDestination(destination));
			if (cursor) q = this.#olderThan(q, cursor);
			return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit + 1).execute();
		});
		const all = rows.map((r) => JSON.parse(r.record) as VoiceMessage);
		return pageOf(all, limit);
	}

	async listByOwner(ownerId: string, { limit, before }: ListOptions): Promise<VoiceMessagePage> {
		const cursor = pageCursor(before);
		const rows = await this.#reach(() => {
			let q = this.#db.selectFrom('voice_messages').select('record').where('owner_id', '=', ownerId);
			if (cursor) q = this.#olderThan(q, cursor);
			return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit + 1).execute();
		});
		return pageOf(
			rows.map((r) => JSON.parse(r.record) as VoiceMessage),
			limit,
		);
	}

	async listByStatus(status: VoiceMessageStatus): Promise<VoiceMessage[]> {
		const rows = await this.#reach(() => this.#db.selectFrom('voice_messages').select('record').where('status', '=', status).orderBy('updated_at').execute());
		return rows.map((r) => JSON.parse(r.record) as VoiceMessage);
	}

	async usageOf(ownerId: string): Promise<StoredUsage> {
		const rows = await this.#reach(() => this.#db.selectFrom('voice_messages').select('record').where('owner_id', '=', ownerId).where('status', '!=', 'failed').execute());
		return usageOfMessages(rows.map((r) => JSON.parse(r.record) as VoiceMessage));
	}

	async delete(id: string): Promise<boolean> {
		for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
			const current = await this.#readRow(id);
			if (!current) return false;
			const event = lifecycleEvent(current.message, undefined, this.#o.nodeId, current.eventSequence + 1)!;
			const removed = await this.#reach(() =>
				this.#db.transaction().execute(async (trx) => {
					const result = await trx.deleteFrom('voice_messages').where('id', '=', id).where('revision', '=', current.revision).executeTakeFirst();
					if (Number(result.numDeletedRows) !== 1) return false;
					await this.#appendEvent(trx, event);
					return true;
				}),
			);
			if (removed) {
				this.#emit(event);
				return true;
			}
			await backOff(attempt);
		}
		throw new Error(`voice message ${id}: too many concurrent updates`);
	}

	/** Resolves when the database answers a trivial query (readiness). */
	async ping(): Promise<void> {
		await this.#reach(() => sql`select 1`.execute(this.#db));
	}

	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		await this.#db.destroy();
	}

	// --- VoiceOutbox ---

	async claim(target: OutboxTarget, nodeId: string, limit: number, leaseMs: number, options: { reclaimOwn?: boolean } = {}): Promise<OutboxEntry[]> {
		const c = columnsOf(target);
		const now = Date.now();
		// Tokens are `<nodeId>#<random>`: a prefix compare (substr works on all three engines;
		// LIKE would need the node id's '_' and '%' escaped).
		const ownPrefix = `${nodeId}#`;
		const free = (leaseUntil: string, leaseOwner: string) =>
			sql<boolean>`(${sql.ref(leaseUntil)} is null or ${sql.ref(leaseUntil)} < ${now}${
				options.reclaimOwn ? sql` or substr(${sql.ref(leaseOwner)}, 1, ${sql.lit(ownPrefix.length)}) = ${ownPrefix}` : sql``
			})`;
		return this.#reach(async () => {
			const candidates = await this.#db
				.selectFrom('voice_outbox as o')
				.select('o.position')
				.where(`o.${c.doneAt}`, 'is', null)
				.where(free(`o.${c.leaseUntil}`, `o.${c.leaseOwner}`))
				.where((eb) => eb.or([eb(`o.${c.retryAt}`, 'is', null), eb(`o.${c.retryAt}`, '<=', now)]))
				// Per-message commit order: nothing earlier of the same message is still open.
				.where((eb) =>
					eb.not(
						eb.exists(
							eb
								.selectFrom('voice_outbox as e')
								.select(sql.lit(1).as('one'))
								.whereRef('e.voice_message_id', '=', 'o.voice_message_id')
								.whereRef('e.position', '<', 'o.position')
								.where(`e.${c.doneAt}`, 'is', null),
						),
					),
				)
				.orderBy('o.position')
				.limit(limit)
				.execute();
			if (candidates.length === 0) return [];
			const positions = candidates.map((r) => Number(r.position));
			// The token tells this claim's rows from another claim's (even one of the same node).
			const token = `${nodeId}#${randomBytes(6).toString('hex')}`;
			await this.#db
				.updateTable('voice_outbox')
				.set({ [c.leaseOwner]: token, [c.leaseUntil]: now + leaseMs } as Updateable<VoiceOutboxTable>)
				.where('position', 'in', positions)
				.where(c.doneAt, 'is', null)
				.where(free(c.leaseUntil, c.leaseOwner))
				.execute();
			const won = await this.#db
				.selectFrom('voice_outbox')
				.select(['position', 'event', c.attempts])
				.where('position', 'in', positions)
				.where(c.leaseOwner, '=', token)
				.orderBy('position')
				.execute();
			return won.map((r) => ({
				position: Number(r.position),
				event: JSON.parse(r.event) as VoiceMessageEvent,
				attempts: Number((r as Record<string, unknown>)[c.attempts]),
			}));
		});
	}

	async markDone(target: OutboxTarget, positions: readonly number[]): Promise<void> {
		if (positions.length === 0) return;
		const c = columnsOf(target);
		await this.#reach(() =>
			this.#db
				.updateTable('voice_outbox')
				.set({ [c.doneAt]: Date.now(), [c.leaseOwner]: null, [c.leaseUntil]: null } as Updateable<VoiceOutboxTable>)
				.where('position', 'in', [...positions])
				.where(c.doneAt, 'is', null)
				.execute(),
		);
	}

	async retryLater(target: OutboxTarget, position: number, retryAt: number): Promise<void> {
		const c = columnsOf(target);
		await this.#reach(() =>
			this.#db
				.updateTable('voice_outbox')
				.set((eb) => ({ [c.attempts]: eb(c.attempts, '+', 1), [c.leaseOwner]: null, [c.leaseUntil]: null, [c.retryAt]: retryAt }) as Updateable<VoiceOutboxTable>)
				.where('position', '=', position)
				.where(c.doneAt, 'is', null)
				.execute(),
		);
	}

	async pending(target: OutboxTarget): Promise<number> {
		const c = columnsOf(target);
		const row = await this.#reach(() => this.#db.selectFrom('voice_outbox').select((eb) => eb.fn.countAll().as('n')).where(c.doneAt, 'is', null).executeTakeFirst());
		return Number(row?.n ?? 0);
	}

	async prune(before: number): Promise<number> {
		return this.#reach(() =>
			this.#db.transaction().execute(async (trx) => {
				// Done on every target and older than `before`: the same condition for the select and the delete.
				const doneBefore = sql<boolean>`created_at < ${before}${sql.join(
					OUTBOX_TARGETS.map((target) => sql` and ${sql.ref(columnsOf(target).doneAt)} is not null`),
					sql``,
				)}`;
				const top = await trx.selectFrom('voice_outbox').select((eb) => eb.fn.max('position').as('top')).where(doneBefore).executeTakeFirst();
				if (top?.top === null || top?.top === undefined) return 0;
				const through = Number(top.top);
				// The mark first: it takes the log row's lock, so no append interleaves.
				await trx
					.updateTable('voice_event_log')
					.set({ pruned_through: through })
					.where('id', '=', 1)
					.where('pruned_through', '<', through)
					.execute();
				const result = await trx.deleteFrom('voice_outbox').where('position', '<=', through).where(doneBefore).executeTakeFirst();
				return Number(result.numDeletedRows);
			}),
		);
	}

	/** The entries of one message, oldest first (tests, the import's checks). */
	async outboxOf(voiceMessageId: string): Promise<{ position: number; sequence: number; event: VoiceMessageEvent }[]> {
		const rows = await this.#reach(() =>
			this.#db.selectFrom('voice_outbox').select(['position', 'sequence', 'event']).where('voice_message_id', '=', voiceMessageId).orderBy('position').execute(),
		);
		return rows.map((r) => ({ position: Number(r.position), sequence: Number(r.sequence), event: JSON.parse(r.event) as VoiceMessageEvent }));
	}

	// --- VoiceEventLog ---

	async readEvents(after: string, filter: VoiceEventFilter, scanLimit: number): Promise<VoiceEventBatch> {
		const from = parsePosition(after);
		// Rows first, then the prune mark: a prune that removed rows after `from` before this read
		// raised the mark in the same transaction, so it is seen here.
		const rows = await this.#reach(() =>
			this.#db.selectFrom('voice_outbox').select(['position', 'event']).where('position', '>', from).orderBy('position').limit(scanLimit).execute(),
		);
		const log = await this.#logRow();
		if (from < log.pruned_through) {
			throw new EventLogOutOfRangeError(`events after ${from} are no longer kept (kept from ${log.pruned_through}: metadata.eventRetentionS)`, String(log.pruned_through));
		}
		if (rows.length === 0) {
			const head = await this.#headPosition(log.pruned_through);
			if (from > head) throw new InvalidEventPositionError(`event ${from} is ahead of the log (newest ${head})`);
			return { events: [], readThrough: String(from) };
		}
		const events: LoggedVoiceEvent[] = [];
		for (const r of rows) {
			const event = JSON.parse(r.event) as VoiceMessageEvent;
			if (matchesFilter(event, filter)) events.push({ position: String(r.position), event });
		}
		return { events, readThrough: String(rows.at(-1)!.position) };
	}

	async headPosition(): Promise<string> {
		return String(await this.#headPosition((await this.#logRow()).pruned_through));
	}

	async #headPosition(prunedThrough: number): Promise<number> {
		const row = await this.#reach(() => this.#db.selectFrom('voice_outbox').select((eb) => eb.fn.max('position').as('head')).executeTakeFirst());
		return Math.max(Number(row?.head ?? 0), prunedThrough);
	}

	async #logRow(): Promise<{ pruned_through: number }> {
		const row = await this.#reach(() => this.#db.selectFrom('voice_event_log').select('pruned_through').where('id', '=', 1).executeTakeFirstOrThrow());
		return { pruned_through: Number(row.pruned_through) };
	}

	// --- internals ---

	/** Rows strictly older than the cursor in (created_at, id) order. PostgreSQL turns its
	 * row-value comparison into an index range; the others get the equivalent whose first term
	 * bounds the range of the page index. */
	#olderThan(q: PageQuery, cursor: { createdAt: number; id: string }): PageQuery {
		const { createdAt, id } = cursor;
		return this.dialect === 'postgres'
			? q.where(sql<boolean>`(created_at, id) < (${createdAt}, ${id})`)
			: q.where('created_at', '<=', createdAt).where((eb) => eb.or([eb('created_at', '<', createdAt), eb('id', '<', id)]));
	}

	async #appendEvent(trx: Transaction<MetadataDatabase>, event: VoiceMessageEvent): Promise<void> {
		// The log row's lock, held until this transaction ends, makes event-writing transactions
		// take their positions one after the other and commit in that order: without it a
		// position handed out earlier could commit later, and a subscriber already past it would
		// never see it. SQLite's single writer orders them anyway; this row costs it nothing.
		await lockEventLog(trx);
		await trx
			.insertInto('voice_outbox')
			.values({ event_id: event.eventId, voice_message_id: event.voiceMessageId, sequence: event.sequence, event: JSON.stringify(event), created_at: event.at })
			.execute();
	}

	async #readRow(id: string): Promise<{ message: VoiceMessage; revision: number; eventSequence: number } | undefined> {
		if (!VOICE_MESSAGE_ID_PATTERN.test(id)) return undefined;
		const row = await this.#reach(() => this.#db.selectFrom('voice_messages').select(['record', 'revision', 'event_sequence']).where('id', '=', id).executeTakeFirst());
		return row ? { message: JSON.parse(row.record) as VoiceMessage, revision: Number(row.revision), eventSequence: Number(row.event_sequence) } : undefined;
	}

	#emit(event: VoiceMessageEvent | undefined): void {
		if (event) this.#o.onEvent?.(event);
	}

	/** A server that cannot be reached becomes VoiceStoreUnavailableError; every other error
	 * (a bug, a constraint, SQLite's own codes) stays as it is. SQLite's "busy" is waited out. */
	async #reach<T>(operation: () => Promise<T>): Promise<T> {
		try {
			return await (this.dialect === 'sqlite' ? whileSqliteBusy(operation) : operation());
		} catch (err) {
			if (isSqlUnavailable(err)) throw new VoiceStoreUnavailableError(`the voice-message store (${this.url}) is unreachable: ${(err as Error).message}`, { cause: err });
			throw err;
		}
	}
}

/**
 * Takes the event log row's lock for the rest of `trx`: call it right before inserting an
 * outbox row, in every transaction that does (the store, the import), so positions are handed
 * out in commit order and a status subscriber already past one never misses it.
 */
export async function lockEventLog(trx: Transaction<MetadataDatabase>): Promise<void> {
	await trx.updateTable('voice_event_log').set((eb) => ({ appended: eb('appended', '+', 1) })).where('id', '=', 1).execute();
}

/** A SQL log position: the outbox row's position, in decimal. */
function parsePosition(position: string): number {
	if (!/^\d{1,15}$/.test(position)) throw new InvalidEventPositionError(`"${position.slice(0, 40)}" is not an event id of this log`);
	return Number(position);
}

/** How long a SQLite write waits for another connection's transaction before SQLITE_BUSY. */
const SQLITE_BUSY_WAIT_MS = 5000;

/**
 * Runs `operation` again (it is a whole transaction or a single statement) while another
 * connection holds the file's write lock. better-sqlite3 waits synchronously, which would
 * block the event loop and with it a transaction of this very process that holds the lock
 * between two awaits; so connections open with busy timeout 0 and wait here, between tries.
 */
async function whileSqliteBusy<T>(operation: () => Promise<T>): Promise<T> {
	const deadline = Date.now() + SQLITE_BUSY_WAIT_MS;
	for (let attempt = 0; ; attempt++) {
		try {
			return await operation();
		} catch (err) {
			const e = err as { code?: unknown; cause?: { code?: unknown } };
			const code = e.code ?? e.cause?.code; // a failed migration carries it as its cause
			if (typeof code !== 'string' || !code.startsWith('SQLITE_BUSY') || Date.now() > deadline) throw err;
			await new Promise((r) => setTimeout(r, 1 + Math.random() * Math.min(20, 2 ** attempt)));
		}
	}
}

/** A short, growing, jittered pause after a lost compare-and-set, so racing writers spread out. */
async function backOff(attempt: number): Promise<void> {
	if (attempt === 0) return;
	await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
}
