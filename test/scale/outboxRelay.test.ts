// The outbox relay with the real SQL store on SQLite, PostgreSQL and MariaDB, a real Redis
// and a real webhook receiver (node:http, signatures verified): every committed change
// arrives once on the stream and once on the webhook (after deduplicating on eventId),
// sequence 1..n per message, in order, while the receiver answers 500 twice per event and
// while Redis is stopped and started again.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRelay } from '../../server/voice/outbox/OutboxRelay.js';
import { StreamSink, WebhookSink } from '../../server/voice/outbox/outboxSinks.js';
import { SqlVoiceMessageStore } from '../../server/voice/store/SqlVoiceMessageStore.js';
import { VoiceEventStream } from '../../server/voice/store/VoiceEventStream.js';
import type { VoiceMessageEvent } from '../../server/voice/voiceEvents.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { RetrySchedule, verifyWebhookSignature } from '../../server/voice/VoiceWebhooks.js';
import { startMariaDb, type TestMariaDb } from '../../testkit/services/mariadb.js';
import { startPostgres, type TestPostgres } from '../../testkit/services/postgres.js';
import { testLogger } from '../helpers/logger.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { sleep, waitUntil } from '../helpers/wait.js';

const SECRET = 'outbox-integration-secret-0123';

/** A webhook receiver that answers 500 to the first two requests of every event, then 200;
 * `accepted` are the events it answered 200 to, in arrival order. */
export async function flakyReceiver(failuresPerEvent = 2) {
	const accepted: VoiceMessageEvent[] = [];
	const tries = new Map<string, number>();
	let badSignatures = 0;
	let requests = 0;
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on('data', (c: Buffer) => chunks.push(c));
		req.on('end', () => {
			requests++;
			const body = Buffer.concat(chunks).toString('utf8');
			if (!verifyWebhookSignature(body, String(req.headers['x-parley-signature'] ?? ''), SECRET)) {
				badSignatures++;
				res.writeHead(400).end();
				return;
			}
			const event = JSON.parse(body) as VoiceMessageEvent;
			const n = (tries.get(event.eventId) ?? 0) + 1;
			tries.set(event.eventId, n);
			if (n <= failuresPerEvent) {
				res.writeHead(500).end();
				return;
			}
			accepted.push(event);
			res.writeHead(200).end();
		});
	});
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	return {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
		accepted,
		get requests() {
			return requests;
		},
		get badSignatures() {
			return badSignatures;
		},
		close: async () => {
			server.closeAllConnections();
			server.close();
			await once(server, 'close');
		},
	};
}

/** Keeps the first of each eventId: what a consumer does. */
function dedupe(events: VoiceMessageEvent[]): VoiceMessageEvent[] {
	const seen = new Set<string>();
	return events.filter((e) => !seen.has(e.eventId) && (seen.add(e.eventId), true));
}

/** Per message, the sequences in arrival order. */
function sequencesByMessage(events: VoiceMessageEvent[]): Map<string, number[]> {
	const out = new Map<string, number[]>();
	for (const e of events) out.set(e.voiceMessageId, [...(out.get(e.voiceMessageId) ?? []), e.sequence]);
	return out;
}

function message(id: string, status: VoiceMessage['status'] = 'processing'): VoiceMessage {
	const now = Date.now();
	return { id, ownerId: 'ada', destination: { kind: 'channel', channel: 'lobby' }, source: 'upload', status, createdAt: now, updatedAt: now };
}

let redisServer: TestRedis;
let postgres: TestPostgres;
let mariadb: TestMariaDb;
let tmp: string;

beforeAll(async () => {
	tmp = mkdtempSync(path.join(os.tmpdir(), 'parley-outbox-'));
	redisServer = await startRedis();
	postgres = await startPostgres();
	mariadb = await startMariaDb();
	console.log(`postgres started in ${postgres.startMs} ms, mariadb in ${mariadb.startMs} ms`);
}, 60_000);

afterAll(async () => {
	await redisServer?.stop();
	await postgres?.close();
	await mariadb?.close();
	rmSync(tmp, { recursive: true, force: true });
});

const databases: [string, () => string][] = [
	['sqlite', () => `sqlite:${path.join(tmp, 'metadata.db')}`],
	['postgres', () => postgres.url],
	['mariadb', () => mariadb.url],
];

describe.each(databases)('outbox relay on %s', (dialect, urlOf) => {
	it('publishes every change once on the stream and the webhook, in order, through 500s and a Redis restart', async () => {
		const started = performance.now();
		const key = `parley:voice-meta:${dialect}:${randomUUID()}`;
		const receiver = await flakyReceiver(2);
		const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1, connectTimeout: 500, retryStrategy: () => 100 });
		redis.on('error', () => undefined);
		const committed: VoiceMessageEvent[] = [];
		let relay: OutboxRelay | undefined;
		const store = await SqlVoiceMessageStore.open(urlOf(), {
			nodeId: 'node-a',
			onEvent: (e) => {
				committed.push(e);
				relay?.wake();
			},
		});
		const log = testLogger();
		relay = new OutboxRelay({
			outbox: store,
			nodeId: 'node-a',
			pollMs: 50,
			leaseMs: 3000,
			log,
			sinks: {
				stream: new StreamSink({ redis, key, maxLen: 10_000, timeoutMs: 500, log }),
				webhook: new WebhookSink({ endpoint: { url: receiver.url, secret: SECRET, timeoutMs: 1000 }, maxAttempts: 6, schedule: new RetrySchedule({ baseDelayMs: 40, maxDelayMs: 200 }), log }),
			},
		});
		relay.start();
		const reader = new VoiceEventStream(redis, { key, maxLen: 10_000 });
		const streamed: VoiceMessageEvent[] = [];
		let malformed = 0;
		const readAll = async () => {
			for (;;) {
				const batch = await reader.read('checker', 'c1', { count: 500 });
				if (batch.length === 0) return;
				for (const entry of batch) {
					if ('event' in entry) streamed.push(entry.event);
					else malformed++;
				}
				await reader.ack('checker', ...batch.map((b) => b.streamId));
			}
		};
		try {
			await reader.createGroup('checker', '0');
			const ids = Array.from({ length: 6 }, () => randomUUID());
			// Phase 1: created, then processing -> ready (an update keeping the status has no event).
			await Promise.all(ids.map((id) => store.insert(message(id))));
			await Promise.all(ids.map((id) => store.update(id, { status: 'ready', sizeBytes: 10 })));
			await Promise.all(ids.map((id) => store.update(id, { durationMs: 1000 })));
			await waitUntil(async () => (await store.pending('stream')) === 0, 10_000, 'the stream to catch up');
			await readAll();

			// Phase 2 with Redis away: the stream entries wait in the table, the webhook goes on.
			await redisServer.stop();
			await Promise.all(ids.slice(0, 3).map((id) => store.delete(id)));
			await Promise.all(ids.slice(3).map((id) => store.update(id, { status: 'failed', failureReason: 'test' })));
			await sleep(600);
			expect(await store.pending('stream')).toBe(6);
			redisServer = await startRedis({ port: redisServer.port });
			// A fresh Redis (no persistence in tests): the group again, from the start.
			await waitUntil(() => redis.status === 'ready', 10_000, 'ioredis to reconnect');
			await reader.createGroup('checker', '0');
			await waitUntil(async () => (await store.pending('stream')) === 0 && (await store.pending('webhook')) === 0, 15_000, 'the outbox to drain');
			await readAll();

			expect(committed).toHaveLength(18);
			expect(malformed).toBe(0);
			expect(receiver.badSignatures).toBe(0);
			// Every event twice refused, then accepted: three requests each.
			expect(receiver.requests).toBe(54);
			const want = new Set(committed.map((e) => e.eventId));
			for (const [name, got] of [
				['stream', streamed],
				['webhook', receiver.accepted],
			] as const) {
				// No loss, and (no crash here) no duplicate either.
				expect(new Set(got.map((e) => e.eventId)), name).toEqual(want);
				expect(dedupe(got), name).toHaveLength(got.length);
				for (const id of ids) expect(sequencesByMessage(got).get(id), `${name} ${id}`).toEqual([1, 2, 3]);
				// The bodies are the committed events, as committed.
				for (const e of got) expect(e).toEqual(committed.find((c) => c.eventId === e.eventId));
			}
			expect(streamed.filter((e) => e.event === 'voiceMessage.deleted')).toHaveLength(3);
			console.log(`${dialect}: 18 events, 54 webhook requests, Redis restarted, in ${(performance.now() - started).toFixed(0)} ms`);
		} finally {
			await relay.close(AbortSignal.timeout(2000));
			await store.close();
			redis.disconnect();
			await receiver.close();
		}
	});
});
