// Webhooks against a real local HTTP receiver: signatures that verify, retries with growing
// delays and the same body, final refusals, per-message order, the queue bound and shutdown.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { testLogger } from '../../test/helpers/logger.js';
import { lifecycleEvent, type VoiceMessageEvent } from './voiceEvents.js';
import type { VoiceMessage } from './voiceMessage.js';
import { signWebhook, verifyWebhookSignature, VoiceWebhooks, type VoiceWebhooksOptions, type WebhookOutcome } from './VoiceWebhooks.js';
import { waitUntil } from '../../test/helpers/wait.js';

const SECRET = 'webhook-test-secret-0123456789';

interface Received {
	at: number;
	body: string;
	headers: http.IncomingHttpHeaders;
}

/** A receiver whose answer per request is chosen by `answer(n)` (n counts from 0). */
async function receiver(answer: (n: number, body: string) => number | 'hang') {
	const received: Received[] = [];
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on('data', (c: Buffer) => chunks.push(c));
		req.on('end', () => {
			const body = Buffer.concat(chunks).toString('utf8');
			const n = received.length;
			received.push({ at: performance.now(), body, headers: req.headers });
			const status = answer(n, body);
			if (status === 'hang') return;
			res.writeHead(status, status === 429 ? { 'retry-after': '0' } : {}).end();
		});
	});
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
	return {
		url,
		received,
		close: async () => {
			server.closeAllConnections();
			server.close();
			await once(server, 'close');
		},
	};
}

function event(status: VoiceMessage['status'], id = randomUUID(), previous?: VoiceMessage['status']): VoiceMessageEvent {
	const m: VoiceMessage = { id, ownerId: 'ada', destination: { kind: 'user', userId: 'bob' }, source: 'upload', status, createdAt: 1, updatedAt: 1 };
	return lifecycleEvent(previous ? { ...m, status: previous } : undefined, m, 'node-a')!;
}

describe('voice webhooks', () => {
	const cleanups: (() => Promise<void>)[] = [];
	afterEach(async () => {
		for (const c of cleanups.splice(0)) await c();
	});

	async function setup(answer: (n: number, body: string) => number | 'hang', options: Partial<VoiceWebhooksOptions> = {}) {
		const r = await receiver(answer);
		const outcomes: WebhookOutcome[] = [];
		const hooks = new VoiceWebhooks({
			url: r.url,
			secret: SECRET,
			maxAttempts: 6,
			timeoutMs: 2000,
			maxQueued: 100,
			baseDelayMs: 100,
			log: testLogger(),
			onOutcome: (o) => outcomes.push(o),
			...options,
		});
		cleanups.push(async () => {
			await hooks.close(AbortSignal.timeout(0));
			await r.close();
		});
		return { r, hooks, outcomes };
	}

	const until = (cond: () => boolean, timeoutMs = 10_000) => waitUntil(cond, timeoutMs, 'the webhook receiver', 10);

	it('retries 5xx with growing delays and the same signed body until it is delivered', async () => {
		const { r, hooks, outcomes } = await setup((n) => (n < 3 ? 503 : 200));
		const e = event('ready', undefined, 'processing');
		expect(hooks.enqueue(e)).toBe(true);
		await until(() => hooks.pending === 0);
		expect(r.received).toHaveLength(4);
		expect(outcomes).toEqual(['retried', 'retried', 'retried', 'delivered']);
		for (const got of r.received) {
			expect(got.body).toBe(r.received[0]!.body);
			expect(got.headers['x-parley-delivery']).toBe(e.eventId);
			expect(got.headers['x-parley-event']).toBe('voiceMessage.ready');
			expect(got.headers['content-type']).toBe('application/json');
			expect(verifyWebhookSignature(got.body, String(got.headers['x-parley-signature']), SECRET)).toBe(true);
		}
		expect(JSON.parse(r.received[0]!.body)).toEqual(e);
		// Backoff 100, 200, 400 ms, each jittered to [half, full].
		const gaps = r.received.slice(1).map((g, i) => g.at - r.received[i]!.at);
		console.log(`webhook retry gaps (ms): ${gaps.map((g) => g.toFixed(0)).join(', ')}`);
		expect(gaps[0]).toBeGreaterThanOrEqual(45);
		expect(gaps[1]).toBeGreaterThanOrEqual(95);
		expect(gaps[2]).toBeGreaterThanOrEqual(195);
		expect(gaps[2]!).toBeGreaterThan(gaps[0]!);
	});

	it('treats 4xx as final but retries 429, timeouts and refused connections', async () => {
		const { r, hooks, outcomes } = await setup((n) => [400, 429, 200][n] ?? 200, { timeoutMs: 300 });
		hooks.enqueue(event('failed', undefined, 'processing'));
		hooks.enqueue(event('ready', undefined, 'processing'));
		await until(() => hooks.pending === 0);
		expect(r.received.map((x) => JSON.parse(x.body).event)).toHaveLength(3);
		expect(outcomes.sort()).toEqual(['delivered', 'refused', 'retried'].sort());

		const slow = await setup((n) => (n === 0 ? 'hang' : 200), { timeoutMs: 300 });
		const started = performance.now();
		slow.hooks.enqueue(event('ready'));
		await until(() => slow.hooks.pending === 0);
		expect(slow.r.received).toHaveLength(2);
		expect(performance.now() - started).toBeGreaterThanOrEqual(300);
		expect(slow.outcomes).toEqual(['retried', 'delivered']);

		// Nothing listens: every attempt fails to connect, then it gives up.
		const gone = await receiver(() => 200);
		await gone.close();
		const outcomes2: WebhookOutcome[] = [];
		const hooks2 = new VoiceWebhooks({ url: gone.url, secret: SECRET, maxAttempts: 3, timeoutMs: 500, maxQueued: 10, baseDelayMs: 20, log: testLogger(), onOutcome: (o) => outcomes2.push(o) });
		hooks2.enqueue(event('ready'));
		await until(() => hooks2.pending === 0);
		expect(outcomes2).toEqual(['retried', 'retried', 'failed']);
	});

	it('delivers the events of one message in order, even when the first is retried', async () => {
		const id = randomUUID();
		// The first request of this message fails: the later events must wait for it.
		const { r, hooks } = await setup((n) => (n === 0 ? 500 : 200));
		hooks.enqueue(event('processing', id));
		hooks.enqueue(event('ready', id, 'processing'));
		hooks.enqueue(lifecycleEvent({ id, ownerId: 'ada', destination: { kind: 'user', userId: 'bob' }, source: 'upload', status: 'ready', createdAt: 1, updatedAt: 1 }, undefined, 'node-a')!);
		await until(() => hooks.pending === 0);
		const events = r.received.map((x) => JSON.parse(x.body).event as string);
		expect(events).toEqual(['voiceMessage.created', 'voiceMessage.created', 'voiceMessage.ready', 'voiceMessage.deleted']);
	});

	it('drops events beyond the queue bound, and at shutdown gives up on what cannot go out', async () => {
		const { r, hooks, outcomes } = await setup(() => 503, { maxQueued: 2, baseDelayMs: 50 });
		expect(hooks.enqueue(event('ready'))).toBe(true);
		expect(hooks.enqueue(event('ready'))).toBe(true);
		expect(hooks.enqueue(event('ready'))).toBe(false);
		expect(outcomes).toContain('dropped');
		await until(() => r.received.length >= 2);
		const started = performance.now();
		await hooks.close(AbortSignal.timeout(300));
		const closeMs = performance.now() - started;
		expect(closeMs).toBeGreaterThanOrEqual(250);
		expect(closeMs).toBeLessThan(2000);
		await until(() => hooks.pending === 0, 2000);
		expect(hooks.enqueue(event('ready'))).toBe(false);
		// Nothing more is sent once it gave up.
		const count = r.received.length;
		await new Promise((res) => setTimeout(res, 300));
		expect(r.received.length).toBe(count);
	});

	it('verifies signatures: the exact body, the secret, a recent timestamp', () => {
		const body = JSON.stringify(event('ready'));
		const t = Math.floor(Date.now() / 1000);
		const header = `t=${t},v1=${signWebhook(body, t, SECRET)}`;
		expect(verifyWebhookSignature(body, header, SECRET)).toBe(true);
		expect(verifyWebhookSignature(Buffer.from(body), header, SECRET)).toBe(true);
		expect(verifyWebhookSignature(`${body} `, header, SECRET)).toBe(false);
		expect(verifyWebhookSignature(body, header, `${SECRET}x`)).toBe(false);
		expect(verifyWebhookSignature(body, header, SECRET, { nowMs: (t + 301) * 1000 })).toBe(false);
		expect(verifyWebhookSignature(body, `t=${t},v1=${'0'.repeat(64)},v1=${signWebhook(body, t, SECRET)}`, SECRET)).toBe(true);
		for (const bad of ['', 'v1=abc', `t=${t}`, `t=x,v1=${signWebhook(body, t, SECRET)}`, `t=${t},v1=zz`]) expect(verifyWebhookSignature(body, bad, SECRET)).toBe(false);
	});
});
