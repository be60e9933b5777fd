// Protocol tests without a browser: a real Parley server, real WebSockets, real workers.
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { TestSignalingClient, type Reply } from '../../testkit/signalingClient.js';
import { ParleyServer } from '../ParleyServer.js';
import { mintAccessToken, type MintOptions } from '../auth/accessToken.js';
import { CLOSE_CODES, PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import type { ErrorCode } from '../../protocol/errors.js';

const SECRET = 'test-secret-that-is-long-enough-0123456789';
const KEY = new TextEncoder().encode(SECRET);

function errorCode(reply: Reply): ErrorCode | 'OK' {
	return reply.ok ? 'OK' : reply.error.code;
}

const OPUS_RTP: RequestData<'produce'>['rtpParameters'] = {
	mid: '0',
	codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } }],
	encodings: [{ ssrc: 11111111 }],
};

describe('signaling protocol', () => {
	let server: ParleyServer;
	const clients: TestSignalingClient[] = [];

	async function startServer(env: Record<string, string> = {}): Promise<void> {
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '200', ...env }), testLogger());
	}

	const url = (token: string, extra = ''): string => `ws://127.0.0.1:${server.http.port}/ws?token=${encodeURIComponent(token)}&v=${PROTOCOL_VERSION}${extra}`;

	async function token(overrides: Partial<MintOptions> = {}): Promise<string> {
		return mintAccessToken({ userId: `u-${Math.random().toString(36).slice(2)}`, channels: ['room', 'team-*'], grants: { canPublish: true, canSubscribe: true }, ttlS: 600, ...overrides }, KEY);
	}

	async function connect(overrides: Partial<MintOptions> = {}) {
		const result = await TestSignalingClient.connect(url(await token(overrides)));
		clients.push(result.client);
		return result;
	}

	async function joined(channel = 'room', overrides: Partial<MintOptions> = {}) {
		const { client, welcome } = await connect(overrides);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('no caps');
		const join = await client.request('join', { channel, rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		if (!join.ok) throw new Error(`join failed: ${join.error.code}`);
		return { client, welcome, peerId: join.data.peerId, rtpCapabilities: caps.data.rtpCapabilities };
	}

	/** A refused connection: resolves with its close code and reason. */
	async function refused(wsUrl: string) {
		const client = await TestSignalingClient.open(wsUrl);
		clients.push(client);
		return client.closed;
	}

	beforeEach(async () => {
		await startServer();
	});

	afterEach(async () => {
		for (const c of clients.splice(0)) c.close();
		await server.shutdown('test end');
	});

	it('greets with a welcome carrying the protocol version, grants and limits', async () => {
		const { welcome } = await connect({ displayName: 'Ada', grants: { canPublish: false, canSubscribe: true } });
		expect(welcome.protocolVersion).toBe(PROTOCOL_VERSION);
		expect(welcome.displayName).toBe('Ada');
		expect(welcome.grants).toEqual({ canPublish: false, canSubscribe: true, canRecord: false });
		expect(welcome.limits.maxMessageBytes).toBe(16_384);
	});

	it('offers Opus with in-band FEC and DTX first, then Opus RED (media.opusRed, on by default)', async () => {
		const { client } = await connect();
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('no caps');
		const codecs = caps.data.rtpCapabilities.codecs ?? [];
		// Opus first: a client that does not ask for RED sends plain Opus.
		expect(codecs.map((c) => c.mimeType.toLowerCase())).toEqual(['audio/opus', 'audio/red']);
		expect(codecs[0]!.parameters).toMatchObject({ useinbandfec: 1, usedtx: 1 });
		expect(codecs[1]).toMatchObject({ clockRate: 48000, channels: 2 });
	});

	it('takes the token from the subprotocol parley.token.<JWT>, selects "parley" and never echoes the token', async () => {
		const jwt = await token({ displayName: 'Sub' });
		const ws = new WebSocket(`ws://127.0.0.1:${server.http.port}/ws?v=${PROTOCOL_VERSION}`, ['parley', `parley.token.${jwt}`]);
		const selected = new Promise<string | undefined>((resolve) => ws.once('upgrade', (res) => resolve(res.headers['sec-websocket-protocol'])));
		const welcome = await new Promise<{ method: string; data: { displayName: string } }>((resolve, reject) => {
			ws.once('message', (raw) => resolve(JSON.parse(String(raw))));
			ws.once('close', (code, reason) => reject(new Error(`closed ${code} ${String(reason)}`)));
		});
		expect(welcome).toMatchObject({ method: 'welcome', data: { displayName: 'Sub' } });
		expect(await selected).toBe('parley');
		expect(ws.protocol).toBe('parley');
		ws.close();
		// A forged token there is refused like one in the query.
		const forged = new WebSocket(`ws://127.0.0.1:${server.http.port}/ws`, ['parley', `parley.token.${jwt.slice(0, -4)}AAAA`]);
		const closed = await new Promise<{ code: number; reason: string }>((resolve) => forged.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
		expect(closed.code).toBe(CLOSE_CODES.AUTH);
		expect(closed.reason).toMatch(/^E_AUTH: Access token refused/);
	});

	describe('refuses bad tokens with close code 4401 and the reason', () => {
		it('no token', async () => {
			const closed = await refused(`ws://127.0.0.1:${server.http.port}/ws`);
			expect(closed.code).toBe(CLOSE_CODES.AUTH);
			expect(closed.reason).toMatch(/^E_AUTH: No access token/);
		});

		it('expired', async () => {
			const expired = await new SignJWT({ channels: ['room'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(KEY);
			const closed = await refused(url(expired));
			expect(closed).toEqual({ code: CLOSE_CODES.AUTH, reason: 'E_AUTH: Access token refused: token expired.' });
		});

		it('not yet valid', async () => {
			const closed = await refused(url(await token({ notBefore: Math.floor(Date.now() / 1000) + 600 })));
			expect(closed.code).toBe(CLOSE_CODES.AUTH);
			expect(closed.reason).toContain('nbf');
		});

		it('signed with another secret (forged)', async () => {
			const forged = await mintAccessToken({ userId: 'mallory', channels: ['*'], grants: { canPublish: true }, ttlS: 600 }, new TextEncoder().encode('x'.repeat(40)));
			const closed = await refused(url(forged));
			expect(closed).toEqual({ code: CLOSE_CODES.AUTH, reason: 'E_AUTH: Access token refused: token signature invalid.' });
		});

		it('alg none', async () => {
			const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
			const payload = Buffer.from(JSON.stringify({ sub: 'mallory', channels: ['*'], exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
			const closed = await refused(url(`${header}.${payload}.`));
			expect(closed.code).toBe(CLOSE_CODES.AUTH);
		});

		it('tampered payload', async () => {
			const [h, , sig] = (await token()).split('.');
			const payload = Buffer.from(JSON.stringify({ sub: 'mallory', channels: ['*'], grants: { canPublish: true }, exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
			const closed = await refused(url(`${h}.${payload}.${sig}`));
			expect(closed.reason).toContain('signature invalid');
		});
	});

	it('refuses another protocol version with 4400', async () => {
		const closed = await refused(`ws://127.0.0.1:${server.http.port}/ws?token=${await token()}&v=99`);
		expect(closed.code).toBe(CLOSE_CODES.PROTOCOL_VERSION);
		expect(closed.reason).toMatch(/^E_PROTOCOL_VERSION/);
	});

	it('answers malformed input with stable codes and stays usable', async () => {
		const { client } = await connect();
		expect(errorCode(await client.sendJunk('{not json'))).toBe('E_BAD_REQUEST');
		expect(errorCode(await client.sendJunk(Buffer.from([1, 2, 3])))).toBe('E_BAD_REQUEST');
		expect(errorCode(await client.sendJunk(JSON.stringify([1, 2])))).toBe('E_BAD_REQUEST');
		expect(errorCode(await client.sendRaw({ id: 5, method: 'fly', data: {} }))).toBe('E_UNKNOWN_METHOD');
		expect(errorCode(await client.sendRaw({ id: 6, method: 'join', data: { channel: 5, rtpCapabilities: {} } }))).toBe('E_BAD_REQUEST');
		expect(errorCode(await client.sendRaw({ id: 7, method: 'join', data: { channel: '../etc', rtpCapabilities: {} } }))).toBe('E_BAD_REQUEST');
		expect(errorCode(await client.sendRaw({ id: 8, method: 'getRouterRtpCapabilities', data: { extra: true } }))).toBe('E_BAD_REQUEST');
		const deep = JSON.stringify({ id: 9, method: 'join', data: JSON.parse('['.repeat(500) + ']'.repeat(500)) });
		expect(errorCode(await client.sendRaw(JSON.parse(deep)))).toBe('E_BAD_REQUEST');
		// Oversize but under the hard cap: an error reply, connection kept.
		expect(errorCode(await client.sendJunk(JSON.stringify({ id: 10, method: 'leave', data: { pad: 'x'.repeat(20_000) } })))).toBe('E_MESSAGE_TOO_LARGE');
		const ok = await client.request('getRouterRtpCapabilities', {});
		expect(ok.ok).toBe(true);
	});

	it('closes with 1009 on a frame over 4x the message limit, without affecting others', async () => {
		const { client: other } = await joined();
		const closeOf = async (bytes: number) => {
			// A raw socket: the frame goes out as is, and the close is what the client sees.
			const ws = new WebSocket(url(await token()));
			await new Promise((resolve) => ws.once('message', resolve));
			const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
			ws.send('x'.repeat(bytes));
			return closed;
		};
		expect(await closeOf(70_000)).toEqual({ code: 1009, reason: expect.stringMatching(/^E_MESSAGE_TOO_LARGE/) as unknown as string });
		// Over uWS's own cap (8x) the frame is cut at its header, with no close frame.
		expect((await closeOf(16_384 * 8 + 10)).code).toBe(1006);
		expect((await other.request('getRouterRtpCapabilities', {})).ok).toBe(true);
	});

	it('rate-limits a flood per connection, then recovers', async () => {
		await server.shutdown('restart');
		await startServer({ PARLEY_SIGNALING_REQUESTS_PER_SECOND: '5', PARLEY_SIGNALING_REQUEST_BURST: '10' });
		const { client } = await connect();
		const { client: bystander } = await connect();
		const replies = await Promise.all(Array.from({ length: 30 }, () => client.request('getRouterRtpCapabilities', {})));
		const codes = replies.map(errorCode);
		expect(codes.filter((c) => c === 'OK').length).toBeGreaterThanOrEqual(10);
		expect(codes.filter((c) => c === 'E_RATE_LIMIT').length).toBeGreaterThanOrEqual(15);
		expect((await bystander.request('getRouterRtpCapabilities', {})).ok).toBe(true);
		await new Promise((r) => setTimeout(r, 500));
		expect((await client.request('getRouterRtpCapabilities', {})).ok).toBe(true);
	});

	it('disconnects a client that does not read, bounding what the server buffers for it', async () => {
		await server.shutdown('restart');
		await startServer({ PARLEY_SIGNALING_MAX_BUFFERED_BYTES: '65536', PARLEY_SIGNALING_REQUESTS_PER_SECOND: '10000', PARLEY_SIGNALING_REQUEST_BURST: '100000' });
		const { client: bystander } = await connect();
		const { client: slow } = await connect();
		expect(server.signaling.sessionCount).toBe(2);
		// Stop reading (the kernel buffers fill, then uWS's), keep asking for large replies.
		(slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
		const request = JSON.stringify({ id: 1, method: 'getRouterRtpCapabilities', data: {} });
		for (let i = 0; i < 20_000 && server.signaling.sessionCount === 2; i++) {
			slow.ws.send(request);
			if (i % 500 === 0) await new Promise((r) => setTimeout(r, 5));
		}
		await bystander.until(() => server.signaling.sessionCount === 1, 5000, 'slow client closed');
		expect(server.signaling.sessionCount).toBe(1);
		expect((await bystander.request('getRouterRtpCapabilities', {})).ok).toBe(true);
	});

	it('enforces channel permissions and join order', async () => {
		const { client } = await connect();
		expect(errorCode(await client.request('createTransport', { direction: 'recv' }))).toBe('E_NOT_JOINED');
		const caps = await client.request('getRouterRtpCapabilities', {});
		const rtpCapabilities = (caps.ok ? caps.data.rtpCapabilities : {}) as RequestData<'join'>['rtpCapabilities'];
		expect(errorCode(await client.request('join', { channel: 'elsewhere', rtpCapabilities }))).toBe('E_FORBIDDEN');
		expect(errorCode(await client.request('join', { channel: 'team-blue', rtpCapabilities }))).toBe('OK');
		expect(errorCode(await client.request('join', { channel: 'room', rtpCapabilities }))).toBe('E_ALREADY_JOINED');
	});

	it('welcomes with the router capabilities and joins with both transports in one request', async () => {
		const { client, welcome } = await connect();
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('no caps');
		expect(welcome.routerRtpCapabilities).toEqual(caps.data.rtpCapabilities);
		const join = await client.request('join', { channel: 'room', rtpCapabilities: welcome.routerRtpCapabilities as RequestData<'join'>['rtpCapabilities'], transports: ['recv', 'send'] });
		if (!join.ok) throw new Error(`join failed: ${join.error.code}`);
		const { send, recv } = join.data.transports ?? {};
		expect(send?.iceCandidates.length).toBeGreaterThan(0);
		expect(recv?.dtlsParameters.fingerprints.length).toBeGreaterThan(0);
		expect(send!.transportId).not.toBe(recv!.transportId);
		// They are the peer's: usable as if createTransport had made them, and counted against its limits.
		expect(errorCode(await client.request('getTransportStats', { transportId: send!.transportId }))).toBe('OK');
		expect(errorCode(await client.request('createTransport', { direction: 'recv' }))).toBe('E_INVALID_STATE');
		expect(errorCode(await client.request('produce', { transportId: send!.transportId, kind: 'audio', rtpParameters: OPUS_RTP }))).toBe('OK');
	});

	it('refuses a join whose transports the token does not grant, leaving the client outside', async () => {
		const { client, welcome } = await connect({ grants: { canPublish: false, canSubscribe: true } });
		const rtpCapabilities = welcome.routerRtpCapabilities as RequestData<'join'>['rtpCapabilities'];
		expect(errorCode(await client.request('join', { channel: 'room', rtpCapabilities, transports: ['recv', 'send'] }))).toBe('E_FORBIDDEN');
		expect(errorCode(await client.request('createTransport', { direction: 'recv' }))).toBe('E_NOT_JOINED');
		expect(errorCode(await client.request('join', { channel: 'room', rtpCapabilities, transports: ['recv', 'recv'] }))).toBe('E_BAD_REQUEST');
		expect(errorCode(await client.request('join', { channel: 'room', rtpCapabilities, transports: ['recv'] }))).toBe('OK');
	});

	it('refuses publishing without canPublish, and non-Opus media', async () => {
		const listener = await joined('room', { grants: { canPublish: false, canSubscribe: true } });
		expect(errorCode(await listener.client.request('createTransport', { direction: 'send' }))).toBe('E_FORBIDDEN');
		expect(errorCode(await listener.client.request('produce', { transportId: 'x', kind: 'audio', rtpParameters: OPUS_RTP }))).toBe('E_FORBIDDEN');
		expect(errorCode(await listener.client.request('createTransport', { direction: 'recv' }))).toBe('OK');

		const speaker = await joined();
		const send = await speaker.client.request('createTransport', { direction: 'send' });
		if (!send.ok) throw new Error('createTransport failed');
		const transportId = send.data.transportId;
		expect(errorCode(await speaker.client.request('produce', { transportId, kind: 'video', rtpParameters: OPUS_RTP }))).toBe('E_UNSUPPORTED_MEDIA');
		const pcmu = { ...OPUS_RTP, codecs: [{ mimeType: 'audio/PCMU', payloadType: 0, clockRate: 8000 }] };
		expect(errorCode(await speaker.client.request('produce', { transportId, kind: 'audio', rtpParameters: pcmu }))).toBe('E_UNSUPPORTED_MEDIA');
		expect(errorCode(await speaker.client.request('produce', { transportId, kind: 'audio', rtpParameters: OPUS_RTP }))).toBe('OK');
		// The listener hears about the new producer, as a paused consumer to resume.
		const consumer = await listener.client.waitFor('newConsumer');
		expect(consumer.peerId).toBe(speaker.peerId);
		expect(consumer.rtpParameters.codecs[0]!.mimeType.toLowerCase()).toBe('audio/opus');
		// Consumers carry the producer's own fmtp (here FEC on, as the publisher asked).
		expect(consumer.rtpParameters.codecs[0]!.parameters).toMatchObject({ useinbandfec: 1 });
		expect(errorCode(await listener.client.request('resumeConsumer', { consumerId: consumer.consumerId }))).toBe('OK');
	});

	it("refuses acting on another peer's objects", async () => {
		const a = await joined();
		const b = await joined();
		const send = await a.client.request('createTransport', { direction: 'send' });
		if (!send.ok) throw new Error('createTransport failed');
		const produced = await a.client.request('produce', { transportId: send.data.transportId, kind: 'audio', rtpParameters: OPUS_RTP });
		if (!produced.ok) throw new Error('produce failed');
		expect(errorCode(await b.client.request('closeProducer', { producerId: produced.data.producerId }))).toBe('E_NOT_FOUND');
		expect(errorCode(await b.client.request('getTransportStats', { transportId: send.data.transportId }))).toBe('E_NOT_FOUND');
		expect(errorCode(await b.client.request('restartIce', { transportId: send.data.transportId }))).toBe('E_NOT_FOUND');
		expect(errorCode(await a.client.request('getTransportStats', { transportId: send.data.transportId }))).toBe('OK');
	});

	it('hands each transport TURN servers with credentials for its user (turn.*), fresh again on restartIce', async () => {
		const none = await (await joined()).client.request('createTransport', { direction: 'recv' });
		if (!none.ok) throw new Error('createTransport failed');
		expect(none.data.iceServers).toEqual([]);
		await server.shutdown('restart');
		const turnSecret = 'signaling-turn-secret-0123456789-abcdefgh';
		await startServer({ PARLEY_TURN_URLS: 'turn:192.0.2.1:3478?transport=udp,turns:turn.example:443?transport=tcp', PARLEY_TURN_SECRET: turnSecret, PARLEY_TURN_CREDENTIAL_TTL_S: '600' });
		const { client } = await joined('room', { userId: 'turn-user' });
		const nowS = Math.floor(Date.now() / 1000);
		const t = await client.request('createTransport', { direction: 'send' });
		if (!t.ok) throw new Error('createTransport failed');
		const [ice] = t.data.iceServers!;
		expect(ice!.urls).toEqual(['turn:192.0.2.1:3478?transport=udp', 'turns:turn.example:443?transport=tcp']);
		const [expiry, user] = ice!.username.split(':');
		expect(user).toBe('turn-user');
		expect(Math.abs(Number(expiry) - (nowS + 600))).toBeLessThanOrEqual(2);
		expect(ice!.credential).toBe(createHmac('sha1', turnSecret).update(ice!.username).digest('base64'));
		const restarted = await client.request('restartIce', { transportId: t.data.transportId });
		if (!restarted.ok) throw new Error('restartIce failed');
		expect(restarted.data.iceServers![0]!.username).toMatch(/^\d+:turn-user$/);
	});

	it('enforces per-peer transport and producer limits', async () => {
		await server.shutdown('restart');
		await startServer({ PARLEY_CHANNELS_MAX_TRANSPORTS_PER_PEER: '2', PARLEY_CHANNELS_MAX_PRODUCERS_PER_PEER: '1' });
		const { client } = await joined();
		const t = await client.request('createTransport', { direction: 'send' });
		if (!t.ok) throw new Error('createTransport failed');
		expect(errorCode(await client.request('createTransport', { direction: 'recv' }))).toBe('OK');
		expect(errorCode(await client.request('createTransport', { direction: 'recv' }))).toBe('E_TOO_MANY_TRANSPORTS');
		expect(errorCode(await client.request('produce', { transportId: t.data.transportId, kind: 'audio', rtpParameters: OPUS_RTP }))).toBe('OK');
		const second = { ...OPUS_RTP, mid: '1', encodings: [{ ssrc: 22222222 }] };
		expect(errorCode(await client.request('produce', { transportId: t.data.transportId, kind: 'audio', rtpParameters: second }))).toBe('E_TOO_MANY_PRODUCERS');
	});

	it('enforces peers per channel and channels per node', async () => {
		await server.shutdown('restart');
		await startServer({ PARLEY_CHANNELS_MAX_PEERS: '2', PARLEY_CHANNELS_MAX_CHANNELS: '1' });
		await joined('room');
		await joined('room');
		await expect(joined('room')).rejects.toThrow('E_CHANNEL_FULL');
		await expect(joined('team-2')).rejects.toThrow('E_TOO_MANY_CHANNELS');
	});

	it('tells peers about joins and leaves, and cleans up everything a leaving peer owned', async () => {
		const a = await joined('room', { displayName: 'Ada' });
		const b = await joined('room', { displayName: 'Bob' });
		expect(await a.client.waitFor('peerJoined')).toMatchObject({ peerId: b.peerId, displayName: 'Bob' });
		for (const c of [a, b]) {
			await c.client.request('createTransport', { direction: 'recv' });
			const t = await c.client.request('createTransport', { direction: 'send' });
			if (!t.ok) throw new Error('createTransport failed');
			await c.client.request('produce', { transportId: t.data.transportId, kind: 'audio', rtpParameters: OPUS_RTP });
		}
		await a.client.waitFor('newConsumer');
		await b.client.waitFor('newConsumer');
		const load = () => server.workers.info()[0]!;
		expect(load()).toMatchObject({ transports: 4, producers: 2, consumers: 2 });

		expect((await b.client.request('leave', {})).ok).toBe(true);
		expect(await a.client.waitFor('peerLeft')).toEqual({ peerId: b.peerId });
		await a.client.waitFor('consumerClosed');
		expect(load()).toMatchObject({ transports: 2, producers: 1, consumers: 0 });

		a.client.close();
		await a.client.closed;
		await b.client.until(() => load().transports === 0, 2000, 'transports closed');
		expect(load()).toMatchObject({ transports: 0, producers: 0, consumers: 0 });
		// The empty channel closes its router after the grace period.
		await b.client.until(() => load().routers === 0, 3000, 'router closed');
		expect(server.channels.size).toBe(0);
	});

	it('replaces an older connection of the same user in the same channel', async () => {
		const first = await joined('room', { userId: 'same-user' });
		const watcher = await joined('room');
		const second = await joined('room', { userId: 'same-user' });
		expect(await first.client.closed).toEqual({ code: CLOSE_CODES.REPLACED, reason: expect.stringMatching(/^E_REPLACED/) as unknown as string });
		await watcher.client.waitFor('peerLeft', (d) => d.peerId === first.peerId);
		expect(server.channels.get('room')!.peers.size).toBe(2);
		expect((await second.client.request('getRouterRtpCapabilities', {})).ok).toBe(true);
	});

	it('tells clients it is shutting down and closes them with 4503', async () => {
		const { client } = await joined();
		const done = server.shutdown('test');
		expect(await client.waitFor('serverShuttingDown')).toEqual({ reconnectAfterMs: 1000 });
		expect((await client.closed).code).toBe(CLOSE_CODES.SHUTTING_DOWN);
		await done;
	});

	describe('a request past signaling.requestTimeoutMs', () => {
		/** Stops the (only) mediasoup worker: router creation, and so a first join, hangs until resumed. */
		function stallWorker(): () => void {
			const pid = server.workers.info()[0]!.pid!;
			process.kill(pid, 'SIGSTOP');
			let stalled = true;
			const resume = () => {
				if (stalled) process.kill(pid, 'SIGCONT');
				stalled = false;
			};
			resumes.push(resume);
			return resume;
		}
		const resumes: (() => void)[] = [];
		const peersIn = (channel: string) => server.channels.get(channel)?.peers.size ?? 0;
		const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

		beforeEach(async () => {
			await server.shutdown('restart');
			await startServer({ PARLEY_SIGNALING_REQUEST_TIMEOUT_MS: '300' });
		});

		afterEach(() => {
			for (const resume of resumes.splice(0)) resume();
		});

		async function capabilities(client: TestSignalingClient): Promise<RequestData<'join'>['rtpCapabilities']> {
			const caps = await client.request('getRouterRtpCapabilities', {});
			if (!caps.ok) throw new Error('no caps');
			return caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'];
		}

		it('keeps the turn until its handler is done: the next join waits, the late join is undone', async () => {
			const { client } = await connect();
			const rtpCapabilities = await capabilities(client);
			const resume = stallWorker();
			expect(errorCode(await client.request('join', { channel: 'room', rtpCapabilities }))).toBe('E_INTERNAL');
			const second = client.request('join', { channel: 'room', rtpCapabilities });
			// Longer than the timeout: the second join must not have started meanwhile.
			await sleep(600);
			resume();
			expect(errorCode(await second)).toBe('OK');
			expect(peersIn('room')).toBe(1);
			client.close();
			await client.closed;
			await sleep(50);
			expect(peersIn('room')).toBe(0);
		});

		it('undoes a join that finishes after its timeout and after the socket closed', async () => {
			const { client } = await connect();
			const { client: bystander } = await connect();
			const rtpCapabilities = await capabilities(client);
			const resume = stallWorker();
			expect(errorCode(await client.request('join', { channel: 'room', rtpCapabilities }))).toBe('E_INTERNAL');
			client.close();
			await client.closed;
			await bystander.until(() => server.signaling.sessionCount === 1, 2000, 'socket closed');
			resume();
			const routers = () => server.workers.info()[0]!.routers;
			await bystander.until(() => routers() > 0, 5000, 'router created');
			// A ghost peer would keep the channel open; without it, it closes once empty.
			await bystander.until(() => routers() === 0 && server.channels.size === 0, 3000, 'empty channel closed');
			expect(peersIn('room')).toBe(0);
		});
	});
});
