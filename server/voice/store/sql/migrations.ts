// Versioned migrations of the metadata database, in code (no files to ship or find), run by
// Kysely's Migrator at startup. The Migrator holds a lock while it runs (pg_advisory_lock on
// PostgreSQL, GET_LOCK on MySQL/MariaDB, the single connection's write lock on SQLite) and
// records each applied migration in kysely_migration, so nodes starting together apply each
// migration once and the others wait, then find nothing left to do.
//
// 0001 creates voice_messages in the shape the older SqliteVoiceMessageStore used (IF NOT
// EXISTS: an existing SQLite file of a node being upgraded is taken as it is, rows and all);
// 0002 adds what the SQL store needs on top (updated_at, node_id, event_sequence, revision,
// the indexes of the API's queries) and the outbox table; 0003 adds the owner page index and
// the event log's head row (voice_event_log). New columns of old rows are filled
// from their JSON record. MySQL/MariaDB cannot roll DDL back: a migration that fails half-way
// there has to be finished by hand (the error names the statement).
import { sql, type Kysely } from 'kysely';
import { Migrator, type Migration, type MigrationProvider } from 'kysely/migration';
import { OUTBOX_TARGETS } from '../VoiceOutbox.js';
import type { SqlDialectName } from './schema.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations are written against the schema as it was then, not today's types
type AnyDb = Kysely<any>;

function types(dialect: SqlDialectName) {
	const text = (length: number) => (dialect === 'sqlite' ? sql`text` : dialect === 'postgres' ? sql.raw(`varchar(${length}) collate "C"`) : sql.raw(`varchar(${length})`));
	return {
		id: text(36),
		name: text(200),
		status: text(16),
		ms: dialect === 'sqlite' ? sql`integer` : sql`bigint`,
		int: sql`integer`,
		json: dialect === 'mysql' ? sql`longtext` : sql`text`,
	};
}

/** MySQL compares strings case-insensitively by default; ids, owners and destinations are
 * compared byte for byte (as SQLite and PostgreSQL with collation "C" do). */
function tableOptions(dialect: SqlDialectName) {
	return dialect === 'mysql' ? sql`engine = InnoDB default character set utf8mb4 collate utf8mb4_bin` : sql``;
}

function migrations(dialect: SqlDialectName): Record<string, Migration> {
	const t = types(dialect);
	return {
		'0001_voice_messages': {
			async up(db: AnyDb) {
				await db.schema
					.createTable('voice_messages')
					.ifNotExists()
					.addColumn('id', t.id, (c) => c.primaryKey().notNull())
					.addColumn('owner_id', t.name, (c) => c.notNull())
					.addColumn('destination', t.name, (c) => c.notNull())
					.addColumn('status', t.status, (c) => c.notNull())
					.addColumn('created_at', t.ms, (c) => c.notNull())
					.addColumn('record', t.json, (c) => c.notNull())
					.modifyEnd(tableOptions(dialect))
					.execute();
			},
		},
		'0002_revisions_indexes_outbox': {
			async up(db: AnyDb) {
				// One column per statement: SQLite's ALTER TABLE adds one at a time.
				await db.schema.alterTable('voice_messages').addColumn('updated_at', t.ms, (c) => c.notNull().defaultTo(0)).execute();
				await db.schema.alterTable('voice_messages').addColumn('node_id', t.name).execute();
				await db.schema.alterTable('voice_messages').addColumn('event_sequence', t.int, (c) => c.notNull().defaultTo(0)).execute();
				await db.schema.alterTable('voice_messages').addColumn('revision', t.int, (c) => c.notNull().defaultTo(0)).execute();
				if (dialect === 'sqlite') {
					// Rows of the older store: their created event went out before the outbox
					// existed, so their next event is their second.
					await sql`update voice_messages set updated_at = coalesce(json_extract(record, '$.updatedAt'), created_at), node_id = json_extract(record, '$.nodeId'), event_sequence = 1`.execute(db);
					// The older store's indexes; the ones below replace them.
					for (const name of ['voice_messages_by_destination', 'voice_messages_by_status', 'voice_messages_by_owner']) await db.schema.dropIndex(name).ifExists().execute();
				}
				// Pages of a destination, newest first, with the (created_at, id) cursor.
				await db.schema.createIndex('voice_messages_page').on('voice_messages').columns(['destination', 'created_at', 'id']).execute();
				// Recovery: unfinished messages by status, oldest change first.
				await db.schema.createIndex('voice_messages_recovery').on('voice_messages').columns(['status', 'updated_at']).execute();
				// Quotas: one owner's messages that are not failed.
				await db.schema.createIndex('voice_messages_usage').on('voice_messages').columns(['owner_id', 'status']).execute();

				let outbox = db.schema.createTable('voice_outbox');
				outbox =
					dialect === 'sqlite'
						? outbox.addColumn('position', 'integer', (c) => c.primaryKey().autoIncrement())
						: dialect === 'mysql'
							? outbox.addColumn('position', 'bigint', (c) => c.primaryKey().autoIncrement())
							: outbox.addColumn('position', 'bigserial', (c) => c.primaryKey());
				outbox = outbox
					.addColumn('event_id', t.id, (c) => c.notNull().unique())
					.addColumn('voice_message_id', t.id, (c) => c.notNull())
					.addColumn('sequence', t.int, (c) => c.notNull())
					.addColumn('event', t.json, (c) => c.notNull())
					.addColumn('created_at', t.ms, (c) => c.notNull());
				for (const target of OUTBOX_TARGETS) {
					outbox = outbox
						.addColumn(`${target}_done_at`, t.ms)
						.addColumn(`${target}_lease_owner`, t.name)
						.addColumn(`${target}_lease_until`, t.ms)
						.addColumn(`${target}_attempts`, t.int, (c) => c.notNull().defaultTo(0))
						.addColumn(`${target}_retry_at`, t.ms);
				}
				await outbox.modifyEnd(tableOptions(dialect)).execute();
				// claim(): the entries not done on a target, by retry time.
				for (const target of OUTBOX_TARGETS) {
					await db.schema.createIndex(`voice_outbox_${target}_claim`).on('voice_outbox').columns([`${target}_done_at`, `${target}_retry_at`, 'position']).execute();
				}
				// claim()'s per-message order check: earlier entries of the same message.
				await db.schema.createIndex('voice_outbox_message').on('voice_outbox').columns(['voice_message_id', 'position']).execute();
				// prune(): done entries by age.
				await db.schema.createIndex('voice_outbox_created').on('voice_outbox').columns(['created_at']).execute();
			},
		},
		'0003_owner_pages_event_log': {
			async up(db: AnyDb) {
				// Pages of one owner's messages, newest first (the backend API's List by owner).
				await db.schema.createIndex('voice_messages_owner_page').on('voice_messages').columns(['owner_id', 'created_at', 'id']).execute();
				// The outbox is also the event log that status subscriptions read (VoiceEventLog):
				// one row whose lock every event-writing transaction takes before its outbox row,
				// so positions are handed out in commit order (see SqlVoiceMessageStore), and the
				// highest position pruned so far (resuming before it is out of range).
				await db.schema
					.createTable('voice_event_log')
					.addColumn('id', t.int, (c) => c.primaryKey().notNull())
					.addColumn('appended', t.ms, (c) => c.notNull().defaultTo(0))
					.addColumn('pruned_through', t.ms, (c) => c.notNull().defaultTo(0))
					.modifyEnd(tableOptions(dialect))
					.execute();
				await db.insertInto('voice_event_log').values({ id: 1, appended: 0, pruned_through: 0 }).execute();
			},
		},
	};
}

class InCodeMigrations implements MigrationProvider {
	readonly #dialect: SqlDialectName;
	constructor(dialect: SqlDialectName) {
		this.#dialect = dialect;
	}
	async getMigrations(): Promise<Record<string, Migration>> {
		return migrations(this.#dialect);
	}
}

/** The names of every migration this version knows, in order. */
export const MIGRATION_NAMES = Object.keys(migrations('sqlite'));

/** Applies the migrations not applied yet; throws the first failure. */
export async function migrateToLatest(db: AnyDb, dialect: SqlDialectName): Promise<void> {
	const migrator = new Migrator({ db, provider: new InCodeMigrations(dialect) });
	const { error, results } = await migrator.migrateToLatest();
	if (error) {
		const failed = results?.find((r) => r.status === 'Error');
		throw new Error(`metadata migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`, { cause: error });
	}
}
