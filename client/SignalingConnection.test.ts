import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLOSE_CODES, PROTOCOL_VERSION } from '../protocol/messages.js';
import { ParleyError } from './ParleyError.js';
import { isFinalCloseCode, parseServerMessage, SignalingConnection, signalingUrl, type SignalingClose } from './SignalingConnection.js';
import { FakeProtocolError, FakeSignalingServer } from './test/FakeSignalingServer.js';

interface Context {
	server: FakeSignalingServer;
	connection: SignalingConnection | null;
}

describe('SignalingConnection', () => {
	let ctx: Context;

	beforeEach(() => {
		ctx = { server: new FakeSignalingServer(), connection: null };
	});

	afterEach(() => {
		ctx.connection?.close();
	});

	async function open(options: { requestTimeoutMs?: number; openTimeoutMs?: number } = {}): Promise<SignalingConnection> {
		ctx.connection = await SignalingConnection.open({ url: 'ws://parley.test/ws', token: 'jwt.token', createWebSocket: ctx.server.createWebSocket, ...options });
		return ctx.connection;
	}

	it('offers the token as a subprotocol (not in the URL), puts the protocol version in the URL and opens on welcome', async () => {
		const connection = await open();
		expect(ctx.server.socket.params.get('token')).toBeNull();
		expect(ctx.server.socket.protocols).toEqual(['parley', 'parley.token.jwt.token']);
		expect(ctx.server.socket.params.get('v')).toBe(String(PROTOCOL_VERSION));
		expect(connection.isOpen).toBe(true);
		expect(connection.welcome.userId).toBe('user-1');
	});

	it('matches responses to requests by id', async () => {
		const connection = await open();
		let resolveLate!: () => void;
		ctx.server.on('leave', () => new Promise((resolve) => (resolveLate = () => resolve({}))));
		const leave = connection.request('leave', {});
		const caps = await connection.request('getRouterRtpCapabilities', {});
		expect(caps.rtpCapabilities.codecs?.length).toBeGreaterThan(0);
		resolveLate();
		await expect(leave).resolves.toEqual({});
		const ids = ctx.server.requests.map((r) => r.id);
		expect(new Set(ids).size).toBe(ids.length);
	});

	it('rejects ok:false answers with a ParleyError carrying the code', async () => {
		const connection = await open();
		ctx.server.on('join', () => {
			throw new FakeProtocolError('E_FORBIDDEN', 'not your channel');
		});
		const error = await connection.request('join', { channel: 'lobby', rtpCapabilities: {} }).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(ParleyError);
		expect(error).toMatchObject({ code: 'E_FORBIDDEN', message: 'not your channel' });
	});

	it('times out a request with E_TIMEOUT', async () => {
		const connection = await open({ requestTimeoutMs: 30 });
		ctx.server.on('leave', () => 'never');
		await expect(connection.request('leave', {})).rejects.toMatchObject({ code: 'E_TIMEOUT' });
		// A per-call timeout overrides the default.
		const started = Date.now();
		await expect(connection.request('leave', {}, { timeoutMs: 5 })).rejects.toMatchObject({ code: 'E_TIMEOUT' });
		expect(Date.now() - started).toBeLessThan(30);
	});

	it('emits notifications by name with their data', async () => {
		const connection = await open();
		const seen: unknown[] = [];
		connection.on('peerJoined', (peer) => seen.push(peer));
		connection.on('activeSpeaker', ({ peerId }) => seen.push(peerId));
		ctx.server.notify('peerJoined', { peerId: 'p2', userId: 'u2', displayName: 'Grace' });
		ctx.server.notify('activeSpeaker', { peerId: null });
		expect(seen).toEqual([{ peerId: 'p2', userId: 'u2', displayName: 'Grace' }, null]);
	});

	it('reports unreadable messages and unmatched errors as error events', async () => {
		const connection = await open();
		const errors: ParleyError[] = [];
		connection.on('error', (e) => errors.push(e));
		ctx.server.socket.deliver('not json');
		ctx.server.socket.deliver({ id: null, ok: false, error: { code: 'E_BAD_REQUEST', message: 'garbled' } });
		ctx.server.socket.deliver({ id: 999, ok: true, data: {} }); // late answer: ignored
		expect(errors.map((e) => e.code)).toEqual(['E_BAD_MESSAGE', 'E_BAD_REQUEST']);
	});

	it('fails open with E_AUTH (final) when the server closes with 4401, with its sentence', async () => {
		ctx.server.refuseWith = { code: CLOSE_CODES.AUTH, reason: 'E_AUTH: Access token refused: "exp" claim timestamp check failed.' };
		await expect(open()).rejects.toMatchObject({ code: 'E_AUTH', message: 'Access token refused: "exp" claim timestamp check failed.', closeCode: 4401 });
	});

	it('fails open with E_PROTOCOL_VERSION on a version mismatch', async () => {
		ctx.server.welcome = { ...ctx.server.welcome, protocolVersion: PROTOCOL_VERSION + 1 };
		await expect(open()).rejects.toMatchObject({ code: 'E_PROTOCOL_VERSION' });
		expect(ctx.server.socket.closedWith).not.toBeNull();
	});

	it('fails open with E_TIMEOUT when no welcome comes', async () => {
		ctx.server.createWebSocket = (url) => {
			const socket = new (class {
				readyState = 0;
				onclose: (() => void) | null = null;
				onmessage: (() => void) | null = null;
				constructor(readonly url: string) {}
				close(): void {}
				send(): void {}
			})(url);
			return socket as unknown as WebSocket;
		};
		await expect(open({ openTimeoutMs: 20 })).rejects.toMatchObject({ code: 'E_TIMEOUT' });
	});

	it('rejects pending requests and reports a retryable close on network loss', async () => {
		const connection = await open();
		ctx.server.on('leave', () => 'never');
		const closes: SignalingClose[] = [];
		connection.on('close', (c) => closes.push(c));
		const pending = connection.request('leave', {});
		ctx.server.socket.drop(1006);
		await expect(pending).rejects.toMatchObject({ code: 'E_CONNECTION_CLOSED', closeCode: 1006 });
		expect(closes).toMatchObject([{ code: 1006, final: false, byClient: false }]);
		expect(connection.isOpen).toBe(false);
		await expect(connection.request('leave', {})).rejects.toMatchObject({ code: 'E_CONNECTION_CLOSED' });
	});

	it('reports 4409 (replaced) as a final close with E_REPLACED', async () => {
		const connection = await open();
		const closes: SignalingClose[] = [];
		connection.on('close', (c) => closes.push(c));
		ctx.server.socket.drop(CLOSE_CODES.REPLACED, '');
		expect(closes[0]).toMatchObject({ final: true });
		expect(closes[0]?.error.code).toBe('E_REPLACED');
	});

	it('paces requests to the rate the welcome announced', async () => {
		ctx.server.welcome = { ...ctx.server.welcome, limits: { maxMessageBytes: 65536, requestsPerSecond: 20, requestBurst: 2 } };
		const connection = await open();
		const sentAt: number[] = [];
		ctx.server.on('leave', () => (sentAt.push(performance.now()), {}));
		await Promise.all([connection.request('leave', {}), connection.request('leave', {}), connection.request('leave', {})]);
		expect(sentAt[1]! - sentAt[0]!).toBeGreaterThanOrEqual(40);
		expect(sentAt[2]! - sentAt[1]!).toBeGreaterThanOrEqual(40);
	});

	it('retries a request refused with E_RATE_LIMIT after the retryAfterMs the server gave', async () => {
		const connection = await open();
		const sentAt: number[] = [];
		ctx.server.on('leave', () => {
			sentAt.push(performance.now());
			if (sentAt.length < 3) throw new FakeProtocolError('E_RATE_LIMIT', 'user limit', undefined, 60);
			return {};
		});
		await expect(connection.request('leave', {})).resolves.toEqual({});
		expect(sentAt).toHaveLength(3);
		expect(sentAt[1]! - sentAt[0]!).toBeGreaterThanOrEqual(55);
		expect(sentAt[2]! - sentAt[1]!).toBeGreaterThanOrEqual(55);
		// With jitter, but at most twice the wait (plus timer slack).
		expect(sentAt[2]! - sentAt[0]!).toBeLessThan(2 * 2 * 60 + 100);
	});

	it('surfaces E_RATE_LIMIT with its retryAfterMs when retries are used up, it has no wait, or the wait outlasts the timeout', async () => {
		const connection = await open();
		let calls = 0;
		let retryAfterMs: number | undefined = 20;
		ctx.server.on('leave', () => {
			calls++;
			throw new FakeProtocolError('E_RATE_LIMIT', 'user limit', undefined, retryAfterMs);
		});
		await expect(connection.request('leave', {})).rejects.toMatchObject({ code: 'E_RATE_LIMIT', retryAfterMs: 20 });
		expect(calls).toBe(3); // the first try and RATE_LIMIT_RETRIES (2)
		calls = 0;
		await expect(connection.request('leave', {}, { rateLimitRetries: 0 })).rejects.toMatchObject({ code: 'E_RATE_LIMIT' });
		expect(calls).toBe(1);
		calls = 0;
		retryAfterMs = undefined; // the per-connection bucket says nothing: the client paced wrong
		await expect(connection.request('leave', {})).rejects.toMatchObject({ code: 'E_RATE_LIMIT', retryAfterMs: undefined });
		expect(calls).toBe(1);
		calls = 0;
		retryAfterMs = 5000;
		const started = performance.now();
		await expect(connection.request('leave', {}, { timeoutMs: 3000 })).rejects.toMatchObject({ code: 'E_RATE_LIMIT', retryAfterMs: 5000 });
		expect(calls).toBe(1);
		expect(performance.now() - started).toBeLessThan(500);
	});

	it('refuses requests above the announced message size', async () => {
		ctx.server.welcome = { ...ctx.server.welcome, limits: { maxMessageBytes: 64, requestsPerSecond: 100, requestBurst: 10 } };
		const connection = await open();
		await expect(connection.request('join', { channel: 'x'.repeat(60), rtpCapabilities: {} })).rejects.toMatchObject({ code: 'E_MESSAGE_TOO_LARGE' });
		expect(ctx.server.requests).toHaveLength(0);
	});

	it('close() is final, idempotent, and rejects what is pending', async () => {
		const connection = await open();
		ctx.server.on('leave', () => 'never');
		const pending = connection.request('leave', {});
		connection.close();
		connection.close();
		await expect(pending).rejects.toMatchObject({ code: 'E_CONNECTION_CLOSED' });
		expect(ctx.server.socket.closedWith).toEqual({ code: 1000, reason: 'client closing' });
	});
});

describe('signaling helpers', () => {
	it('signalingUrl converts http(s) and rejects other schemes', () => {
		expect(signalingUrl('https://h.example/ws')).toBe(`wss://h.example/ws?v=${PROTOCOL_VERSION}`);
		expect(signalingUrl('ws://h:8080/ws?x=1')).toBe(`ws://h:8080/ws?x=1&v=${PROTOCOL_VERSION}`);
		expect(() => signalingUrl('ftp://h/ws')).toThrow(TypeError);
	});

	it('isFinalCloseCode: auth, version, replaced and removed by a moderator only', () => {
		expect([4401, 4400, 4409, 4403].map(isFinalCloseCode)).toEqual([true, true, true, true]);
		expect([1000, 1006, 4503, 4508, 4429].map(isFinalCloseCode)).toEqual([false, false, false, false, false]);
	});

	it('parseServerMessage checks the envelope', () => {
		expect(parseServerMessage('{"id":1,"ok":true,"data":{}}')).toEqual({ id: 1, ok: true, data: {} });
		expect(parseServerMessage('{"method":"peerLeft","data":{"peerId":"p"}}')).toEqual({ method: 'peerLeft', data: { peerId: 'p' } });
		for (const bad of ['[]', 'null', '{"id":"1","ok":true}', '{"id":1}', '{"id":1,"ok":false}', '{"method":3,"data":{}}', '{"method":"x"}', '{"id":null,"ok":true,"data":{}}']) {
			expect(parseServerMessage(bad)).toBeNull();
		}
	});
});
