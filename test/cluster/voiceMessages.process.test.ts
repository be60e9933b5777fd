// Voice messages in a cluster: two Parley processes, one redis-server, one shared storage
// directory. A message uploaded through node A is announced to its addressee connected to
// node B (voiceMessage notification over the cluster bus), listed and downloaded through B
// (metadata in Redis, file in the shared directory), deleted through B; every lifecycle event
// is on the parley:voice-meta stream exactly once for a consumer group of two, in order, and
// reaches the signed webhook of the node that committed it. A recording on A is announced to
// its addressee on B at each status, and its three events are read once each.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VoiceEventStream, type VoiceEventEntry } from '../../server/voice/store/VoiceEventStream.js';
import { PROTOCOL_VERSION, type Notifications, type RequestData } from '../../protocol/messages.js';
import type { VoiceMessageEvent } from '../../server/voice/voiceEvents.js';
import { verifyWebhookSignature } from '../../server/voice/VoiceWebhooks.js';
import { decodeFileToMono, dominantFrequency, encodeTone } from '../helpers/audio.js';
import { startWebhookReceiver, type ReceivedHook, type WebhookReceiver } from '../../testkit/webhookReceiver.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { writeToneWav } from '../helpers/wav.js';
import { publishWithWerift } from '../../testkit/weriftPublisher.js';
import { startNode, token, waitUntil, type NodeProcess } from './helpers/nodes.js';

const WEBHOOK_SECRET = 'cluster-webhook-secret-0123456789';
const TONE_HZ = 660;

describe('voice messages across two nodes', () => {
	let redis: TestRedis;
	let raw: Redis;
	let reader: Redis;
	let a: NodeProcess;
	let b: NodeProcess;
	let bob: TestSignalingClient | undefined;
	let hookServer: WebhookReceiver;
	const hooks = (): ReceivedHook[] => hookServer.hooks;
	const tokenFor = (userId: string) => token(userId, { channels: ['room'] });

	beforeAll(async () => {
		redis = await startRedis();
		raw = new Redis(redis.url);
		reader = new Redis(redis.url);
		hookServer = await startWebhookReceiver();
		const shared = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-shared-')), 'storage');
		const env = {
			PARLEY_STORAGE_DIR: shared,
			PARLEY_VOICE_WEBHOOK_URL: hookServer.url,
			PARLEY_VOICE_WEBHOOK_SECRET: WEBHOOK_SECRET,
		};
		[a, b] = await Promise.all([startNode(redis.url, 'node-a', env), startNode(redis.url, 'node-b', env)]);
	}, 60_000);

	afterAll(async () => {
		bob?.ws.close();
		await Promise.all([a?.stop(), b?.stop()]);
		reader?.disconnect();
		raw?.disconnect();
		await hookServer?.close();
		await redis?.stop();
	});

	/** Two consumers of one group take turns until `count` entries came; every entry is
	 * acknowledged, and nothing is left over or pending. */
	async function readExactly(stream: VoiceEventStream, count: number): Promise<{ all: VoiceEventEntry[]; byConsumer: Record<string, VoiceEventEntry[]> }> {
		const byConsumer: Record<string, VoiceEventEntry[]> = { c1: [], c2: [] };
		const all: VoiceEventEntry[] = [];
		const deadline = Date.now() + 10_000;
		for (let turn = 0; all.length < count && Date.now() < deadline; turn++) {
			const consumer = turn % 2 === 0 ? 'c1' : 'c2';
			const entries = await stream.read('indexer', consumer, { count: 1, blockMs: 200 });
			for (const e of entries) {
				expect('event' in e, JSON.stringify(e)).toBe(true);
				byConsumer[consumer]!.push(e as VoiceEventEntry);
				all.push(e as VoiceEventEntry);
				await stream.ack('indexer', e.streamId);
			}
		}
		expect(await stream.read('indexer', 'c1', { count: 10, blockMs: 300 })).toEqual([]);
		expect(await stream.read('indexer', 'c2', { count: 10 })).toEqual([]);
		const pending = (await reader.xpending(stream.key, 'indexer')) as [number, ...unknown[]];
		expect(pending[0]).toBe(0);
		expect(new Set(all.map((e) => e.streamId)).size).toBe(all.length);
		return { all, byConsumer };
	}

	it('an upload through A reaches its addressee on B, is readable through B, and each change is one stream event and one webhook', async () => {
		const stream = new VoiceEventStream(reader, { maxLen: 100_000 });
		await stream.createGroup('indexer', '$');

		const bobToken = await tokenFor('bob');
		({ client: bob } = await TestSignalingClient.connect(`${b.url}?token=${bobToken}`));
		const adaToken = await tokenFor('ada');

		// Ada uploads a 1 s tone to Bob through node A (tus: create, then one PATCH).
		const wav = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-wav-')), 'tone.wav');
		writeToneWav(wav, TONE_HZ, 1);
		const bytes = readFileSync(wav);
		const b64 = (s: string) => Buffer.from(s).toString('base64');
		const created = await fetch(`${a.httpBase}/voice/uploads`, {
			method: 'POST',
			headers: {
				authorization: `Bearer ${adaToken}`,
				'tus-resumable': '1.0.0',
				'upload-length': String(bytes.length),
				'upload-metadata': `destination ${b64('user:bob')},filename ${b64('tone.wav')},filetype ${b64('audio/wav')}`,
			},
		});
		expect(created.status).toBe(201);
		const id = created.headers.get('location')!.split('/').pop()!;
		const arrivals = new Map<string, number>();
		bob!.ws.on('message', (raw) => {
			const msg = JSON.parse(raw.toString()) as { method?: string; data?: Notifications['voiceMessage'] };
			if (msg.method === 'voiceMessage' && msg.data!.message.id === id) arrivals.set(msg.data!.message.status, performance.now());
		});
		const patchStarted = performance.now();
		const patched = await fetch(`${a.httpBase}/voice/uploads/${id}`, {
			method: 'PATCH',
			headers: { authorization: `Bearer ${adaToken}`, 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
			body: bytes,
		});
		expect(patched.status).toBe(204);
		const patchDone = performance.now();

		// Bob, on node B, hears of it becoming ready (it was converted on node A).
		const readyNote = (n: { method: string; data: unknown }) =>
			n.method === 'voiceMessage' && (n.data as Notifications['voiceMessage']).message.id === id && (n.data as Notifications['voiceMessage']).message.status === 'ready';
		await bob!.until(() => bob!.notifications.some(readyNote), 20_000, 'voiceMessage ready on node B');
		const notes = bob!.notifications.filter((n) => n.method === 'voiceMessage').map((n) => (n.data as Notifications['voiceMessage']).message);
		expect(notes.map((m) => m.status)).toEqual(['processing', 'ready']);
		expect(notes[1]).toMatchObject({ id, ownerId: 'ada', destination: { kind: 'user', userId: 'bob' }, source: 'upload', audioUrl: `/voice/messages/${id}/audio` });
		expect(notes[1]).not.toHaveProperty('nodeId');
		// processing is published on A while the PATCH is answered; ready after the transcode.
		console.log(
			`upload PATCH on A took ${(patchDone - patchStarted).toFixed(0)} ms; on B: processing at +${(arrivals.get('processing')! - patchStarted).toFixed(0)} ms, ready at +${(arrivals.get('ready')! - patchStarted).toFixed(0)} ms`,
		);

		// Listed and downloaded through node B: metadata from Redis, the file from the shared directory.
		const auth = { authorization: `Bearer ${bobToken}` };
		const list = (await (await fetch(`${b.httpBase}/voice/messages?user=bob`, { headers: auth })).json()) as { messages: { id: string; status: string }[] };
		expect(list.messages).toEqual([expect.objectContaining({ id, status: 'ready' })]);
		const audio = await fetch(`${b.httpBase}/voice/messages/${id}/audio`, { headers: auth });
		expect(audio.status).toBe(200);
		expect(audio.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
		const downloaded = path.join(path.dirname(wav), 'downloaded.ogg');
		writeFileSync(downloaded, Buffer.from(await audio.arrayBuffer()));
		const decoded = decodeFileToMono(downloaded);
		expect(Math.abs(decoded.length / 48 - 1000)).toBeLessThanOrEqual(40);
		expect(Math.abs(dominantFrequency(decoded.subarray(4800)) - TONE_HZ)).toBeLessThanOrEqual(10);

		// Ada deletes it through node B.
		const del = await fetch(`${b.httpBase}/voice/messages/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${adaToken}` } });
		expect(del.status).toBe(204);
		expect((await fetch(`${a.httpBase}/voice/messages/${id}`, { headers: auth })).status).toBe(404);

		// Two consumers of one group, taking turns: every event exactly once, in order.
		const { all, byConsumer } = await readExactly(stream, 3);
		expect(byConsumer.c1!.length).toBeGreaterThan(0);
		expect(byConsumer.c2!.length).toBeGreaterThan(0);
		const events = all.map((e) => e.event);
		expect(events.map((e) => [e.event, e.status, e.nodeId])).toEqual([
			['voiceMessage.created', 'processing', 'node-a'],
			['voiceMessage.ready', 'ready', 'node-a'],
			['voiceMessage.deleted', 'ready', 'node-b'],
		]);
		for (const e of events) expect(e).toMatchObject({ voiceMessageId: id, ownerId: 'ada', destination: 'user:bob', message: { id } });
		expect(events[1]!.message).toMatchObject({ status: 'ready', durationMs: expect.any(Number) as number });
		expect(events.map((e) => e.at)).toEqual([...events.map((e) => e.at)].sort((x, y) => x - y));

		// The webhooks: the same events (same ids, same JSON), each signed, from the node that
		// committed it.
		await waitUntil(() => hooks().length >= 3, 10_000, 'three webhooks');
		await new Promise((r) => setTimeout(r, 300));
		expect(hooks()).toHaveLength(3);
		const hookEvents = hooks().map((h) => JSON.parse(h.body) as VoiceMessageEvent);
		expect(hookEvents.map((e) => e.eventId).sort()).toEqual(events.map((e) => e.eventId).sort());
		for (const h of hooks()) {
			const e = JSON.parse(h.body) as VoiceMessageEvent;
			expect(verifyWebhookSignature(h.body, String(h.headers['x-parley-signature']), WEBHOOK_SECRET)).toBe(true);
			expect(h.headers['x-parley-event']).toBe(e.event);
			expect(h.headers['x-parley-delivery']).toBe(e.eventId);
			expect(e).toEqual(events.find((x) => x.eventId === e.eventId));
		}
	}, 60_000);

	it('a recording on A is announced to its addressee on B, and its events are read once each', async () => {
		const stream = new VoiceEventStream(reader, { maxLen: 100_000 });
		const adaToken = await tokenFor('ada');
		const { client: ada } = await TestSignalingClient.connect(`${a.url}?token=${adaToken}&v=${PROTOCOL_VERSION}`);
		const caps = await ada.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		const joined = await ada.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		expect(joined.ok, JSON.stringify(joined)).toBe(true);
		const publisher = await publishWithWerift(ada);
		try {
			const rec = await ada.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'user', userId: 'bob' } });
			if (!rec.ok) throw new Error(`startRecording: ${rec.error.code}`);
			const id = rec.data.voiceMessageId;
			await publisher.send(encodeTone(TONE_HZ, 50)); // 1 s
			const stopped = await ada.request('stopRecording', { voiceMessageId: id });
			expect(stopped.ok).toBe(true);
			const isReady = (n: { method: string; data: unknown }) =>
				n.method === 'voiceMessage' && (n.data as Notifications['voiceMessage']).message.id === id && (n.data as Notifications['voiceMessage']).message.status === 'ready';
			await bob!.until(() => bob!.notifications.some(isReady), 20_000, 'recording ready on node B');
			const statuses = bob!.notifications
				.filter((n) => n.method === 'voiceMessage' && (n.data as Notifications['voiceMessage']).message.id === id)
				.map((n) => (n.data as Notifications['voiceMessage']).message.status);
			expect(statuses).toEqual(['recording', 'processing', 'ready']);

			const { all } = await readExactly(stream, 3);
			expect(all.map((e) => [e.event.event, e.event.status, e.event.nodeId, e.event.voiceMessageId])).toEqual([
				['voiceMessage.created', 'recording', 'node-a', id],
				['voiceMessage.processing', 'processing', 'node-a', id],
				['voiceMessage.ready', 'ready', 'node-a', id],
			]);
			expect(all[2]!.event.message.durationMs).toBeGreaterThan(900);
		} finally {
			await publisher.close();
			ada.close();
		}
	}, 60_000);
});
