// Scenario `metadata`: voice-message metadata operations against the SQL store
// (server/voice/store/SqlVoiceMessageStore.ts, the one a node uses with metadata.url) on
// SQLite (a file on disk), MariaDB and PostgreSQL (throwaway servers on loopback from
// testkit/services/). Per engine, three phases of N operations each, `concurrency` in flight
// at once (a pool of `poolSize` connections, metadata.poolSize's default):
// - create: insert a message (status processing, as a finished upload is), which also writes
//   its outbox row, in one transaction;
// - status update: processing -> ready with the file's fields (size, duration, sha256,
//   codec, waveform), a read then a compare-and-set UPDATE and the outbox row in one
//   transaction, once per message;
// - list by destination: the newest page (limit 20) of one of `destinations` channels.
// ops/s = N / the phase's wall time; p50/p99 over every operation's own time.
// The engines run with the settings the store and testkit give them, recorded in the
// result: the store opens SQLite in WAL mode with synchronous=FULL; PostgreSQL runs durable
// (fsync on, as in production: testkit's `durable` option) and MariaDB with InnoDB's default
// flush at every commit, so each commit waits for the disk on all three.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { SqlVoiceMessageStore } from '../../server/voice/store/SqlVoiceMessageStore.js';
import type { Destination, VoiceMessage } from '../../server/voice/voiceMessage.js';
import { startMariaDb, type TestMariaDb } from '../../testkit/services/mariadb.js';
import { startPostgres, type TestPostgres } from '../../testkit/services/postgres.js';
import { type LatencySummary, summarize } from '../metrics/stats.js';

export type MetadataEngine = 'SQLite' | 'MariaDB' | 'PostgreSQL';
export const METADATA_ENGINES: MetadataEngine[] = ['SQLite', 'MariaDB', 'PostgreSQL'];
export type MetadataOperation = 'create' | 'statusUpdate' | 'listByDestination';

export interface MetadataOptions {
	engines: MetadataEngine[];
	/** Operations per phase. */
	ops: number;
	concurrency: number;
	poolSize: number;
	destinations: number;
	pageLimit: number;
}

export const METADATA_DEFAULTS: MetadataOptions = {
	engines: METADATA_ENGINES,
	ops: 3000,
	concurrency: 8,
	poolSize: 10,
	destinations: 30,
	pageLimit: 20,
};

export interface OperationFigure {
	ops: number;
	succeeded: number;
	failed: number;
	errors: string[];
	opsPerSecond: number;
	latencyMs: LatencySummary;
}

export interface MetadataEngineResult {
	engine: MetadataEngine;
	version: string;
	/** What a commit waits for on this engine, as configured for the run. */
	durability: string;
	operations: Record<MetadataOperation, OperationFigure>;
	/** Outbox rows waiting for the stream relay afterwards: one per create and per status change. */
	outboxPending: number;
	/** Messages per page the list phase got (median). */
	pageSize: number;
}

export interface MetadataResult {
	path: string;
	options: MetadataOptions;
	engines: MetadataEngineResult[];
}

export async function runMetadata(options: MetadataOptions, log: (line: string) => void = () => {}): Promise<MetadataResult> {
	const o = options;
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-metadata-'));
	let maria: TestMariaDb | undefined;
	let postgres: TestPostgres | undefined;
	try {
		const [m, p] = await Promise.all([o.engines.includes('MariaDB') ? startMariaDb() : undefined, o.engines.includes('PostgreSQL') ? startPostgres({ durable: true }) : undefined]);
		maria = m;
		postgres = p;
		const engines: MetadataEngineResult[] = [];
		for (const engine of o.engines) {
			const url = engine === 'SQLite' ? `sqlite:${path.join(dir, 'parley.db')}` : engine === 'MariaDB' ? maria!.url : postgres!.url;
			const { version, durability } = await engineInfo(engine, url);
			const result = await measureEngine(engine, url, o);
			engines.push({ engine, version, durability, ...result });
			for (const [op, f] of Object.entries(result.operations)) {
				log(`metadata ${engine}: ${op} ${f.opsPerSecond.toFixed(0)} ops/s, p50 ${f.latencyMs.p50.toFixed(2)} ms p99 ${f.latencyMs.p99.toFixed(2)} ms, ${f.failed} failed`);
			}
		}
		return {
			path: `SqlVoiceMessageStore in the bench process (Kysely; better-sqlite3, mysql2, pg) -> SQLite file / MariaDB / PostgreSQL on loopback; ${o.concurrency} operations in flight, pool of ${o.poolSize}`,
			options: o,
			engines,
		};
	} finally {
		await Promise.all([maria?.close(), postgres?.close()]);
		rmSync(dir, { recursive: true, force: true });
	}
}

async function measureEngine(engine: MetadataEngine, url: string, o: MetadataOptions): Promise<Omit<MetadataEngineResult, 'engine' | 'version' | 'durability'>> {
	const store = await SqlVoiceMessageStore.open(url, { nodeId: 'bench', poolSize: o.poolSize });
	try {
		const base = Date.now();
		const destinations: Destination[] = Array.from({ length: o.destinations }, (_, i) => ({ kind: 'channel', channel: `bench-${i}` }));
		const messages: VoiceMessage[] = Array.from({ length: o.ops }, (_, i) => ({
			id: randomUUID(),
			ownerId: `user-${i % 97}`,
			destination: destinations[i % destinations.length]!,
			source: 'upload',
			status: 'processing',
			originalName: `memo-${i}.m4a`,
			originalType: 'audio/mp4',
			originalSizeBytes: 180_000 + i,
			originalSha256: randomUUID().replace(/-/g, '').repeat(2),
			detectedFormat: 'mp4',
			nodeId: 'bench',
			createdAt: base + i,
			updatedAt: base + i,
		}));
		const create = await phase(o, async (i) => {
			await store.insert(messages[i]!);
		});
		const statusUpdate = await phase(o, async (i) => {
			const updated = await store.update(messages[i]!.id, {
				status: 'ready',
				durationMs: 7_340,
				sizeBytes: 29_812,
				sha256: randomUUID().replace(/-/g, '').repeat(2),
				codec: { codec: 'opus', sampleRate: 48_000, channels: 1, bitrateBps: 32_000 },
				waveform: Array.from({ length: 100 }, (_, k) => (k * 7 + i) % 32),
			});
			if (updated?.status !== 'ready') throw new Error('update found no message');
		});
		const pageSizes: number[] = [];
		const listByDestination = await phase(o, async (i) => {
			const page = await store.listFor(destinations[i % destinations.length]!, { limit: o.pageLimit });
			if (page.messages.length === 0) throw new Error('empty page');
			pageSizes.push(page.messages.length);
		});
		const outboxPending = await store.pending('stream');
		pageSizes.sort((a, b) => a - b);
		return { operations: { create, statusUpdate, listByDestination }, outboxPending, pageSize: pageSizes[pageSizes.length >> 1] ?? 0 };
	} finally {
		await store.close();
	}
}

/** Runs `o.ops` calls of `op(i)`, `o.concurrency` at a time, timing each. */
async function phase(o: MetadataOptions, op: (i: number) => Promise<void>): Promise<OperationFigure> {
	const latencies: number[] = [];
	const errors = new Set<string>();
	let failed = 0;
	let next = 0;
	const started = performance.now();
	await Promise.all(
		Array.from({ length: Math.min(o.concurrency, o.ops) }, async () => {
			while (next < o.ops) {
				const i = next++;
				const t0 = performance.now();
				try {
					await op(i);
					latencies.push(performance.now() - t0);
				} catch (err) {
					failed++;
					errors.add((err as Error).message);
				}
			}
		}),
	);
	const wallS = (performance.now() - started) / 1000;
	return { ops: o.ops, succeeded: latencies.length, failed, errors: [...errors].slice(0, 5), opsPerSecond: latencies.length / wallS, latencyMs: summarize(latencies) };
}

async function engineInfo(engine: MetadataEngine, url: string): Promise<{ version: string; durability: string }> {
	if (engine === 'SQLite') {
		const { default: Database } = await import('better-sqlite3');
		const db = new Database(':memory:');
		try {
			const version = (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
			return { version, durability: 'WAL, synchronous=FULL (the store opens it so): a commit waits for fsync of the WAL' };
		} finally {
			db.close();
		}
	}
	if (engine === 'MariaDB') {
		const c = await mysql.createConnection(url);
		try {
			const [rows] = await c.query('SELECT VERSION() AS v, @@innodb_flush_log_at_trx_commit AS flush, @@log_bin AS binlog, @@innodb_buffer_pool_size AS pool');
			const r = (rows as { v: string; flush: number; binlog: number; pool: number }[])[0]!;
			return { version: r.v, durability: `innodb_flush_log_at_trx_commit=${r.flush}${Number(r.flush) === 1 ? ' (a commit waits for fsync of the redo log)' : ''}, binary log ${Number(r.binlog) ? 'on' : 'off'}, buffer pool ${Math.round(Number(r.pool) / 1_048_576)} MiB` };
		} finally {
			await c.end();
		}
	}
	const c = new pg.Client({ connectionString: url });
	await c.connect();
	try {
		const show = async (name: string): Promise<string> => ((await c.query(`SHOW ${name}`)).rows[0] as Record<string, string>)[name]!;
		const version = await show('server_version');
		const fsync = await show('fsync');
		const durability = `fsync=${fsync}, synchronous_commit=${await show('synchronous_commit')}, full_page_writes=${await show('full_page_writes')}${fsync === 'off' ? ' (testkit\'s throwaway setting: a commit does not wait for the disk)' : ''}`;
		return { version, durability };
	} finally {
		await c.end();
	}
}
