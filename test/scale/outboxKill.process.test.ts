// SIGKILL between the commit and the publish loses no event: a child process commits changes
// to the SQL store on a real PostgreSQL while its relay's targets never answer (so its events
// are claimed, leased to it and in flight), and is SIGKILLed right after the commits are
// acknowledged. A second node (a relay in this process, another nodeId, a real Redis and a
// real signature-checking receiver) then publishes every one of them, the dead node's leased
// ones only once their lease ran out, each once, sequence 1..n per message, in order.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOutboxRelay } from '../../server/voice/outbox/createOutboxRelay.js';
import { SqlVoiceMessageStore } from '../../server/voice/store/SqlVoiceMessageStore.js';
import { VOICE_EVENT_STREAM_KEY, VoiceEventStream } from '../../server/voice/store/VoiceEventStream.js';
import type { VoiceMessageEvent } from '../../server/voice/voiceEvents.js';
import { verifyWebhookSignature } from '../../server/voice/VoiceWebhooks.js';
import { startPostgres, type TestPostgres } from '../../testkit/services/postgres.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { processAlive } from '../helpers/process.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';

const SECRET = 'outbox-kill-test-secret-0123456';
const LEASE_MS = 2000;
const MESSAGES = 6;

let postgres: TestPostgres;
let redisServer: TestRedis;
const closers: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
	postgres = await startPostgres();
	redisServer = await startRedis();
}, 60_000);

afterAll(async () => {
	for (const c of closers.reverse()) await c();
	await redisServer?.stop();
	await postgres?.close();
});

/** Accepts requests and never answers them. */
async function hangingReceiver() {
	let open = 0;
	const server = http.createServer((req) => {
		open++;
		req.resume();
	});
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	closers.push(async () => {
		server.closeAllConnections();
		server.close();
	});
	return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, opened: () => open };
}

/** A TCP port that takes connections and says nothing: a Redis that never answers. */
async function silentRedis() {
	const sockets: net.Socket[] = [];
	const server = net.createServer((s) => sockets.push(s));
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	closers.push(() => {
		for (const s of sockets) s.destroy();
		server.close();
	});
	return { url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => sockets.length };
}

/** The real receiver: 200 to every well-signed event, with when it arrived. */
async function receiver() {
	const got: { at: number; event: VoiceMessageEvent }[] = [];
	let badSignatures = 0;
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on('data', (c: Buffer) => chunks.push(c));
		req.on('end', () => {
			const body = Buffer.concat(chunks).toString('utf8');
			if (!verifyWebhookSignature(body, String(req.headers['x-parley-signature'] ?? ''), SECRET)) {
				badSignatures++;
				res.writeHead(400).end();
				return;
			}
			got.push({ at: Date.now(), event: JSON.parse(body) as VoiceMessageEvent });
			res.writeHead(200).end();
		});
	});
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	closers.push(async () => {
		server.closeAllConnections();
		server.close();
	});
	return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, got, badSignatures: () => badSignatures };
}

describe('outbox across a SIGKILL', () => {
	it("publishes every event a killed node committed, once its leases end, through another node's relay", async () => {
		const hang = await hangingReceiver();
		const silent = await silentRedis();
		const child = spawn(process.execPath, ['--import', 'tsx', 'test/scale/outboxKill.child.ts'], {
			env: {
				PATH: process.env.PATH ?? '',
				HOME: process.env.HOME ?? '/root',
				PARLEY_METADATA_URL: postgres.url,
				PARLEY_METADATA_OUTBOX_LEASE_MS: String(LEASE_MS),
				PARLEY_METADATA_OUTBOX_POLL_MS: '50',
				PARLEY_VOICE_WEBHOOK_URL: hang.url,
				PARLEY_VOICE_WEBHOOK_SECRET: SECRET,
				OUTBOX_CHILD_REDIS_URL: silent.url,
				OUTBOX_CHILD_MESSAGES: String(MESSAGES),
			},
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		closers.push(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));
		let out = '';
		let err = '';
		child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
		child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
		const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { committed?: VoiceMessageEvent; done?: true });
		await waitUntil(() => lines().some((l) => l.done) || child.exitCode !== null, 20_000, `the child's commits (stderr: ${err})`);
		expect(child.exitCode, err).toBeNull();
		// Its relay is in the middle of publishing: a webhook request open, Redis connected, and
		// rows leased to it for a while yet (checked in the table, so the kill lands inside a lease).
		await waitUntil(() => hang.opened() > 0 && silent.connections() > 0, 5000, "the child's relay to be sending");
		const db = new pg.Client({ connectionString: postgres.url });
		await db.connect();
		closers.push(() => db.end());
		const heldFor = async (ms: number) => {
			const until = Date.now() + ms;
			const r = await db.query<{ n: string }>(
				"select count(*) as n from voice_outbox where (stream_lease_owner like 'node-dead%' and stream_lease_until > $1) or (webhook_lease_owner like 'node-dead%' and webhook_lease_until > $1)",
				[until],
			);
			return Number(r.rows[0]!.n) > 0;
		};
		await waitUntil(() => heldFor(LEASE_MS / 4), 10_000, 'a lease held by the child', 5);
		const exited = once(child, 'exit');
		child.kill('SIGKILL');
		await exited;
		const killedAt = Date.now();
		expect(processAlive(child.pid!)).toBe(false);
		const committed = lines().flatMap((l) => (l.committed ? [l.committed] : []));
		// created + ready for each, deleted for every other one.
		expect(committed).toHaveLength(MESSAGES * 2 + Math.ceil(MESSAGES / 2));

		// What the dead node left: nothing published, and leases it still holds.
		const left = await db.query<{ event_id: string; stream_lease_owner: string | null; stream_lease_until: string | null; webhook_lease_owner: string | null; webhook_lease_until: string | null; stream_done_at: string | null; webhook_done_at: string | null }>(
			'select event_id, stream_lease_owner, stream_lease_until, webhook_lease_owner, webhook_lease_until, stream_done_at, webhook_done_at from voice_outbox',
		);
		expect(left.rows).toHaveLength(committed.length);
		expect(left.rows.every((r) => r.stream_done_at === null && r.webhook_done_at === null)).toBe(true);
		const leasedUntil = new Map<string, { stream?: number; webhook?: number }>();
		for (const r of left.rows) {
			const held = (owner: string | null, until: string | null) => (owner?.startsWith('node-dead') && until !== null && Number(until) > killedAt ? Number(until) : undefined);
			const s = held(r.stream_lease_owner, r.stream_lease_until);
			const w = held(r.webhook_lease_owner, r.webhook_lease_until);
			if (s !== undefined || w !== undefined) leasedUntil.set(r.event_id, { ...(s !== undefined && { stream: s }), ...(w !== undefined && { webhook: w }) });
		}
		expect(leasedUntil.size).toBeGreaterThan(0);
		console.log(`killed with ${committed.length} events committed, ${leasedUntil.size} still leased to the dead node`);

		// The second node.
		const target = await receiver();
		const config = await testConfig({
			PARLEY_METADATA_URL: postgres.url,
			PARLEY_METADATA_OUTBOX_LEASE_MS: String(LEASE_MS),
			PARLEY_METADATA_OUTBOX_POLL_MS: '50',
			PARLEY_VOICE_WEBHOOK_URL: target.url,
			PARLEY_VOICE_WEBHOOK_SECRET: SECRET,
		});
		const log = testLogger();
		const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
		closers.push(() => redis.disconnect());
		const store = await SqlVoiceMessageStore.open(postgres.url, { nodeId: 'node-b' });
		closers.push(() => store.close());
		const relay = createOutboxRelay(config, { outbox: store, nodeId: 'node-b', redis, log });
		relay.start();
		closers.push(() => relay.close(AbortSignal.timeout(2000)));
		await waitUntil(async () => (await store.pending('stream')) === 0 && (await store.pending('webhook')) === 0, 15_000, 'node-b to publish what the dead node left');
		const tookMs = Date.now() - killedAt;

		// The stream: read and validated as a consumer would.
		const reader = new VoiceEventStream(redis, { maxLen: config.cluster.eventStreamMaxLen });
		expect(reader.key).toBe(VOICE_EVENT_STREAM_KEY);
		await reader.createGroup('checker', '0');
		const entries = await reader.read('checker', 'c1', { count: 1000 });
		const streamed = entries.map((e) => {
			if (!('event' in e)) throw new Error(`malformed stream entry ${e.streamId}: ${e.error}`);
			return { at: Number(e.streamId.split('-')[0]), event: e.event };
		});
		expect(target.badSignatures()).toBe(0);
		const want = new Set(committed.map((e) => e.eventId));
		for (const [name, got] of [
			['stream', streamed],
			['webhook', target.got],
		] as const) {
			// Deduplicated on eventId (a consumer's rule): every committed event, none other.
			const seen = new Set<string>();
			const firsts = got.filter(({ event }) => !seen.has(event.eventId) && (seen.add(event.eventId), true));
			expect(seen, name).toEqual(want);
			// The dead node sent nothing, so nothing is repeated either.
			expect(firsts, name).toHaveLength(got.length);
			for (const id of new Set(committed.map((e) => e.voiceMessageId))) {
				const seqs = firsts.filter((g) => g.event.voiceMessageId === id).map((g) => g.event.sequence);
				expect(seqs, `${name} ${id}`).toEqual(committed.filter((e) => e.voiceMessageId === id).map((e) => e.sequence));
				expect(seqs[0]).toBe(1);
			}
			for (const g of firsts) expect(g.event).toEqual(committed.find((c) => c.eventId === g.event.eventId));
			// What the dead node held went out only after its lease ran out.
			for (const g of firsts) {
				const until = leasedUntil.get(g.event.eventId)?.[name];
				if (until !== undefined) expect(g.at, `${name} ${g.event.eventId}`).toBeGreaterThanOrEqual(until - 5);
			}
		}
		const spread = (got: { at: number }[]) => `${Math.min(...got.map((g) => g.at)) - killedAt}..${Math.max(...got.map((g) => g.at)) - killedAt} ms`;
		console.log(`arrivals after the kill: stream ${spread(streamed)}, webhook ${spread(target.got)}; lease ends ${[...leasedUntil.values()].map((l) => `${(l.stream ?? l.webhook)! - killedAt}`).join(', ')} ms after`);
		console.log(`node-b published ${committed.length} events on the stream and the webhook ${tookMs} ms after the kill (lease ${LEASE_MS} ms)`);
	});
});
