// Room events against a running Parley (gRPC API on, voice.webhookUrl at a local receiver):
// signaling peers join, a moderator mutes, unmutes, removes and closes through the real
// ChannelService; EventService.SubscribeEvents streams the events in order and the webhook gets
// the same ids with valid signatures. Resuming after an id gives exactly what followed; a
// token for one channel sees only that channel; an id the node does not keep is OUT_OF_RANGE.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { startWebhookReceiver, type WebhookReceiver } from '../../testkit/webhookReceiver.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { PARLEY_ERROR_CODE_TRAILER } from '../../protocol/apiOperations.js';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { isRoomEventType } from '../../protocol/roomEvents.js';
import { verifyWebhookSignature } from '../voice/VoiceWebhooks.js';
import { mintAccessToken } from '../auth/accessToken.js';
import { mintApiToken, type ApiGrant } from '../api/apiAuth.js';
import { loadApiPackage } from '../api/GrpcApiServer.js';
import { ParleyServer } from '../ParleyServer.js';
import { collectStream } from '../../testkit/grpcStream.js';

const JWT_SECRET = 'room-events-test-secret-0123456789abcdef';
const API_SECRET = 'api-secret-that-is-long-enough-0123456789';
const HOOK_SECRET = 'room-events-webhook-secret';
const ALL: ApiGrant = { channels: ['*'], operations: ['*'] };

interface StreamEvent {
	eventId: string;
	event: string;
	atMs: string;
	nodeId: string;
	channel: string;
	participant: { peerId: string; userId: string } | null;
	details: Record<string, string>;
}

describe('room events on the EventService stream and the webhook', () => {
	let server: ParleyServer;
	let receiver: WebhookReceiver;
	const pkg = grpc.loadPackageDefinition(loadApiPackage()) as any;
	let events: grpc.Client;
	let channels: grpc.Client & Record<string, any>;
	const clients: TestSignalingClient[] = [];

	beforeAll(async () => {
		receiver = await startWebhookReceiver();
		server = await ParleyServer.create(
			await testConfig({
				PARLEY_AUTH_JWT_SECRET: JWT_SECRET,
				PARLEY_API_GRPC_ENABLED: 'true',
				PARLEY_API_GRPC_PORT: '0',
				PARLEY_API_KEYS: `backend:${API_SECRET}`,
				PARLEY_API_EVENT_RETENTION: '1000',
				PARLEY_VOICE_WEBHOOK_URL: receiver.url,
				PARLEY_VOICE_WEBHOOK_SECRET: HOOK_SECRET,
				PARLEY_VOICE_WEBHOOK_ROOM_EVENTS: '*',
				// A channel left empty closes at once (channel.ended without waiting).
				PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '0',
			}),
			testLogger(),
		);
		const address = `127.0.0.1:${server.api!.port}`;
		events = new pkg.parley.v1.EventService(address, grpc.credentials.createInsecure());
		channels = new pkg.parley.v1.ChannelService(address, grpc.credentials.createInsecure());
	}, 60_000);

	afterAll(async () => {
		for (const c of clients) c.close();
		events?.close();
		channels?.close();
		await server?.shutdown('test over');
		await receiver?.close();
	});

	const md = async (grant: ApiGrant = ALL) => {
		const m = new grpc.Metadata();
		m.set('authorization', `Bearer ${await mintApiToken({ keyId: 'backend', secret: API_SECRET, grant, ttlS: 60 })}`);
		return m;
	};

	/** A SubscribeEvents call; `until` says when to stop (then it is cancelled). */
	function follow(request: object, metadata: grpc.Metadata, until: (got: StreamEvent[]) => boolean): { done: Promise<StreamEvent[]>; ready: Promise<void> } {
		const call = (events as any).SubscribeEvents(request, metadata) as grpc.ClientReadableStream<StreamEvent>;
		const done = collectStream(call, until);
		// A stream sends no headers before its first event: a generous wait lets the server
		// register the subscription, so "from now on" includes what the test does next.
		const ready = new Promise<void>((resolve) => setTimeout(resolve, 1500));
		return { done, ready };
	}

	async function join(channel: string, userId: string, canRecord = false) {
		const t = await mintAccessToken({ userId, channels: ['*'], grants: { canPublish: true, canSubscribe: true, canRecord }, ttlS: 600 }, new TextEncoder().encode(JWT_SECRET));
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${t}&v=${PROTOCOL_VERSION}`);
		clients.push(client);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		const joined = await client.request('join', { channel, rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		if (!joined.ok) throw new Error(joined.error.code);
		return { client, peerId: joined.data.peerId };
	}

	const unary = async (method: string, req: object) =>
		new Promise<any>(async (resolve, reject) => channels[method].call(channels, req, await md(), (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));

	let history: StreamEvent[] = [];

	it('join, mute, unmute, remove and close come in order on the stream and on the webhook, with the same ids', async () => {
		const ended = (got: StreamEvent[]) => got.some((e) => e.event === 'channel.ended' && e.channel === 'ev-room');
		const sub = follow({}, await md(), ended);
		await sub.ready;
		const alice = await join('ev-room', 'alice');
		const bob = await join('ev-room', 'bob');
		await unary('MuteParticipant', { channel: 'ev-room', participant: { peerId: bob.peerId }, muted: true });
		await unary('MuteParticipant', { channel: 'ev-room', participant: { peerId: bob.peerId }, muted: false });
		await unary('RemoveParticipant', { channel: 'ev-room', participant: { peerId: bob.peerId }, reason: 'spam' });
		await unary('CloseChannel', { channel: 'ev-room', reason: 'meeting over' });
		const got = (await sub.done).filter((e) => e.channel === 'ev-room');
		history = got;
		expect(got.map((e) => [e.event, e.participant?.userId ?? ''])).toEqual([
			['channel.started', ''],
			['participant.joined', 'alice'],
			['participant.joined', 'bob'],
			['participant.muted', 'bob'],
			['participant.unmuted', 'bob'],
			['participant.removed', 'bob'],
			['participant.left', 'alice'],
			['channel.ended', ''],
		]);
		expect(got[5]!.details).toMatchObject({ reason: 'spam' });
		expect(got[6]!.participant?.peerId).toBe(alice.peerId);
		expect(got[6]!.details).toMatchObject({ reason: 'channelClosed', closeReason: 'meeting over' });
		expect(got[7]!.details).toMatchObject({ kind: 'requested', reason: 'meeting over' });
		// Ids: <nodeId>.<bootEpochMs>.<seq>, seq increasing.
		const seqs = got.map((e) => Number(e.eventId.split('.').at(-1)));
		expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
		expect(new Set(got.map((e) => e.eventId)).size).toBe(got.length);
		expect(got.every((e) => e.eventId.startsWith(`${server.nodeId}.`) && e.nodeId === server.nodeId)).toBe(true);

		// The webhook: the same events, same ids, same order (one lane per channel), signed.
		const deadline = Date.now() + 20_000;
		const roomHooks = () => receiver.hooks.filter((h) => isRoomEventType(String(h.headers['x-parley-event'])) && JSON.parse(h.body).channel === 'ev-room');
		while (roomHooks().length < got.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
		const hooks = roomHooks();
		expect(hooks.map((h) => h.headers['x-parley-delivery'])).toEqual(got.map((e) => e.eventId));
		expect(hooks.map((h) => h.headers['x-parley-event'])).toEqual(got.map((e) => e.event));
		for (const h of hooks) {
			expect(verifyWebhookSignature(h.body, String(h.headers['x-parley-signature']), HOOK_SECRET)).toBe(true);
			expect(verifyWebhookSignature(h.body, String(h.headers['x-parley-signature']), 'another-secret-of-length')).toBe(false);
			const body = JSON.parse(h.body);
			expect(body.eventId).toBe(h.headers['x-parley-delivery']);
		}
		expect(JSON.parse(hooks[5]!.body)).toMatchObject({ event: 'participant.removed', participant: { peerId: bob.peerId, userId: 'bob' }, details: { reason: 'spam' } });
	}, 60_000);

	it('resuming after an event id gives what followed it: nothing missed, nothing repeated', async () => {
		expect(history.length).toBe(8);
		const after = history[2]!.eventId;
		const resumed = await follow({ afterEventId: after }, await md(), (got) => got.some((e) => e.eventId === history[7]!.eventId)).done;
		expect(resumed.filter((e) => e.channel === 'ev-room').map((e) => e.eventId)).toEqual(history.slice(3).map((e) => e.eventId));
	}, 30_000);

	it('a token for one channel, and a filter by channel and type, see only those events', async () => {
		const narrow = follow({}, await md({ channels: ['ev-b'], operations: ['events.subscribe'] }), (got) => got.some((e) => e.event === 'channel.ended'));
		const byType = follow({ filter: { channels: ['ev-a'], types: ['participant.joined'] } }, await md(), (got) => got.length >= 1);
		await Promise.all([narrow.ready, byType.ready]);
		const a = await join('ev-a', 'carol');
		const b = await join('ev-b', 'dave');
		// Leaving empties ev-b; it closes at once (emptyCloseDelayMs 0).
		expect((await b.client.request('leave', {})).ok).toBe(true);
		const seen = await narrow.done;
		expect(seen.map((e) => e.channel)).toEqual(seen.map(() => 'ev-b'));
		expect(seen.map((e) => e.event)).toEqual(['channel.started', 'participant.joined', 'participant.left', 'channel.ended']);
		expect(seen[2]!.details).toMatchObject({ reason: 'left' });
		const joined = await byType.done;
		expect(joined.map((e) => [e.channel, e.event, e.participant?.userId])).toEqual([['ev-a', 'participant.joined', 'carol']]);
		a.client.close();
	}, 30_000);

	it('a recording in a channel gives recording.started and recording.finished with its voice message id', async () => {
		const sub = follow({ filter: { channels: ['ev-rec'], types: ['recording.started', 'recording.finished'] } }, await md(), (got) => got.length >= 2);
		await sub.ready;
		const { client, peerId } = await join('ev-rec', 'erin', true);
		const tr = await client.request('createTransport', { direction: 'send' });
		if (!tr.ok) throw new Error(tr.error.code);
		const rtpParameters: RequestData<'produce'>['rtpParameters'] = {
			mid: '0',
			codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } }],
			encodings: [{ ssrc: 44444444 }],
		};
		const produced = await client.request('produce', { transportId: tr.data.transportId, kind: 'audio', rtpParameters });
		if (!produced.ok) throw new Error(produced.error.code);
		const started = await client.request('startRecording', { producerId: produced.data.producerId, destination: { kind: 'channel', channel: 'ev-rec' } } as RequestData<'startRecording'>);
		if (!started.ok) throw new Error(started.error.code);
		await client.request('stopRecording', { voiceMessageId: started.data.voiceMessageId });
		const got = await sub.done;
		expect(got.map((e) => e.event)).toEqual(['recording.started', 'recording.finished']);
		for (const e of got) expect(e).toMatchObject({ channel: 'ev-rec', participant: { peerId, userId: 'erin' }, details: { voiceMessageId: started.data.voiceMessageId, destination: 'channel:ev-rec' } });
	}, 30_000);

	it('answers PERMISSION_DENIED for a channel the token does not cover, OUT_OF_RANGE for an id it does not keep', async () => {
		const denied = follow({ filter: { channels: ['elsewhere'] } }, await md({ channels: ['ev-b'], operations: ['events.subscribe'] }), () => true).done;
		await expect(denied).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
		const gone = follow({ afterEventId: `${server.nodeId}.1.1` }, await md(), () => true).done;
		const err = (await gone.catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
		expect(err.code).toBe(grpc.status.OUT_OF_RANGE);
		expect(err.metadata.get(PARLEY_ERROR_CODE_TRAILER)).toEqual(['E_EVENT_OUT_OF_RANGE']);
		expect(err.details).toContain(history[0]!.eventId);
		const noGrant = follow({}, await md({ channels: ['*'], operations: ['channels.list'] }), () => true).done;
		await expect(noGrant).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
	}, 30_000);
});
