// Voice messages while Redis (their metadata store in a cluster) is away: the API answers 503
// E_STORAGE_UNAVAILABLE instead of 500, a finished upload is kept (503 + Retry-After) and
// completes on the client's retry once Redis is back. Then the message is ready.
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisVoiceMessageStore } from '../../server/voice/store/RedisVoiceMessageStore.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { VoiceStoreUnavailableError } from '../../server/voice/store/VoiceMessageStore.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { writeToneWav } from '../helpers/wav.js';

const SECRET = 'voice-redis-down-secret-0123456789-abcdef';

describe('voice messages while Redis is down', () => {
	let redis: TestRedis;
	let server: ParleyServer;
	let base: string;
	let token: string;

	beforeAll(async () => {
		redis = await startRedis();
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, REDIS_URL: redis.url, PARLEY_CLUSTER_NODE_ID: 'solo' }), testLogger());
		base = `http://127.0.0.1:${server.http.port}`;
		token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canRecord: true }, ttlS: 600 }, new TextEncoder().encode(SECRET));
	}, 30_000);

	afterAll(async () => {
		await server?.shutdown('test end');
		await redis?.stop();
	});

	it('answers 503 while Redis is away, keeps the finished upload, and completes it when Redis is back', async () => {
		expect(server.voiceStore).toBeInstanceOf(RedisVoiceMessageStore);
		const auth = { authorization: `Bearer ${token}` };
		const wav = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-wav-')), 'tone.wav');
		writeToneWav(wav, 500, 1);
		const bytes = readFileSync(wav);
		const b64 = (s: string) => Buffer.from(s).toString('base64');
		const created = await fetch(`${base}/voice/uploads`, {
			method: 'POST',
			headers: { ...auth, 'tus-resumable': '1.0.0', 'upload-length': String(bytes.length), 'upload-metadata': `destination ${b64('channel:room')},filename ${b64('tone.wav')}` },
		});
		expect(created.status).toBe(201);
		const id = created.headers.get('location')!.split('/').pop()!;

		await redis.stop();
		const started = performance.now();
		const list = await fetch(`${base}/voice/messages?channel=room`, { headers: auth });
		const listMs = performance.now() - started;
		expect(list.status).toBe(503);
		expect(((await list.json()) as { error: { code: string } }).error.code).toBe('E_STORAGE_UNAVAILABLE');
		console.log(`list with Redis down answered 503 in ${listMs.toFixed(0)} ms`);
		expect(listMs).toBeLessThan(5000);
		await expect(server.voiceStore.get(id)).rejects.toThrow(VoiceStoreUnavailableError);

		// The last chunk is stored, but the message cannot be recorded: 503, retry later.
		const patch = () =>
			fetch(`${base}/voice/uploads/${id}`, {
				method: 'PATCH',
				headers: { ...auth, 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
				body: bytes,
			});
		const refused = await patch();
		expect(refused.status).toBe(503);
		expect(refused.headers.get('retry-after')).toBeTruthy();

		// Redis is back (empty, on the same port): the client's HEAD finishes the upload.
		redis = await startRedis({ port: redis.port });
		let message: VoiceMessageInfo | undefined;
		const deadline = Date.now() + 20_000;
		while (Date.now() < deadline && message?.status !== 'ready') {
			const head = await fetch(`${base}/voice/uploads/${id}`, { method: 'HEAD', headers: { ...auth, 'tus-resumable': '1.0.0' } });
			if (head.status === 200) {
				const res = await fetch(`${base}/voice/messages/${id}`, { headers: auth });
				if (res.status === 200) message = (await res.json()) as VoiceMessageInfo;
			}
			await new Promise((r) => setTimeout(r, 100));
		}
		expect(message).toMatchObject({ id, status: 'ready', ownerId: 'ada', originalName: 'tone.wav' });
		expect(Math.abs(message!.durationMs! - 1000)).toBeLessThanOrEqual(40);
	}, 60_000);
});
