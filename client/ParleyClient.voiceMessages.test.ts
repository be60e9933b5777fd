// ParleyClient's voice messages against the fake server: recording our own producer
// (startRecording / stopRecording / the voiceMessage notification), audio URLs, the HTTP
// API through a fake fetch, and uploads through a fake tus Upload.
import { FakeMediaStreamTrack } from 'fake-mediastreamtrack';
import { Device, FakeHandler, testFakeParameters } from 'mediasoup-client';
import type { UploadOptions } from 'tus-js-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { VoiceMessageInfo } from '../protocol/schemas.js';
import { ParleyClient, type ParleyClientOptions, type VoiceRecording } from './ParleyClient.js';
import type { ParleyError } from './ParleyError.js';
import { BackoffReconnectPolicy } from './ReconnectPolicy.js';
import { FakeProtocolError, fakeUuid, FakeSignalingServer } from './test/FakeSignalingServer.js';
import type { TusUpload } from './VoiceMessageUploader.js';

interface Context {
	server: FakeSignalingServer;
	client: ParleyClient;
	errors: ParleyError[];
	recordings: [VoiceRecording | null, string | undefined][];
	messages: [VoiceMessageInfo, string | undefined][];
}

function audioTrack(): MediaStreamTrack {
	return new FakeMediaStreamTrack({ kind: 'audio' }) as unknown as MediaStreamTrack;
}

function voiceMessage(overrides: Partial<VoiceMessageInfo> = {}): VoiceMessageInfo {
	return {
		id: fakeUuid(9000),
		ownerId: 'user-1',
		destination: { kind: 'channel', channel: 'lobby' },
		source: 'recording',
		status: 'processing',
		createdAt: Date.now(),
		...overrides,
	};
}

function jsonResponse(status: number, body: unknown): Response {
	return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

describe('ParleyClient voice messages', () => {
	let ctx: Context;

	function createClient(overrides: Partial<ParleyClientOptions> = {}): ParleyClient {
		const client = new ParleyClient({
			url: 'ws://parley.test:8080/ws',
			token: 'jwt',
			playAudio: false,
			requestTimeoutMs: 1000,
			reconnectPolicy: new BackoffReconnectPolicy({ delaysMs: [0, 10], maxDelayMs: 20, maxAttempts: 4, jitterRatio: 0 }),
			createWebSocket: ctx.server.createWebSocket,
			createDevice: () => new Device({ handlerFactory: FakeHandler.createFactory(testFakeParameters) }),
			...overrides,
		});
		client.on('error', (error) => ctx.errors.push(error));
		client.on('recordingChanged', (recording, reason) => ctx.recordings.push([recording, reason]));
		client.on('voiceMessage', (message, reason) => ctx.messages.push([message, reason]));
		return client;
	}

	beforeEach(() => {
		const server = new FakeSignalingServer();
		server.welcome = { ...server.welcome, grants: { canPublish: true, canSubscribe: true, canRecord: true } };
		ctx = { server, client: undefined as unknown as ParleyClient, errors: [], recordings: [], messages: [] };
		ctx.client = createClient();
	});

	afterEach(async () => {
		await ctx.client.close();
		expect(ctx.errors).toEqual([]);
	});

	async function publishing(): Promise<void> {
		await ctx.client.connect();
		await ctx.client.join('lobby');
		await ctx.client.publishTrack(audioTrack());
	}

	describe('recording', () => {
		it('startRecording() records our producer into the current channel; stopRecording() returns the message', async () => {
			await publishing();
			const voiceMessageId = await ctx.client.startRecording();
			expect(ctx.server.requestsOf('startRecording')).toEqual([{ producerId: ctx.client.producerId, destination: { kind: 'channel', channel: 'lobby' } }]);
			expect(ctx.client.recording).toMatchObject({ voiceMessageId, producerId: ctx.client.producerId, maxDurationMs: 60_000 });
			expect(ctx.client.recording?.startedAtMs).toBeGreaterThan(0);

			const message = await ctx.client.stopRecording();
			expect(ctx.server.requestsOf('stopRecording')).toEqual([{ voiceMessageId }]);
			expect(message).toMatchObject({ id: voiceMessageId, status: 'processing', durationMs: 2000 });
			expect(ctx.client.recording).toBeNull();
			expect(ctx.recordings.map(([r, reason]) => [r?.voiceMessageId ?? null, reason])).toEqual([
				[voiceMessageId, undefined],
				[null, undefined],
			]);
		});

		it('records to another destination, and refuses invalid ones without asking the server', async () => {
			await publishing();
			await ctx.client.startRecording({ kind: 'user', userId: 'grace' });
			expect(ctx.server.requestsOf('startRecording')[0]?.destination).toEqual({ kind: 'user', userId: 'grace' });
			await ctx.client.stopRecording();
			await expect(ctx.client.startRecording({ kind: 'channel', channel: '../etc' })).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
			await expect(ctx.client.startRecording({ kind: 'user', userId: '' })).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
			expect(ctx.server.requestsOf('startRecording')).toHaveLength(1);
		});

		it('needs the canRecord grant, a channel and a published microphone', async () => {
			await expect(ctx.client.startRecording()).rejects.toMatchObject({ code: 'E_NOT_CONNECTED' });
			await ctx.client.connect();
			await expect(ctx.client.startRecording()).rejects.toMatchObject({ code: 'E_NOT_JOINED' });
			await ctx.client.join('lobby');
			await expect(ctx.client.startRecording()).rejects.toMatchObject({ code: 'E_INVALID_STATE', message: /Publish a microphone/ });
			await expect(ctx.client.stopRecording()).rejects.toMatchObject({ code: 'E_INVALID_STATE' });
			expect(ctx.server.methods()).not.toContain('startRecording');
			await ctx.client.close();

			ctx.server.welcome = { ...ctx.server.welcome, grants: { canPublish: true, canSubscribe: true, canRecord: false } };
			ctx.client = createClient();
			await publishing();
			await expect(ctx.client.startRecording()).rejects.toMatchObject({ code: 'E_FORBIDDEN' });
		});

		it('refuses a second recording while one runs', async () => {
			await publishing();
			await ctx.client.startRecording();
			await expect(ctx.client.startRecording()).rejects.toMatchObject({ code: 'E_INVALID_STATE', message: /Already recording/ });
			await ctx.client.stopRecording();
			await ctx.client.startRecording();
			expect(ctx.server.requestsOf('startRecording')).toHaveLength(2);
		});

		it('passes server errors through with their code', async () => {
			await publishing();
			ctx.server.on('startRecording', () => {
				throw new FakeProtocolError('E_TOO_MANY_RECORDINGS', 'This server is recording as many voice messages as it can.');
			});
			await expect(ctx.client.startRecording()).rejects.toMatchObject({ code: 'E_TOO_MANY_RECORDINGS' });
			expect(ctx.client.recording).toBeNull();
		});
	});

	describe('the voiceMessage notification', () => {
		it('is emitted with its reason', async () => {
			await ctx.client.connect();
			const message = voiceMessage({ ownerId: 'grace', status: 'ready', durationMs: 1500, waveform: Array.from({ length: 100 }, (_, i) => i % 32) });
			ctx.server.notify('voiceMessage', { message });
			ctx.server.notify('voiceMessage', { message: { ...message, status: 'failed', failureReason: 'No audio was received.' }, reason: 'producer closed' });
			expect(ctx.messages).toEqual([
				[message, undefined],
				[{ ...message, status: 'failed', failureReason: 'No audio was received.' }, 'producer closed'],
			]);
		});

		it('ends our recording when the server stops it (max duration); stopRecording() still collects it', async () => {
			await publishing();
			const voiceMessageId = await ctx.client.startRecording();
			ctx.server.notify('voiceMessage', { message: voiceMessage({ id: voiceMessageId, status: 'recording' }) });
			expect(ctx.client.recording?.voiceMessageId).toBe(voiceMessageId);

			ctx.server.notify('voiceMessage', { message: voiceMessage({ id: voiceMessageId, status: 'processing', durationMs: 60_000 }), reason: 'max duration reached' });
			expect(ctx.client.recording).toBeNull();
			expect(ctx.recordings.at(-1)).toEqual([null, 'max duration reached']);
			expect(ctx.messages.at(-1)?.[1]).toBe('max duration reached');

			const message = await ctx.client.stopRecording();
			expect(message.id).toBe(voiceMessageId);
			await expect(ctx.client.stopRecording()).rejects.toMatchObject({ code: 'E_INVALID_STATE' });
		});

		it("ignores other users' recordings ending", async () => {
			await publishing();
			await ctx.client.startRecording();
			ctx.server.notify('voiceMessage', { message: voiceMessage({ id: fakeUuid(4242), ownerId: 'grace' }) });
			expect(ctx.client.recording).not.toBeNull();
		});

		it('a recording ends with its producer (unpublish) and with the channel (leave)', async () => {
			await publishing();
			await ctx.client.startRecording();
			await ctx.client.unpublish();
			expect(ctx.client.recording).toBeNull();
			expect(ctx.recordings.at(-1)).toEqual([null, 'producer closed']);

			await ctx.client.publishTrack(audioTrack());
			await ctx.client.startRecording();
			await ctx.client.leave();
			expect(ctx.recordings.at(-1)).toEqual([null, 'left the channel']);
		});

		it('a recording ends when the connection drops', async () => {
			await publishing();
			await ctx.client.startRecording();
			ctx.server.socket.drop(1006);
			expect(ctx.client.recording).toBeNull();
			expect(ctx.recordings.at(-1)).toEqual([null, 'connection lost']);
			await vi.waitFor(() => expect(ctx.client.state).toBe('reconnected'));
		});
	});

	describe('HTTP API', () => {
		it('voiceMessageAudioUrl() asks the server for a signed link with the token as a header, and makes it absolute', async () => {
			const calls: [string, RequestInit | undefined][] = [];
			const signed = `/voice/messages/${fakeUuid(9000)}/audio?user=u&exp=1800000300&sig=${'s'.repeat(43)}`;
			const fetchFake = async (url: string, init?: RequestInit) => {
				calls.push([url, init]);
				return jsonResponse(200, { url: signed, expiresAt: 1_800_000_300 });
			};
			const secure = createClient({ url: 'wss://parley.example/ws', token: async () => 'fresh.jwt', fetch: fetchFake as unknown as typeof fetch });
			const ready = voiceMessage({ status: 'ready', audioUrl: `/voice/messages/${fakeUuid(9000)}/audio` });
			const url = await secure.voiceMessageAudioUrl(ready);
			expect(url).toBe(`https://parley.example${signed}`);
			expect(url).not.toContain('jwt');
			expect(calls).toHaveLength(1);
			expect(calls[0]![0]).toBe(`https://parley.example/voice/messages/${fakeUuid(9000)}/audio-url`);
			expect(calls[0]![1]).toMatchObject({ method: 'POST', headers: { authorization: 'Bearer fresh.jwt' } });
			await expect(secure.voiceMessageAudioUrl('abc')).resolves.toBe(`https://parley.example${signed}`);
			expect(calls[1]![0]).toBe('https://parley.example/voice/messages/abc/audio-url');
			await secure.close();
		});

		it('voiceMessageAudioUrl() passes the server refusal on as its code', async () => {
			const client = createClient({
				fetch: (async () => jsonResponse(404, { error: { code: 'E_NOT_FOUND', message: 'No such voice message.' } })) as unknown as typeof fetch,
			});
			await expect(client.voiceMessageAudioUrl('abc')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
		});

		it('listVoiceMessages() and deleteVoiceMessage() send the token of the token provider', async () => {
			const calls: [string, RequestInit | undefined][] = [];
			const fetchFake = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
				calls.push([String(input), init]);
				if (init?.method === 'DELETE') return new Response(null, { status: 204 });
				return jsonResponse(200, { messages: [voiceMessage()], nextCursor: 'c2' });
			});
			let n = 0;
			const client = createClient({ token: async () => `jwt-${++n}`, fetch: fetchFake as unknown as typeof fetch });
			const page = await client.listVoiceMessages({ channel: 'lobby' }, { limit: 5, before: 'c1' });
			expect(page).toEqual({ messages: [voiceMessage({ createdAt: page.messages[0]!.createdAt })], nextCursor: 'c2' });
			await client.deleteVoiceMessage('m-1');
			expect(calls.map(([url, init]) => [init?.method, url, (init?.headers as Record<string, string>).authorization])).toEqual([
				['GET', 'http://parley.test:8080/voice/messages?channel=lobby&limit=5&before=c1', 'Bearer jwt-1'],
				['DELETE', 'http://parley.test:8080/voice/messages/m-1', 'Bearer jwt-2'],
			]);
			await client.close();
		});

		it('turns HTTP errors into ParleyErrors with the server code and status', async () => {
			const client = createClient({
				fetch: (async () => jsonResponse(403, { error: { code: 'E_FORBIDDEN', message: 'Only the sender can delete a voice message.' } })) as unknown as typeof fetch,
			});
			await expect(client.deleteVoiceMessage('m-1')).rejects.toMatchObject({
				code: 'E_FORBIDDEN',
				httpStatus: 403,
				message: 'Only the sender can delete a voice message.',
			});
			await client.close();
		});
	});

	describe('uploadVoiceMessage()', () => {
		/** A tus Upload that "uploads" at once, with the server's announcement before the last PATCH is answered. */
		/** A tus upload that "completes" at once at `/voice/uploads/<uploadId>`. */
		function fakeTus(uploadId: string): { created: UploadOptions[]; createUpload: (file: File | Blob, options: UploadOptions) => TusUpload } {
			const created: UploadOptions[] = [];
			return {
				created,
				createUpload: (file, options) => {
					created.push(options);
					const upload: { -readonly [K in keyof TusUpload]: TusUpload[K] } = {
						url: null,
						start: () => {
							queueMicrotask(() => {
								upload.url = `http://parley.test:8080/voice/uploads/${uploadId}`;
								options.onProgress?.(file.size / 2, file.size);
								options.onProgress?.(file.size, file.size);
								options.onSuccess?.({ lastResponse: undefined as never });
							});
						},
						abort: async () => undefined,
						findPreviousUploads: async () => [],
						resumeFromPreviousUpload: () => undefined,
					};
					return upload;
				},
			};
		}

		it('uploads to the current channel and resolves with the voice message named after the upload', async () => {
			const uploaded = voiceMessage({ id: fakeUuid(7001), source: 'upload', status: 'processing' });
			const tus = fakeTus(uploaded.id);
			const requested: string[] = [];
			ctx.client = createClient({
				upload: { createUpload: tus.createUpload },
				fetch: (async (url: string) => {
					requested.push(url);
					return jsonResponse(200, uploaded);
				}) as unknown as typeof fetch,
			});
			await ctx.client.connect();
			await ctx.client.join('lobby');
			const progress: number[] = [];
			const file = new Blob([new Uint8Array(1000)], { type: 'audio/ogg' });
			const message = await ctx.client.uploadVoiceMessage(file, { onProgress: (p) => progress.push(p.bytesSent / p.bytesTotal), fileName: 'hello.ogg' });
			expect(message).toEqual(uploaded);
			expect(requested).toEqual([`http://parley.test:8080/voice/messages/${uploaded.id}`]);
			expect(progress).toEqual([0.5, 1]);
			expect(tus.created[0]).toMatchObject({
				endpoint: 'http://parley.test:8080/voice/uploads',
				metadata: { destination: 'channel:lobby', filename: 'hello.ogg', filetype: 'audio/ogg' },
				chunkSize: 256 * 1024,
			});
			const headers = new Map<string, string>();
			await tus.created[0]!.onBeforeRequest?.({ setHeader: (name: string, value: string) => void headers.set(name, value) } as never);
			expect(headers.get('Authorization')).toBe('Bearer jwt');
		});

		it('needs canRecord and a destination', async () => {
			await ctx.client.connect();
			const file = new Blob(['x']);
			await expect(ctx.client.uploadVoiceMessage(file)).rejects.toMatchObject({ code: 'E_NOT_JOINED' });
			await expect(ctx.client.uploadVoiceMessage(file, { destination: { kind: 'channel', channel: '' } })).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
			await ctx.client.close();
			ctx.server.welcome = { ...ctx.server.welcome, grants: { canPublish: true, canSubscribe: true, canRecord: false } };
			ctx.client = createClient();
			await ctx.client.connect();
			await expect(ctx.client.uploadVoiceMessage(file, { destination: { kind: 'user', userId: 'grace' } })).rejects.toMatchObject({ code: 'E_FORBIDDEN' });
		});
	});
});
