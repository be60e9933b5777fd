// The backend API's moderator calls, heard by a real WebRTC listener (werift): a mute stops the
// speaker's packets reaching the listener and unmute brings them back; revoking publish stops
// them for good.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { encodeTone } from '../helpers/audio.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { publishWithWerift, streamTone, type ToneStream, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { subscribeWithWerift, type WeriftSubscriber } from '../../testkit/weriftListener.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { mintApiToken } from '../../server/api/apiAuth.js';
import { loadApiPackage } from '../../server/api/GrpcApiServer.js';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';

const JWT_SECRET = 'test-secret-that-is-long-enough-0123456789';
const API_SECRET = 'api-secret-that-is-long-enough-0123456789';

let server: ParleyServer;
let channels: any;
const clients: TestSignalingClient[] = [];
let publisher: WeriftPublisher | undefined;
let listener: WeriftSubscriber | undefined;
let tone: ToneStream | undefined;

beforeAll(async () => {
	server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: JWT_SECRET, PARLEY_API_GRPC_ENABLED: 'true', PARLEY_API_GRPC_PORT: '0', PARLEY_API_KEYS: `backend:${API_SECRET}` }), testLogger());
	const pkg = grpc.loadPackageDefinition(loadApiPackage()) as any;
	channels = new pkg.parley.v1.ChannelService(`127.0.0.1:${server.api!.port}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
	await tone?.stop();
	await publisher?.close();
	await listener?.close();
	for (const c of clients) c.close();
	channels?.close();
	await server?.shutdown('test over');
});

async function join(userId: string): Promise<TestSignalingClient> {
	const t = await mintAccessToken({ userId, channels: ['*'], grants: { canPublish: true, canSubscribe: true }, ttlS: 600 }, new TextEncoder().encode(JWT_SECRET));
	const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${t}&v=${PROTOCOL_VERSION}`);
	clients.push(client);
	const caps = await client.request('getRouterRtpCapabilities', {});
	if (!caps.ok) throw new Error('caps');
	const joined = await client.request('join', { channel: 'media-room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
	if (!joined.ok) throw new Error(joined.error.code);
	return client;
}

async function call(method: string, req: object): Promise<void> {
	const md = new grpc.Metadata();
	md.set('authorization', `Bearer ${await mintApiToken({ keyId: 'backend', secret: API_SECRET, grant: { channels: ['media-*'], operations: ['*'] }, ttlS: 60 })}`);
	await new Promise<void>((resolve, reject) => channels[method](req, md, (err: Error | null) => (err ? reject(err) : resolve())));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Packets the listener got over `ms` (after letting what was in flight land). */
async function packetsOver(ms: number): Promise<number> {
	await sleep(300);
	const before = listener!.packetsReceived;
	await sleep(ms);
	return listener!.packetsReceived - before;
}

it('mute stops the listener receiving the speaker, unmute resumes it; revoking publish stops it', async () => {
	const speaker = await join('speaker');
	publisher = await publishWithWerift(speaker);
	tone = streamTone(publisher, encodeTone(440, 50));
	const hearer = await join('hearer');
	listener = await subscribeWithWerift(hearer);
	await expect.poll(() => listener!.packetsReceived, { timeout: 15_000 }).toBeGreaterThan(20);

	await call('MuteParticipant', { channel: 'media-room', participant: { userId: 'speaker' }, muted: true });
	expect(await packetsOver(1000)).toBe(0);

	await call('MuteParticipant', { channel: 'media-room', participant: { userId: 'speaker' }, muted: false });
	await expect.poll(() => packetsOver(500), { timeout: 15_000 }).toBeGreaterThan(5);

	await call('UpdateParticipant', { channel: 'media-room', participant: { userId: 'speaker' }, canPublish: false });
	await hearer.waitFor('consumerClosed', () => true, 10_000);
	expect(await packetsOver(1000)).toBe(0);
}, 60_000);
