// Issue 19: "Channel service ... works from any node for a channel homed on another
// (through the cluster), with a clear error when the home is gone."
// Two Parley nodes (processes) sharing a real redis-server, the gRPC API on both. A channel
// homed on A with a signaling peer; a real grpc-js client connected to B lists, mutes,
// updates, removes and closes, also in a channel bridged across A and B; a stopped A (SIGSTOP)
// answers E_NODE_UNAVAILABLE after cluster.requestTimeoutMs, or DEADLINE_EXCEEDED at a shorter
// deadline; then A is SIGKILLed and a call at B answers UNAVAILABLE with E_NODE_UNAVAILABLE
// at once, naming the channel and A.
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { freePort } from '../../testkit/ports.js';
import { mintApiToken, type ApiGrant } from '../../server/api/apiAuth.js';
import { loadApiPackage } from '../../server/api/GrpcApiServer.js';
import { CLOSE_CODES, type RequestData } from '../../protocol/messages.js';
import { startNode, type NodeProcess, waitUntil } from './helpers/nodes.js';
import { joinVia, type JoinedClient } from './bridgeNodes.js';

const API_SECRET = 'api-secret-that-is-long-enough-0123456789';
const ALL: ApiGrant = { channels: ['*'], operations: ['*'] };
/** Long enough that A's home claim outlives the checks after the kill (the claim expires with the TTL). */
const NODE_TTL_MS = 6000;
/** Generous (shared 2-core machine): the kill is seen at once (A's bus subscription closes with its process). */
const UNAVAILABLE_BOUND_MS = 5000;
const OPUS_RTP: RequestData<'produce'>['rtpParameters'] = {
	mid: '0',
	codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } }],
	encodings: [{ ssrc: 33333333 }],
};

type Unary = (req: object, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: any) => void) => void;

describe('the channel API at a node that is not the channel home', () => {
	let redis: TestRedis;
	let raw: Redis;
	let a: NodeProcess;
	let b: NodeProcess;
	let atA: grpc.Client & Record<string, Unary>;
	let atB: grpc.Client & Record<string, Unary>;
	const clients: JoinedClient[] = [];
	const pkg = grpc.loadPackageDefinition(loadApiPackage()) as any;

	const start = async (id: string) => {
		const grpcPort = await freePort();
		const node = await startNode(redis.url, id, {
			PARLEY_CLUSTER_NODE_TTL_MS: String(NODE_TTL_MS),
			PARLEY_API_GRPC_ENABLED: 'true',
			PARLEY_API_GRPC_PORT: String(grpcPort),
			PARLEY_API_KEYS: `backend:${API_SECRET}`,
			// A join at a node other than the home bridges (for the bridged channel case);
			// peers joining the home directly are not affected.
			PARLEY_CLUSTER_BRIDGE_ABOVE_PEERS: '0',
			PARLEY_CLUSTER_PIPE_LISTEN_IP: '127.0.0.1',
		});
		return { node, grpcPort };
	};

	beforeAll(async () => {
		redis = await startRedis();
		raw = new Redis(redis.url);
		const [na, nb] = await Promise.all([start('api-a'), start('api-b')]);
		a = na.node;
		b = nb.node;
		atA = new pkg.parley.v1.ChannelService(`127.0.0.1:${na.grpcPort}`, grpc.credentials.createInsecure());
		atB = new pkg.parley.v1.ChannelService(`127.0.0.1:${nb.grpcPort}`, grpc.credentials.createInsecure());
	}, 60_000);

	afterAll(async () => {
		for (const c of clients) c.client.close();
		atA?.close();
		atB?.close();
		await Promise.all([a?.stop(), b?.stop()]);
		raw?.disconnect();
		await redis?.stop();
	});

	async function callAt(client: grpc.Client & Record<string, Unary>, method: string, req: object, deadlineMs = 10_000): Promise<{ err: grpc.ServiceError | null; res: any }> {
		const md = new grpc.Metadata();
		md.set('authorization', `Bearer ${await mintApiToken({ keyId: 'backend', secret: API_SECRET, grant: ALL, ttlS: 60 })}`);
		return new Promise((resolve) => client[method]!.call(client, req, md, { deadline: Date.now() + deadlineMs }, (err, res) => resolve({ err, res })));
	}
	const call = (method: string, req: object, deadlineMs?: number) => callAt(atB, method, req, deadlineMs);
	async function joinA(channel: string, userId: string, produce = false): Promise<JoinedClient & { producerId: string }> {
		const joined = await joinVia(a, channel, userId);
		clients.push(joined);
		let producerId = '';
		if (produce) {
			const tr = await joined.client.request('createTransport', { direction: 'send' });
			if (!tr.ok) throw new Error(tr.error.code);
			const p = await joined.client.request('produce', { transportId: tr.data.transportId, kind: 'audio', rtpParameters: OPUS_RTP });
			if (!p.ok) throw new Error(p.error.code);
			producerId = p.data.producerId;
		}
		return { ...joined, producerId };
	}

	it('lists, mutes, updates, removes and closes a channel homed on the other node', async () => {
		const speaker = await joinA('far-room', 'far-speaker', true);
		const listener = await joinA('far-room', 'far-listener');
		expect(await raw.get('parley:channel-home:far-room')).toBe(a.nodeId);

		const channels = await call('ListChannels', {});
		expect(channels.err).toBeNull();
		expect(channels.res.channels.find((c: { name: string }) => c.name === 'far-room')).toMatchObject({ peers: 2, speakers: 1, homeNodeId: a.nodeId });

		const list = await call('ListParticipants', { channel: 'far-room' });
		expect(list.err).toBeNull();
		expect(list.res.participants.map((p: { userId: string; nodeId: string }) => `${p.userId}@${p.nodeId}`).sort()).toEqual([`far-listener@${a.nodeId}`, `far-speaker@${a.nodeId}`]);

		const muted = await call('MuteParticipant', { channel: 'far-room', participant: { userId: 'far-speaker' }, muted: true });
		expect(muted.err).toBeNull();
		expect(muted.res.participant).toMatchObject({ peerId: speaker.peerId, mutedByModerator: true, speaking: false });
		expect(await speaker.client.waitFor('participantMuted')).toEqual({ peerId: speaker.peerId, muted: true });
		await listener.client.waitFor('participantMuted');
		const resume = await speaker.client.request('resumeProducer', { producerId: speaker.producerId });
		expect(resume.ok ? 'OK' : resume.error.code).toBe('E_MUTED_BY_MODERATOR');

		const updated = await call('UpdateParticipant', { channel: 'far-room', participant: { peerId: speaker.peerId }, canPublish: false });
		expect(updated.err).toBeNull();
		expect(updated.res.participant.grants).toMatchObject({ canPublish: false, canSubscribe: true });
		expect((await speaker.client.waitFor('grantsChanged')).grants.canPublish).toBe(false);

		// An error at the home keeps its code: the same status as a local call.
		const nobody = await call('MuteParticipant', { channel: 'far-room', participant: { userId: 'nobody' }, muted: true });
		expect(nobody.err?.code).toBe(grpc.status.NOT_FOUND);
		expect(nobody.err?.metadata.get('parley-error-code')).toEqual(['E_NOT_FOUND']);

		expect((await call('RemoveParticipant', { channel: 'far-room', participant: { peerId: speaker.peerId }, reason: 'spam' })).err).toBeNull();
		const removed = await speaker.client.closed;
		expect(removed.code).toBe(CLOSE_CODES.REMOVED);
		expect(removed.reason).toMatch(/^E_REMOVED: spam/);

		const close = await call('CloseChannel', { channel: 'far-room' });
		expect(close.err).toBeNull();
		expect(close.res.participantsRemoved).toBe(1);
		expect((await listener.client.closed).code).toBe(CLOSE_CODES.REMOVED);
		const gone = await call('ListParticipants', { channel: 'far-room' });
		expect(gone.err?.code).toBe(grpc.status.NOT_FOUND);
		expect(gone.err?.metadata.get('parley-error-code')).toEqual(['E_NOT_FOUND']);
	}, 30_000);

	it('in a channel bridged across the nodes: lists every peer with its node, acts where the participant is connected, closes everywhere', async () => {
		const home = await joinA('bridged-room', 'at-home');
		const satellite = await joinVia(b, 'bridged-room', 'at-satellite');
		clients.push(satellite);
		expect(await raw.get('parley:channel-home:bridged-room')).toBe(a.nodeId);
		await home.client.waitFor('peerJoined', (p) => p.peerId === satellite.peerId);

		for (const client of [atA, atB]) {
			const list = await callAt(client, 'ListParticipants', { channel: 'bridged-room' });
			expect(list.err).toBeNull();
			expect(list.res.participants.map((p: { userId: string; nodeId: string }) => `${p.userId}@${p.nodeId}`).sort()).toEqual([`at-home@${a.nodeId}`, `at-satellite@${b.nodeId}`]);
		}
		const listed = await callAt(atA, 'ListChannels', {});
		expect(listed.res.channels.filter((c: { name: string }) => c.name === 'bridged-room')).toEqual([expect.objectContaining({ peers: 2, homeNodeId: a.nodeId })]);

		// A peer of the satellite muted through the home, a peer of the home muted through the satellite.
		const m1 = await callAt(atA, 'MuteParticipant', { channel: 'bridged-room', participant: { userId: 'at-satellite' }, muted: true });
		expect(m1.err).toBeNull();
		expect(m1.res.participant).toMatchObject({ peerId: satellite.peerId, mutedByModerator: true });
		expect(await satellite.client.waitFor('participantMuted', (d) => d.peerId === satellite.peerId)).toEqual({ peerId: satellite.peerId, muted: true });
		const m2 = await callAt(atB, 'MuteParticipant', { channel: 'bridged-room', participant: { userId: 'at-home' }, muted: true });
		expect(m2.err).toBeNull();
		expect(await home.client.waitFor('participantMuted', (d) => d.peerId === home.peerId)).toEqual({ peerId: home.peerId, muted: true });

		expect((await callAt(atB, 'RemoveParticipant', { channel: 'bridged-room', participant: { peerId: home.peerId }, reason: 'off' })).err).toBeNull();
		expect((await home.client.closed).code).toBe(CLOSE_CODES.REMOVED);

		// Closed at the home: the satellite's peer is removed (4403), not told to rejoin.
		const close = await callAt(atA, 'CloseChannel', { channel: 'bridged-room', reason: 'done' });
		expect(close.err).toBeNull();
		expect(close.res.participantsRemoved).toBe(1);
		const closed = await satellite.client.closed;
		expect(closed.code).toBe(CLOSE_CODES.REMOVED);
		expect(closed.reason).toMatch(/^E_REMOVED: done/);
	}, 30_000);

	it('answers UNAVAILABLE with E_NODE_UNAVAILABLE, naming channel and node, once the home is killed', async () => {
		await joinA('doomed-room', 'doomed-user');
		expect((await call('ListParticipants', { channel: 'doomed-room' })).err).toBeNull();

		// A home that hangs (stopped: still subscribed, never answers): the call's deadline ends
		// the wait when it comes first, else cluster.requestTimeoutMs (2 s) gives E_NODE_UNAVAILABLE.
		a.proc.child.kill('SIGSTOP');
		try {
			const short = await call('ListParticipants', { channel: 'doomed-room' }, 300);
			expect(short.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
			const stoppedAt = performance.now();
			const hung = await call('ListParticipants', { channel: 'doomed-room' }, 10_000);
			const hungMs = Math.round(performance.now() - stoppedAt);
			expect(hung.err?.code).toBe(grpc.status.UNAVAILABLE);
			expect(hung.err?.metadata.get('parley-error-code')).toEqual(['E_NODE_UNAVAILABLE']);
			expect(hung.err?.details).toMatch(/no answer within 2000 ms/);
			expect(hungMs).toBeGreaterThanOrEqual(1900);
			console.log(`hung home -> UNAVAILABLE at the other node: ${hungMs} ms`);
		} finally {
			a.proc.child.kill('SIGCONT');
		}

		await a.kill();
		const killedAt = performance.now();
		const res = await call('MuteParticipant', { channel: 'doomed-room', participant: { userId: 'doomed-user' }, muted: true }, UNAVAILABLE_BOUND_MS);
		const answeredMs = Math.round(performance.now() - killedAt);
		expect(res.err?.code).toBe(grpc.status.UNAVAILABLE);
		expect(res.err?.metadata.get('parley-error-code')).toEqual(['E_NODE_UNAVAILABLE']);
		expect(res.err?.details).toContain('doomed-room');
		expect(res.err?.details).toContain(a.nodeId);
		expect(answeredMs).toBeLessThan(UNAVAILABLE_BOUND_MS);
		// The claim is still there (it expires with the TTL): the error is about the node, not the channel.
		expect(await raw.get('parley:channel-home:doomed-room')).toBe(a.nodeId);
		// B itself keeps serving: its own list answers (A's channels are gone with A).
		const channels = await call('ListChannels', {});
		expect(channels.err).toBeNull();
		expect(channels.res.channels.map((c: { name: string }) => c.name)).not.toContain('doomed-room');
		console.log(`home killed -> UNAVAILABLE at the other node: ${answeredMs} ms`);
		// Once the claim expires nobody serves the channel: NOT_FOUND (a join anywhere homes it anew).
		await waitUntil(async () => (await raw.get('parley:channel-home:doomed-room')) === null, NODE_TTL_MS * 2, 'home claim expiry', 100);
		const expired = await call('ListParticipants', { channel: 'doomed-room' });
		expect(expired.err?.code).toBe(grpc.status.NOT_FOUND);
		expect(expired.err?.metadata.get('parley-error-code')).toEqual(['E_NOT_FOUND']);
	}, 30_000);
});
