// The SQL store against real SQLite, MariaDB and PostgreSQL: its outbox (one row per change,
// in the change's transaction, sequences without gaps, claims that never lease an entry to
// two nodes, lease expiry, prune), migrations (under a lock; an older SQLite file upgraded in
// place) and outages (a stopped server is a 503-class error, and the pool recovers).
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { CompiledQuery, sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startMariaDb, type TestMariaDb } from '../../../testkit/services/mariadb.js';
import { startPostgres, type TestPostgres } from '../../../testkit/services/postgres.js';
import type { VoiceMessageEvent } from '../voiceEvents.js';
import type { Destination, VoiceMessage } from '../voiceMessage.js';
import { SqlVoiceMessageStore } from './SqlVoiceMessageStore.js';
import { DuplicateVoiceMessageError, VoiceStoreUnavailableError } from './VoiceMessageStore.js';
import { connectSql } from './sql/connect.js';
import { MIGRATION_NAMES } from './sql/migrations.js';

let maria: TestMariaDb;
let postgres: TestPostgres;
let databases = 0;

beforeAll(async () => {
	[maria, postgres] = await Promise.all([startMariaDb(), startPostgres()]);
}, 60_000);
afterAll(async () => {
	await Promise.all([maria?.close(), postgres?.close()]);
});

/** A URL of an empty database of its own on `kind`'s server. */
async function freshDatabase(kind: Kind): Promise<string> {
	const name = `t${process.pid}_${++databases}`;
	if (kind === 'SQLite') return `sqlite:${path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-sql-')), 'parley.db')}`;
	return (kind === 'MariaDB' ? maria : postgres).createDatabase(name);
}

type Kind = 'SQLite' | 'MariaDB' | 'PostgreSQL';
const KINDS: Kind[] = ['SQLite', 'MariaDB', 'PostgreSQL'];
const room: Destination = { kind: 'channel', channel: 'room' };

function message(createdAt: number, extra: Partial<VoiceMessage> = {}): VoiceMessage {
	return { id: randomUUID(), ownerId: 'ada', destination: room, source: 'upload', status: 'uploading', createdAt, updatedAt: createdAt, ...extra };
}

describe.each(KINDS)('%s SQL store and outbox', (kind) => {
	const open: SqlVoiceMessageStore[] = [];
	async function openStore(url: string, nodeId: string, events?: VoiceMessageEvent[]): Promise<SqlVoiceMessageStore> {
		const store = await SqlVoiceMessageStore.open(url, { nodeId, poolSize: 4, ...(events && { onEvent: (e) => events.push(e) }) });
		open.push(store);
		return store;
	}
	afterEach(async () => {
		await Promise.all(open.splice(0).map((s) => s.close()));
	});

	it('writes one outbox row per change, in commit order, numbered 1..n per message, and tells onEvent after the commit', async () => {
		const events: VoiceMessageEvent[] = [];
		const store = await openStore(await freshDatabase(kind), 'n1', events);
		const a = message(1000);
		const b = message(1001);
		await store.insert(a);
		await store.insert(b);
		await store.update(a.id, { status: 'processing' });
		await store.update(a.id, { durationMs: 5 }); // no lifecycle change: no row
		await store.update(b.id, { status: 'failed', failureReason: 'x' });
		await store.update(a.id, { status: 'ready' });
		await store.delete(a.id);
		const rowsA = await store.outboxOf(a.id);
		expect(rowsA.map((r) => [r.sequence, r.event.event])).toEqual([
			[1, 'voiceMessage.created'],
			[2, 'voiceMessage.processing'],
			[3, 'voiceMessage.ready'],
			[4, 'voiceMessage.deleted'],
		]);
		expect(rowsA.map((r) => r.event.sequence)).toEqual([1, 2, 3, 4]);
		expect((await store.outboxOf(b.id)).map((r) => r.sequence)).toEqual([1, 2]);
		// Positions follow the commits across messages.
		const all = [...rowsA, ...(await store.outboxOf(b.id))].sort((x, y) => x.position - y.position);
		expect(all.map((r) => `${r.event.voiceMessageId === a.id ? 'a' : 'b'}${r.sequence}`)).toEqual(['a1', 'b1', 'a2', 'b2', 'a3', 'a4']);
		// onEvent saw the same events (same ids) in the same order.
		expect(events.map((e) => e.eventId)).toEqual(all.map((r) => r.event.eventId));
		expect(await store.pending('stream')).toBe(6);
		expect(await store.pending('webhook')).toBe(6);
	});

	it('a failed transaction writes neither the change nor its outbox row', async () => {
		const url = await freshDatabase(kind);
		const events: VoiceMessageEvent[] = [];
		const store = await openStore(url, 'n1', events);
		const kept = message(1000);
		await store.insert(kept);
		await expect(store.insert(kept)).rejects.toThrow(DuplicateVoiceMessageError);
		expect(await store.outboxOf(kept.id)).toHaveLength(1);
		// Take the outbox table away: the message's own statement succeeds, the outbox insert
		// after it fails, and the whole transaction must roll back.
		const raw = connectSql(url);
		try {
			await sql`alter table voice_outbox rename to voice_outbox_away`.execute(raw.db);
			const lost = message(2000);
			await expect(store.insert(lost)).rejects.toThrow();
			await expect(store.update(kept.id, { status: 'processing' })).rejects.toThrow();
			await expect(store.delete(kept.id)).rejects.toThrow();
			await sql`alter table voice_outbox_away rename to voice_outbox`.execute(raw.db);
			expect(await store.get(lost.id)).toBeUndefined();
			expect(await store.get(kept.id)).toMatchObject({ status: 'uploading' });
			expect(await store.outboxOf(lost.id)).toEqual([]);
			expect((await store.outboxOf(kept.id)).map((r) => r.sequence)).toEqual([1]);
			// And the next change of that message takes the next number, with no gap.
			await store.update(kept.id, { status: 'processing' });
			expect((await store.outboxOf(kept.id)).map((r) => r.sequence)).toEqual([1, 2]);
			expect(events.map((e) => e.event)).toEqual(['voiceMessage.created', 'voiceMessage.processing']);
		} finally {
			await raw.db.destroy();
		}
	});

	it('two nodes claiming at once never lease one entry twice, and each message goes out in order', async () => {
		const url = await freshDatabase(kind);
		const a = await openStore(url, 'node-a');
		const b = await openStore(url, 'node-b');
		const ids: string[] = [];
		for (let i = 0; i < 30; i++) {
			const m = message(1000 + i);
			ids.push(m.id);
			await a.insert(m);
		}
		// Three events for each message: created, processing, ready.
		for (const id of ids) await b.update(id, { status: 'processing' });
		for (const id of ids) await a.update(id, { status: 'ready' });

		const leased = new Map<number, string>();
		const delivered: VoiceMessageEvent[] = [];
		const done = new Set<string>();
		const drain = async (store: SqlVoiceMessageStore, nodeId: string) => {
			for (let round = 0; round < 200; round++) {
				const got = await store.claim('stream', nodeId, 4, 30_000);
				if (got.length === 0) {
					if ((await store.pending('stream')) === 0) return;
					await new Promise((r) => setTimeout(r, 5));
					continue;
				}
				// One entry per message at most: a later one waits for the earlier one.
				expect(new Set(got.map((e) => e.event.voiceMessageId)).size).toBe(got.length);
				for (const e of got) {
					expect(leased.has(e.position), `position ${e.position} leased twice`).toBe(false);
					// Offered only once the message's previous event was done.
					if (e.event.sequence > 1) expect(done.has(`${e.event.voiceMessageId}:${e.event.sequence - 1}`)).toBe(true);
					leased.set(e.position, nodeId);
					delivered.push(e.event);
				}
				for (const e of got) done.add(`${e.event.voiceMessageId}:${e.event.sequence}`);
				await store.markDone('stream', got.map((e) => e.position));
			}
		};
		await Promise.all(['node-a', 'node-b', 'node-a2', 'node-b2', 'node-a3', 'node-b3'].map((n, i) => drain(i % 2 ? b : a, n)));
		expect(leased.size).toBe(90);
		for (const id of ids) expect(delivered.filter((e) => e.voiceMessageId === id).map((e) => e.sequence)).toEqual([1, 2, 3]);
		expect(await a.pending('stream')).toBe(0);
		expect(await a.pending('webhook')).toBe(90);
	});

	it('hands entries whose lease ran out to another node, and retries after retryLater', async () => {
		const url = await freshDatabase(kind);
		const a = await openStore(url, 'node-a');
		const b = await openStore(url, 'node-b');
		const m = message(1000);
		await a.insert(m);
		await a.update(m.id, { status: 'processing' });
		const first = await a.claim('webhook', 'node-a', 10, 300);
		expect(first.map((e) => [e.event.sequence, e.attempts])).toEqual([[1, 0]]);
		// Held by node-a: nothing for node-b, and the second event waits behind the first.
		expect(await b.claim('webhook', 'node-b', 10, 300)).toEqual([]);
		await new Promise((r) => setTimeout(r, 350));
		const taken = await b.claim('webhook', 'node-b', 10, 10_000);
		expect(taken.map((e) => e.position)).toEqual(first.map((e) => e.position));
		// Not delivered: back in 200 ms, one attempt counted.
		await b.retryLater('webhook', taken[0]!.position, Date.now() + 200);
		expect(await a.claim('webhook', 'node-a', 10, 10_000)).toEqual([]);
		await new Promise((r) => setTimeout(r, 250));
		const again = await a.claim('webhook', 'node-a', 10, 10_000);
		expect(again.map((e) => [e.event.sequence, e.attempts])).toEqual([[1, 1]]);
		await a.markDone('webhook', [again[0]!.position]);
		expect((await b.claim('webhook', 'node-b', 10, 10_000)).map((e) => e.event.sequence)).toEqual([2]);
		// The other target is independent: its first entry is still there.
		expect((await b.claim('stream', 'node-b', 10, 10_000)).map((e) => e.event.sequence)).toEqual([1]);
	});

	it('pages with the (destination, created_at, id) index, the cursor bounding the index range', async () => {
		const url = await freshDatabase(kind);
		const queries: CompiledQuery[] = [];
		const store = await SqlVoiceMessageStore.open(url, { nodeId: 'n1', onQuery: (e) => void (e.level === 'query' && queries.push(e.query)) });
		open.push(store);
		const raw = connectSql(url);
		try {
			// Enough rows in several destinations that a scan would cost more than the index.
			const rows = Array.from({ length: 400 }, (_, i) => {
				const m = message(1000 + i, { destination: { kind: 'channel', channel: `room${i % 8}` } });
				return { id: m.id, owner_id: m.ownerId, destination: `channel:room${i % 8}`, status: m.status, created_at: m.createdAt, updated_at: m.updatedAt, node_id: null, event_sequence: 1, revision: 1, record: JSON.stringify(m) };
			});
			await raw.db.insertInto('voice_messages').values(rows).execute();
			await sql.raw(kind === 'MariaDB' ? 'analyze table voice_messages' : 'analyze').execute(raw.db);
			const first = await store.listFor({ kind: 'channel', channel: 'room3' }, { limit: 5 });
			queries.length = 0;
			await store.listFor({ kind: 'channel', channel: 'room3' }, { limit: 5, before: first.nextCursor! });
			const page = queries.find((q) => /^select/i.test(q.sql))!;
			const plan = await raw.db.connection().execute(async (c) => {
				// PostgreSQL: rule the sequential scan out, then look at what bounds the index scan.
				if (kind === 'PostgreSQL') await sql`set enable_seqscan = off`.execute(c);
				const explain = kind === 'SQLite' ? 'explain query plan ' : 'explain ';
				const result = await c.executeQuery(CompiledQuery.raw(explain + page.sql, [...page.parameters]));
				return JSON.stringify(result.rows);
			});
			if (kind === 'SQLite') expect(plan).toMatch(/USING (COVERING )?INDEX voice_messages_page \(destination=\? AND created_at<\?\)/);
			if (kind === 'MariaDB') expect(plan).toMatch(/"key":"voice_messages_page".*"type":"range"|"type":"range".*"key":"voice_messages_page"/);
			if (kind === 'PostgreSQL') expect(plan).toMatch(/Index Scan Backward using voice_messages_page.*Index Cond: \(\(\(destination\)::text = .*ROW\(created_at, \(id\)::text\) < ROW/);
		} finally {
			await raw.db.destroy();
		}
	});

	it("reclaimOwn hands a node its own leased entries again, never another node's", async () => {
		const url = await freshDatabase(kind);
		const a = await openStore(url, 'node-a');
		const b = await openStore(url, 'node-a_b'); // a node id that node-a's is a LIKE pattern of
		await a.insert(message(1000));
		const first = await a.claim('stream', 'node-a', 10, 60_000);
		expect(first).toHaveLength(1);
		expect(await a.claim('stream', 'node-a', 10, 60_000)).toEqual([]);
		expect(await b.claim('stream', 'node-a_b', 10, 60_000, { reclaimOwn: true })).toEqual([]);
		const again = await a.claim('stream', 'node-a', 10, 60_000, { reclaimOwn: true });
		expect(again.map((e) => e.position)).toEqual(first.map((e) => e.position));
		// Now leased by that second claim, still node-a's: another node cannot take it.
		expect(await b.claim('stream', 'node-a_b', 10, 60_000, { reclaimOwn: true })).toEqual([]);
	});

	it('prunes only entries done on every target', async () => {
		const store = await openStore(await freshDatabase(kind), 'n1');
		const m = message(1000);
		await store.insert(m);
		await store.update(m.id, { status: 'processing' });
		const [first, second] = await store.outboxOf(m.id);
		await store.markDone('stream', [first!.position, second!.position]);
		await store.markDone('webhook', [first!.position]);
		expect(await store.prune(Date.now() + 1000)).toBe(1);
		expect((await store.outboxOf(m.id)).map((r) => r.sequence)).toEqual([2]);
		expect(await store.prune(0)).toBe(0);
		expect(await store.pending('webhook')).toBe(1);
	});
});

describe('migrations', () => {
	it.each(['MariaDB', 'PostgreSQL'] as const)('on %s: three nodes opening a new database at once all succeed and apply each migration once', async (kind) => {
		const url = await freshDatabase(kind);
		const stores = await Promise.all([0, 1, 2].map((i) => SqlVoiceMessageStore.open(url, { nodeId: `n${i}`, poolSize: 2 })));
		try {
			const m = message(1000);
			await stores[0]!.insert(m);
			expect(await stores[2]!.get(m.id)).toEqual(m);
			const raw = connectSql(url);
			try {
				const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(raw.db);
				expect(applied.rows.map((r) => r.name)).toEqual(MIGRATION_NAMES);
			} finally {
				await raw.db.destroy();
			}
		} finally {
			await Promise.all(stores.map((s) => s.close()));
		}
	});

	it('upgrades a SQLite file of the older store in place: every message kept, readable, paged and changed as before', async () => {
		const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-sql-')), 'parley.db');
		// The older SqliteVoiceMessageStore's schema, as it created it.
		const old = new Database(file);
		old.exec(`
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
		const olds = [message(1000, { status: 'ready', sizeBytes: 10, nodeId: 'old-node' }), message(2000, { status: 'processing', updatedAt: 2500 }), message(3000, { status: 'failed' })];
		const insert = old.prepare('INSERT INTO voice_messages (id, owner_id, destination, status, created_at, record) VALUES (?, ?, ?, ?, ?, ?)');
		for (const m of olds) insert.run(m.id, m.ownerId, 'channel:room', m.status, m.createdAt, JSON.stringify(m));
		old.close();

		const events: VoiceMessageEvent[] = [];
		const store = await SqlVoiceMessageStore.open(`sqlite:${file}`, { nodeId: 'n1', onEvent: (e) => events.push(e) });
		try {
			for (const m of olds) expect(await store.get(m.id)).toEqual(m);
			expect((await store.listFor(room, { limit: 10 })).messages.map((m) => m.id)).toEqual([olds[2]!.id, olds[1]!.id, olds[0]!.id]);
			expect((await store.listByStatus('processing')).map((m) => m.id)).toEqual([olds[1]!.id]);
			expect(await store.usageOf('ada')).toEqual({ messages: 2, bytes: 10 });
			// Compare-and-set on the node id taken from the old record.
			expect(await store.update(olds[0]!.id, { nodeId: 'n1' }, { nodeId: 'other' })).toBeUndefined();
			expect((await store.update(olds[0]!.id, { nodeId: 'n1' }, { nodeId: 'old-node' }))!.nodeId).toBe('n1');
			// An older message's created event was sent before the outbox existed: its next one is 2.
			await store.update(olds[1]!.id, { status: 'ready' });
			expect(events.map((e) => [e.event, e.sequence])).toEqual([['voiceMessage.ready', 2]]);
			const inserted = message(4000);
			await store.insert(inserted);
			expect((await store.listFor(room, { limit: 1 })).messages[0]!.id).toBe(inserted.id);
		} finally {
			await store.close();
		}
		// Opening again applies nothing twice.
		const again = await SqlVoiceMessageStore.open(`sqlite:${file}`, { nodeId: 'n1' });
		expect(await again.get(olds[0]!.id)).toMatchObject({ nodeId: 'n1' });
		await again.close();
	});
});

describe('outages', () => {
	it.each(['PostgreSQL', 'MariaDB'] as const)('%s stopped: operations fail fast as unavailable; started again: the same store works', async (kind) => {
		const server = kind === 'PostgreSQL' ? postgres : maria;
		const url = await freshDatabase(kind);
		const store = await SqlVoiceMessageStore.open(url, { nodeId: 'n1', poolSize: 2, connectTimeoutMs: 1000 });
		try {
			const m = message(1000);
			await store.insert(m);
			await server.stop();
			const began = Date.now();
			await expect(store.insert(message(2000))).rejects.toThrow(VoiceStoreUnavailableError);
			await expect(store.get(m.id)).rejects.toMatchObject({ code: 'EVOICESTOREUNAVAILABLE' });
			await expect(store.ping()).rejects.toThrow(VoiceStoreUnavailableError);
			expect(Date.now() - began).toBeLessThan(5000);
			await server.start();
			// Pooled connections the restart broke are replaced: at most a first failure.
			const deadline = Date.now() + 10_000;
			for (;;) {
				try {
					await store.ping();
					break;
				} catch (err) {
					if (Date.now() > deadline) throw err;
					await new Promise((r) => setTimeout(r, 100));
				}
			}
			expect(await store.get(m.id)).toEqual(m);
			await store.update(m.id, { status: 'processing' });
			expect((await store.outboxOf(m.id)).map((r) => r.sequence)).toEqual([1, 2]);
		} finally {
			await server.start();
			await store.close();
		}
	}, 30_000);

	it('refuses a URL it does not know, and a server that is not there at startup is unavailable', async () => {
		await expect(SqlVoiceMessageStore.open('redis://127.0.0.1/1', { nodeId: 'n1' })).rejects.toThrow(TypeError);
		await expect(SqlVoiceMessageStore.open('postgres://postgres@127.0.0.1:1/parley', { nodeId: 'n1', connectTimeoutMs: 1000 })).rejects.toThrow(VoiceStoreUnavailableError);
		await expect(SqlVoiceMessageStore.open('mysql://root@127.0.0.1:1/parley', { nodeId: 'n1', connectTimeoutMs: 1000 })).rejects.toThrow(VoiceStoreUnavailableError);
	});
});
