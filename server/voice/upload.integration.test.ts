// Uploads through the whole server: tus-js-client -> tus server -> transcoder -> storage ->
// metadata -> the `voiceMessage` notification, for a good file and for hostile ones.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Upload } from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeDurationMs } from '../../test/helpers/audio.js';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { ParleyServer } from '../ParleyServer.js';
import { mintAccessToken } from '../auth/accessToken.js';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { LocalVoiceStorage } from './files/VoiceStorage.js';

const SECRET = 'upload-integration-secret-0123456789-abcd';

describe('voice-message uploads through the server', () => {
	let server: ParleyServer;
	let base: string;
	let token: string;
	let listener: TestSignalingClient;
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-upload-int-'));
	const key = new TextEncoder().encode(SECRET);

	function upload(file: Buffer, name: string, bearer = token): Promise<string> {
		return new Promise((resolve, reject) => {
			const u = new Upload(file, {
				endpoint: `${base}/voice/uploads`,
				chunkSize: 32 * 1024,
				headers: { authorization: `Bearer ${bearer}` },
				metadata: { destination: 'channel:room', filename: name, filetype: 'application/octet-stream' },
				retryDelays: [],
				onSuccess: () => resolve(u.url!),
				onError: reject,
			});
			u.start();
		});
	}

	beforeAll(async () => {
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_VOICE_MAX_UPLOAD_BYTES: String(2 * 1024 * 1024) }), testLogger());
		base = `http://127.0.0.1:${server.http.port}`;
		token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canRecord: true }, ttlS: 600 }, key);
		// Bob is in the channel: he is told about every message sent to it.
		const bob = await mintAccessToken({ userId: 'bob', channels: ['room'], ttlS: 600 }, key);
		({ client: listener } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${bob}&v=${PROTOCOL_VERSION}`));
		const caps = await listener.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		await listener.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
	});

	afterAll(async () => {
		listener?.close();
		await server?.shutdown('test end');
	});

	it('turns an AMR-NB phone recording into a ready Ogg Opus voice message, and tells the channel', async () => {
		const wav = path.join(dir, 'speech.wav');
		const amr = path.join(dir, 'speech.amr-nb'); // sox picks the AMR-NB encoder by extension
		execFileSync('espeak-ng', ['-w', wav, 'A voice message recorded on an old phone.']);
		execFileSync('sox', [wav, '-r', '8000', '-c', '1', amr]);
		const url = await upload(readFileSync(amr), 'memo.amr');
		const id = url.split('/').pop()!;
		const processing = await listener.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status === 'processing');
		expect(processing.message).toMatchObject({ source: 'upload', ownerId: 'ada', originalName: 'memo.amr' });
		const ready = await listener.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status === 'ready', 15_000);
		expect(ready.message.waveform).toHaveLength(100);
		expect(Math.max(...ready.message.waveform!)).toBeGreaterThan(20);
		const m = (await server.voiceStore.get(id))!;
		expect(m.detectedFormat).toBe('amr-nb');
		expect(m.codec).toMatchObject({ codec: 'opus', channels: 1 });
		const stored = new LocalVoiceStorage(server.storageDir).pathOf(m);
		// Against the WAV it was made from: ffprobe only estimates an AMR file's length from
		// its bitrate. sox pads AMR's last 20 ms frame, hence 80 ms.
		expect(Math.abs(probeDurationMs(stored) - probeDurationMs(wav))).toBeLessThanOrEqual(80);
		expect(Math.abs(m.durationMs! - probeDurationMs(wav))).toBeLessThanOrEqual(80);
	});

	it('fails random bytes with a clear reason, and keeps serving', async () => {
		const url = await upload(randomBytes(100_000), 'song.mp3');
		const id = url.split('/').pop()!;
		const failed = await listener.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status === 'failed', 15_000);
		expect(failed.message.failureReason).toMatch(/not audio|format/i);
		expect((await fetch(`${base}/voice/messages/${id}/audio`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(409);
		expect((await fetch(`${base}/healthz`)).status).toBe(200);
	});

	it('refuses an upload without the grant (403) and one over the size limit (413)', async () => {
		const noGrant = await mintAccessToken({ userId: 'carol', channels: ['room'], grants: { canRecord: false }, ttlS: 600 }, key);
		const post = (bearer: string, length: number) =>
			fetch(`${base}/voice/uploads`, {
				method: 'POST',
				headers: { authorization: `Bearer ${bearer}`, 'tus-resumable': '1.0.0', 'upload-length': String(length), 'upload-metadata': `destination ${Buffer.from('channel:room').toString('base64')}` },
			});
		expect((await post(noGrant, 1000)).status).toBe(403);
		expect((await post(token, 3 * 1024 * 1024)).status).toBe(413);
		const elsewhere = await fetch(`${base}/voice/uploads`, {
			method: 'POST',
			headers: { authorization: `Bearer ${token}`, 'tus-resumable': '1.0.0', 'upload-length': '1000', 'upload-metadata': `destination ${Buffer.from('channel:secret').toString('base64')}` },
		});
		expect(elsewhere.status).toBe(403);
	});
});
