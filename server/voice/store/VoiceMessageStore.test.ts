// One contract, every store: the SQL store on SQLite, MariaDB and PostgreSQL, and the Redis
// store, each against a real server. All must page, index, compare-and-set and report
// lifecycle events alike.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../../../test/helpers/redis.js';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { startMariaDb, type TestMariaDb } from '../../../testkit/services/mariadb.js';
import { startPostgres, type TestPostgres } from '../../../testkit/services/postgres.js';
import { RedisVoiceMessageStore } from './RedisVoiceMessageStore.js';
import type { VoiceMessageEvent } from '../voiceEvents.js';
import { DuplicateVoiceMessageError, InvalidCursorError, type VoiceMessageStore } from './VoiceMessageStore.js';
import { SqlVoiceMessageStore } from './SqlVoiceMessageStore.js';
import { SqliteVoiceMessageStore } from './SqliteVoiceMessageStore.js';
import type { Destination, VoiceMessage } from '../voiceMessage.js';

let redisServer: TestRedis;
let maria: TestMariaDb;
let postgres: TestPostgres;
const connections: Redis[] = [];
let databases = 0;

beforeAll(async () => {
	[redisServer, maria, postgres] = await Promise.all([startRedis(), startMariaDb(), startPostgres()]);
}, 60_000);
afterAll(async () => {
	for (const c of connections) c.disconnect();
	await Promise.all([redisServer?.stop(), maria?.close(), postgres?.close()]);
});

/** A new, empty database on a server, for one test. */
async function freshDatabase(server: 'mariadb' | 'postgres'): Promise<string> {
	const name = `c${process.pid}_${++databases}`;
	return (server === 'mariadb' ? maria : postgres).createDatabase(name);
}

/** Two stores on one database: two nodes of a cluster. */
async function sqlServerSubject(server: 'mariadb' | 'postgres'): Promise<Subject> {
	const url = await freshDatabase(server);
	const events: VoiceMessageEvent[] = [];
	const store = await SqlVoiceMessageStore.open(url, { nodeId: 'n1', poolSize: 4, onEvent: (e) => events.push(e) });
	return { store, other: await SqlVoiceMessageStore.open(url, { nodeId: 'n2', poolSize: 4 }), events };
}

interface Subject {
	store: VoiceMessageStore;
	/** A second handle on the same data (another node, or another connection to the file). */
	other: VoiceMessageStore;
	events: VoiceMessageEvent[];
}

const kinds: [string, () => Promise<Subject>][] = [
	[
		'SQLite',
		async () => {
			const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-store-')), 'parley.db');
			const events: VoiceMessageEvent[] = [];
			const store = await SqlVoiceMessageStore.open(`sqlite:${file}`, { nodeId: 'n1', onEvent: (e) => events.push(e) });
			// The older class name: the same store behind a plain constructor.
			return { store, other: new SqliteVoiceMessageStore(file, { nodeId: 'n2' }), events };
		},
	],
	['MariaDB', () => sqlServerSubject('mariadb')],
	['PostgreSQL', () => sqlServerSubject('postgres')],
	[
		'Redis',
		async () => {
			const connect = () => {
				const c = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
				connections.push(c);
				return c;
			};
			const first = connect();
			await first.flushall();
			const events: VoiceMessageEvent[] = [];
			return { store: new RedisVoiceMessageStore(first, { nodeId: 'n1', onEvent: (e) => events.push(e) }), other: new RedisVoiceMessageStore(connect(), { nodeId: 'n2' }), events };
		},
	],
];

describe.each(kinds)('%s voice-message store', (_kind, create) => {
	let s: Subject;
	const room: Destination = { kind: 'channel', channel: 'room' };

	function message(createdAt: number, extra: Partial<VoiceMessage> = {}): VoiceMessage {
		return { id: randomUUID(), ownerId: 'ada', destination: room, source: 'recording', status: 'recording', createdAt, updatedAt: createdAt, ...extra };
	}

	beforeEach(async () => {
		s = await create();
	});
	afterEach(async () => {
		await s.store.close();
		await s.other.close();
	});

	it('stores, reads back from another handle, and refuses a duplicate id', async () => {
		const m = message(1000, { waveform: [1, 2, 3], codec: { codec: 'opus', sampleRate: 48000, channels: 1 }, nodeId: 'n1' });
		await s.store.insert(m);
		expect(await s.other.get(m.id)).toEqual(m);
		await expect(s.other.insert(m)).rejects.toThrow(DuplicateVoiceMessageError);
		expect(await s.store.get(randomUUID())).toBeUndefined();
		expect(await s.store.get('not-a-uuid')).toBeUndefined();
	});

	it('merges an update, drops fields set to undefined, and answers undefined for unknown ids', async () => {
		const m = message(1000, { failureReason: 'x' });
		await s.store.insert(m);
		const next = await s.other.update(m.id, { status: 'processing', durationMs: 1500, failureReason: undefined });
		expect(next).toMatchObject({ id: m.id, status: 'processing', durationMs: 1500, createdAt: 1000 });
		expect(next!.updatedAt).toBeGreaterThan(1000);
		const read = await s.store.get(m.id);
		expect(read).toMatchObject({ status: 'processing', durationMs: 1500 });
		expect(read).not.toHaveProperty('failureReason');
		expect(await s.store.update(randomUUID(), { status: 'ready' })).toBeUndefined();
	});

	it('applies a conditional update only while the condition holds: one of two claims wins', async () => {
		const m = message(1000, { nodeId: 'dead' });
		await s.store.insert(m);
		const claims = await Promise.all([s.store.update(m.id, { nodeId: 'n1' }, { nodeId: 'dead' }), s.other.update(m.id, { nodeId: 'n2' }, { nodeId: 'dead' })]);
		expect(claims.filter(Boolean)).toHaveLength(1);
		const winner = claims.find(Boolean)!.nodeId;
		expect((await s.store.get(m.id))!.nodeId).toBe(winner);
		// No node recorded: the condition is "none".
		const legacy = message(1001);
		await s.store.insert(legacy);
		expect(await s.store.update(legacy.id, { nodeId: 'n1' }, { nodeId: 'other' })).toBeUndefined();
		expect((await s.store.update(legacy.id, { nodeId: 'n1' }, { nodeId: undefined }))!.nodeId).toBe('n1');
	});

	it('keeps every field under concurrent updates from two handles', async () => {
		const m = message(1000);
		await s.store.insert(m);
		await Promise.all(
			Array.from({ length: 20 }, (_, i) => (i % 2 ? s.store : s.other).update(m.id, i === 0 ? { durationMs: 7 } : i === 1 ? { sizeBytes: 9 } : { originalName: `n${i}` })),
		);
		expect(await s.store.get(m.id)).toMatchObject({ durationMs: 7, sizeBytes: 9 });
	});

	it('pages a destination newest first, ties in the same millisecond by id, with a stable cursor', async () => {
		const ids: string[] = [];
		// Three share a millisecond: the cursor must split them correctly.
		for (const at of [1000, 2000, 2000, 2000, 3000]) {
			const m = message(at);
			ids.push(m.id);
			await s.store.insert(m);
		}
		await s.store.insert(message(5000, { destination: { kind: 'channel', channel: 'other' } }));
		await s.store.insert(message(5000, { destination: { kind: 'user', userId: 'bob' } }));
		const expected = [
			ids[4]!,
			...[ids[1]!, ids[2]!, ids[3]!].sort().reverse(),
			ids[0]!,
		];
		const seen: string[] = [];
		let before: string | undefined;
		let pages = 0;
		do {
			const page = await s.other.listFor(room, { limit: 2, ...(before && { before }) });
			seen.push(...page.messages.map((m) => m.id));
			before = page.nextCursor;
			pages++;
		} while (before);
		expect(seen).toEqual(expected);
		expect(pages).toBe(3);
		expect((await s.store.listFor(room, { limit: 10 })).nextCursor).toBeUndefined();
		expect((await s.store.listFor({ kind: 'user', userId: 'bob' }, { limit: 10 })).messages).toHaveLength(1);
		await expect(s.store.listFor(room, { limit: 2, before: 'nonsense' })).rejects.toThrow(InvalidCursorError);
	});

	it('indexes by status as the status changes, and forgets a deleted message everywhere', async () => {
		const a = message(1000);
		const b = message(2000);
		await s.store.insert(a);
		await s.store.insert(b);
		await s.store.update(a.id, { status: 'processing' });
		expect((await s.other.listByStatus('recording')).map((m) => m.id)).toEqual([b.id]);
		expect((await s.other.listByStatus('processing')).map((m) => m.id)).toEqual([a.id]);
		expect(await s.other.delete(a.id)).toBe(true);
		expect(await s.other.delete(a.id)).toBe(false);
		expect(await s.store.get(a.id)).toBeUndefined();
		expect(await s.store.listByStatus('processing')).toEqual([]);
		expect((await s.store.listFor(room, { limit: 10 })).messages.map((m) => m.id)).toEqual([b.id]);
	});

	it('reports each lifecycle change once: created, every status change, deleted', async () => {
		const m = message(1000);
		await s.store.insert(m);
		await s.store.update(m.id, { status: 'processing' });
		await s.store.update(m.id, { durationMs: 5 }); // not a lifecycle change
		await s.store.update(m.id, { status: 'ready', sha256: 'ab' });
		await s.store.delete(m.id);
		expect(s.events.map((e) => [e.event, e.status])).toEqual([
			['voiceMessage.created', 'recording'],
			['voiceMessage.processing', 'processing'],
			['voiceMessage.ready', 'ready'],
			['voiceMessage.deleted', 'ready'],
		]);
		expect(s.events[2]).toMatchObject({ voiceMessageId: m.id, ownerId: 'ada', destination: 'channel:room', nodeId: 'n1', message: { id: m.id, status: 'ready', audioUrl: `/voice/messages/${m.id}/audio` } });
		expect(new Set(s.events.map((e) => e.eventId)).size).toBe(4);
		// Numbered per message, with no gaps: the update that kept the status took no number.
		expect(s.events.map((e) => e.sequence)).toEqual([1, 2, 3, 4]);
		// Internal fields never reach events.
		expect(s.events[2]!.message).not.toHaveProperty('sha256');
	});
});
