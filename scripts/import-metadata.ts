// One-shot, idempotent import of voice-message metadata into a SQL store:
//   npm run -s metadata:import -- --from redis://127.0.0.1:6379 --to postgres://parley@db/parley
//   npm run -s metadata:import -- --from sqlite:./data/parley.db --to mysql://parley@db/parley
//
// Sources: the Redis store of a cluster (every `parley:vm:<id>` hash, found with SCAN, so
// the indexes need not be intact: its `record` and `seq` fields), a SQLite file (opened
// read-only, never migrated; any schema version: the `record` column is the message in
// all), or another SQL store (mysql://, postgres://) to move between engines. Target: a metadata.url;
// its schema is created or brought up to date first (the same migrations, under the same
// lock, as a node's start).
//
// Rules, so that running it twice gives the same result and nothing is lost or doubled:
// - A message not in the target is inserted (insert-if-absent, so a node inserting the same
//   id at the same time wins and the import counts it as already there).
// - A message already in the target is left as it is, unless the source's copy is newer
//   (its updatedAt is later): then the target row takes the source's record, as a
//   compare-and-set on the row's revision, so a node writing it at that moment is not
//   overwritten. This lets a first pass run while the old cluster still serves and a final
//   pass, after the nodes stopped, bring over what changed in between. A message a node
//   changed in the target after the switch is newer there and stays.
// - Nothing is deleted: a message deleted from the source between two passes stays in the
//   target (delete it through the API).
// - No lifecycle events are written (no outbox rows): the messages had theirs when they
//   were created and changed. Each row keeps the source's event count (Redis `seq`, SQL
//   `event_sequence`; 1 where the source predates counting), so the message's next event,
//   from a node on the new store, continues its sequence with no gap or repeat for
//   consumers that followed it before. `--emit-created` writes one `voiceMessage.created`
//   event per inserted message (the message as it is now, numbered after the source's
//   events), for consumers that build their index from the new stream alone.
// - A record that does not parse, or a row the target refuses, is counted as failed, named on
//   stderr, and makes the exit status 1; the rest is still imported (run again after fixing:
//   what is in already counts as already there).
//
// Exit status: 0 all imported or already there, 1 some failed, 2 bad arguments or a source
// or target that cannot be opened.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { destinationSchema, VOICE_MESSAGE_STATUSES } from '../protocol/schemas.js';
import { USER_ID_PATTERN, VOICE_MESSAGE_ID_PATTERN } from '../protocol/patterns.js';
import { closeRedis } from '../server/redis/redisConnection.js';
import { lifecycleEvent } from '../server/voice/voiceEvents.js';
import { formatDestination, type VoiceMessage } from '../server/voice/voiceMessage.js';
import { connectSql, isDuplicateKey, isSqlUnavailable, sqlDialectOf } from '../server/voice/store/sql/connect.js';
import { migrateToLatest } from '../server/voice/store/sql/migrations.js';
import { lockEventLog } from '../server/voice/store/SqlVoiceMessageStore.js';
import type { MetadataDatabase } from '../server/voice/store/sql/schema.js';
import type { Kysely } from 'kysely';

const USAGE = `usage: npm run -s metadata:import -- --from <redis://...|sqlite:FILE|mysql://...|postgres://...> --to <metadata.url>
                  [--batch N] [--emit-created] [--node-id ID] [--quiet]`;

/** What a stored record must hold for the SQL store to index it; other fields are kept as
 * they are (the record is copied, not rebuilt). */
const storedMessageSchema = z.looseObject({
	id: z.string().regex(VOICE_MESSAGE_ID_PATTERN),
	ownerId: z.string().regex(USER_ID_PATTERN),
	destination: destinationSchema,
	source: z.enum(['recording', 'upload']),
	status: z.enum(VOICE_MESSAGE_STATUSES),
	nodeId: z.string().max(200).optional(),
	createdAt: z.number().int().nonnegative(),
	updatedAt: z.number().int().nonnegative(),
});

export interface ImportCounts {
	/** Records read from the source (each id once). */
	read: number;
	inserted: number;
	/** Already in the target, replaced by the source's newer copy. */
	updated: number;
	/** Already in the target and as new as the source's copy (or newer): left as it is. */
	alreadyThere: number;
	failed: number;
}

export interface ImportOptions {
	from: string;
	to: string;
	/** Messages per read and per target transaction (default 500). */
	batchSize?: number;
	/** Write a voiceMessage.created outbox event for each inserted message (default false). */
	emitCreated?: boolean;
	/** Names the importer in emitted events (default "metadata-import"). */
	nodeId?: string;
	/** Each failed record, as it happens. */
	onFailure?: (id: string, reason: string) => void;
}

/** A record as read, with the number of lifecycle events it has had; or why it could not be read. */
type SourceRecord = { id: string; message: VoiceMessage; sequence: number } | { id: string; error: string };

interface Source {
	/** Batches of records, each id once. */
	batches(size: number): AsyncIterable<SourceRecord[]>;
	close(): Promise<void>;
}

function parseRecord(idHint: string, json: string | null | undefined, sequence: unknown): SourceRecord {
	if (json === undefined || json === null) return { id: idHint, error: 'no record' };
	let value: unknown;
	try {
		value = JSON.parse(json);
	} catch (err) {
		return { id: idHint, error: `record is not JSON: ${(err as Error).message}` };
	}
	const parsed = storedMessageSchema.safeParse(value);
	if (!parsed.success) return { id: idHint, error: `record does not parse: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}` };
	if (idHint && parsed.data.id !== idHint) return { id: idHint, error: `record holds id ${parsed.data.id}` };
	// A source that predates event counting: its created event counts as 1.
	const seq = sequence === null || sequence === undefined ? 1 : Number(sequence);
	if (!Number.isInteger(seq) || seq < 1) return { id: idHint, error: `event sequence ${String(sequence)} is not a positive integer` };
	return { id: parsed.data.id, message: parsed.data as VoiceMessage, sequence: seq };
}

function redisSource(url: string): Source {
	const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: true });
	redis.on('error', () => {});
	const messageKey = new RegExp(`^parley:vm:(${VOICE_MESSAGE_ID_PATTERN.source.slice(1, -1)})$`);
	return {
		async *batches(size) {
			await redis.connect();
			const seen = new Set<string>();
			let cursor = '0';
			let pending: string[] = [];
			// One pipeline per batch: the hash fields RedisVoiceMessageStore writes.
			const read = async (ids: string[]): Promise<SourceRecord[]> => {
				const pipeline = redis.pipeline();
				for (const id of ids) pipeline.hmget(`parley:vm:${id}`, 'record', 'seq');
				const replies = (await pipeline.exec()) ?? [];
				return ids.map((id, i): SourceRecord => {
					const [err, fields] = replies[i] ?? [new Error('no reply'), null];
					if (err) return { id, error: err.message };
					const [record, seq] = fields as [string | null, string | null];
					return record === null ? { id, error: 'deleted while importing' } : parseRecord(id, record, seq);
				});
			};
			do {
				const [next, keys] = await redis.scan(cursor, 'MATCH', 'parley:vm:*', 'COUNT', 1000);
				cursor = next;
				for (const key of keys) {
					const id = messageKey.exec(key)?.[1];
					// SCAN may return a key twice; index keys (dest:, status:, owner:) do not match.
					if (!id || seen.has(id)) continue;
					seen.add(id);
					pending.push(id);
				}
				while (pending.length >= size) {
					yield await read(pending.slice(0, size));
					pending = pending.slice(size);
				}
			} while (cursor !== '0');
			if (pending.length > 0) yield await read(pending);
		},
		close: () => closeRedis(redis),
	};
}

function sqliteSource(url: string): Source {
	const file = url.slice('sqlite:'.length).replace(/^\/\//, '');
	// Read-only: the source is not migrated or otherwise touched (a node of the old version
	// may still be using it).
	const db = new Database(file, { readonly: true, fileMustExist: true });
	return {
		async *batches(size) {
			// A file of the older store has no event_sequence column yet.
			const columns = db.prepare<[], { name: string }>('PRAGMA table_info(voice_messages)').all();
			if (columns.length === 0) throw new Error('no voice_messages table in the file');
			const sequence = columns.some((c) => c.name === 'event_sequence') ? 'event_sequence' : 'NULL';
			// Keyset pages in (created_at, id) order: a stable order without OFFSET.
			const page = db.prepare<[number, number, string, number], { id: string; created_at: number; record: string; sequence: number | null }>(
				`SELECT id, created_at, record, ${sequence} AS sequence FROM voice_messages WHERE created_at > ? OR (created_at = ? AND id > ?) ORDER BY created_at, id LIMIT ?`,
			);
			let after = { createdAt: -1, id: '' };
			for (;;) {
				const rows = page.all(after.createdAt, after.createdAt, after.id, size);
				if (rows.length === 0) return;
				yield rows.map((r) => parseRecord(r.id, r.record, r.sequence));
				const last = rows[rows.length - 1]!;
				after = { createdAt: Number(last.created_at), id: last.id };
			}
		},
		close: async () => {
			db.close();
		},
	};
}

function sqlSource(url: string): Source {
	const { db } = connectSql(url, { poolSize: 2 });
	return {
		async *batches(size) {
			let after = { createdAt: -1, id: '' };
			for (;;) {
				const { createdAt, id } = after;
				const rows = await db
					.selectFrom('voice_messages')
					.select(['id', 'created_at', 'record', 'event_sequence'])
					.where((eb) => eb.or([eb('created_at', '>', createdAt), eb.and([eb('created_at', '=', createdAt), eb('id', '>', id)])]))
					.orderBy('created_at')
					.orderBy('id')
					.limit(size)
					.execute();
				if (rows.length === 0) return;
				yield rows.map((r) => parseRecord(r.id, r.record, r.event_sequence));
				const last = rows[rows.length - 1]!;
				after = { createdAt: Number(last.created_at), id: last.id };
			}
		},
		close: () => db.destroy(),
	};
}

function openSource(url: string): Source {
	if (/^rediss?:\/\//.test(url)) return redisSource(url);
	const dialect = sqlDialectOf(url);
	if (dialect === 'sqlite') return sqliteSource(url);
	if (dialect) return sqlSource(url);
	throw new UsageError(`--from must be redis://..., sqlite:FILE, mysql://... or postgres://... (got ${url})`);
}

export class UsageError extends Error {
	override readonly name = 'UsageError';
}

/** The import could not go on (target unreachable or not migratable, source unreadable);
 * `counts` says how far it got. */
export class ImportStoppedError extends Error {
	override readonly name = 'ImportStoppedError';
	readonly counts: ImportCounts;
	constructor(message: string, counts: ImportCounts, cause: unknown) {
		super(message, { cause });
		this.counts = counts;
	}
}

type Db = Kysely<MetadataDatabase>;

function rowOf(m: VoiceMessage, eventSequence: number) {
	return {
		id: m.id,
		owner_id: m.ownerId,
		destination: formatDestination(m.destination),
		status: m.status,
		created_at: m.createdAt,
		updated_at: m.updatedAt,
		node_id: m.nodeId ?? null,
		// The source's count of events, so the next one continues it (see the header).
		event_sequence: eventSequence,
		revision: 1,
		record: JSON.stringify(m),
	};
}

/** Inserts `m` unless its id exists; true when it did. A plain INSERT whose duplicate-key
 * error means "already there", the same on every engine (MySQL's INSERT IGNORE would also
 * swallow other errors, and its affected-row counts depend on the client's flags). */
async function insertIfAbsent(db: Db, m: VoiceMessage, sequence: number, emit: { nodeId: string } | undefined): Promise<boolean> {
	try {
		await db.transaction().execute(async (trx) => {
			if (!emit) {
				await trx.insertInto('voice_messages').values(rowOf(m, sequence)).execute();
				return;
			}
			// The created event is a new one: numbered after the events the message had.
			const event = { ...lifecycleEvent(undefined, m, emit.nodeId, sequence + 1)!, at: Date.now() };
			await trx.insertInto('voice_messages').values(rowOf(m, event.sequence)).execute();
			// In the event log's order, as the store writes its rows (status subscriptions read it).
			await lockEventLog(trx);
			await trx
				.insertInto('voice_outbox')
				.values({ event_id: event.eventId, voice_message_id: m.id, sequence: event.sequence, event: JSON.stringify(event), created_at: event.at })
				.execute();
		});
		return true;
	} catch (err) {
		if (isDuplicateKey(err)) return false;
		throw err;
	}
}

/** Replaces the row's record with `m` when `m` is newer, compare-and-set on the revision read;
 * true when it did. */
async function replaceIfOlder(db: Db, m: VoiceMessage, sequence: number, current: TargetVersion): Promise<boolean> {
	if (m.updatedAt <= current.updatedAt) return false;
	const { id: _id, revision: _revision, ...columns } = rowOf(m, Math.max(sequence, current.eventSequence));
	const result = await db
		.updateTable('voice_messages')
		.set({ ...columns, revision: current.revision + 1 })
		.where('id', '=', m.id)
		.where('revision', '=', current.revision)
		.executeTakeFirst();
	return Number(result.numUpdatedRows) === 1;
}

/** Imports every message of `from` into `to`; see the header for the rules. */
export async function importMetadata(options: ImportOptions): Promise<ImportCounts> {
	const batchSize = options.batchSize ?? 500;
	const emit = options.emitCreated ? { nodeId: options.nodeId ?? 'metadata-import' } : undefined;
	const dialect = sqlDialectOf(options.to);
	if (!dialect) throw new UsageError(`--to must be a metadata.url: sqlite:FILE, mysql://..., mariadb://... or postgres://... (got ${options.to})`);
	const counts: ImportCounts = { read: 0, inserted: 0, updated: 0, alreadyThere: 0, failed: 0 };
	const fail = (id: string, reason: string) => {
		counts.failed++;
		options.onFailure?.(id, reason);
	};
	if (options.from === options.to) throw new UsageError('--from and --to name the same store');
	let source: Source;
	try {
		source = openSource(options.from);
	} catch (err) {
		if (err instanceof UsageError) throw err;
		throw new ImportStoppedError(`cannot open the source ${redact(options.from)}: ${(err as Error).message}`, counts, err);
	}
	const { db } = connectSql(options.to, { poolSize: 4 });
	try {
		try {
			await migrateToLatest(db, dialect);
		} catch (err) {
			throw new ImportStoppedError(`cannot prepare the target: ${(err as Error).message}`, counts, err);
		}
		try {
			for await (const batch of source.batches(batchSize)) await importBatch(db, batch, counts, fail, emit);
		} catch (err) {
			if (err instanceof ImportStoppedError) throw err;
			throw new ImportStoppedError((err as Error).message, counts, err);
		}
	} finally {
		await Promise.allSettled([source.close(), db.destroy()]);
	}
	return counts;
}

async function importBatch(
	db: Db,
	batch: SourceRecord[],
	counts: ImportCounts,
	fail: (id: string, reason: string) => void,
	emit: { nodeId: string } | undefined,
): Promise<void> {
	counts.read += batch.length;
	const messages: { message: VoiceMessage; sequence: number }[] = [];
	for (const r of batch) {
		if ('error' in r) fail(r.id, r.error);
		else messages.push(r);
	}
	if (messages.length === 0) return;
	const rows = await db
		.selectFrom('voice_messages')
		.select(['id', 'updated_at', 'revision', 'event_sequence'])
		.where(
			'id',
			'in',
			messages.map((r) => r.message.id),
		)
		.execute();
	const existing = new Map(rows.map((r) => [r.id, versionOf(r)]));
	for (const { message: m, sequence } of messages) {
		try {
			let current = existing.get(m.id);
			if (!current) {
				if (await insertIfAbsent(db, m, sequence, emit)) {
					counts.inserted++;
					continue;
				}
				// Inserted by a node since the batch was read: compare with its row.
				current = await readVersion(db, m.id);
			}
			// A lost compare-and-set means a node wrote the row just now: read it again.
			for (let attempt = 0; ; attempt++) {
				// Gone (a node deleted it meanwhile: not ours to undo), or as new as ours.
				if (!current || m.updatedAt <= current.updatedAt) {
					counts.alreadyThere++;
					break;
				}
				if (await replaceIfOlder(db, m, sequence, current)) {
					counts.updated++;
					break;
				}
				if (attempt === 4) {
					fail(m.id, 'the target row kept changing while the import tried to replace it');
					break;
				}
				current = await readVersion(db, m.id);
			}
		} catch (err) {
			// The target went away: stop (a rerun continues where this one ended).
			if (isSqlUnavailable(err)) throw new ImportStoppedError(`the target is unreachable: ${(err as Error).message}`, counts, err);
			fail(m.id, (err as Error).message);
		}
	}
}

interface TargetVersion {
	updatedAt: number;
	revision: number;
	eventSequence: number;
}

function versionOf(row: { updated_at: number; revision: number; event_sequence: number }): TargetVersion {
	return { updatedAt: Number(row.updated_at), revision: Number(row.revision), eventSequence: Number(row.event_sequence) };
}

async function readVersion(db: Db, id: string): Promise<TargetVersion | undefined> {
	const row = await db.selectFrom('voice_messages').select(['updated_at', 'revision', 'event_sequence']).where('id', '=', id).executeTakeFirst();
	return row ? versionOf(row) : undefined;
}

function redact(url: string): string {
	return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

export function formatCounts(c: ImportCounts): string {
	return `read ${c.read}, inserted ${c.inserted}, updated ${c.updated}, already there ${c.alreadyThere}, failed ${c.failed}`;
}

async function main(): Promise<number> {
	let args;
	try {
		args = parseArgs({
			options: {
				from: { type: 'string' },
				to: { type: 'string' },
				batch: { type: 'string', default: '500' },
				'emit-created': { type: 'boolean', default: false },
				'node-id': { type: 'string', default: 'metadata-import' },
				quiet: { type: 'boolean', default: false },
				help: { type: 'boolean', short: 'h', default: false },
			},
		}).values;
	} catch (err) {
		process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
		return 2;
	}
	if (args.help) {
		process.stdout.write(`${USAGE}\n`);
		return 0;
	}
	const batchSize = Number(args.batch);
	if (!args.from || !args.to || !Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
		process.stderr.write(`--from and --to are required; --batch is 1..10000\n${USAGE}\n`);
		return 2;
	}
	const began = Date.now();
	if (!args.quiet) process.stdout.write(`importing voice-message metadata from ${redact(args.from)} into ${redact(args.to)}\n`);
	let counts: ImportCounts;
	try {
		counts = await importMetadata({
			from: args.from,
			to: args.to,
			batchSize,
			emitCreated: args['emit-created'],
			nodeId: args['node-id'],
			onFailure: (id, reason) => process.stderr.write(`failed ${id}: ${reason}\n`),
		});
	} catch (err) {
		process.stderr.write(`metadata import stopped: ${(err as Error).message}\n`);
		if (err instanceof ImportStoppedError) {
			process.stdout.write(`${formatCounts(err.counts)} before it stopped (${Date.now() - began} ms)\n`);
			return err.counts.read > 0 ? 1 : 2;
		}
		if (err instanceof UsageError) process.stderr.write(`${USAGE}\n`);
		return 2;
	}
	process.stdout.write(`${formatCounts(counts)} (${Date.now() - began} ms)\n`);
	return counts.failed > 0 ? 1 : 0;
}

// Run as a script (not when a test imports importMetadata).
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
	process.exitCode = await main();
}
