// ParleyClient with several nodes (in-process fake servers, one per URL): following
// E_REDIRECT on join, the redirect-loop guard, and reconnects that rotate over the entry
// URLs after a node dies (and go back to them after a redirect).
import { FakeMediaStreamTrack } from 'fake-mediastreamtrack';
import { Device, FakeHandler, testFakeParameters } from 'mediasoup-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ParleyClient, type ConnectionState } from './ParleyClient.js';
import { BackoffReconnectPolicy } from './ReconnectPolicy.js';
import { FakeMediaStream } from './test/FakeMediaStream.js';
import { FakeProtocolError, FakeSignalingServer, type FakeWebSocket } from './test/FakeSignalingServer.js';

const A = 'ws://node-a.test/ws';
const B = 'ws://node-b.test/ws';
const C = 'ws://node-c.test/ws';

/** One fake server per node; a node that is "down" refuses sockets like a closed port. */
class FakeCluster {
	readonly nodes = new Map<string, FakeSignalingServer>();
	readonly down = new Set<string>();
	/** Every socket opened, by node host, in order. */
	readonly connections: string[] = [];

	node(url: string): FakeSignalingServer {
		const host = new URL(url).host;
		let server = this.nodes.get(host);
		if (!server) {
			server = new FakeSignalingServer();
			this.nodes.set(host, server);
		}
		return server;
	}

	/** Joins for `channel` on every node but `home` are redirected to `home`. */
	home(channel: string, home: string): void {
		for (const url of [A, B, C]) {
			const server = this.node(url);
			server.on('join', (data) => {
				if (data.channel === channel && url !== home) throw new FakeProtocolError('E_REDIRECT', `served by ${home}`, { nodeId: new URL(home).host, url: home });
				return { peerId: `peer-${new URL(url).host}`, channel: data.channel, peers: [] };
			});
		}
	}

	createWebSocket = (url: string): WebSocket => {
		const host = new URL(url).host;
		this.connections.push(host);
		const socket = this.node(url).createWebSocket(url) as unknown as FakeWebSocket;
		if (this.down.has(host)) this.node(url).refuseWith = { code: 1006, reason: '' };
		else this.node(url).refuseWith = null;
		return socket as unknown as WebSocket;
	};

	/** The node dies: its open sockets drop, new ones are refused. */
	kill(url: string): void {
		const host = new URL(url).host;
		this.down.add(host);
		for (const s of this.node(url).sockets) s.drop(1006);
	}
}

function makeClient(cluster: FakeCluster, urls: string[]): ParleyClient {
	return new ParleyClient({
		urls,
		token: 'jwt',
		playAudio: false,
		requestTimeoutMs: 1000,
		reconnectPolicy: new BackoffReconnectPolicy({ delaysMs: [0, 10], maxDelayMs: 20, maxAttempts: 6, jitterRatio: 0 }),
		createWebSocket: cluster.createWebSocket,
		createDevice: () => new Device({ handlerFactory: FakeHandler.createFactory(testFakeParameters) }),
	});
}

describe('ParleyClient in a cluster', () => {
	let cluster: FakeCluster;
	let client: ParleyClient;
	let states: string[];

	beforeEach(() => {
		vi.stubGlobal('MediaStream', FakeMediaStream);
		cluster = new FakeCluster();
		client = makeClient(cluster, [A, B]);
		states = [];
		client.on('connectionState', (state: ConnectionState, error) => states.push(error ? `${state}:${error.code}` : state));
	});

	afterEach(async () => {
		await client.close();
		vi.unstubAllGlobals();
	});

	it('follows E_REDIRECT on join: closes its socket, joins on the home node', async () => {
		cluster.home('lobby', B);
		await client.connect();
		const result = await client.join('lobby');
		expect(result.peerId).toBe('peer-node-b.test');
		expect(client.serverUrl).toBe(B);
		expect(cluster.connections).toEqual(['node-a.test', 'node-b.test']);
		// The socket to A was closed by the client after the redirect, politely.
		expect(cluster.node(A).sockets[0]!.closedWith?.code).toBe(1000);
		// The receive transport connects at once (ChannelSession: set up ahead of any consumer).
		expect(cluster.node(B).methods().filter((m) => m !== 'connectTransport')).toEqual(['getRouterRtpCapabilities', 'join', 'createTransport', 'createTransport']);
		expect(client.state).toBe('connected');
		expect(states).toEqual(['connecting', 'connected']);
		// Publishing after the move goes to the home node.
		await client.publishTrack(new FakeMediaStreamTrack({ kind: 'audio' }) as unknown as MediaStreamTrack);
		expect(cluster.node(B).methods()).toContain('produce');
		expect(cluster.node(A).methods()).not.toContain('produce');
	});

	it('surfaces E_REDIRECT after 3 hops (nodes that keep redirecting each other)', async () => {
		for (const [url, next] of [
			[A, B],
			[B, C],
			[C, A],
		] as const) {
			cluster.node(url).on('join', () => {
				throw new FakeProtocolError('E_REDIRECT', 'elsewhere', { nodeId: new URL(next).host, url: next });
			});
		}
		await client.connect();
		await expect(client.join('lobby')).rejects.toMatchObject({ code: 'E_REDIRECT', redirect: { url: B } });
		expect(cluster.connections).toEqual(['node-a.test', 'node-b.test', 'node-c.test', 'node-a.test']);
		expect(client.channel).toBeNull();
	});

	it('refuses a redirect from wss to ws (the token would travel in the clear)', async () => {
		const secure = new ParleyClient({ url: 'wss://node-a.test/ws', token: 'jwt', playAudio: false, createWebSocket: cluster.createWebSocket, createDevice: () => new Device({ handlerFactory: FakeHandler.createFactory(testFakeParameters) }) });
		cluster.home('lobby', B);
		await secure.connect();
		await expect(secure.join('lobby')).rejects.toMatchObject({ code: 'E_REDIRECT', message: expect.stringMatching(/insecure/) });
		expect(cluster.connections).toEqual(['node-a.test']);
		await secure.close();
	});

	it('with redirectHosts, refuses a redirect to another host and stays on its entry node', async () => {
		const limited = new ParleyClient({
			urls: [A],
			redirectHosts: ['node-b.test'],
			token: 'jwt',
			playAudio: false,
			createWebSocket: cluster.createWebSocket,
			createDevice: () => new Device({ handlerFactory: FakeHandler.createFactory(testFakeParameters) }),
		});
		cluster.home('lobby', C);
		await limited.connect();
		await expect(limited.join('lobby')).rejects.toMatchObject({ code: 'E_REDIRECT', message: expect.stringMatching(/node-c\.test.*refused/) });
		expect(cluster.connections).toEqual(['node-a.test']);
		cluster.home('hall', B);
		await limited.join('hall');
		expect(cluster.connections).toEqual(['node-a.test', 'node-b.test']);
		await limited.close();
	});

	it('connect() moves on to the next entry URL when the first node is down', async () => {
		cluster.down.add('node-a.test');
		await client.connect();
		expect(client.serverUrl).toBe(B);
		expect(cluster.connections).toEqual(['node-a.test', 'node-b.test']);
	});

	it('after its node dies, reconnects through the next entry URL and rejoins', async () => {
		await client.connect();
		await client.join('lobby');
		expect(client.serverUrl).toBe(A);
		cluster.kill(A);
		await vi.waitFor(() => expect(client.state).toBe('reconnected'));
		expect(client.serverUrl).toBe(B);
		expect(cluster.node(B).methods()).toContain('join');
		expect(client.channel).toBe('lobby');
		expect(states).toEqual(['connecting', 'connected', 'reconnecting:E_CONNECTION_CLOSED', 'reconnected']);
	});

	it('after the home node it was redirected to dies, goes back to the entry node, which now serves the channel', async () => {
		// urls [A, C]; A redirects to home B.
		const c2 = makeClient(cluster, [A, C]);
		cluster.home('lobby', B);
		await c2.connect();
		await c2.join('lobby');
		expect(c2.serverUrl).toBe(B);
		// B dies; the channel's new home is A (the node that takes the next join).
		cluster.home('lobby', A);
		cluster.kill(B);
		await vi.waitFor(() => expect(c2.state).toBe('reconnected'));
		expect(c2.serverUrl).toBe(A);
		expect(cluster.connections).toEqual(['node-a.test', 'node-b.test', 'node-a.test']);
		expect(c2.channel).toBe('lobby');
		await c2.close();
	});

	it('a reconnect that lands on a non-home node is redirected again', async () => {
		cluster.home('lobby', A);
		await client.connect();
		await client.join('lobby');
		expect(client.serverUrl).toBe(A);
		// A's socket drops (a network blip, A still alive): the reconnect tries B, which
		// redirects back to A.
		cluster.node(A).socket.drop(1006);
		await vi.waitFor(() => expect(client.state).toBe('reconnected'));
		expect(client.serverUrl).toBe(A);
		expect(cluster.connections).toEqual(['node-a.test', 'node-b.test', 'node-a.test']);
	});

	it('rejects options without any URL and malformed URLs', () => {
		expect(() => new ParleyClient({ token: 'x' })).toThrow(TypeError);
		expect(() => new ParleyClient({ urls: [], token: 'x' })).toThrow(TypeError);
		expect(() => new ParleyClient({ urls: [A, 'node-b/ws'], token: 'x' })).toThrow(TypeError);
	});
});
