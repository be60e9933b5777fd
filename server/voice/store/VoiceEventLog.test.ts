// The event log status subscriptions read, on every store against its real server (SQLite,
// MariaDB, PostgreSQL: the outbox; Redis: the stream), and owner pages. Plus the feed
// (VoiceStatusFeed) over it: live events from this node and from another, resuming, ending.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../../../test/helpers/redis.js';
import { startMariaDb, type TestMariaDb } from '../../../testkit/services/mariadb.js';
import { startPostgres, type TestPostgres } from '../../../testkit/services/postgres.js';
import { lifecycleEvent, type VoiceMessageEvent } from '../voiceEvents.js';
import { connectSql } from './sql/connect.js';
import type { Destination, VoiceMessage } from '../voiceMessage.js';
import { VoiceStatusFeed } from '../VoiceStatusFeed.js';
import { RedisVoiceMessageStore } from './RedisVoiceMessageStore.js';
import { lockEventLog, SqlVoiceMessageStore } from './SqlVoiceMessageStore.js';
import { EventLogOutOfRangeError, InvalidEventPositionError, type LoggedVoiceEvent, type VoiceEventLog } from './VoiceEventLog.js';
import { VoiceEventStream } from './VoiceEventStream.js';
import type { VoiceMessageStore } from './VoiceMessageStore.js';

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

async function freshDatabase(server: 'mariadb' | 'postgres'): Promise<string> {
	const name = `l${process.pid}_${++databases}`;
	return (server === 'mariadb' ? maria : postgres).createDatabase(name);
}

interface Subject {
	/** Node n1; `events` gets its onEvent calls. */
	store: VoiceMessageStore;
	/** Node n2 on the same data. */
	other: VoiceMessageStore;
	log: VoiceEventLog;
	/** Makes every event up to now eligible for pruning / trimming and prunes it. */
	forget(): Promise<void>;
	close(): Promise<void>;
	events: VoiceMessageEvent[];
	/** The SQL stores' URL (another connection's transactions). */
	url?: string;
}

async function sqlSubject(url: string): Promise<Subject> {
	const events: VoiceMessageEvent[] = [];
	const store = await SqlVoiceMessageStore.open(url, { nodeId: 'n1', poolSize: 4, onEvent: (e) => events.push(e) });
	const other = await SqlVoiceMessageStore.open(url, { nodeId: 'n2', poolSize: 4 });
	return {
		store,
		other,
		log: store,
		events,
		url,
		async forget() {
			// A message's next entry is offered once its previous one is done: claim until none is left.
			for (const target of ['stream', 'webhook'] as const) {
				for (;;) {
					const claimed = await store.claim(target, 'n1', 10_000, 60_000);
					if (claimed.length === 0) break;
					await store.markDone(target, claimed.map((c) => c.position));
				}
			}
			await store.prune(Date.now() + 1);
		},
		close: async () => {
			await store.close();
			await other.close();
		},
	};
}

const kinds: [string, () => Promise<Subject>][] = [
	['SQLite', () => sqlSubject(`sqlite:${path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-log-')), 'parley.db')}`)],
	['MariaDB', async () => sqlSubject(await freshDatabase('mariadb'))],
	['PostgreSQL', async () => sqlSubject(await freshDatabase('postgres'))],
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
			const stream = new VoiceEventStream(first, { maxLen: 100_000 });
			const events: VoiceMessageEvent[] = [];
			return {
				store: new RedisVoiceMessageStore(first, { nodeId: 'n1', events: stream, onEvent: (e) => events.push(e) }),
				other: new RedisVoiceMessageStore(connect(), { nodeId: 'n2', events: new VoiceEventStream(connect(), { maxLen: 100_000 }) }),
				log: stream,
				events,
				async forget() {
					await first.xtrim(stream.key, 'MAXLEN', 0);
				},
				close: async () => {},
			};
		},
	],
];

const room: Destination = { kind: 'channel', channel: 'room' };
const hall: Destination = { kind: 'channel', channel: 'hall' };

function message(createdAt: number, extra: Partial<VoiceMessage> = {}): VoiceMessage {
	return { id: randomUUID(), ownerId: 'ada', destination: room, source: 'upload', status: 'processing', createdAt, updatedAt: createdAt, ...extra };
}

/** Everything matching after `after`, read in batches of `scan` until the log ends. */
async function readAll(log: VoiceEventLog, after: string, filter = {}, scan = 3): Promise<LoggedVoiceEvent[]> {
	const all: LoggedVoiceEvent[] = [];
	let cursor = after;
	for (;;) {
		const batch = await log.readEvents(cursor, filter, scan);
		all.push(...batch.events);
		if (batch.readThrough === cursor) return all;
		cursor = batch.readThrough;
	}
}

describe.each(kinds)('%s event log', (_kind, create) => {
	let s: Subject;
	beforeEach(async () => {
		s = await create();
	});
	afterEach(async () => {
		await s.close();
	});

	it('pages one owner\'s messages newest first across destinations, with the list cursor', async () => {
		const mine = [message(1000), message(1000, { destination: hall }), message(1001, { destination: { kind: 'user', userId: 'bob' } }), message(1002)];
		for (const m of mine) await s.store.insert(m);
		await s.store.insert(message(1003, { ownerId: 'bob' }));
		const expected = [...mine].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1)).map((m) => m.id);
		const first = await s.other.listByOwner('ada', { limit: 3 });
		expect(first.messages.map((m) => m.id)).toEqual(expected.slice(0, 3));
		expect(first.nextCursor).toBeDefined();
		const second = await s.other.listByOwner('ada', { limit: 3, before: first.nextCursor! });
		expect(second.messages.map((m) => m.id)).toEqual(expected.slice(3));
		expect(second.nextCursor).toBeUndefined();
		expect((await s.store.listByOwner('nobody', { limit: 10 })).messages).toEqual([]);
	});

	it('reads every event in commit order, filtered, and resumes after the last one delivered with nothing missed or repeated', async () => {
		const start = await s.log.headPosition();
		const a = message(1000);
		const b = message(1001, { ownerId: 'bob', destination: hall });
		await s.store.insert(a);
		await s.other.insert(b);
		await s.other.update(a.id, { status: 'ready' });
		await s.store.update(b.id, { status: 'failed', failureReason: 'x' });
		await s.store.delete(a.id);

		const all = await readAll(s.log, start);
		expect(all.map((e) => [e.event.voiceMessageId, e.event.event])).toEqual([
			[a.id, 'voiceMessage.created'],
			[b.id, 'voiceMessage.created'],
			[a.id, 'voiceMessage.ready'],
			[b.id, 'voiceMessage.failed'],
			[a.id, 'voiceMessage.deleted'],
		]);
		// Positions are unique and increasing, and the same on a second read.
		expect(new Set(all.map((e) => e.position)).size).toBe(5);
		expect((await readAll(s.log, start, {}, 100)).map((e) => e.position)).toEqual(all.map((e) => e.position));

		// Resuming after each delivered event gives exactly the rest.
		for (let i = 0; i < all.length; i++) {
			expect((await readAll(s.log, all[i]!.position)).map((e) => e.position)).toEqual(all.slice(i + 1).map((e) => e.position));
		}

		expect((await readAll(s.log, start, { ownerId: 'bob' })).map((e) => e.event.event)).toEqual(['voiceMessage.created', 'voiceMessage.failed']);
		expect((await readAll(s.log, start, { destination: 'channel:room' })).every((e) => e.event.voiceMessageId === a.id)).toBe(true);
		expect((await readAll(s.log, start, { voiceMessageId: a.id, statuses: ['ready'] })).map((e) => e.event.event)).toEqual(['voiceMessage.ready', 'voiceMessage.deleted']);
		expect((await readAll(s.log, start, { events: ['voiceMessage.deleted'] })).map((e) => e.event.voiceMessageId)).toEqual([a.id]);

		// A filter that matches nothing still moves the cursor to the end of what it looked at.
		const batch = await s.log.readEvents(start, { ownerId: 'nobody' }, 100);
		expect(batch.events).toEqual([]);
		expect(batch.readThrough).toBe(all.at(-1)!.position);
		expect(await s.log.headPosition()).toBe(all.at(-1)!.position);
	});

	it('refuses a malformed position and one ahead of the log', async () => {
		await s.store.insert(message(1000));
		await expect(s.log.readEvents('not-an-id', {}, 10)).rejects.toThrow(InvalidEventPositionError);
		const ahead = s.log instanceof VoiceEventStream ? `${Date.now() + 86_400_000}-0` : '999999999';
		await expect(s.log.readEvents(ahead, {}, 10)).rejects.toThrow(InvalidEventPositionError);
	});

	it('answers out of range for a position older than what is kept, and resumes from the oldest kept', async () => {
		const start = await s.log.headPosition();
		const old = message(1000);
		await s.store.insert(old);
		await s.store.update(old.id, { status: 'ready' });
		await s.forget();
		const fresh = message(1001);
		await s.store.insert(fresh);
		const err = await s.log.readEvents(start, {}, 10).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(EventLogOutOfRangeError);
		const oldest = (err as EventLogOutOfRangeError).oldestPosition;
		expect((await readAll(s.log, oldest)).map((e) => e.event.voiceMessageId)).toEqual([fresh.id]);
	});

	it('never lets a reader past an event that commits later: concurrent writers on two nodes, a reader polling meanwhile', async () => {
		const start = await s.log.headPosition();
		const ids = Array.from({ length: 12 }, (_, i) => message(1000 + i));
		let writing = true;
		const seen: LoggedVoiceEvent[] = [];
		const reader = (async () => {
			let cursor = start;
			while (writing || cursor !== (await s.log.headPosition())) {
				const batch = await s.log.readEvents(cursor, {}, 7);
				seen.push(...batch.events);
				cursor = batch.readThrough;
				// SQLite answers synchronously underneath: let the writers' timers run.
				await new Promise((r) => setImmediate(r));
			}
		})();
		await Promise.all(
			ids.map(async (m, i) => {
				const node = i % 2 ? s.store : s.other;
				await node.insert(m);
				await node.update(m.id, { status: 'ready' });
				await (i % 2 ? s.other : s.store).delete(m.id);
			}),
		);
		writing = false;
		await reader;
		const all = await readAll(s.log, start, {}, 1000);
		expect(all).toHaveLength(36);
		expect(seen.map((e) => e.position)).toEqual(all.map((e) => e.position));
	}, 60_000);

	it('holds back a later event while an earlier position is still uncommitted (SQL: the log row lock)', async (ctx) => {
		if (!s.url) return ctx.skip();
		const start = await s.log.headPosition();
		const { db } = connectSql(s.url, { poolSize: 2 });
		let release!: () => void;
		const gate = new Promise<void>((r) => (release = r));
		let taken!: () => void;
		const positionTaken = new Promise<void>((r) => (taken = r));
		const early = message(1000);
		const earlyEvent = lifecycleEvent(undefined, early, 'raw')!;
		// Another writer takes its position first and commits late.
		const slow = db.transaction().execute(async (trx) => {
			await lockEventLog(trx);
			await trx
				.insertInto('voice_outbox')
				.values({ event_id: earlyEvent.eventId, voice_message_id: early.id, sequence: 1, event: JSON.stringify(earlyEvent), created_at: earlyEvent.at })
				.execute();
			taken();
			await gate;
		});
		await positionTaken;
		const late = message(1001);
		const inserting = s.store.insert(late);
		await new Promise((r) => setTimeout(r, 500));
		// Had the later event committed first, a reader here would pass the earlier position for good.
		expect((await s.log.readEvents(start, {}, 10)).events).toEqual([]);
		release();
		await slow;
		await inserting;
		expect((await readAll(s.log, start)).map((e) => e.event.voiceMessageId)).toEqual([early.id, late.id]);
		await db.destroy();
	}, 30_000);

	it('feeds a subscriber this node\'s and the other node\'s events live, in order, and ends it on abort', async () => {
		const feed = new VoiceStatusFeed({ log: s.log, pollMs: 50 });
		const abort = new AbortController();
		const got: LoggedVoiceEvent[] = [];
		const subscription = (async () => {
			for await (const e of feed.subscribe({ filter: { destination: 'channel:room' }, signal: abort.signal })) {
				got.push(e);
				if (got.length === 3) abort.abort();
			}
		})();
		await until(() => feed.subscribers === 1);
		await new Promise((r) => setTimeout(r, 100)); // the subscription has read its start position
		const m = message(1000);
		await s.store.insert(m);
		feed.notify(); // what the server does on its store's onEvent
		await s.other.insert(message(1001, { destination: hall })); // not matching
		await s.other.update(m.id, { status: 'ready' }); // another node: seen when the head moves
		await s.store.delete(m.id);
		await subscription;
		expect(got.map((e) => e.event.event)).toEqual(['voiceMessage.created', 'voiceMessage.ready', 'voiceMessage.deleted']);
		expect(feed.subscribers).toBe(0);
		feed.close();
	}, 30_000);
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!condition()) {
		if (Date.now() > deadline) throw new Error('timed out');
		await new Promise((r) => setTimeout(r, 10));
	}
}
