// Quotas per user and per address (issue 15, gap 4), the WebSocket Origin allow-list, and a
// startRecording that finishes after its timeout. A real server, real sockets, real workers
// and real files. The figures the issue asks for (connections one user holds, unfinished
// uploads one user creates) are measured here with the quota on and off and logged.
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { startRecordingPublisher, type RecordingPublisher } from '../helpers/recordingPublisher.js';
import { TestSignalingClient, type Reply } from '../../testkit/signalingClient.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken, type MintOptions } from '../../server/auth/accessToken.js';
import { CLOSE_CODES, PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import type { ErrorCode } from '../../protocol/errors.js';
import { STORED_BYTES_QUOTA_REASON } from '../../server/voice/VoiceMessageService.js';
import { encodeTone } from '../helpers/audio.js';

const SECRET = 'quota-test-secret-that-is-long-enough-012345';
const KEY = new TextEncoder().encode(SECRET);

function errorCode(reply: Reply): ErrorCode | 'OK' {
	return reply.ok ? 'OK' : reply.error.code;
}

describe('quotas', () => {
	let server: ParleyServer | undefined;
	let recording: RecordingPublisher | undefined;
	const clients: TestSignalingClient[] = [];

	async function start(env: Record<string, string>): Promise<ParleyServer> {
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, ...env }), testLogger());
		return server;
	}

	afterEach(async () => {
		for (const c of clients.splice(0)) c.close();
		await recording?.publisher.close();
		recording?.client.close();
		await (recording?.server ?? server)?.shutdown('test end');
		server = recording = undefined;
	});

	const token = (userId: string, overrides: Partial<MintOptions> = {}) =>
		mintAccessToken({ userId, channels: ['room', 'team-*'], grants: { canPublish: true, canSubscribe: true, canRecord: true }, ttlS: 600, ...overrides }, KEY);
	const wsUrl = (s: ParleyServer, t: string) => `ws://127.0.0.1:${s.http.port}/ws?token=${encodeURIComponent(t)}&v=${PROTOCOL_VERSION}`;

	/** Opens a socket and waits for its welcome (admitted) or its close (refused). */
	async function attempt(s: ParleyServer, userId: string): Promise<{ admitted: true; client: TestSignalingClient } | { admitted: false; code: number; reason: string }> {
		const client = await TestSignalingClient.open(wsUrl(s, await token(userId)));
		clients.push(client);
		const outcome = await Promise.race([client.waitFor('welcome', () => true, 10_000).then(() => 'welcome' as const), client.closed]);
		if (outcome === 'welcome') return { admitted: true, client };
		return { admitted: false, ...outcome };
	}

	/** How many connections `userId` holds before the first refusal (at most `max` tried). */
	async function holdable(s: ParleyServer, userId: string, max: number): Promise<{ held: number; admitted: TestSignalingClient[]; refusal?: { code: number; reason: string } }> {
		const admitted: TestSignalingClient[] = [];
		for (let held = 0; held < max; held++) {
			const a = await attempt(s, userId);
			if (!a.admitted) return { held, admitted, refusal: { code: a.code, reason: a.reason } };
			admitted.push(a.client);
		}
		return { held: max, admitted };
	}

	describe('connections', () => {
		it('one user holds at most signaling.maxConnectionsPerUser; others still connect; a closed one frees a place', async () => {
			const s = await start({ PARLEY_SIGNALING_MAX_CONNECTIONS: '20', PARLEY_SIGNALING_MAX_CONNECTIONS_PER_USER: '3', PARLEY_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS: '0' });
			const greedy = await holdable(s, 'greedy', 20);
			console.info(`connections one user holds with maxConnectionsPerUser=3 (maxConnections=20): ${greedy.held}`);
			expect(greedy.held).toBe(3);
			expect(greedy.refusal).toEqual({ code: CLOSE_CODES.OVERLOADED, reason: expect.stringMatching(/^E_TOO_MANY_USER_CONNECTIONS: /) as unknown as string });
			expect((await attempt(s, 'someone-else')).admitted).toBe(true);
			// The refused socket counted for nothing; closing an admitted one frees its place.
			const one = greedy.admitted[0]!;
			one.close();
			await one.closed;
			await one.until(() => s.signaling.sessionCount === 3, 2000, 'close seen by the server');
			expect((await attempt(s, 'greedy')).admitted).toBe(true);
			expect((await attempt(s, 'greedy')).admitted).toBe(false);
		});

		it('without the quota (0, the old behaviour) one user takes every connection of the node', async () => {
			const s = await start({ PARLEY_SIGNALING_MAX_CONNECTIONS: '20', PARLEY_SIGNALING_MAX_CONNECTIONS_PER_USER: '0', PARLEY_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS: '0' });
			const greedy = await holdable(s, 'greedy', 21);
			console.info(`connections one user holds with maxConnectionsPerUser=0 (maxConnections=20): ${greedy.held}`);
			expect(greedy.held).toBe(20);
			// And everyone else is locked out: the figure the quota exists for.
			const other = await attempt(s, 'someone-else');
			expect(other).toMatchObject({ admitted: false, code: CLOSE_CODES.OVERLOADED, reason: expect.stringMatching(/^E_RATE_LIMIT/) as unknown as string });
		});

		it('the default quota leaves room for other users', async () => {
			const s = await start({ PARLEY_SIGNALING_MAX_CONNECTIONS: '20' });
			const greedy = await holdable(s, 'greedy', 20);
			console.info(`connections one user holds with the defaults (maxConnections=20): ${greedy.held}`);
			expect(greedy.held).toBe(s.config.signaling.maxConnectionsPerUser);
			expect((await attempt(s, 'someone-else')).admitted).toBe(true);
		});

		it('one address holds at most signaling.maxConnectionsPerAddress, whatever the users', async () => {
			const s = await start({ PARLEY_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS: '2' });
			expect((await attempt(s, 'a')).admitted).toBe(true);
			expect((await attempt(s, 'b')).admitted).toBe(true);
			expect(await attempt(s, 'c')).toMatchObject({ admitted: false, code: CLOSE_CODES.OVERLOADED, reason: expect.stringMatching(/^E_TOO_MANY_ADDRESS_CONNECTIONS: /) as unknown as string });
		});
	});

	describe('signaling.allowedOrigins', () => {
		/** The upgrade's HTTP status: 101 when it became a WebSocket. */
		async function upgradeStatus(s: ParleyServer, origin: string | undefined): Promise<number> {
			const ws = new WebSocket(wsUrl(s, await token('ada')), origin === undefined ? {} : { origin });
			return new Promise((resolve, reject) => {
				ws.once('upgrade', (res) => {
					resolve(res.statusCode ?? 0);
					ws.close();
				});
				ws.once('unexpected-response', (_req, res) => {
					resolve(res.statusCode ?? 0);
					res.resume();
				});
				ws.once('error', (err) => reject(err));
			});
		}

		it('refuses another origin with 403 before the upgrade; the listed ones and none (not a browser) get through', async () => {
			const s = await start({ PARLEY_SIGNALING_ALLOWED_ORIGINS: 'https://chat.example.org, http://localhost:5173' });
			expect(await upgradeStatus(s, 'https://evil.example')).toBe(403);
			expect(await upgradeStatus(s, 'https://chat.example.org.evil.example')).toBe(403);
			expect(await upgradeStatus(s, 'null')).toBe(403);
			expect(await upgradeStatus(s, 'https://chat.example.org')).toBe(101);
			expect(await upgradeStatus(s, 'HTTP://LOCALHOST:5173')).toBe(101);
			expect(await upgradeStatus(s, undefined)).toBe(101);
			expect(s.signaling.sessionCount).toBeLessThanOrEqual(3);
		});

		it('by default any origin may connect', async () => {
			const s = await start({});
			expect(await upgradeStatus(s, 'https://evil.example')).toBe(101);
		});

		it('refuses a malformed list at startup', async () => {
			await expect(testConfig({ PARLEY_SIGNALING_ALLOWED_ORIGINS: 'chat.example.org/path' })).rejects.toThrow(/allowedOrigins/);
		});
	});

	describe('channels opened per user', () => {
		it('a user opens at most channels.maxChannelsPerUser; joining an open channel is not counted', async () => {
			const s = await start({ PARLEY_CHANNELS_MAX_CHANNELS_PER_USER: '2' });
			const join = async (userId: string, channel: string) => {
				const a = await attempt(s, userId);
				if (!a.admitted) throw new Error(`refused: ${a.reason}`);
				const caps = await a.client.request('getRouterRtpCapabilities', {});
				if (!caps.ok) throw new Error('no caps');
				return a.client.request('join', { channel, rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
			};
			expect(errorCode(await join('wild', 'team-1'))).toBe('OK');
			expect(errorCode(await join('wild', 'team-2'))).toBe('OK');
			const third = await join('wild', 'team-3');
			expect(errorCode(third)).toBe('E_TOO_MANY_USER_CHANNELS');
			expect(s.channels.get('team-3')).toBeUndefined();
			// An open channel costs nothing more; another user opens their own.
			expect(errorCode(await join('wild', 'team-1'))).toBe('OK');
			expect(errorCode(await join('tame', 'team-3'))).toBe('OK');
			expect(s.channels.size).toBe(3);
		});
	});

	it('the quotas are on by default', async () => {
		const { loadConfig } = await import('../../server/config/loadConfig.js');
		const defaults = loadConfig({ env: {} });
		expect(defaults.signaling).toMatchObject({ maxConnectionsPerUser: 8, maxConnectionsPerAddress: 256 });
		expect(defaults.channels.maxChannelsPerUser).toBe(16);
		expect(defaults.voice).toMatchObject({ maxRecordingsPerUser: 2, maxPendingUploadsPerUser: 4, maxStoredBytesPerUser: 512 * 1_048_576, maxStoredMessagesPerUser: 1000 });
	});

	describe('uploads', () => {
		async function createUpload(s: ParleyServer, t: string): Promise<Response> {
			return fetch(`http://127.0.0.1:${s.http.port}/voice/uploads`, {
				method: 'POST',
				headers: {
					authorization: `Bearer ${t}`,
					'tus-resumable': '1.0.0',
					'upload-length': String(20 * 1_048_576),
					'upload-metadata': `destination ${Buffer.from('channel:room').toString('base64')}`,
				},
			});
		}

		it('a user holds at most voice.maxPendingUploadsPerUser unfinished uploads: 429 with Retry-After until one is finished, deleted or expired', async () => {
			const s = await start({ PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '3' });
			const ada = await token('ada');
			const created: string[] = [];
			for (let i = 0; i < 3; i++) {
				const res = await createUpload(s, ada);
				expect(res.status).toBe(201);
				created.push(res.headers.get('location')!);
			}
			const refused = await createUpload(s, ada);
			expect(refused.status).toBe(429);
			const retryAfterS = Number(refused.headers.get('retry-after'));
			expect(retryAfterS).toBeGreaterThan(s.config.voice.uploadExpiryMs / 1000 - 60);
			const body = (await refused.json()) as { error: { code: string; retryAfterMs: number } };
			expect(body.error.code).toBe('E_TOO_MANY_PENDING_UPLOADS');
			expect(body.error.retryAfterMs).toBeGreaterThan(s.config.voice.uploadExpiryMs - 60_000);
			// Another user is not affected.
			expect((await createUpload(s, await token('bob'))).status).toBe(201);
			// Deleting one gives its place back.
			const del = await fetch(`http://127.0.0.1:${s.http.port}${created[0]}`, { method: 'DELETE', headers: { authorization: `Bearer ${ada}`, 'tus-resumable': '1.0.0' } });
			expect(del.status).toBe(204);
			expect((await createUpload(s, ada)).status).toBe(201);
			expect((await createUpload(s, ada)).status).toBe(429);
		});

		it('promised bytes (Upload-Length) and unfinished uploads count toward voice.maxStoredBytesPerUser and maxStoredMessagesPerUser', async () => {
			const s = await start({ PARLEY_VOICE_MAX_STORED_BYTES_PER_USER: String(50 * 1_048_576), PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '0' });
			const ada = await token('ada');
			expect((await createUpload(s, ada)).status).toBe(201);
			expect((await createUpload(s, ada)).status).toBe(201);
			const over = await createUpload(s, ada);
			expect(over.status).toBe(413);
			expect(((await over.json()) as { error: { code: string } }).error.code).toBe('E_STORED_BYTES_QUOTA');
			expect((await createUpload(s, await token('bob'))).status).toBe(201);

			const t = await start({ PARLEY_VOICE_MAX_STORED_MESSAGES_PER_USER: '2', PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '0' });
			expect((await createUpload(t, ada)).status).toBe(201);
			expect((await createUpload(t, ada)).status).toBe(201);
			const tooMany = await createUpload(t, ada);
			expect(tooMany.status).toBe(409);
			expect(((await tooMany.json()) as { error: { code: string } }).error.code).toBe('E_STORED_MESSAGES_QUOTA');
			await s.shutdown('test end');
		});

		it('concurrent creations cannot pass the limit together', async () => {
			const s = await start({ PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '4' });
			const ada = await token('ada');
			const statuses = await Promise.all(Array.from({ length: 12 }, () => createUpload(s, ada).then((r) => r.status)));
			expect(statuses.filter((st) => st === 201)).toHaveLength(4);
			expect(statuses.filter((st) => st === 429)).toHaveLength(8);
		});

		it('the limit holds across a restart (unfinished uploads are on disk)', async () => {
			const env = await import('../helpers/config.js').then((m) => m.testEnv({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '2' }));
			const { loadConfig } = await import('../../server/config/loadConfig.js');
			let s = await ParleyServer.create(loadConfig({ env }), testLogger());
			server = s;
			const ada = await token('ada');
			expect((await createUpload(s, ada)).status).toBe(201);
			expect((await createUpload(s, ada)).status).toBe(201);
			await s.shutdown('restart');
			s = await ParleyServer.create(loadConfig({ env }), testLogger());
			server = s;
			expect((await createUpload(s, ada)).status).toBe(429);
		});

		it('figure: unfinished 20 MiB uploads one user creates in a burst of 50, with the default quota and with none', async () => {
			const figures: Record<string, number> = {};
			const off = { PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '0', PARLEY_VOICE_MAX_STORED_BYTES_PER_USER: '0', PARLEY_VOICE_MAX_STORED_MESSAGES_PER_USER: '0' };
			for (const [label, env] of [
				['default (4)', { PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '4' }],
				['stored bytes only (512 MiB default)', { PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '0' }],
				['off (0)', off],
			] as const) {
				const s = await start(env);
				const ada = await token('ada');
				let createdCount = 0;
				for (let i = 0; i < 50; i++) if ((await createUpload(s, ada)).status === 201) createdCount++;
				figures[label] = createdCount;
				await s.shutdown('next');
				server = undefined;
			}
			console.info(`unfinished 20 MiB uploads one user created out of 50: ${JSON.stringify(figures)}`);
			expect(figures['off (0)']).toBe(50);
			expect(figures['stored bytes only (512 MiB default)']).toBe(25);
			expect(figures['default (4)']).toBe(4);
		});
	});

	describe('recordings', () => {
		it('a user runs at most voice.maxRecordingsPerUser recordings at once', async () => {
			recording = await startRecordingPublisher(SECRET, { PARLEY_VOICE_MAX_RECORDINGS_PER_USER: '1' });
			const { client, publisher } = recording;
			const body = { producerId: publisher.producerId, destination: { kind: 'channel' as const, channel: 'room' } };
			const first = await client.request('startRecording', body);
			expect(errorCode(first)).toBe('OK');
			expect(errorCode(await client.request('startRecording', body))).toBe('E_TOO_MANY_USER_RECORDINGS');
			if (!first.ok) throw new Error('unreachable');
			expect(errorCode(await client.request('stopRecording', { voiceMessageId: first.data.voiceMessageId }))).toBe('OK');
			// Its place is free again (the same producer may be recorded again).
			expect(errorCode(await client.request('startRecording', body))).toBe('OK');
		});

		it('a recording stops itself with a reason when it fills the stored-bytes quota, and none starts with nothing left', async () => {
			const capBytes = 6000;
			recording = await startRecordingPublisher(SECRET, { PARLEY_VOICE_MAX_STORED_BYTES_PER_USER: String(capBytes) });
			const { server: s, client, publisher } = recording;
			const body = { producerId: publisher.producerId, destination: { kind: 'channel' as const, channel: 'room' } };
			const started = await client.request('startRecording', body);
			if (!started.ok) throw new Error(`startRecording: ${started.error.code}`);
			const id = started.data.voiceMessageId;
			const stopped = client.waitFor('voiceMessage', (d) => d.message.id === id && d.reason === STORED_BYTES_QUOTA_REASON, 20_000);
			await publisher.send(encodeTone(440, 250)); // 5 s, far more than the quota holds
			await stopped;
			const ready = await client.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status === 'ready', 10_000);
			console.info(`recording stopped by a ${capBytes}-byte quota at ${ready.message.sizeBytes} bytes, ${ready.message.durationMs} ms`);
			// Checked once a second: it may pass what was left by about a second of audio.
			expect(ready.message.sizeBytes!).toBeLessThan(capBytes + 16_384);
			expect(ready.message.durationMs!).toBeLessThan(8000);
			expect(errorCode(await client.request('startRecording', body))).toBe('E_STORED_BYTES_QUOTA');
			// Deleting frees the room again.
			const ada = { userId: 'ada', displayName: 'ada', channels: ['room'], grants: { canPublish: true, canSubscribe: false, canRecord: true }, expiresAt: Date.now() / 1000 + 600 };
			expect(await s.voice.delete(ada, id)).toBe(true);
			expect(errorCode(await client.request('startRecording', body))).toBe('OK');
		});

		it('a startRecording that finishes after its timeout is stopped and its message failed', async () => {
			recording = await startRecordingPublisher(SECRET, { PARLEY_SIGNALING_REQUEST_TIMEOUT_MS: '1000' });
			const { server: s, client, publisher } = recording;
			const pid = s.workers.info()[0]!.pid!;
			// Stalls the worker: the recording's transport and consumer wait for it.
			process.kill(pid, 'SIGSTOP');
			let reply: Reply;
			try {
				reply = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			} finally {
				process.kill(pid, 'SIGCONT');
			}
			expect(errorCode(reply)).toBe('E_INTERNAL');
			const failed = await client.waitFor('voiceMessage', (d) => d.message.status === 'failed', 10_000);
			expect(failed.message.failureReason).toMatch(/timed out/);
			await client.until(() => s.voice.activeRecordings === 0, 5000, 'recording stopped');
			expect((await s.voiceStore.listByStatus('recording')).length).toBe(0);
			expect((await s.voiceStore.listByStatus('ready')).length).toBe(0);
			expect((await s.voiceStore.listByStatus('processing')).length).toBe(0);
		});
	});
});
