// npm run metadata:import against real servers: Redis -> PostgreSQL and SQLite -> MariaDB,
// each run twice: the second run finds everything there, the records and pages read through
// the SQL store equal the source's, no lifecycle event is written, a newer source copy
// replaces the target's and a newer target copy stays, and a bad record fails the run.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importMetadata, type ImportCounts } from '../../scripts/import-metadata.js';
import { RedisVoiceMessageStore } from '../../server/voice/store/RedisVoiceMessageStore.js';
import { SqlVoiceMessageStore } from '../../server/voice/store/SqlVoiceMessageStore.js';
import type { VoiceMessageStore } from '../../server/voice/store/VoiceMessageStore.js';
import type { Destination, VoiceMessage } from '../../server/voice/voiceMessage.js';
import { startMariaDb, type TestMariaDb } from '../../testkit/services/mariadb.js';
import { startPostgres, type TestPostgres } from '../../testkit/services/postgres.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const run = promisify(execFile);
const COUNT = 130; // three batches of 50 and a part
const destinations: Destination[] = [
	{ kind: 'channel', channel: 'lobby' },
	{ kind: 'channel', channel: 'Lobby' }, // differs only in case: MariaDB must keep them apart
	{ kind: 'user', userId: 'bob' },
];

function messages(): VoiceMessage[] {
	const base = Date.now() - 3_600_000;
	return Array.from({ length: COUNT }, (_, i): VoiceMessage => {
		const status = (['ready', 'ready', 'failed', 'processing', 'recording'] as const)[i % 5]!;
		// Every seventh shares its createdAt with the one before: pages must order ties by id.
		const createdAt = base + (i % 7 === 0 && i > 0 ? i - 1 : i) * 1000;
		return {
			id: randomUUID(),
			ownerId: i % 2 ? 'alice' : 'carol',
			destination: destinations[i % destinations.length]!,
			source: status === 'recording' ? 'recording' : 'upload',
			status,
			...(status === 'failed' && { failureReason: 'The file is not audio Parley can read (unknown format).' }),
			...(status === 'ready' && { durationMs: 1000 + i, sizeBytes: 4000 + i, sha256: 'ab'.repeat(32), waveform: Array.from({ length: 100 }, (_, k) => (k + i) % 32) }),
			...(status === 'ready' && { codec: { codec: 'opus', sampleRate: 48000, channels: 1, bitrateBps: 24000 } }),
			...(status === 'recording' && { nodeId: 'node-a', recording: { packetsReceived: 10, packetsWritten: 10, gaps: 0, packetsMissing: 0, duplicates: 0, late: 0 } }),
			originalName: `voice ${i} — ünïcode.ogg`,
			createdAt,
			updatedAt: createdAt + 500,
		};
	});
}

async function allPages(store: VoiceMessageStore, destination: Destination): Promise<string[]> {
	const ids: string[] = [];
	let before: string | undefined;
	do {
		const page = await store.listFor(destination, { limit: 7, ...(before && { before }) });
		ids.push(...page.messages.map((m) => m.id));
		before = page.nextCursor;
	} while (before);
	return ids;
}

/** The target holds exactly the source's records, pages alike, and no outbox rows. */
async function expectSame(source: VoiceMessageStore, target: SqlVoiceMessageStore, sent: VoiceMessage[]): Promise<void> {
	for (const m of sent) {
		expect(await target.get(m.id)).toEqual(await source.get(m.id));
		expect(await target.outboxOf(m.id)).toEqual([]);
	}
	for (const d of destinations) {
		const ids = await allPages(target, d);
		expect(ids).toEqual(await allPages(source, d));
		expect(ids.length).toBeGreaterThan(40);
	}
	for (const status of ['recording', 'processing', 'ready', 'failed'] as const) {
		expect((await target.listByStatus(status)).map((m) => m.id).sort()).toEqual((await source.listByStatus(status)).map((m) => m.id).sort());
	}
	expect(await target.usageOf('alice')).toEqual(await source.usageOf('alice'));
}

function counts(c: Partial<ImportCounts>): ImportCounts {
	return { read: 0, inserted: 0, updated: 0, alreadyThere: 0, failed: 0, ...c };
}

describe('metadata:import from Redis into PostgreSQL', () => {
	let redisServer: TestRedis;
	let postgres: TestPostgres;
	let redis: Redis;
	let source: RedisVoiceMessageStore;
	let target: SqlVoiceMessageStore;
	const sent = messages();

	beforeAll(async () => {
		[redisServer, postgres] = await Promise.all([startRedis(), startPostgres()]);
		redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
		source = new RedisVoiceMessageStore(redis, { nodeId: 'node-a' });
		for (const m of sent) await source.insert(m);
	});
	afterAll(async () => {
		await target?.close();
		redis?.disconnect();
		await Promise.all([redisServer?.stop(), postgres?.close()]);
	});

	it('imports every message once, and a second run finds them all there', async () => {
		const first = await importMetadata({ from: redisServer.url, to: postgres.url, batchSize: 50 });
		expect(first).toEqual(counts({ read: COUNT, inserted: COUNT }));
		target = await SqlVoiceMessageStore.open(postgres.url, { nodeId: 'node-b' });
		await expectSame(source, target, sent);

		const second = await importMetadata({ from: redisServer.url, to: postgres.url, batchSize: 50 });
		expect(second).toEqual(counts({ read: COUNT, alreadyThere: COUNT }));
		await expectSame(source, target, sent);
	});

	it('takes a newer source copy, keeps a newer target copy, and the next event continues the source\'s sequence', async () => {
		const [changedInSource, changedInTarget] = sent.filter((m) => m.status === 'processing');
		await source.update(changedInSource!.id, { status: 'ready', durationMs: 1234 });
		// Make sure the target's change is the later one.
		await new Promise((r) => setTimeout(r, 5));
		await target.update(changedInTarget!.id, { status: 'failed', failureReason: 'converted on the new store' });
		await source.update(changedInTarget!.id, { durationMs: 1 }).then(() => target.update(changedInTarget!.id, { failureReason: 'newest' }));

		const third = await importMetadata({ from: redisServer.url, to: postgres.url, batchSize: 50 });
		expect(third).toEqual(counts({ read: COUNT, updated: 1, alreadyThere: COUNT - 1 }));
		expect(await target.get(changedInSource!.id)).toEqual(await source.get(changedInSource!.id));
		expect((await target.get(changedInTarget!.id))?.failureReason).toBe('newest');
		// The import wrote no event; the target's own change did, numbered after "created".
		expect((await target.outboxOf(changedInSource!.id)).length).toBe(0);
		expect((await target.outboxOf(changedInTarget!.id)).map((e) => [e.sequence, e.event.event])).toEqual([[2, 'voiceMessage.failed']]);
		// The source had counted two events for it (created, ready): the next one is the third.
		await target.update(changedInSource!.id, { status: 'failed', failureReason: 'removed by the audit' });
		expect((await target.outboxOf(changedInSource!.id)).map((e) => [e.sequence, e.event.event])).toEqual([[3, 'voiceMessage.failed']]);
	});

	it('--emit-created writes one created event per inserted message, numbered after the source\'s, once', async () => {
		const admin = new pg.Client(postgres.url);
		await admin.connect();
		await admin.query('CREATE DATABASE emitted');
		await admin.end();
		const url = postgres.url.replace(/\/parley$/, '/emitted');
		expect(await importMetadata({ from: redisServer.url, to: url, emitCreated: true })).toEqual(counts({ read: COUNT, inserted: COUNT }));
		expect(await importMetadata({ from: redisServer.url, to: url, emitCreated: true })).toEqual(counts({ read: COUNT, alreadyThere: COUNT }));
		const emitted = await SqlVoiceMessageStore.open(url, { nodeId: 'node-c' });
		try {
			const changed = sent.find((m) => m.status === 'processing')!;
			const events = await emitted.outboxOf(changed.id);
			expect(events.map((e) => [e.sequence, e.event.event, e.event.status])).toEqual([[3, 'voiceMessage.created', 'ready']]);
			for (const m of sent.slice(0, 20)) expect(await emitted.outboxOf(m.id)).toHaveLength(1);
			expect(await emitted.pending('stream')).toBe(COUNT);
		} finally {
			await emitted.close();
		}
	});
});

describe('metadata:import from SQLite into MariaDB (the npm script)', () => {
	let mariadb: TestMariaDb;
	let dir: string;
	let file: string;
	let source: SqlVoiceMessageStore;
	let target: SqlVoiceMessageStore;
	const sent = messages();

	/** The script as users run it (`npm run -s metadata:import -- ...`), or without npm's own
	 * start-up when `viaNpm` is false. */
	const cli = async (viaNpm: boolean, ...args: string[]) => {
		try {
			const [command, prefix] = viaNpm ? ['npm', ['run', '-s', 'metadata:import', '--']] : [process.execPath, ['--import', 'tsx', 'scripts/import-metadata.ts']];
			const { stdout, stderr } = await run(command, [...prefix, ...args], { timeout: 60_000 });
			return { code: 0, stdout, stderr };
		} catch (err) {
			const e = err as { code: number; stdout: string; stderr: string };
			return { code: e.code, stdout: e.stdout, stderr: e.stderr };
		}
	};

	beforeAll(async () => {
		dir = mkdtempSync(path.join(os.tmpdir(), 'parley-import-'));
		file = path.join(dir, 'parley.db');
		[mariadb, source] = await Promise.all([startMariaDb(), SqlVoiceMessageStore.open(`sqlite:${file}`, { nodeId: 'node-a' })]);
		for (const m of sent) await source.insert(m);
	});
	afterAll(async () => {
		await Promise.all([target?.close(), source?.close()]);
		await mariadb?.close();
		rmSync(dir, { recursive: true, force: true });
	});

	it('imports every message once, prints the counts, and a second run finds them all there', async () => {
		const first = await cli(true, '--from', `sqlite:${file}`, '--to', mariadb.url, '--batch', '50');
		expect(first.stderr).toBe('');
		expect(first.code).toBe(0);
		expect(first.stdout).toMatch(new RegExp(`read ${COUNT}, inserted ${COUNT}, updated 0, already there 0, failed 0`));
		target = await SqlVoiceMessageStore.open(mariadb.url, { nodeId: 'node-b' });
		await expectSame(source, target, sent);

		const second = await importMetadata({ from: `sqlite:${file}`, to: mariadb.url, batchSize: 50 });
		expect(second).toEqual(counts({ read: COUNT, alreadyThere: COUNT }));
		await expectSame(source, target, sent);
	});

	it('names a record it cannot read, imports the rest and exits 1', async () => {
		const broken = randomUUID();
		const late = { ...sent[0]!, id: randomUUID(), createdAt: Date.now(), updatedAt: Date.now() };
		await source.insert(late);
		const db = new Database(file);
		db.prepare('UPDATE voice_messages SET record = ? WHERE id = ?').run('{"id": "not json', sent[1]!.id);
		db.prepare(
			"INSERT INTO voice_messages (id, owner_id, destination, status, created_at, updated_at, event_sequence, revision, record) VALUES (?, 'x', 'user:x', 'ready', 1, 1, 1, 1, ?)",
		).run(broken, JSON.stringify({ id: broken, ownerId: '.dot', destination: { kind: 'user', userId: 'x' }, status: 'ready', source: 'upload', createdAt: 1, updatedAt: 1 }));
		db.close();

		const result = await cli(false, '--from', `sqlite:${file}`, '--to', mariadb.url);
		expect(result.code).toBe(1);
		expect(result.stdout).toMatch(new RegExp(`read ${COUNT + 2}, inserted 1, updated 0, already there ${COUNT - 1}, failed 2`));
		expect(result.stderr).toContain(`failed ${broken}: record does not parse`);
		expect(result.stderr).toContain(`failed ${sent[1]!.id}: record is not JSON`);
		expect(await target.get(late.id)).toEqual(late);
		expect(await target.get(broken)).toBeUndefined();
	});

	it('stops when the target cannot be reached, naming it, and leaves the source as it was', async () => {
		await mariadb.stop();
		try {
			await expect(importMetadata({ from: `sqlite:${file}`, to: mariadb.url })).rejects.toThrow(/cannot prepare the target: .*ECONNREFUSED|cannot prepare the target/);
		} finally {
			await mariadb.start();
		}
		await expect(importMetadata({ from: `sqlite:${dir}/missing.db`, to: mariadb.url })).rejects.toThrow(/cannot open the source sqlite:.*missing\.db/);
		// Read-only: the source file was not migrated or written by any run.
		expect((await source.get(sent[2]!.id))?.id).toBe(sent[2]!.id);
	});
});
