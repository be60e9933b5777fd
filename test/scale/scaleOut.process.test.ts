// Issue 16, "done when": two Parley processes with Redis + Swift's s3api + a SQL server
// (PostgreSQL, then MariaDB), no shared directory (each node has a work folder of its own):
// - an upload started on A with tus-js-client is resumed on B;
// - a recording on A is finished normally and read through both nodes;
// - a recording on A whose node is SIGKILLed about 6 s in is finalized by B from the
//   checkpoints in S3, losing at most one checkpoint (measured in 20 ms Opus frames: frames
//   in the final object vs frames the publisher had sent at the kill), into one valid Ogg
//   Opus object, readable through B;
// - every change of every message is one event on the stream parley:voice-meta and one
//   signed webhook, with `sequence` 1..n and no gaps per message.
// The figures (frames lost, finalize time after the kill) are printed.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { Upload } from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { opusPacketSamples } from '../../server/voice/ogg/OggOpusWriter.js';
import { PAGE_FLAG_BOS, PAGE_FLAG_EOS, readPages } from '../../server/voice/ogg/OggPageWriter.js';
import { VOICE_EVENT_STREAM_KEY, VoiceEventStream } from '../../server/voice/store/VoiceEventStream.js';
import type { VoiceMessageEvent } from '../../server/voice/voiceEvents.js';
import { verifyWebhookSignature } from '../../server/voice/VoiceWebhooks.js';
import { startMariaDb } from '../../testkit/services/mariadb.js';
import { startPostgres } from '../../testkit/services/postgres.js';
import { startSwift, type TestSwift } from '../../testkit/services/swift.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { publishWithWerift, streamTone, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { decodeFileToMono, dominantFrequency, encodeTone, probeDurationMs } from '../helpers/audio.js';
import { startWebhookReceiver, type ReceivedHook, type WebhookReceiver } from '../../testkit/webhookReceiver.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { writeToneWav } from '../helpers/wav.js';
import { startNode, token, waitUntil, type NodeProcess } from '../cluster/helpers/nodes.js';

const WEBHOOK_SECRET = 'scale-out-webhook-secret-0123456789';
const CHECKPOINT_MS = 2000;
const FRAME_MS = 20;
/** Frames one Ogg page holds at most (OggOpusWriter's 1 s pages). */
const PAGE_FRAMES = 1000 / FRAME_MS;
/** What a SIGKILL may cost: one checkpoint interval of frames, plus one page. */
const ALLOWED_LOST_FRAMES = CHECKPOINT_MS / FRAME_MS + PAGE_FRAMES;
const NODE_TTL_MS = 1500;
/** 6.5 s: between two checkpoints (every 2 s from the start), so some audio is at stake. */
const KILL_AFTER_FRAMES = 325;
const TONE_HZ = 440;

interface SqlServer {
	url: string;
	close(): Promise<void>;
}

/** 20 ms frames in a whole Ogg Opus file, after checking it is one: every byte in a page with
 * a good CRC, OpusHead on the BOS page, one serial, contiguous page numbers, EOS only last.
 * Parley's writer ends on the exact sample count; an encoder (ffmpeg, for uploads) may trim
 * part of the last frame. */
function oggOpusFrames(file: Buffer, { exactEnd = true } = {}): { frames: number; pages: number } {
	const pages = readPages(file);
	expect(pages.reduce((n, p) => n + p.length, 0)).toBe(file.length);
	expect(pages.length).toBeGreaterThanOrEqual(3);
	expect(pages[0]!.packets[0]!.toString('ascii', 0, 8)).toBe('OpusHead');
	expect(pages[0]!.flags & PAGE_FLAG_BOS).toBe(PAGE_FLAG_BOS);
	expect(pages[1]!.packets[0]!.toString('ascii', 0, 8)).toBe('OpusTags');
	expect(new Set(pages.map((p) => p.serial)).size).toBe(1);
	expect(pages.map((p) => p.sequence)).toEqual(pages.map((_, i) => i));
	expect(pages.map((p) => (p.flags & PAGE_FLAG_EOS) !== 0)).toEqual(pages.map((_, i) => i === pages.length - 1));
	const samples = pages.slice(2).reduce((n, p) => n + p.packets.reduce((m, packet) => m + opusPacketSamples(packet), 0), 0);
	const end = samples + pages[0]!.packets[0]!.readUInt16LE(10);
	expect(pages.length).toBeGreaterThanOrEqual(4); // headers and two audio pages at least
	if (exactEnd) expect(Number(pages.at(-1)!.granule)).toBe(end);
	// End trimming (RFC 7845 4.4) removes samples of the last page only.
	else expect(Number(pages.at(-1)!.granule)).toBeGreaterThan(Number(pages.at(-2)!.granule));
	expect(Number(pages.at(-1)!.granule)).toBeLessThanOrEqual(end);
	return { frames: samples / (48 * FRAME_MS), pages: pages.length };
}

// One Swift for the file (a bucket per suite): it is the slowest service to start.
let swift: TestSwift;
beforeAll(async () => {
	swift = await startSwift();
	console.log(`Swift s3api up in ${swift.startMs} ms`);
}, 60_000);
afterAll(async () => {
	await swift?.close();
});

function scaleOutSuite(sqlName: string, startSql: () => Promise<SqlServer>): void {
	describe(`two nodes, Redis + Swift s3api + ${sqlName}, no shared directory`, () => {
		let redis: TestRedis;
		let raw: Redis;
		let s3: S3Client;
		let sql: SqlServer;
		let a: NodeProcess;
		let b: NodeProcess;
		let hookServer: WebhookReceiver;
		const hooks = (): ReceivedHook[] => hookServer.hooks;
		const bucket = `parley-${sqlName.toLowerCase()}`;
		const prefix = 'voice/';
		/** Every message the tests made, and the events each must have had. */
		const expected = new Map<string, string[]>();
		const tokenFor = (userId: string) => token(userId, { channels: ['room'] });

		beforeAll(async () => {
			hookServer = await startWebhookReceiver();
			const t0 = performance.now();
			[redis, sql] = await Promise.all([startRedis(), startSql()]);
			const servicesMs = Math.round(performance.now() - t0);
			raw = new Redis(redis.url);
			s3 = swift.client();
			await swift.createBucket(bucket);
			const env = {
				...swift.nodeEnv(bucket, prefix),
				PARLEY_METADATA_URL: sql.url,
				// A dead node's outbox leases (events it claimed but did not publish) pass to the other soon.
				PARLEY_METADATA_OUTBOX_LEASE_MS: '2000',
				PARLEY_VOICE_RECORDING_CHECKPOINT_MS: String(CHECKPOINT_MS),
				PARLEY_CLUSTER_NODE_TTL_MS: String(NODE_TTL_MS),
				PARLEY_VOICE_WEBHOOK_URL: hookServer.url,
				PARLEY_VOICE_WEBHOOK_SECRET: WEBHOOK_SECRET,
				// testEnv gives each node a storage.dir (its work folder) of its own: nothing is shared on disk.
			};
			// Together: both run the SQL migrations at start, under the store's lock.
			[a, b] = await Promise.all([startNode(redis.url, 'node-a', env), startNode(redis.url, 'node-b', env)]);
			console.log(`[${sqlName}] Redis and ${sqlName} up in ${servicesMs} ms, two nodes in ${Math.round(performance.now() - t0) - servicesMs} ms`);
		}, 60_000);

		afterAll(async () => {
			await Promise.all([a?.stop(), b?.stop()]);
			s3?.destroy();
			raw?.disconnect();
			await hookServer?.close();
			await Promise.all([redis?.stop(), sql?.close()]);
		});

		const keys = async (under: string): Promise<string[]> => {
			const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}${under}` }));
			return (res.Contents ?? []).map((o) => o.Key!);
		};

		async function messageVia(node: NodeProcess, id: string, userId: string): Promise<VoiceMessageInfo> {
			const res = await fetch(`${node.httpBase}/voice/messages/${id}`, { headers: { authorization: `Bearer ${await tokenFor(userId)}` } });
			expect(res.status).toBe(200);
			return (await res.json()) as VoiceMessageInfo;
		}

		async function audioVia(node: NodeProcess, id: string, userId: string): Promise<Buffer> {
			const res = await fetch(`${node.httpBase}/voice/messages/${id}/audio`, { headers: { authorization: `Bearer ${await tokenFor(userId)}` } });
			expect(res.status).toBe(200);
			expect(res.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
			return Buffer.from(await res.arrayBuffer());
		}

		async function untilFinal(node: NodeProcess, id: string, userId: string, timeoutMs: number): Promise<VoiceMessageInfo> {
			let m: VoiceMessageInfo | undefined;
			await waitUntil(
				async () => {
					const res = await fetch(`${node.httpBase}/voice/messages/${id}`, { headers: { authorization: `Bearer ${await tokenFor(userId)}` } });
					if (res.status !== 200) return false;
					m = (await res.json()) as VoiceMessageInfo;
					return m.status === 'ready' || m.status === 'failed';
				},
				timeoutMs,
				`message ${id} ready through ${node.nodeId}`,
				100,
			);
			return m!;
		}

		/** The stored object of a ready message is the file both nodes serve. */
		async function storedObject(id: string): Promise<Buffer> {
			const found = (await keys('ada/')).filter((k) => k.endsWith(`/${id}.ogg`));
			expect(found).toHaveLength(1);
			const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: found[0]! }));
			return Buffer.from(await res.Body!.transformToByteArray());
		}

		async function joinAndPublish(node: NodeProcess): Promise<{ client: TestSignalingClient; publisher: WeriftPublisher }> {
			const { client } = await TestSignalingClient.connect(`${node.url}?token=${await tokenFor('ada')}&v=${PROTOCOL_VERSION}`);
			const caps = await client.request('getRouterRtpCapabilities', {});
			if (!caps.ok) throw new Error('caps');
			const joined = await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
			expect(joined.ok, JSON.stringify(joined)).toBe(true);
			return { client, publisher: await publishWithWerift(client) };
		}

		it('an upload started on A with tus-js-client is resumed on B, and read through both', async () => {
			const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-scale-'));
			const wav = path.join(dir, 'tone.wav');
			writeToneWav(wav, 660, 1);
			const file = readFileSync(wav);
			const chunkSize = 32 * 1024;
			const auth = { Authorization: `Bearer ${await tokenFor('ada')}` };
			const url = await new Promise<string>((resolve, reject) => {
				const upload = new Upload(file, {
					endpoint: `${a.httpBase}/voice/uploads`,
					chunkSize,
					headers: auth,
					metadata: { destination: 'user:bob', filename: 'tone.wav', filetype: 'audio/wav' },
					retryDelays: [],
					onChunkComplete: () => void upload.abort().then(() => resolve(upload.url!), reject),
					onError: reject,
				});
				upload.start();
			});
			const uploadPath = new URL(url).pathname;
			const id = uploadPath.split('/').pop()!;
			expected.set(id, ['voiceMessage.created', 'voiceMessage.ready']);
			// B knows how far A got: the offset is in the shared state, not on A's disk.
			const head = await fetch(`${b.httpBase}${uploadPath}`, { method: 'HEAD', headers: { ...auth, 'tus-resumable': '1.0.0' } });
			expect(head.status).toBe(200);
			expect(Number(head.headers.get('upload-offset'))).toBe(chunkSize);
			const resumed: number[] = [];
			await new Promise<void>((resolve, reject) => {
				const upload = new Upload(file, {
					endpoint: `${b.httpBase}/voice/uploads`,
					uploadUrl: `${b.httpBase}${uploadPath}`,
					chunkSize,
					headers: auth,
					retryDelays: [],
					onChunkComplete: (size) => void resumed.push(size),
					onSuccess: () => resolve(),
					onError: reject,
				});
				upload.start();
			});
			expect(resumed.reduce((x, y) => x + y, 0)).toBe(file.length - chunkSize);
			const m = await untilFinal(b, id, 'bob', 20_000);
			expect(m).toMatchObject({ id, status: 'ready', source: 'upload' });
			const viaA = await audioVia(a, id, 'bob');
			const viaB = await audioVia(b, id, 'bob');
			expect(viaA.equals(viaB)).toBe(true);
			expect(viaB.equals(await storedObject(id))).toBe(true);
			oggOpusFrames(viaB, { exactEnd: false });
			expect(await keys(`.uploads/${id}/`)).not.toContainEqual(expect.stringMatching(/\/\d{16}$/)); // parts gone
		}, 40_000);

		it('a recording on A stopped normally is one object, checkpoints removed, read through both nodes', async () => {
			const { client, publisher } = await joinAndPublish(a);
			try {
				const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'user', userId: 'bob' } });
				if (!rec.ok) throw new Error(`startRecording: ${rec.error.code}`);
				const id = rec.data.voiceMessageId;
				expected.set(id, ['voiceMessage.created', 'voiceMessage.processing', 'voiceMessage.ready']);
				const sender = streamTone(publisher, encodeTone(TONE_HZ, 50));
				await waitUntil(() => sender.sent >= 125, 10_000, '2.5 s of tone');
				// Checkpoints are in the bucket while it runs.
				await waitUntil(async () => (await keys(`.recordings/${id}/`)).length >= 1, 5000, 'a checkpoint in the bucket');
				await sender.stop();
				const stopped = await client.request('stopRecording', { voiceMessageId: id });
				expect(stopped.ok).toBe(true);
				const m = await untilFinal(b, id, 'bob', 15_000);
				expect(m.status).toBe('ready');
				const viaA = await audioVia(a, id, 'bob');
				const viaB = await audioVia(b, id, 'bob');
				expect(viaA.equals(viaB)).toBe(true);
				expect(viaB.equals(await storedObject(id))).toBe(true);
				const { frames } = oggOpusFrames(viaB);
				expect(Math.abs(frames - sender.sent)).toBeLessThanOrEqual(5);
				expect(await keys(`.recordings/${id}/`)).toEqual([]);
				expect(await messageVia(a, id, 'ada')).toMatchObject({ id, status: 'ready' });
			} finally {
				await publisher.close();
				client.close();
			}
		}, 30_000);

		it(`a recording on A, SIGKILLed ~6 s in, is finalized by B losing at most one checkpoint (${ALLOWED_LOST_FRAMES} frames)`, async () => {
			const { client, publisher } = await joinAndPublish(a);
			let id: string;
			let sentAtKill: number;
			let killedAt: number;
			try {
				const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'user', userId: 'bob' } });
				if (!rec.ok) throw new Error(`startRecording: ${rec.error.code}`);
				id = rec.data.voiceMessageId;
				expected.set(id, ['voiceMessage.created', 'voiceMessage.processing', 'voiceMessage.ready']);
				const sender = streamTone(publisher, encodeTone(TONE_HZ, 50));
				await waitUntil(() => sender.sent >= KILL_AFTER_FRAMES, 15_000, '6 s of tone');
				sentAtKill = sender.sent;
				killedAt = performance.now();
				a.proc.child.kill('SIGKILL');
				await sender.stop();
				await a.proc.exited;
			} finally {
				await publisher.close();
				client.close();
			}
			const checkpointsAtKill = (await keys(`.recordings/${id}/`)).length;

			const m = await untilFinal(b, id, 'bob', 30_000);
			const finalizeMs = Math.round(performance.now() - killedAt);
			expect(m.status, m.failureReason).toBe('ready');
			const audio = await audioVia(b, id, 'bob');
			expect(audio.equals(await storedObject(id))).toBe(true);
			const { frames, pages } = oggOpusFrames(audio);
			const lost = sentAtKill - frames;
			console.log(
				`[${sqlName}] SIGKILL at ${sentAtKill} frames sent (${checkpointsAtKill} checkpoints in S3): final object ${frames} frames in ${pages} pages, ` +
					`${lost} frames (${lost * FRAME_MS} ms) lost, allowed ${ALLOWED_LOST_FRAMES}; ready through B ${finalizeMs} ms after the kill (node TTL ${NODE_TTL_MS} ms, grace ${2 * NODE_TTL_MS} ms)`,
			);
			expect(frames).toBeLessThanOrEqual(sentAtKill);
			expect(lost).toBeLessThanOrEqual(ALLOWED_LOST_FRAMES);
			expect(checkpointsAtKill).toBeGreaterThanOrEqual(2);
			// One valid Ogg Opus object, as decoders see it: its length and its tone.
			const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-scale-')), 'recovered.ogg');
			writeFileSync(out, audio);
			expect(Math.abs(probeDurationMs(out) - frames * FRAME_MS)).toBeLessThanOrEqual(40);
			const decoded = decodeFileToMono(out);
			expect(Math.abs(dominantFrequency(decoded.subarray(4800)) - TONE_HZ)).toBeLessThanOrEqual(10);
			expect(m.durationMs).toBe(frames * FRAME_MS);
			// Finalized and committed: the checkpoints are gone.
			expect(await keys(`.recordings/${id}/`)).toEqual([]);
		}, 60_000);

		it('every change is one event on parley:voice-meta and one signed webhook, sequence 1..n per message', async () => {
			expect(expected.size).toBeGreaterThan(0);
			const total = [...expected.values()].reduce((n, e) => n + e.length, 0);
			const streamEvents = async (): Promise<VoiceMessageEvent[]> => {
				const entries = (await raw.xrange(VOICE_EVENT_STREAM_KEY, '-', '+')) as [string, string[]][];
				return entries.map(([streamId, fields]) => {
					const e = VoiceEventStream.parse(fields);
					if (e instanceof Error) throw new Error(`stream entry ${streamId}: ${e.message}`);
					return e;
				});
			};
			const distinct = (events: VoiceMessageEvent[]) => new Map(events.map((e) => [e.eventId, e]));
			await waitUntil(async () => distinct(await streamEvents()).size >= total && new Set(hooks().map((h) => h.headers['x-parley-delivery'])).size >= total, 20_000, `${total} events on the stream and the webhook`);
			await new Promise((r) => setTimeout(r, 500)); // nothing more trickles in

			const onStream = distinct(await streamEvents());
			for (const h of hooks()) {
				expect(verifyWebhookSignature(h.body, String(h.headers['x-parley-signature']), WEBHOOK_SECRET)).toBe(true);
				const e = JSON.parse(h.body) as VoiceMessageEvent;
				expect(h.headers['x-parley-delivery']).toBe(e.eventId);
				expect(h.headers['x-parley-event']).toBe(e.event);
			}
			const onWebhook = distinct(hooks().map((h) => JSON.parse(h.body) as VoiceMessageEvent));
			// The same events both ways (a retry may deliver one twice; its eventId says so).
			expect([...onWebhook.keys()].sort()).toEqual([...onStream.keys()].sort());
			for (const [eventId, e] of onWebhook) expect(e).toEqual(onStream.get(eventId));
			for (const [id, names] of expected) {
				const ofMessage = [...onStream.values()].filter((e) => e.voiceMessageId === id).sort((x, y) => x.sequence - y.sequence);
				expect(ofMessage.map((e) => e.sequence), id).toEqual(names.map((_, i) => i + 1));
				expect(ofMessage.map((e) => e.event), id).toEqual(names);
			}
			expect(onStream.size).toBe(total);
		}, 30_000);
	});
}

scaleOutSuite('PostgreSQL', async () => {
	const pg = await startPostgres();
	return { url: pg.url, close: () => pg.close() };
});

scaleOutSuite('MariaDB', async () => {
	const db = await startMariaDb();
	return { url: db.url, close: () => db.close() };
});
