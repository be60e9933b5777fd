// Opens the metadata database a `metadata.url` names, with one of Kysely's three dialects:
//   sqlite:<file> | sqlite::memory:      better-sqlite3 (WAL, synchronous=FULL)
//   mysql://... | mariadb://...          mysql2 pool (MySQL 8, MariaDB 10.11)
//   postgres://... | postgresql://...    pg Pool
// Connect timeouts are short (connectTimeoutMs, 3 s by default) so a request fails fast with
// E_STORAGE_UNAVAILABLE instead of hanging while the server is away; both pools drop broken
// connections and open new ones, so the store works again once the server is back.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, MysqlDialect, PostgresDialect, SqliteDialect, type Dialect, type LogEvent, type SqliteDatabase } from 'kysely';
import { createPool } from 'mysql2';
import pg from 'pg';
import type { MetadataDatabase, SqlDialectName } from './schema.js';

export interface SqlConnectOptions {
	/** Connections per node to a MySQL/MariaDB or PostgreSQL server (metadata.poolSize). */
	poolSize?: number;
	/** How long opening one connection may take before the operation fails. */
	connectTimeoutMs?: number;
	/** Sees every query and error with its duration (slow-query logs, tests of query plans). */
	onQuery?: (event: LogEvent) => void;
}

export interface SqlConnection {
	db: Kysely<MetadataDatabase>;
	dialect: SqlDialectName;
	/** The URL without its password, for logs. */
	redactedUrl: string;
}

const PG_INT8_OID = 20;

/** Which engine a URL names, or undefined for one this store does not take. */
export function sqlDialectOf(url: string): SqlDialectName | undefined {
	if (/^sqlite:/.test(url)) return 'sqlite';
	if (/^(mysql|mariadb):\/\//.test(url)) return 'mysql';
	if (/^postgres(ql)?:\/\//.test(url)) return 'postgres';
	return undefined;
}

export function connectSql(url: string, options: SqlConnectOptions = {}): SqlConnection {
	const dialect = sqlDialectOf(url);
	const poolSize = options.poolSize ?? 10;
	const connectTimeoutMs = options.connectTimeoutMs ?? 3000;
	let driver: Dialect;
	if (dialect === 'sqlite') {
		const file = sqliteFile(url);
		driver = new SqliteDialect({
			database: async () => {
				if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
				// Busy timeout 0: SqlVoiceMessageStore waits for a busy file itself, asynchronously.
				const db = new Database(file, { timeout: 0 });
				// WAL: readers do not block the writer; synchronous=FULL: a committed status survives a crash.
				db.pragma('journal_mode = WAL');
				db.pragma('synchronous = FULL');
				return withRollbackAfterAbort(db);
			},
		});
	} else if (dialect === 'mysql') {
		const pool = createPool({
			uri: url.replace(/^mariadb:/, 'mysql:'),
			connectionLimit: poolSize,
			connectTimeout: connectTimeoutMs,
			waitForConnections: true,
			enableKeepAlive: true,
			charset: 'utf8mb4',
		});
		driver = new MysqlDialect({ pool });
	} else if (dialect === 'postgres') {
		const pool = new pg.Pool({
			connectionString: url,
			max: poolSize,
			connectionTimeoutMillis: connectTimeoutMs,
			keepAlive: true,
			// BIGINT (times, positions, counts) as numbers: every value stored here is far below 2^53.
			types: { getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === PG_INT8_OID ? Number : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser },
		});
		// An idle connection the server dropped (restart, failover) is removed by the pool; the
		// error event must have a listener or it would end the process. The next query that
		// cannot connect reports the outage to its caller.
		pool.on('error', () => {});
		// A connection checked out between two queries (a transaction) that the server drops
		// emits 'error' on the client, not the pool: without a listener that ends the process.
		// Its next query fails and reports the outage.
		pool.on('connect', (client) => client.on('error', () => {}));
		driver = new PostgresDialect({ pool });
	} else {
		throw new TypeError(`metadata.url must be sqlite:<file>, mysql://..., mariadb://..., postgres://... (got ${redact(url)})`);
	}
	return { db: new Kysely<MetadataDatabase>({ dialect: driver, ...(options.onQuery && { log: options.onQuery }) }), dialect, redactedUrl: redact(url) };
}

function sqliteFile(url: string): string {
	const rest = url.slice('sqlite:'.length);
	// sqlite::memory: and sqlite:<path>; sqlite://<path> too, as some tools write it.
	return rest.startsWith('//') ? rest.slice(2) : rest;
}

function redact(url: string): string {
	return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

// Codes of a server that is away, restarting or refusing connections, and of a pool that
// could not hand out a connection in time: an outage (503), not a bug.
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);
const MYSQL_CODES = new Set(['PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'ER_NORMAL_SHUTDOWN', 'ER_SHUTDOWN_COMPLETE', 'ER_LOCK_WAIT_TIMEOUT', 'ER_LOCK_DEADLOCK']);
const PG_CONNECTION_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection is closed|Cannot use a pool after calling end/i;

/** True when `err` says the SQL server cannot be reached or is going away. */
export function isSqlUnavailable(err: unknown): boolean {
	if (!(err instanceof Error)) return false;
	const e = err as Error & { code?: unknown; fatal?: unknown };
	const code = typeof e.code === 'string' ? e.code : '';
	if (NETWORK_CODES.has(code) || MYSQL_CODES.has(code)) return true;
	// PostgreSQL SQLSTATE: 08xxx connection exceptions, 57P01-03 shutdown / cannot connect
	// now, 53300 too many connections, 40001/40P01 serialization failure / deadlock (retry).
	if (/^(08...|57P0[123]|53300|40001|40P01)$/.test(code)) return true;
	if (e.fatal === true) return true; // mysql2: the connection is unusable
	return PG_CONNECTION_MESSAGES.test(e.message) || /Pool is closed|connect ETIMEDOUT|Can't add new command when connection is in closed state/i.test(e.message);
}

/** True when `err` is a duplicate primary/unique key. */
export function isDuplicateKey(err: unknown): boolean {
	const code = (err as { code?: unknown } | undefined)?.code;
	return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'ER_DUP_ENTRY' || code === '23505';
}

/** A ROLLBACK that does nothing, for a transaction SQLite has already ended. */
const NO_ROLLBACK = { reader: false, all: () => [], run: () => ({ changes: 0, lastInsertRowid: 0 }), iterate: () => [][Symbol.iterator]() };

/**
 * SQLite ends a transaction itself on some errors (SQLITE_FULL, SQLITE_IOERR, ...); Kysely then
 * sends ROLLBACK anyway, which fails with "no transaction is active" and replaces the error that
 * matters (the disk is full) with one nobody can act on. So a ROLLBACK outside a transaction is
 * skipped, and the caller sees SQLite's own error.
 */
function withRollbackAfterAbort(db: Database.Database): SqliteDatabase {
	return {
		close: () => db.close(),
		prepare: (sql: string) => (sql === 'rollback' && !db.inTransaction ? NO_ROLLBACK : db.prepare(sql)) as ReturnType<SqliteDatabase['prepare']>,
	};
}
