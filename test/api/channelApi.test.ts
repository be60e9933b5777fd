// The backend API against a running Parley: a real gRPC client, real WebSocket peers, real workers.
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProto } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { mintApiToken, type ApiGrant } from '../../server/api/apiAuth.js';
import { loadApiPackage } from '../../server/api/GrpcApiServer.js';
import { decodeStatusDetails } from '../../server/api/grpcErrors.js';
import { CLOSE_CODES, PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';

const JWT_SECRET = 'test-secret-that-is-long-enough-0123456789';
const API_SECRET = 'api-secret-that-is-long-enough-0123456789';
const ALL: ApiGrant = { channels: ['*'], operations: ['*'] };
const OPUS_RTP: RequestData<'produce'>['rtpParameters'] = {
	mid: '0',
	codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } }],
	encodings: [{ ssrc: 22222222 }],
};

type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: any) => void) => void;

describe('gRPC backend API', () => {
	let server: ParleyServer;
	let address: string;
	const pkg = grpc.loadPackageDefinition(loadApiPackage()) as any;
	// The standard protos, as a generic client has them.
	const reflectionProto = createRequire(import.meta.url).resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
	const std = grpc.loadPackageDefinition(protoLoader.loadSync([healthProto, reflectionProto], { enums: String })) as any;
	let channels: grpc.Client & Record<string, Unary>;
	const clients: TestSignalingClient[] = [];

	beforeAll(async () => {
		server = await ParleyServer.create(
			await testConfig({ PARLEY_AUTH_JWT_SECRET: JWT_SECRET, PARLEY_API_GRPC_ENABLED: 'true', PARLEY_API_GRPC_PORT: '0', PARLEY_API_KEYS: `backend:${API_SECRET}` }),
			testLogger(),
		);
		address = `127.0.0.1:${server.api!.port}`;
		channels = new pkg.parley.v1.ChannelService(address, grpc.credentials.createInsecure());
	});
	afterAll(async () => {
		for (const c of clients) c.close();
		channels?.close();
		await server?.shutdown('test over');
	});

	async function call(method: string, req: object, token?: string): Promise<{ err: grpc.ServiceError | null; res: any }> {
		const md = new grpc.Metadata();
		if (token !== undefined) md.set('authorization', `Bearer ${token}`);
		return new Promise((resolve) => channels[method]!.call(channels, req, md, (err, res) => resolve({ err, res })));
	}
	const token = (grant: ApiGrant = ALL, ttlS = 60, secret = API_SECRET, keyId = 'backend') => mintApiToken({ keyId, secret, grant, ttlS });

	async function joinedPeer(channel: string, userId: string, produce = false) {
		const t = await mintAccessToken({ userId, channels: ['*'], grants: { canPublish: true, canSubscribe: true }, ttlS: 600 }, new TextEncoder().encode(JWT_SECRET));
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${t}&v=${PROTOCOL_VERSION}`);
		clients.push(client);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		const join = await client.request('join', { channel, rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		if (!join.ok) throw new Error(join.error.code);
		let producerId = '';
		if (produce) {
			const tr = await client.request('createTransport', { direction: 'send' });
			if (!tr.ok) throw new Error(tr.error.code);
			const p = await client.request('produce', { transportId: tr.data.transportId, kind: 'audio', rtpParameters: OPUS_RTP });
			if (!p.ok) throw new Error(p.error.code);
			producerId = p.data.producerId;
		}
		return { client, peerId: join.data.peerId, producerId };
	}

	it('answers health (overall and per service) and lists services through reflection', async () => {
		const health = new std.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
		for (const service of ['', 'parley.v1.ChannelService', 'parley.v1.VoiceMessageService']) {
			const res = await new Promise<any>((resolve, reject) => health.Check({ service }, (err: Error | null, r: unknown) => (err ? reject(err) : resolve(r))));
			expect(res.status).toBe('SERVING');
		}
		health.close();
		const reflection = new std.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
		const stream = reflection.ServerReflectionInfo();
		const reply = new Promise<any>((resolve) => stream.once('data', resolve));
		stream.write({ listServices: '' });
		const names = (await reply).listServicesResponse.service.map((s: { name: string }) => s.name);
		stream.end();
		reflection.close();
		expect(names).toContain('parley.v1.ChannelService');
		expect(names).toContain('parley.v1.VoiceMessageService');
	});

	it('refuses missing, malformed, badly signed, expired and unknown-key tokens with UNAUTHENTICATED and E_AUTH', async () => {
		const expired = await mintApiToken({ keyId: 'backend', secret: API_SECRET, grant: ALL, ttlS: -60 });
		const cases = [undefined, 'not-a-jwt', await token(ALL, 60, 'another-secret-that-is-long-enough-012345'), expired, await token(ALL, 60, API_SECRET, 'nobody'), await token(ALL, 3600)];
		for (const t of cases) {
			const { err } = await call('ListChannels', {}, t);
			expect(err?.code, String(t)).toBe(grpc.status.UNAUTHENTICATED);
			expect(err?.metadata.get('parley-error-code')).toEqual(['E_AUTH']);
		}
	});

	it('refuses a grant that does not cover the operation or the channel with PERMISSION_DENIED', async () => {
		await joinedPeer('perm-room', 'perm-user');
		const listOnly = await token({ channels: ['perm-*'], operations: ['channels.list'] });
		expect((await call('ListParticipants', { channel: 'perm-room' }, listOnly)).err).toBeNull();
		const mute = await call('MuteParticipant', { channel: 'perm-room', participant: { userId: 'perm-user' }, muted: true }, listOnly);
		expect(mute.err?.code).toBe(grpc.status.PERMISSION_DENIED);
		const other = await call('ListParticipants', { channel: 'other-room' }, listOnly);
		expect(other.err?.code).toBe(grpc.status.PERMISSION_DENIED);
		expect(other.err?.metadata.get('parley-error-code')).toEqual(['E_FORBIDDEN']);
	});

	it('answers a malformed request with INVALID_ARGUMENT and its field violations, an unknown channel with NOT_FOUND', async () => {
		const bad = await call('MuteParticipant', { channel: 'no spaces allowed!', muted: true }, await token());
		expect(bad.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
		const details = decodeStatusDetails(bad.err!.metadata.get('grpc-status-details-bin')[0] as Buffer);
		expect(details.errorInfo).toEqual({ reason: 'E_BAD_REQUEST', domain: 'parley' });
		expect(details.fieldViolations.map((v) => v.field).sort()).toEqual(['channel', 'participant']);
		const missing = await call('ListParticipants', { channel: 'nobody-here' }, await token());
		expect(missing.err?.code).toBe(grpc.status.NOT_FOUND);
		expect(missing.err?.metadata.get('parley-error-code')).toEqual(['E_NOT_FOUND']);
	});

	it('mutes a participant on the server: everyone is told, they cannot resume, unmute resumes', async () => {
		const speaker = await joinedPeer('mute-room', 'speaker', true);
		const listener = await joinedPeer('mute-room', 'listener');
		const t = await token();
		const muted = await call('MuteParticipant', { channel: 'mute-room', participant: { peerId: speaker.peerId }, muted: true }, t);
		expect(muted.err).toBeNull();
		expect(muted.res.participant).toMatchObject({ peerId: speaker.peerId, mutedByModerator: true, speaking: false });
		await listener.client.waitFor('participantMuted');
		expect(await speaker.client.waitFor('participantMuted')).toEqual({ peerId: speaker.peerId, muted: true });
		const resume = await speaker.client.request('resumeProducer', { producerId: speaker.producerId });
		expect(resume.ok ? 'OK' : resume.error.code).toBe('E_MUTED_BY_MODERATOR');
		const unmuted = await call('MuteParticipant', { channel: 'mute-room', participant: { userId: 'speaker' }, muted: false }, t);
		expect(unmuted.res.participant).toMatchObject({ mutedByModerator: false, speaking: true });
		const list = await call('ListChannels', {}, t);
		expect(list.res.channels.find((c: { name: string }) => c.name === 'mute-room')).toMatchObject({ peers: 2, speakers: 1, homeNodeId: server.nodeId });
	});

	it('revoking canPublish closes the producer at once and refuses new ones; other grants stay', async () => {
		const speaker = await joinedPeer('grant-room', 'grant-speaker', true);
		const res = await call('UpdateParticipant', { channel: 'grant-room', participant: { userId: 'grant-speaker' }, canPublish: false }, await token());
		expect(res.err).toBeNull();
		expect(res.res.participant.grants).toEqual({ canPublish: false, canSubscribe: true, canRecord: false });
		expect(res.res.participant.speaking).toBe(false);
		expect((await speaker.client.waitFor('grantsChanged')).grants.canPublish).toBe(false);
		const tr = await speaker.client.request('createTransport', { direction: 'send' });
		expect(tr.ok ? 'OK' : tr.error.code).toBe('E_FORBIDDEN');
	});

	it("a moderator's mute and revoked grant hold when the user reconnects with the same token, for the channel's life", async () => {
		const speaker = await joinedPeer('sticky-room', 'sticky-speaker', true);
		await joinedPeer('sticky-room', 'sticky-listener'); // keeps the channel open across the rejoin
		expect((await call('MuteParticipant', { channel: 'sticky-room', participant: { userId: 'sticky-speaker' }, muted: true }, await token())).err).toBeNull();
		expect((await call('UpdateParticipant', { channel: 'sticky-room', participant: { userId: 'sticky-speaker' }, canPublish: false }, await token())).err).toBeNull();
		speaker.client.close();
		// Same user, a token that still grants publishing: the moderator's decision wins.
		const t = await mintAccessToken({ userId: 'sticky-speaker', channels: ['*'], grants: { canPublish: true, canSubscribe: true }, ttlS: 600 }, new TextEncoder().encode(JWT_SECRET));
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${t}&v=${PROTOCOL_VERSION}`);
		clients.push(client);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		const join = await client.request('join', { channel: 'sticky-room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		if (!join.ok) throw new Error(join.error.code);
		expect(join.data.moderation).toEqual({ muted: true, grants: { canPublish: false, canSubscribe: true, canRecord: false } });
		const tr = await client.request('createTransport', { direction: 'send' });
		expect(tr.ok ? 'OK' : tr.error.code).toBe('E_FORBIDDEN');
		const listed = await call('ListParticipants', { channel: 'sticky-room' }, await token());
		expect(listed.res.participants.find((p: { userId: string }) => p.userId === 'sticky-speaker')).toMatchObject({ mutedByModerator: true, grants: { canPublish: false } });
		// Given back: the next join carries no moderation (unmuted, the grants a moderator set).
		expect((await call('MuteParticipant', { channel: 'sticky-room', participant: { userId: 'sticky-speaker' }, muted: false }, await token())).err).toBeNull();
		expect((await call('UpdateParticipant', { channel: 'sticky-room', participant: { userId: 'sticky-speaker' }, canPublish: true }, await token())).err).toBeNull();
		const tr2 = await client.request('createTransport', { direction: 'send' });
		expect(tr2.ok).toBe(true);
		// Another user in the same channel is not affected.
		const other = await joinedPeer('sticky-room', 'sticky-other', true);
		expect(other.producerId).not.toBe('');
	});

	it('RemoveParticipant closes their connection with 4403; CloseChannel empties the channel', async () => {
		const victim = await joinedPeer('remove-room', 'victim');
		const stays = await joinedPeer('remove-room', 'stays');
		const t = await token();
		expect((await call('RemoveParticipant', { channel: 'remove-room', participant: { peerId: victim.peerId }, reason: 'spam' }, t)).err).toBeNull();
		const closed = await victim.client.closed;
		expect(closed.code).toBe(CLOSE_CODES.REMOVED);
		expect(closed.reason).toMatch(/^E_REMOVED: spam/);
		const close = await call('CloseChannel', { channel: 'remove-room' }, t);
		expect(close.res.participantsRemoved).toBe(1);
		expect((await stays.client.closed).code).toBe(CLOSE_CODES.REMOVED);
		expect((await call('ListParticipants', { channel: 'remove-room' }, t)).err?.code).toBe(grpc.status.NOT_FOUND);
	});

	it('survives garbage bytes on a raw HTTP/2 stream and a raw TCP connection', async () => {
		const session = http2.connect(`http://${address}`);
		const req = session.request({ ':method': 'POST', ':path': '/parley.v1.ChannelService/ListChannels', 'content-type': 'application/grpc', te: 'trailers' });
		req.end(Buffer.from([0, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
		await new Promise<void>((resolve) => {
			req.on('close', () => resolve());
			req.resume();
		});
		session.close();
		const net = await import('node:net');
		await new Promise<void>((resolve) => {
			const sock = net.connect(server.api!.port, '127.0.0.1', () => sock.end(Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\x01garbage')));
			sock.on('close', () => resolve());
			sock.on('error', () => resolve());
			sock.resume();
		});
		expect((await call('ListChannels', {}, await token())).err).toBeNull();
	});
});
