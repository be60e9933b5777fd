// Issue 16's "S3 restarted in the middle of a recording", against a real node process with
// storage.backend s3 (Swift's s3api) recording a live producer (werift sending a tone): Swift
// is stopped a few checkpoints in and started again while the tone goes on; the recording
// then stops normally and finalizes to one valid Ogg Opus object (every byte in a page, BOS
// first, EOS last) whose decoded length matches the frames sent, ready and readable.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { PAGE_FLAG_BOS, PAGE_FLAG_EOS, readPages } from '../../server/voice/ogg/OggPageWriter.js';
import { startSwift, type TestSwift } from '../../testkit/services/swift.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { publishWithWerift, streamTone } from '../../testkit/weriftPublisher.js';
import { encodeTone, probeDurationMs } from '../helpers/audio.js';
import { parsePrometheusText, total } from '../helpers/prometheusText.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, token, waitUntil, type NodeProcess } from '../cluster/helpers/nodes.js';

const BUCKET = 'parley-rec-restart';
const FRAME_MS = 20;

let swift: TestSwift;
let s3: S3Client;
let redis: TestRedis;
let node: NodeProcess;
let tmp: string;

beforeAll(async () => {
	tmp = mkdtempSync(path.join(os.tmpdir(), 'parley-s3-rec-'));
	[swift, redis] = await Promise.all([startSwift(), startRedis()]);
	await swift.createBucket(BUCKET);
	s3 = swift.client();
	node = await startNode(redis.url, 'rec-node', { ...swift.nodeEnv(BUCKET, 'voice/'), PARLEY_VOICE_RECORDING_CHECKPOINT_MS: '1000' });
}, 90_000);

afterAll(async () => {
	await node?.stop();
	s3?.destroy();
	await swift?.close();
	await redis?.stop();
	if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('a recording on storage.backend s3 while Swift restarts', () => {
	it('finalizes to one valid Ogg Opus object with the duration sent, ready and readable', async () => {
		const ada = await token('ada', { channels: ['room'] });
		const { client } = await TestSignalingClient.connect(`${node.url}?token=${ada}&v=${PROTOCOL_VERSION}`);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		const joined = await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		expect(joined.ok, JSON.stringify(joined)).toBe(true);
		const publisher = await publishWithWerift(client);
		try {
			const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			if (!rec.ok) throw new Error(`startRecording: ${rec.error.code}`);
			const id = rec.data.voiceMessageId;
			const sender = streamTone(publisher, encodeTone(440, 50));
			const checkpoints = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `voice/.recordings/${id}/` }))).Contents ?? []).length;
			await waitUntil(async () => sender.sent >= 150 && (await checkpoints()) >= 1, 15_000, 'a checkpoint in the bucket');
			const t0 = performance.now();
			await swift.stop();
			// Counted from when Swift is down (stop() itself takes seconds): 3 s, three checkpoints.
			const atStop = sender.sent;
			await waitUntil(() => sender.sent >= atStop + 150, 15_000, 'tone sent while Swift is away');
			await swift.start();
			console.log(`Swift away ${(performance.now() - t0).toFixed(0)} ms in the middle of the recording (stop and start included)`);
			const atStart = sender.sent;
			await waitUntil(() => sender.sent >= atStart + 150, 15_000, 'tone sent after Swift is back');
			const sent = await sender.stop();
			expect((await client.request('stopRecording', { voiceMessageId: id })).ok).toBe(true);
			let m: VoiceMessageInfo | undefined;
			await waitUntil(
				async () => {
					const res = await fetch(`${node.httpBase}/voice/messages/${id}`, { headers: { authorization: `Bearer ${ada}` } });
					if (res.status !== 200) return false;
					m = (await res.json()) as VoiceMessageInfo;
					return m.status === 'ready' || m.status === 'failed';
				},
				40_000,
				'the recording final',
				100,
			);
			expect(m!.status).toBe('ready');
			const audio = await fetch(`${node.httpBase}/voice/messages/${id}/audio`, { headers: { authorization: `Bearer ${ada}` } });
			expect(audio.status).toBe(200);
			const bytes = Buffer.from(await audio.arrayBuffer());
			const pages = readPages(bytes);
			expect(pages.reduce((n, p) => n + p.length, 0)).toBe(bytes.length);
			expect(pages[0]!.flags & PAGE_FLAG_BOS).toBe(PAGE_FLAG_BOS);
			expect(pages.at(-1)!.flags & PAGE_FLAG_EOS).toBe(PAGE_FLAG_EOS);
			expect(pages.slice(0, -1).every((p) => (p.flags & PAGE_FLAG_EOS) === 0)).toBe(true);
			const file = path.join(tmp, `${id}.ogg`);
			writeFileSync(file, bytes);
			const decodedMs = probeDurationMs(file);
			console.log(`recording across the Swift restart: ${sent} frames sent (${sent * FRAME_MS} ms), ${decodedMs} ms decoded, ${m!.durationMs} ms stored`);
			// Packets lost on loopback RTP or at the stop are a few frames at most.
			expect(Math.abs(decodedMs - sent * FRAME_MS)).toBeLessThanOrEqual(5 * FRAME_MS);
			expect(await checkpoints()).toBe(0);
			// The outage hit the checkpoints (they were retried, not skipped): each PUT that failed
			// while Swift was away is one failed write.
			const failures = total(parsePrometheusText(await (await fetch(`${node.httpBase}/metrics`)).text()), 'parley_storage_failures_total', { operation: 'write' });
			console.log(`storage writes counted as failed during the outage: ${failures}`);
			expect(failures).toBeGreaterThanOrEqual(1);
		} finally {
			await publisher.close();
			client.close();
		}
	}, 120_000);
});
