// The relay as ParleyServer wires it: a node with the SQL store (SQLite here) and Redis, whose
// commits reach the stream and the webhook through the outbox (woken at once, not at the
// poll), once each (the in-memory webhook queue is not used besides), counted in /metrics,
// and a clean shutdown.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParleyServer } from '../../server/ParleyServer.js';
import { VOICE_EVENT_STREAM_KEY, VoiceEventStream } from '../../server/voice/store/VoiceEventStream.js';
import type { VoiceMessageEvent } from '../../server/voice/voiceEvents.js';
import { verifyWebhookSignature } from '../../server/voice/VoiceWebhooks.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { parsePrometheusText, total } from '../helpers/prometheusText.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { sleep, waitUntil } from '../helpers/wait.js';

const SECRET = 'outbox-server-test-secret-01234';

let redisServer: TestRedis;
let tmp: string;
beforeAll(async () => {
	redisServer = await startRedis();
	tmp = mkdtempSync(path.join(os.tmpdir(), 'parley-outbox-server-'));
});
afterAll(async () => {
	await redisServer?.stop();
	rmSync(tmp, { recursive: true, force: true });
});

describe('outbox relay in ParleyServer', () => {
	it('publishes each commit once to the stream and the webhook, woken by the commit, and shuts down cleanly', async () => {
		const got: { event: VoiceMessageEvent; signed: boolean }[] = [];
		const hook = http.createServer((req, res) => {
			const chunks: Buffer[] = [];
			req.on('data', (c: Buffer) => chunks.push(c));
			req.on('end', () => {
				const body = Buffer.concat(chunks).toString('utf8');
				got.push({ event: JSON.parse(body) as VoiceMessageEvent, signed: verifyWebhookSignature(body, String(req.headers['x-parley-signature']), SECRET) });
				res.writeHead(204).end();
			});
		});
		hook.listen(0, '127.0.0.1');
		await once(hook, 'listening');
		const server = await ParleyServer.create(
			await testConfig({
				PARLEY_METADATA_URL: `sqlite:${path.join(tmp, 'metadata.db')}`,
				PARLEY_CLUSTER_REDIS_URL: redisServer.url,
				PARLEY_VOICE_WEBHOOK_URL: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hooks`,
				PARLEY_VOICE_WEBHOOK_SECRET: SECRET,
				// Long: only the wake-up by the commit can make it quick.
				PARLEY_METADATA_OUTBOX_POLL_MS: '10000',
				PARLEY_VOICE_AUDIT_ON_STARTUP: 'false',
			}),
			testLogger(),
		);
		const redis = new Redis(redisServer.url);
		let shutDown = false;
		try {
			expect(server.metadata).toBeDefined();
			const id = randomUUID();
			const now = Date.now();
			const t0 = performance.now();
			await server.voiceStore.insert({ id, ownerId: 'ada', destination: { kind: 'user', userId: 'bob' }, source: 'upload', status: 'processing', createdAt: now, updatedAt: now });
			await server.voiceStore.update(id, { status: 'ready', sizeBytes: 1 });
			await server.voiceStore.delete(id);
			await waitUntil(() => got.length >= 3, 5000, 'three webhook requests');
			const took = performance.now() - t0;
			console.log(`3 events on the webhook ${took.toFixed(0)} ms after the first commit (poll 10 s)`);
			expect(took).toBeLessThan(3000);
			await waitUntil(async () => (await server.metadata!.pending('stream')) === 0, 5000, 'the stream');
			await sleep(300);
			expect(got.map((g) => [g.event.event, g.event.sequence, g.signed])).toEqual([
				['voiceMessage.created', 1, true],
				['voiceMessage.ready', 2, true],
				['voiceMessage.deleted', 3, true],
			]);
			const reader = new VoiceEventStream(redis, { maxLen: 1000 });
			expect(reader.key).toBe(VOICE_EVENT_STREAM_KEY);
			await reader.createGroup('checker', '0');
			const entries = await reader.read('checker', 'c', { count: 100 });
			expect(entries.map((e) => ('event' in e ? e.event.eventId : e.error))).toEqual(got.map((g) => g.event.eventId));

			const samples = parsePrometheusText(await (await fetch(`http://127.0.0.1:${server.http.port}/metrics`)).text());
			expect(total(samples, 'parley_voice_webhook_deliveries_total', { outcome: 'delivered' })).toBe(3);
			expect(samples.filter((s) => s.name === 'parley_voice_outbox_pending').map((s) => [s.labels.target, s.value])).toEqual(
				expect.arrayContaining([
					['stream', 0],
					['webhook', 0],
				]),
			);
			const result = await server.shutdown('test end');
			shutDown = true;
			expect(result.clean).toBe(true);
		} finally {
			if (!shutDown) await server.shutdown('test end');
			redis.disconnect();
			hook.closeAllConnections();
			hook.close();
		}
	});
});
