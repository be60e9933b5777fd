// The relay against an in-memory outbox (atomic claim, per-message order, leases, retry times:
// the VoiceOutbox contract), a real HTTP receiver that verifies signatures and a real Redis.
// The SQL store's own outbox is tested with the relay in test/scale/outboxRelay.test.ts.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test/helpers/logger.js';
import { startRedis, type TestRedis } from '../../../test/helpers/redis.js';
import { sleep, waitUntil } from '../../../test/helpers/wait.js';
import { lifecycleEvent, type VoiceMessageEvent } from '../voiceEvents.js';
import type { VoiceMessage } from '../voiceMessage.js';
import { verifyWebhookSignature, type WebhookOutcome } from '../VoiceWebhooks.js';
import { OUTBOX_TARGETS, type OutboxEntry, type OutboxTarget, type VoiceOutbox } from '../store/VoiceOutbox.js';
import { VoiceEventStream } from '../store/VoiceEventStream.js';
import { OutboxRelay, type OutboxRelayOptions } from './OutboxRelay.js';
import { StreamSink, WebhookSink, type OutboxSink } from './outboxSinks.js';
import { RetrySchedule } from '../VoiceWebhooks.js';

const SECRET = 'outbox-relay-test-secret-0123';

interface TargetState {
	doneAt: number | undefined;
	leaseOwner: string | undefined;
	leaseUntil: number;
	attempts: number;
	retryAt: number;
}

/** The VoiceOutbox contract in memory. claim runs without an await between reading and
 * leasing, so it is atomic like the SQL store's conditional UPDATE. */
class MemoryOutbox implements VoiceOutbox {
	readonly rows: { position: number; event: VoiceMessageEvent; createdAt: number; t: Record<OutboxTarget, TargetState> }[] = [];
	readonly retries: { target: OutboxTarget; position: number; delayMs: number }[] = [];
	#next = 1;
	#sequences = new Map<string, number>();

	/** A committed change: its event, with the message's next sequence. */
	add(messageId: string, status: VoiceMessage['status'] = 'processing', kind: 'created' | 'update' | 'deleted' = 'created'): VoiceMessageEvent {
		const m: VoiceMessage = { id: messageId, ownerId: 'ada', destination: { kind: 'user', userId: 'bob' }, source: 'upload', status, createdAt: 1, updatedAt: 1 };
		const sequence = (this.#sequences.get(messageId) ?? 0) + 1;
		this.#sequences.set(messageId, sequence);
		const event =
			kind === 'created'
				? lifecycleEvent(undefined, m, 'node-a', sequence)!
				: kind === 'deleted'
					? lifecycleEvent(m, undefined, 'node-a', sequence)!
					: lifecycleEvent({ ...m, status: 'processing' }, m, 'node-a', sequence)!;
		const fresh = (): TargetState => ({ doneAt: undefined, leaseOwner: undefined, leaseUntil: 0, attempts: 0, retryAt: 0 });
		this.rows.push({ position: this.#next++, event, createdAt: Date.now(), t: { stream: fresh(), webhook: fresh() } });
		return event;
	}

	async claim(target: OutboxTarget, nodeId: string, limit: number, leaseMs: number, options: { reclaimOwn?: boolean } = {}): Promise<OutboxEntry[]> {
		const now = Date.now();
		const blocked = new Set<string>();
		const out: OutboxEntry[] = [];
		for (const row of this.rows) {
			const s = row.t[target];
			if (s.doneAt !== undefined) continue;
			const id = row.event.voiceMessageId;
			// Only the first entry not done of each message can be offered.
			if (blocked.has(id)) continue;
			blocked.add(id);
			const leased = s.leaseUntil > now && !(options.reclaimOwn && s.leaseOwner === nodeId);
			if (leased || s.retryAt > now || out.length >= limit) continue;
			s.leaseOwner = nodeId;
			s.leaseUntil = now + leaseMs;
			out.push({ position: row.position, event: structuredClone(row.event), attempts: s.attempts });
		}
		return out;
	}

	async markDone(target: OutboxTarget, positions: readonly number[]): Promise<void> {
		for (const row of this.rows) {
			if (!positions.includes(row.position)) continue;
			row.t[target].doneAt = Date.now();
			row.t[target].leaseOwner = undefined;
			row.t[target].leaseUntil = 0;
		}
	}

	async retryLater(target: OutboxTarget, position: number, retryAt: number): Promise<void> {
		const s = this.rows.find((r) => r.position === position)!.t[target];
		s.attempts++;
		s.retryAt = retryAt;
		s.leaseOwner = undefined;
		s.leaseUntil = 0;
		this.retries.push({ target, position, delayMs: retryAt - Date.now() });
	}

	async pending(target: OutboxTarget): Promise<number> {
		return this.rows.filter((r) => r.t[target].doneAt === undefined).length;
	}

	async prune(before: number): Promise<number> {
		const keep = this.rows.filter((r) => !(OUTBOX_TARGETS.every((t) => r.t[t].doneAt !== undefined) && r.createdAt < before));
		const removed = this.rows.length - keep.length;
		this.rows.splice(0, this.rows.length, ...keep);
		return removed;
	}
}

interface Received {
	at: number;
	event: VoiceMessageEvent;
	signed: boolean;
}

/** A webhook receiver: `answer(n, event)` picks each reply; it records how many requests of
 * one message and of one event were open at once. */
async function receiver(answer: (n: number, event: VoiceMessageEvent) => Promise<number | 'hang'> | number | 'hang' = () => 200) {
	const received: Received[] = [];
	const openPerMessage = new Map<string, number>();
	const openPerEvent = new Map<string, number>();
	let maxOpenPerMessage = 0;
	let maxOpenPerEvent = 0;
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on('data', (c: Buffer) => chunks.push(c));
		req.on('end', async () => {
			const body = Buffer.concat(chunks).toString('utf8');
			const event = JSON.parse(body) as VoiceMessageEvent;
			const n = received.length;
			received.push({ at: performance.now(), event, signed: verifyWebhookSignature(body, String(req.headers['x-parley-signature']), SECRET) && req.headers['x-parley-delivery'] === event.eventId });
			const bump = (m: Map<string, number>, k: string, d: number) => {
				m.set(k, (m.get(k) ?? 0) + d);
				return m.get(k)!;
			};
			maxOpenPerMessage = Math.max(maxOpenPerMessage, bump(openPerMessage, event.voiceMessageId, 1));
			maxOpenPerEvent = Math.max(maxOpenPerEvent, bump(openPerEvent, event.eventId, 1));
			const status = await answer(n, event);
			bump(openPerMessage, event.voiceMessageId, -1);
			bump(openPerEvent, event.eventId, -1);
			if (status === 'hang') return;
			res.writeHead(status, status === 429 ? { 'retry-after': '1' } : {}).end();
		});
	});
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	return {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
		received,
		get maxOpenPerMessage() {
			return maxOpenPerMessage;
		},
		get maxOpenPerEvent() {
			return maxOpenPerEvent;
		},
		close: async () => {
			server.closeAllConnections();
			server.close();
			await once(server, 'close');
		},
	};
}

describe('outbox relay', () => {
	const cleanups: (() => Promise<void>)[] = [];
	afterEach(async () => {
		for (const c of cleanups.splice(0).reverse()) await c();
	});

	function webhookSink(url: string, outcomes: WebhookOutcome[], options: { maxAttempts?: number; timeoutMs?: number; baseDelayMs?: number } = {}) {
		return new WebhookSink({
			endpoint: { url, secret: SECRET, timeoutMs: options.timeoutMs ?? 2000 },
			maxAttempts: options.maxAttempts ?? 6,
			schedule: new RetrySchedule({ baseDelayMs: options.baseDelayMs ?? 100, maxDelayMs: 5000 }),
			log: testLogger(),
			onOutcome: (o) => outcomes.push(o),
		});
	}

	function relay(outbox: VoiceOutbox, sinks: OutboxRelayOptions['sinks'], options: Partial<OutboxRelayOptions> = {}) {
		const r = new OutboxRelay({ outbox, nodeId: 'node-b', pollMs: 20, leaseMs: 5000, sinks, log: testLogger(), ...options });
		r.start();
		cleanups.push(() => r.close(AbortSignal.timeout(2000)));
		return r;
	}

	async function setup(answer?: Parameters<typeof receiver>[0]) {
		const r = await receiver(answer);
		cleanups.push(() => r.close());
		return r;
	}

	const drained = (outbox: VoiceOutbox, target: OutboxTarget = 'webhook', timeoutMs = 10_000) =>
		waitUntil(async () => (await outbox.pending(target)) === 0, timeoutMs, `the ${target} outbox to drain`);

	it('delivers every message in commit order, one request per message at a time, messages in parallel', async () => {
		// Random answer times, so a relay that sent two events of a message at once would show it.
		const r = await setup(async () => (await sleep(Math.random() * 15), 200));
		const outbox = new MemoryOutbox();
		const ids = Array.from({ length: 8 }, () => randomUUID());
		for (let round = 0; round < 4; round++) for (const id of ids) outbox.add(id, round === 0 ? 'processing' : 'ready', round === 0 ? 'created' : round === 3 ? 'deleted' : 'update');
		const outcomes: WebhookOutcome[] = [];
		const started = performance.now();
		const relayB = relay(outbox, { webhook: webhookSink(r.url, outcomes) });
		await drained(outbox);
		console.log(`32 events of 8 messages delivered in ${(performance.now() - started).toFixed(0)} ms`);
		expect(r.received).toHaveLength(32);
		expect(r.received.every((x) => x.signed)).toBe(true);
		for (const id of ids) {
			const seq = r.received.filter((x) => x.event.voiceMessageId === id).map((x) => x.event.sequence);
			expect(seq).toEqual([1, 2, 3, 4]);
		}
		expect(r.maxOpenPerMessage).toBe(1);
		// Different messages did overlap (four lanes).
		expect(new Set(r.received.slice(0, 4).map((x) => x.event.voiceMessageId)).size).toBeGreaterThan(1);
		expect(outcomes.filter((o) => o === 'delivered')).toHaveLength(32);
		expect(relayB.completed).toBe(32);
		expect(relayB.inFlight).toBe(0);
	});

	it('retries 5xx on the growing schedule, keeping later events of the message behind it', async () => {
		const first = randomUUID();
		let failures = 0;
		const r = await setup((_, e) => (e.voiceMessageId === first && e.event === 'voiceMessage.created' && failures++ < 3 ? 503 : 200));
		const outbox = new MemoryOutbox();
		outbox.add(first);
		outbox.add(first, 'ready', 'update');
		const outcomes: WebhookOutcome[] = [];
		relay(outbox, { webhook: webhookSink(r.url, outcomes, { baseDelayMs: 100 }) });
		await drained(outbox);
		expect(r.received.map((x) => x.event.event)).toEqual(['voiceMessage.created', 'voiceMessage.created', 'voiceMessage.created', 'voiceMessage.created', 'voiceMessage.ready']);
		expect(outcomes).toEqual(['retried', 'retried', 'retried', 'delivered', 'delivered']);
		// The schedule written to the outbox: 100, 200, 400 ms, each jittered to [half, full].
		const delays = outbox.retries.map((x) => x.delayMs);
		expect(delays).toHaveLength(3);
		expect(delays[0]).toBeGreaterThanOrEqual(45);
		expect(delays[0]).toBeLessThanOrEqual(100);
		expect(delays[1]).toBeGreaterThanOrEqual(95);
		expect(delays[1]).toBeLessThanOrEqual(200);
		expect(delays[2]).toBeGreaterThanOrEqual(195);
		expect(delays[2]).toBeLessThanOrEqual(400);
		// And the requests were that far apart.
		const gaps = r.received.slice(1, 4).map((g, i) => g.at - r.received[i]!.at);
		console.log(`retry gaps (ms): ${gaps.map((g) => g.toFixed(0)).join(', ')}`);
		expect(gaps[2]!).toBeGreaterThanOrEqual(190);
		expect(outbox.rows.find((x) => x.position === 1)!.t.webhook.attempts).toBe(3);
	});

	it("gives up after maxAttempts, refuses 4xx at once, and waits a 429's Retry-After", async () => {
		const failing = randomUUID();
		const refused = randomUUID();
		const limited = randomUUID();
		let limitedOnce = false;
		const r = await setup((_, e) => {
			if (e.voiceMessageId === failing) return 500;
			if (e.voiceMessageId === refused) return 410;
			if (e.voiceMessageId === limited && !limitedOnce) return (limitedOnce = true), 429;
			return 200;
		});
		const outbox = new MemoryOutbox();
		outbox.add(failing);
		outbox.add(refused);
		outbox.add(limited);
		outbox.add(failing, 'ready', 'update');
		const outcomes: WebhookOutcome[] = [];
		relay(outbox, { webhook: webhookSink(r.url, outcomes, { maxAttempts: 3, baseDelayMs: 30 }) });
		await drained(outbox);
		const per = (id: string) => r.received.filter((x) => x.event.voiceMessageId === id);
		// Given up after 3 attempts, then the message's next event still goes (and fails too).
		expect(per(failing).map((x) => x.event.event)).toEqual(['voiceMessage.created', 'voiceMessage.created', 'voiceMessage.created', 'voiceMessage.ready', 'voiceMessage.ready', 'voiceMessage.ready']);
		expect(per(refused)).toHaveLength(1);
		const lim = per(limited);
		expect(lim).toHaveLength(2);
		expect(lim[1]!.at - lim[0]!.at).toBeGreaterThanOrEqual(950);
		expect(outcomes.filter((o) => o === 'failed')).toHaveLength(2);
		expect(outcomes.filter((o) => o === 'refused')).toHaveLength(1);
		expect(outcomes.filter((o) => o === 'delivered')).toHaveLength(1);
		expect(outcomes.filter((o) => o === 'retried')).toHaveLength(5);
	});

	it('two relays on one outbox never send one entry at once, and a dead holder is taken over after its lease', async () => {
		const r = await setup(async () => (await sleep(5 + Math.random() * 20), 200));
		const outbox = new MemoryOutbox();
		const ids = Array.from({ length: 6 }, () => randomUUID());
		for (let round = 0; round < 3; round++) for (const id of ids) outbox.add(id, 'ready', round === 0 ? 'created' : 'update');
		// A node that claimed two entries and died holding them.
		const dead = await outbox.claim('webhook', 'node-dead', 2, 600);
		expect(dead).toHaveLength(2);
		const outcomes: WebhookOutcome[] = [];
		const started = Date.now();
		relay(outbox, { webhook: webhookSink(r.url, outcomes, { timeoutMs: 300 }) }, { nodeId: 'node-b', leaseMs: 600 });
		relay(outbox, { webhook: webhookSink(r.url, outcomes, { timeoutMs: 300 }) }, { nodeId: 'node-c', leaseMs: 600 });
		await drained(outbox);
		expect(r.received).toHaveLength(18);
		expect(new Set(r.received.map((x) => x.event.eventId)).size).toBe(18);
		expect(r.maxOpenPerEvent).toBe(1);
		expect(r.maxOpenPerMessage).toBe(1);
		for (const id of ids) expect(r.received.filter((x) => x.event.voiceMessageId === id).map((x) => x.event.sequence)).toEqual([1, 2, 3]);
		// The dead node's two messages waited for its lease.
		const firstOfDead = r.received.find((x) => x.event.eventId === dead[0]!.event.eventId)!;
		expect(firstOfDead).toBeDefined();
		expect(Date.now() - started).toBeGreaterThanOrEqual(550);
		const owners = new Set(outbox.rows.map((x) => x.t.webhook.leaseOwner));
		expect(owners).toEqual(new Set([undefined]));
	});

	it('marks a target it does not have done in bulk, and prunes what is done everywhere', async () => {
		const outbox = new MemoryOutbox();
		for (let i = 0; i < 1200; i++) outbox.add(randomUUID());
		relay(outbox, {}, { pruneEveryMs: 100, keepDoneMs: 0 });
		await drained(outbox, 'webhook');
		await drained(outbox, 'stream');
		await waitUntil(() => outbox.rows.length === 0, 5000, 'the done entries to be pruned');
	});

	it('is woken by a commit instead of waiting for the poll', async () => {
		const r = await setup();
		const outbox = new MemoryOutbox();
		const relayB = relay(outbox, { webhook: webhookSink(r.url, []) }, { pollMs: 60_000 });
		await sleep(100);
		outbox.add(randomUUID());
		const t0 = performance.now();
		relayB.wake();
		await drained(outbox, 'webhook', 2000);
		expect(performance.now() - t0).toBeLessThan(1000);
		expect(r.received).toHaveLength(1);
	});

	it('at close finishes the attempt in flight, or cuts it off at the deadline and leaves the entry', async () => {
		const slow = await setup(async () => (await sleep(300), 200));
		const outbox = new MemoryOutbox();
		outbox.add(randomUUID());
		const a = new OutboxRelay({ outbox, nodeId: 'n1', pollMs: 20, leaseMs: 5000, sinks: { webhook: webhookSink(slow.url, []) }, log: testLogger() });
		a.start();
		await waitUntil(() => slow.received.length === 1, 5000, 'the first request');
		await a.close(AbortSignal.timeout(3000));
		expect(await outbox.pending('webhook')).toBe(0);

		const stuck = await setup(() => 'hang');
		const outbox2 = new MemoryOutbox();
		outbox2.add(randomUUID());
		const b = new OutboxRelay({ outbox: outbox2, nodeId: 'n2', pollMs: 20, leaseMs: 5000, sinks: { webhook: webhookSink(stuck.url, [], { timeoutMs: 4000 }) }, log: testLogger() });
		b.start();
		await waitUntil(() => stuck.received.length === 1, 5000, 'the first request');
		const t0 = performance.now();
		await b.close(AbortSignal.timeout(300));
		const took = performance.now() - t0;
		expect(took).toBeGreaterThanOrEqual(250);
		expect(took).toBeLessThan(1500);
		// Not done and no attempt counted: it goes out again once the lease ends.
		expect(await outbox2.pending('webhook')).toBe(1);
		expect(outbox2.rows[0]!.t.webhook.attempts).toBe(0);
		expect(b.inFlight).toBe(0);
	});

	it('refuses a sink whose attempt could outlive the lease', () => {
		const sink: OutboxSink = { concurrency: 1, attemptTimeoutMs: 5000, deliver: async () => ({ kind: 'done' }) };
		expect(() => new OutboxRelay({ outbox: new MemoryOutbox(), nodeId: 'n', pollMs: 10, leaseMs: 5000, sinks: { webhook: sink }, log: testLogger() })).toThrow(TypeError);
	});

	describe('stream target (real Redis)', () => {
		let redisServer: TestRedis;
		let redis: Redis;
		beforeAll(async () => {
			redisServer = await startRedis();
			redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
		});
		afterAll(async () => {
			redis.disconnect();
			await redisServer.stop();
		});

		it('appends entries VoiceEventStream reads back as valid events, with sequence, and keeps them while Redis is away', async () => {
			const key = `test:voice-meta:${randomUUID()}`;
			const reader = new VoiceEventStream(redis, { maxLen: 1000, key });
			await reader.createGroup('g', '0');
			const outbox = new MemoryOutbox();
			const id = randomUUID();
			const events = [outbox.add(id), outbox.add(id, 'ready', 'update')];
			relay(outbox, { stream: new StreamSink({ redis, maxLen: 1000, key, timeoutMs: 500, log: testLogger() }) }, { pollMs: 20 });
			await drained(outbox, 'stream');
			const got = await reader.read('g', 'c1', { count: 10 });
			expect(got.map((x) => ('event' in x ? x.event.eventId : x.error))).toEqual(events.map((e) => e.eventId));
			const raw = (await redis.xrange(key, '-', '+')).map(([, f]) => f);
			expect(raw.map((f) => f[f.indexOf('sequence') + 1])).toEqual(['1', '2']);
			// Redis away: the entry waits in the outbox (retried, not dropped), then goes out.
			await redisServer.stop();
			const later = outbox.add(id, 'ready', 'deleted');
			await sleep(400);
			expect(await outbox.pending('stream')).toBe(1);
			expect(outbox.retries.length).toBeGreaterThan(0);
			redisServer = await startRedis({ port: redisServer.port });
			await drained(outbox, 'stream', 10_000);
			// A fresh Redis (no persistence here): the stream holds just the newest entry.
			const after = await redis.xrange(key, '-', '+');
			expect(after.map(([, f]) => f[f.indexOf('eventId') + 1])).toEqual([later.eventId]);
		});
	});
});
