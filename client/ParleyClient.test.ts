// ParleyClient against an in-process fake server and mediasoup-client's FakeHandler: the
// whole join / publish / mute / reconnect logic without a browser or a real server.
import { FakeMediaStreamTrack } from 'fake-mediastreamtrack';
import { Device, FakeHandler, testFakeParameters } from 'mediasoup-client';
import type { types as mc } from 'mediasoup-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CLOSE_CODES } from '../protocol/messages.js';
import { ParleyClient, type ConnectionState } from './ParleyClient.js';
import type { ParleyError } from './ParleyError.js';
import { BackoffReconnectPolicy } from './ReconnectPolicy.js';
import { FakeMediaStream } from './test/FakeMediaStream.js';
import { FakeProtocolError, FakeSignalingServer } from './test/FakeSignalingServer.js';

interface Context {
	server: FakeSignalingServer;
	client: ParleyClient;
	states: [ConnectionState, string | undefined][];
	errors: ParleyError[];
	transports: mc.Transport[];
}

function audioTrack(): MediaStreamTrack {
	return new FakeMediaStreamTrack({ kind: 'audio' }) as unknown as MediaStreamTrack;
}

function consumerParameters(id: string, peerId: string, producerPaused = false) {
	const { rtpParameters, producerId } = testFakeParameters.generateConsumerRemoteParameters({ id, codecMimeType: 'audio/opus' });
	return { consumerId: id, producerId, peerId, kind: 'audio' as const, rtpParameters, producerPaused };
}

describe('ParleyClient', () => {
	let ctx: Context;

	beforeEach(() => {
		vi.stubGlobal('MediaStream', FakeMediaStream);
		const server = new FakeSignalingServer();
		const transports: mc.Transport[] = [];
		const client = new ParleyClient({
			url: 'ws://parley.test/ws',
			token: 'jwt',
			playAudio: false,
			requestTimeoutMs: 1000,
			reconnectPolicy: new BackoffReconnectPolicy({ delaysMs: [0, 10], maxDelayMs: 20, maxAttempts: 4, jitterRatio: 0 }),
			createWebSocket: server.createWebSocket,
			createDevice: () => {
				const device = new Device({ handlerFactory: FakeHandler.createFactory(testFakeParameters) });
				device.observer.on('newtransport', (t) => transports.push(t));
				return device;
			},
		});
		ctx = { server, client, states: [], errors: [], transports };
		client.on('connectionState', (state, error) => ctx.states.push([state, error?.code]));
		client.on('error', (error) => ctx.errors.push(error));
	});

	afterEach(async () => {
		await ctx.client.close();
		vi.unstubAllGlobals();
	});

	async function joined(channel = 'lobby'): Promise<void> {
		await ctx.client.connect();
		await ctx.client.join(channel);
	}

	it('connect() resolves with the welcome and reports connecting -> connected', async () => {
		const welcome = await ctx.client.connect();
		expect(welcome.grants.canPublish).toBe(true);
		expect(ctx.states).toEqual([
			['connecting', undefined],
			['connected', undefined],
		]);
		expect(ctx.client.state).toBe('connected');
	});

	it('connect() rejects and ends disconnected with the code on a refused token', async () => {
		ctx.server.refuseWith = { code: CLOSE_CODES.AUTH, reason: '' };
		await expect(ctx.client.connect()).rejects.toMatchObject({ code: 'E_AUTH' });
		expect(ctx.states.at(-1)).toEqual(['disconnected', 'E_AUTH']);
	});

	it('join() loads the device, joins, creates both transports and lists the peers', async () => {
		ctx.server.peersInChannel = [{ peerId: 'p-grace', userId: 'u2', displayName: 'Grace' }];
		const joinedPeers: string[] = [];
		ctx.client.on('peerJoined', (peer) => joinedPeers.push(peer.displayName));
		await ctx.client.connect();
		const result = await ctx.client.join('lobby');
		expect(ctx.server.methods().filter((m) => m !== 'connectTransport')).toEqual(['getRouterRtpCapabilities', 'join', 'createTransport', 'createTransport']);
		expect(ctx.server.requestsOf('createTransport').map((d) => d.direction).sort()).toEqual(['recv', 'send']);
		expect(ctx.server.requestsOf('join')[0]?.rtpCapabilities.codecs?.length).toBeGreaterThan(0);
		expect(result.peers.map((p) => p.peerId)).toEqual(['p-grace']);
		expect(ctx.client.peerId).toBe(result.peerId);
		expect(ctx.client.channel).toBe('lobby');
		expect([...ctx.client.peers.keys()]).toEqual(['p-grace']);
		expect(joinedPeers).toEqual(['Grace']);
	});

	it('join() creates only the transports the token grants', async () => {
		ctx.server.welcome = { ...ctx.server.welcome, grants: { canPublish: false, canSubscribe: true, canRecord: false } };
		await joined();
		expect(ctx.server.requestsOf('createTransport')).toEqual([{ direction: 'recv' }]);
		await expect(ctx.client.publishTrack(audioTrack())).rejects.toMatchObject({ code: 'E_FORBIDDEN' });
		await expect(ctx.client.publishMicrophone()).rejects.toMatchObject({ code: 'E_FORBIDDEN' });
	});

	it('join() validates the channel name and refuses a second join', async () => {
		await ctx.client.connect();
		await expect(ctx.client.join('../etc')).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
		await ctx.client.join('lobby');
		await expect(ctx.client.join('other')).rejects.toMatchObject({ code: 'E_ALREADY_JOINED' });
	});

	it('join() failing on the server leaves no channel behind', async () => {
		ctx.server.on('join', () => {
			throw new FakeProtocolError('E_CHANNEL_FULL');
		});
		await ctx.client.connect();
		await expect(ctx.client.join('lobby')).rejects.toMatchObject({ code: 'E_CHANNEL_FULL' });
		expect(ctx.client.channel).toBeNull();
	});

	it('queues consumers announced before the recv transport exists, then consumes and resumes them', async () => {
		ctx.server.peersInChannel = [{ peerId: 'p-grace', userId: 'u2', displayName: 'Grace' }];
		// Push the consumer right after the recv createTransport answer, before the client
		// could create the transport.
		ctx.server.afterResponse = (request, socket) => {
			if (request.method === 'createTransport' && (request.data as { direction: string }).direction === 'recv') {
				ctx.server.notify('newConsumer', consumerParameters('c1', 'p-grace'), socket);
			}
		};
		const streams: string[] = [];
		ctx.client.on('remoteStream', (peerId) => streams.push(peerId));
		await joined();
		await vi.waitFor(() => expect(ctx.server.requestsOf('resumeConsumer')).toEqual([{ consumerId: 'c1' }]));
		expect(streams).toEqual(['p-grace']);
		expect([...ctx.client.remoteStreams().keys()]).toEqual(['p-grace']);
		expect(ctx.server.methods()).toContain('connectTransport');
	});

	it('connects the recv transport at join, before anyone is heard, and not again for the first consumer', async () => {
		ctx.server.welcome = { ...ctx.server.welcome, grants: { canPublish: false, canSubscribe: true, canRecord: false } };
		await joined();
		// Only a placeholder receiver of our own: the server is asked for nothing but the connect.
		await vi.waitFor(() => expect(ctx.server.requestsOf('connectTransport')).toHaveLength(1));
		expect(ctx.server.methods()).toEqual(['getRouterRtpCapabilities', 'join', 'createTransport', 'connectTransport']);
		const streams: string[] = [];
		ctx.client.on('remoteStream', (peerId) => streams.push(peerId));
		ctx.server.notify('newConsumer', consumerParameters('c1', 'p-grace'));
		await vi.waitFor(() => expect(streams).toEqual(['p-grace']));
		await vi.waitFor(() => expect(ctx.server.requestsOf('resumeConsumer')).toEqual([{ consumerId: 'c1' }]));
		expect(ctx.server.requestsOf('connectTransport')).toHaveLength(1);
		expect(ctx.client.remoteStreams().size).toBe(1);
		expect(ctx.errors).toEqual([]);
	});

	it('a connectTransport the server refuses makes the session rejoin (media could not flow)', async () => {
		ctx.server.welcome = { ...ctx.server.welcome, grants: { canPublish: false, canSubscribe: true, canRecord: false } };
		let refusals = 1;
		ctx.server.on('connectTransport', () => {
			if (refusals-- > 0) throw new FakeProtocolError('E_NOT_FOUND');
			return {};
		});
		await joined();
		await vi.waitFor(() => expect(ctx.server.requestsOf('join')).toHaveLength(2));
		await vi.waitFor(() => expect(ctx.client.state).toBe('reconnected'));
		expect(ctx.client.channel).toBe('lobby');
	});

	it('follows remote mute and consumer close', async () => {
		ctx.server.peersInChannel = [{ peerId: 'p-grace', userId: 'u2', displayName: 'Grace' }];
		await joined();
		const events: string[] = [];
		ctx.client.on('peerMuteChanged', (peerId, muted) => events.push(`${peerId}:${muted ? 'muted' : 'unmuted'}`));
		ctx.client.on('remoteStreamRemoved', (peerId) => events.push(`removed:${peerId}`));
		ctx.server.notify('newConsumer', consumerParameters('c1', 'p-grace', true));
		await vi.waitFor(() => expect(ctx.client.remoteStreams().size).toBe(1));
		expect(ctx.client.isPeerMuted('p-grace')).toBe(true);
		ctx.server.notify('consumerResumed', { consumerId: 'c1' });
		ctx.server.notify('consumerPaused', { consumerId: 'c1' });
		ctx.server.notify('consumerClosed', { consumerId: 'c1' });
		expect(events).toEqual(['p-grace:muted', 'p-grace:unmuted', 'p-grace:muted', 'removed:p-grace', 'p-grace:unmuted']);
		expect(ctx.client.remoteStreams().size).toBe(0);
	});

	it('tracks peers, the active speaker and audio levels', async () => {
		await joined();
		const seen: unknown[] = [];
		ctx.client.on('peersChanged', (peers) => seen.push([...peers.keys()]));
		ctx.client.on('activeSpeaker', (peerId) => seen.push(`speaker:${peerId}`));
		ctx.client.on('audioLevels', (levels) => seen.push(levels));
		ctx.server.notify('peerJoined', { peerId: 'p2', userId: 'u2', displayName: 'Grace' });
		ctx.server.notify('activeSpeaker', { peerId: 'p2' });
		ctx.server.notify('audioLevels', { levels: [{ peerId: 'p2', volumeDb: -20 }] });
		ctx.server.notify('peerLeft', { peerId: 'p2' });
		ctx.server.notify('activeSpeaker', { peerId: null });
		expect(seen).toEqual([['p2'], 'speaker:p2', [{ peerId: 'p2', volumeDb: -20 }], [], 'speaker:null']);
		expect(ctx.client.activeSpeakerId).toBeNull();
	});

	it('publishes with voice codec options, and mute/unmute pause the producer on both sides', async () => {
		await joined();
		const track = audioTrack();
		await ctx.client.publishTrack(track);
		expect(ctx.server.requestsOf('produce')).toMatchObject([{ kind: 'audio', paused: false }]);
		const producerId = ctx.client.producerId;
		expect(producerId).toMatch(/^producer-/);
		const muteEvents: boolean[] = [];
		ctx.client.on('muteChanged', (muted) => muteEvents.push(muted));
		await ctx.client.mute();
		expect(ctx.client.muted).toBe(true);
		expect(track.enabled).toBe(false);
		await ctx.client.unmute();
		expect(track.enabled).toBe(true);
		expect(ctx.server.methods().filter((m) => m.endsWith('Producer'))).toEqual(['pauseProducer', 'resumeProducer']);
		expect(ctx.server.requestsOf('pauseProducer')).toEqual([{ producerId }]);
		expect(muteEvents).toEqual([true, false]);
	});

	it('keeps quick mute toggles in order', async () => {
		await joined();
		await ctx.client.publishTrack(audioTrack());
		await Promise.all([ctx.client.mute(), ctx.client.unmute(), ctx.client.mute()]);
		expect(ctx.server.methods().filter((m) => m.endsWith('Producer'))).toEqual(['pauseProducer', 'resumeProducer', 'pauseProducer']);
		expect(ctx.client.muted).toBe(true);
	});

	it('publishes paused when muted before publishing', async () => {
		await joined();
		await ctx.client.mute();
		await ctx.client.publishTrack(audioTrack());
		expect(ctx.server.requestsOf('produce')).toMatchObject([{ paused: true }]);
		expect(ctx.server.methods()).not.toContain('pauseProducer');
	});

	it('reconnects after a network loss: rejoins and republishes the same track, still muted', async () => {
		ctx.server.peersInChannel = [{ peerId: 'p-grace', userId: 'u2', displayName: 'Grace' }];
		await joined();
		const track = audioTrack();
		await ctx.client.publishTrack(track);
		await ctx.client.mute();
		const peerEvents: string[] = [];
		ctx.client.on('peerJoined', (p) => peerEvents.push(`+${p.peerId}`));
		ctx.client.on('peerLeft', (p) => peerEvents.push(`-${p.peerId}`));
		const firstPeerId = ctx.client.peerId;
		const firstSocket = ctx.server.socket;
		firstSocket.drop(1006);
		await vi.waitFor(() => expect(ctx.client.state).toBe('reconnected'));
		expect(ctx.states.map(([s]) => s)).toEqual(['connecting', 'connected', 'reconnecting', 'reconnected']);
		expect(ctx.server.sockets).toHaveLength(2);
		const second = ctx.server.methods(ctx.server.socket);
		expect(second.slice(0, 4)).toEqual(['getRouterRtpCapabilities', 'join', 'createTransport', 'createTransport']);
		expect(second).toContain('produce');
		expect(ctx.server.requestsOf('produce').at(-1)).toMatchObject({ paused: true });
		expect(ctx.client.peerId).not.toBe(firstPeerId);
		expect(ctx.client.muted).toBe(true);
		expect(track.readyState).toBe('live');
		// The same peers before and after: no churn.
		expect(peerEvents).toEqual([]);
		expect(ctx.client.channel).toBe('lobby');
	});

	it('ends disconnected with the code on a final close (replaced), without reconnecting', async () => {
		await joined();
		ctx.server.socket.drop(CLOSE_CODES.REPLACED, 'joined elsewhere');
		expect(ctx.client.state).toBe('disconnected');
		expect(ctx.states.at(-1)).toEqual(['disconnected', 'E_REPLACED']);
		await new Promise((r) => setTimeout(r, 30));
		expect(ctx.server.sockets).toHaveLength(1);
		expect(ctx.client.channel).toBeNull();
	});

	it('stops a reconnect in progress on a final close (replaced)', async () => {
		await joined();
		// The rejoin's join request is where the server notices the user joined elsewhere.
		ctx.server.on('join', (_data, socket) => {
			socket.drop(CLOSE_CODES.REPLACED);
			return 'never';
		});
		ctx.server.socket.drop(1006);
		await vi.waitFor(() => expect(ctx.client.state).toBe('disconnected'));
		expect(ctx.states.at(-1)).toEqual(['disconnected', 'E_REPLACED']);
		await new Promise((r) => setTimeout(r, 50));
		expect(ctx.server.sockets).toHaveLength(2);
		expect(ctx.client.state).toBe('disconnected');
	});

	it('gives up with E_RECONNECT_FAILED when the policy runs out', async () => {
		await joined();
		ctx.server.refuseWith = { code: 1006, reason: '' };
		ctx.server.socket.drop(1006);
		await vi.waitFor(() => expect(ctx.client.state).toBe('disconnected'));
		expect(ctx.states.at(-1)).toEqual(['disconnected', 'E_RECONNECT_FAILED']);
		expect(ctx.server.sockets).toHaveLength(1 + 4);
	});

	it('stops retrying when a reconnect is refused for auth', async () => {
		await joined();
		ctx.server.refuseWith = { code: CLOSE_CODES.AUTH, reason: '' };
		ctx.server.socket.drop(CLOSE_CODES.SHUTTING_DOWN);
		await vi.waitFor(() => expect(ctx.client.state).toBe('disconnected'));
		expect(ctx.states.at(-1)).toEqual(['disconnected', 'E_AUTH']);
		expect(ctx.server.sockets).toHaveLength(2);
	});

	it('asks the token provider again for each connection', async () => {
		let calls = 0;
		const server = ctx.server;
		const client = new ParleyClient({
			url: 'ws://parley.test/ws',
			token: async () => `token-${++calls}`,
			playAudio: false,
			reconnectPolicy: new BackoffReconnectPolicy({ delaysMs: [0], jitterRatio: 0, maxAttempts: 2 }),
			createWebSocket: server.createWebSocket,
		});
		await client.connect();
		server.socket.drop(1006);
		await vi.waitFor(() => expect(client.state).toBe('reconnected'));
		expect(server.sockets.map((s) => s.protocols[1])).toEqual(['parley.token.token-1', 'parley.token.token-2']);
		await client.close();
	});

	it('rejoins on the same connection when the channel closes', async () => {
		await joined();
		await ctx.client.publishTrack(audioTrack());
		ctx.server.notify('channelClosing', { reason: 'worker died' });
		await vi.waitFor(() => expect(ctx.client.state).toBe('reconnected'));
		expect(ctx.server.sockets).toHaveLength(1);
		expect(ctx.server.methods().filter((m) => m === 'join' || m === 'leave' || m === 'produce')).toEqual(['join', 'produce', 'leave', 'join', 'produce']);
		expect(ctx.states.map(([s, code]) => `${s}${code ? `:${code}` : ''}`)).toEqual(['connecting', 'connected', 'reconnecting:E_CHANNEL_CLOSING', 'reconnected']);
	});

	it('moves to a new connection after the delay the shutting-down server asks for', async () => {
		await joined();
		const started = Date.now();
		ctx.server.notify('serverShuttingDown', { reconnectAfterMs: 50 });
		expect(ctx.client.state).toBe('connected');
		await vi.waitFor(() => expect(ctx.client.state).toBe('reconnected'));
		expect(Date.now() - started).toBeGreaterThanOrEqual(45);
		expect(ctx.server.sockets).toHaveLength(2);
		expect(ctx.server.sockets[0]?.closedWith?.code).toBe(1000);
		expect(ctx.server.methods(ctx.server.socket)).toContain('join');
	});

	it('restarts ICE when a transport fails while signaling is fine', async () => {
		await joined();
		await ctx.client.publishTrack(audioTrack());
		const send = ctx.transports.find((t) => t.direction === 'send')!;
		(send.handler as unknown as FakeHandler).setConnectionState('failed');
		await vi.waitFor(() => expect(ctx.server.requestsOf('restartIce')).toEqual([{ transportId: send.id }]));
		expect(ctx.client.state).toBe('connected');
	});

	it('rejoins when an ICE restart fails', async () => {
		await joined();
		ctx.server.on('restartIce', () => {
			throw new FakeProtocolError('E_NOT_FOUND');
		});
		const recv = ctx.transports.find((t) => t.direction === 'recv')!;
		(recv.handler as unknown as FakeHandler).setConnectionState('failed');
		await vi.waitFor(() => expect(ctx.client.state).toBe('reconnected'));
		expect(ctx.server.methods().filter((m) => m === 'join' || m === 'leave')).toEqual(['join', 'leave', 'join']);
		expect(recv.closed).toBe(true);
	});

	it('stats() asks the server about each own transport', async () => {
		await joined();
		const stats = await ctx.client.stats();
		expect(stats.map((s) => s.direction).sort()).toEqual(['recv', 'send']);
		expect(ctx.server.requestsOf('getTransportStats')).toHaveLength(2);
	});

	it('leave() tells the server, closes transports, keeps a caller-owned track', async () => {
		ctx.server.peersInChannel = [{ peerId: 'p-grace', userId: 'u2', displayName: 'Grace' }];
		await joined();
		const track = audioTrack();
		await ctx.client.publishTrack(track);
		await ctx.client.mute();
		await ctx.client.leave();
		expect(ctx.server.methods().at(-1)).toBe('leave');
		expect(ctx.transports.every((t) => t.closed)).toBe(true);
		expect(ctx.client.channel).toBeNull();
		expect(ctx.client.peers.size).toBe(0);
		expect(ctx.client.producerId).toBeNull();
		expect(ctx.client.muted).toBe(false);
		expect(track.readyState).toBe('live');
		// The connection stays: joining again works.
		await ctx.client.join('lobby');
		expect(ctx.client.channel).toBe('lobby');
	});

	it('close() leaves, closes the socket and never reconnects', async () => {
		await joined();
		await ctx.client.close();
		expect(ctx.server.methods().at(-1)).toBe('leave');
		expect(ctx.server.socket.closedWith?.code).toBe(1000);
		expect(ctx.client.state).toBe('disconnected');
		expect(ctx.states.at(-1)).toEqual(['disconnected', undefined]);
		await new Promise((r) => setTimeout(r, 30));
		expect(ctx.server.sockets).toHaveLength(1);
		await ctx.client.close();
	});

	it('close() does not wait for a server that stopped answering', async () => {
		await joined();
		ctx.server.on('leave', () => 'never');
		const started = Date.now();
		await ctx.client.close();
		expect(Date.now() - started).toBeLessThan(2500);
		expect(ctx.client.state).toBe('disconnected');
	});

	it('rejects bad options with TypeError', () => {
		expect(() => new ParleyClient({ url: 'not a url', token: 't' })).toThrow(TypeError);
		expect(() => new ParleyClient({ url: 'ws://h/ws', token: 3 as unknown as string })).toThrow(TypeError);
	});

	it('reports no errors in the normal flows', async () => {
		await joined();
		await ctx.client.publishTrack(audioTrack());
		await ctx.client.leave();
		expect(ctx.errors).toEqual([]);
	});
});
