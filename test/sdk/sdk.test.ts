// The Node SDK against a running Parley with the backend API and webhooks on: the typed
// clients over real gRPC (list, mute, remove; SubscribeStatus as an iterator; error mapping)
// and the WebhookReceiver behind a real node:http server receiving Parley's own deliveries.
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { freePort } from '../../testkit/ports.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { CLOSE_CODES, PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { signWebhook } from '../../protocol/webhookSignature.js';
import { mintAccessToken, ParleyApi, ReconnectPolicy, SdkError, WebhookReceiver, type WebhookDelivery } from '../../sdk/index.js';

const JWT_SECRET = 'sdk-test-secret-that-is-long-enough-0123';
const API_KEY = { id: 'backend', secret: 'sdk-api-secret-that-is-long-enough-012' };
const WEBHOOK_SECRET = 'sdk-webhook-secret-0123456789';

interface Received {
	status: number;
	headers: http.IncomingHttpHeaders;
	body: Buffer;
}

describe('server SDK against a running Parley', () => {
	let server: ParleyServer;
	let api: ParleyApi;
	let hookServer: http.Server;
	let hookUrl: string;
	const receiver = new WebhookReceiver({ secret: WEBHOOK_SECRET });
	const handle = receiver.nodeHandler((delivery) => {
		delivered.push(delivery);
	});
	const delivered: WebhookDelivery[] = [];
	/** Every request the hook endpoint answered, with its status. */
	const received: Received[] = [];
	const clients: TestSignalingClient[] = [];

	beforeAll(async () => {
		// The SDK's handler answers; the wrapper keeps a copy of each request to replay in tests.
		hookServer = http.createServer((req, res) => {
			const chunks: Buffer[] = [];
			req.on('data', (c: Buffer) => chunks.push(c));
			req.on('end', () => {
				const body = Buffer.concat(chunks);
				(req as http.IncomingMessage & { body?: Buffer }).body = body;
				res.once('finish', () => received.push({ status: res.statusCode, headers: req.headers, body }));
				handle(req, res);
			});
		});
		hookServer.listen(0, '127.0.0.1');
		await once(hookServer, 'listening');
		hookUrl = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/parley`;
		server = await ParleyServer.create(
			await testConfig({
				PARLEY_AUTH_JWT_SECRET: JWT_SECRET,
				PARLEY_API_GRPC_ENABLED: 'true',
				PARLEY_API_GRPC_PORT: '0',
				PARLEY_API_KEYS: `${API_KEY.id}:${API_KEY.secret}`,
				PARLEY_VOICE_WEBHOOK_URL: hookUrl,
				PARLEY_VOICE_WEBHOOK_SECRET: WEBHOOK_SECRET,
			}),
			testLogger(),
		);
		api = new ParleyApi({ address: `127.0.0.1:${server.api!.port}`, key: API_KEY, tokenTtlS: 30 });
	}, 60_000);

	afterAll(async () => {
		for (const c of clients) c.close();
		api?.close();
		await server?.shutdown('test over');
		hookServer?.closeAllConnections();
		await new Promise<void>((resolve) => (hookServer ? hookServer.close(() => resolve()) : resolve()));
	});

	async function joinedPeer(channel: string, userId: string) {
		// A browser token from the SDK's token builder, accepted by the signaling endpoint.
		const token = await mintAccessToken({ userId, channels: [channel], grants: { canPublish: true }, ttlS: 600 }, JWT_SECRET);
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
		clients.push(client);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		const join = await client.request('join', { channel, rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		if (!join.ok) throw new Error(join.error.code);
		return { client, peerId: join.data.peerId };
	}

	it('lists, mutes and removes participants through the typed channel client', async () => {
		const speaker = await joinedPeer('sdk-room', 'speaker');
		const other = await joinedPeer('sdk-room', 'other');
		const channels = await api.channels.listChannels();
		expect(channels.channels.map((c) => c.name)).toContain('sdk-room');
		const { participants } = await api.channels.listParticipants({ channel: 'sdk-room' });
		expect(participants.map((p) => p.userId).sort()).toEqual(['other', 'speaker']);

		const muted = await api.channels.muteParticipant({ channel: 'sdk-room', participant: { userId: 'speaker' }, muted: true });
		expect(muted.participant).toMatchObject({ peerId: speaker.peerId, mutedByModerator: true });
		expect(await speaker.client.waitFor('participantMuted')).toEqual({ peerId: speaker.peerId, muted: true });

		await api.channels.removeParticipant({ channel: 'sdk-room', participant: { peerId: other.peerId }, reason: 'sdk test' });
		expect((await other.client.closed).code).toBe(CLOSE_CODES.REMOVED);
		const after = await api.channels.listParticipants({ channel: 'sdk-room' });
		expect(after.participants.map((p) => p.userId)).toEqual(['speaker']);
	});

	it('follows room events through the SubscribeEvents iterator, filtered by channel, and resumes after an event id', async () => {
		const abort = new AbortController();
		const got: { event: string; userId: string | undefined; eventId: string }[] = [];
		const following = (async () => {
			for await (const e of api.events.subscribeEvents({ filter: { channels: ['sdk-events'] } }, { signal: abort.signal })) {
				got.push({ event: e.event, userId: e.participant?.userId, eventId: e.eventId });
			}
		})();
		// The stream is open once the server has it; a join before that would be missed (no id yet).
		await new Promise((r) => setTimeout(r, 300));
		const ada = await joinedPeer('sdk-events', 'ada');
		await joinedPeer('sdk-elsewhere', 'bob');
		await api.channels.removeParticipant({ channel: 'sdk-events', participant: { peerId: ada.peerId }, reason: 'sdk test' });
		const deadline = Date.now() + 10_000;
		while (!got.some((e) => e.event === 'participant.removed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
		abort.abort();
		await following;
		const kinds = got.map((e) => `${e.event}:${e.userId ?? ''}`);
		expect(kinds).toEqual(expect.arrayContaining(['channel.started:', 'participant.joined:ada', 'participant.removed:ada']));
		expect(kinds.indexOf('participant.joined:ada')).toBeLessThan(kinds.indexOf('participant.removed:ada'));
		expect(kinds.some((k) => k.endsWith(':bob'))).toBe(false);

		// Resumed after the join: the events after it, the join not again.
		const joined = got.find((e) => e.event === 'participant.joined')!;
		const again: string[] = [];
		const resumeAbort = new AbortController();
		const resumed = (async () => {
			for await (const e of api.events.subscribeEvents({ filter: { channels: ['sdk-events'] }, afterEventId: joined.eventId }, { signal: resumeAbort.signal })) {
				again.push(e.eventId);
				if (e.event === 'participant.removed') resumeAbort.abort();
			}
		})();
		await resumed;
		const removedAt = got.findIndex((e) => e.event === 'participant.removed');
		expect(again).toEqual(got.slice(got.indexOf(joined) + 1, removedAt + 1).map((e) => e.eventId));
	});

	it('maps failures to SdkError: a wrong key is UNAUTHENTICATED with E_AUTH, an empty channel NOT_FOUND with E_NOT_FOUND', async () => {
		const wrong = new ParleyApi({ address: `127.0.0.1:${server.api!.port}`, key: { id: API_KEY.id, secret: 'not-the-secret-of-this-key-0123456' } });
		try {
			const err = await wrong.channels.listChannels().catch((e: unknown) => e);
			expect(err).toBeInstanceOf(SdkError);
			expect((err as SdkError).grpcStatus).toBe(GrpcStatus.UNAUTHENTICATED);
			expect((err as SdkError).grpcStatusName).toBe('UNAUTHENTICATED');
			expect((err as SdkError).code).toBe('E_AUTH');
		} finally {
			wrong.close();
		}
		const missing = await api.channels.listParticipants({ channel: 'nobody-here' }).catch((e: unknown) => e);
		expect(missing).toBeInstanceOf(SdkError);
		expect((missing as SdkError).grpcStatus).toBe(GrpcStatus.NOT_FOUND);
		expect((missing as SdkError).code).toBe('E_NOT_FOUND');
		// A narrow grant from the connection options: the server refuses what it does not cover.
		const listOnly = new ParleyApi({ address: `127.0.0.1:${server.api!.port}`, key: API_KEY, grant: { channels: ['*'], operations: ['channels.list'] } });
		try {
			const denied = await listOnly.channels.muteParticipant({ channel: 'sdk-room', participant: { userId: 'speaker' }, muted: false }).catch((e: unknown) => e);
			expect((denied as SdkError).grpcStatus).toBe(GrpcStatus.PERMISSION_DENIED);
			expect((denied as SdkError).code).toBe('E_FORBIDDEN');
		} finally {
			listOnly.close();
		}
	});

	it('follows statuses through the SubscribeStatus iterator, resumes after its last event, and receives the same events as verified webhooks', async () => {
		const ownerId = `sdk-${randomUUID().slice(0, 8)}`;
		const id = randomUUID();
		const stop = new AbortController();
		const events: { eventId: string; deliveryId: string; event: string; sequence: number }[] = [];
		const following = (async () => {
			for await (const e of api.voiceMessages.subscribeStatus({ filter: { ownerId } }, { signal: stop.signal })) {
				events.push(e);
				if (events.length === 2) break;
			}
		})();
		await new Promise((r) => setTimeout(r, 300)); // the stream has taken its start position
		const now = Date.now();
		await server.voiceStore.insert({ id, ownerId, destination: { kind: 'channel', channel: 'sdk-room' }, source: 'upload', status: 'processing', createdAt: now, updatedAt: now });
		await server.voiceStore.update(id, { status: 'ready', sizeBytes: 1 });
		await following;
		expect(events.map((e) => [e.event, e.sequence])).toEqual([
			['voiceMessage.created', 1],
			['voiceMessage.ready', 2],
		]);

		// Resuming after the first event gives the second one again, and nothing before it.
		const resumed = [];
		for await (const e of api.voiceMessages.subscribeStatus({ filter: { ownerId }, afterEventId: events[0]!.eventId }, { signal: stop.signal })) {
			resumed.push(e.eventId);
			break;
		}
		expect(resumed).toEqual([events[1]!.eventId]);
		stop.abort();

		// The webhooks of the same two events, verified by the SDK's receiver.
		await expect.poll(() => delivered.filter((d) => d.payload.voiceMessageId === id).length, { timeout: 20_000 }).toBe(2);
		const hooks = delivered.filter((d) => d.payload.voiceMessageId === id);
		expect(hooks.map((d) => d.deliveryId).sort()).toEqual(events.map((e) => e.deliveryId).sort());
		expect(hooks.map((d) => d.event).sort()).toEqual(['voiceMessage.created', 'voiceMessage.ready']);
	}, 60_000);

	it('the webhook endpoint refuses a tampered body, an old timestamp and a replayed delivery, and lets nothing through', async () => {
		const ownerId = `hook-${randomUUID().slice(0, 8)}`;
		const id = randomUUID();
		const now = Date.now();
		await server.voiceStore.insert({ id, ownerId, destination: { kind: 'user', userId: 'bob' }, source: 'upload', status: 'processing', createdAt: now, updatedAt: now });
		await expect.poll(() => received.find((r) => r.status === 204 && JSON.parse(r.body.toString()).voiceMessageId === id), { timeout: 20_000 }).toBeTruthy();
		const original = received.find((r) => JSON.parse(r.body.toString()).voiceMessageId === id)!;
		const countBefore = delivered.length;

		const post = async (body: Buffer | string, headers: Record<string, string>): Promise<{ status: number; text: string }> => {
			const res = await fetch(hookUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : new Uint8Array(body) });
			return { status: res.status, text: await res.text() };
		};
		const headersOf = (r: Received) => ({
			'x-parley-event': String(r.headers['x-parley-event']),
			'x-parley-delivery': String(r.headers['x-parley-delivery']),
			'x-parley-signature': String(r.headers['x-parley-signature']),
		});

		// The very request Parley sent, again: a replay within the tolerance.
		const replay = await post(original.body, headersOf(original));
		expect(replay.status).toBe(409);
		expect(replay.text).toMatch(/already received/);

		// The same signature over a changed body.
		const tampered = Buffer.from(original.body.toString().replace('"processing"', '"ready"'));
		expect(tampered.equals(original.body)).toBe(false);
		expect((await post(tampered, headersOf(original))).status).toBe(401);

		// A correctly signed request whose timestamp is ten minutes old (new delivery id, so only the age can refuse it).
		const oldT = Math.floor(Date.now() / 1000) - 600;
		const freshId = randomUUID();
		const oldBody = JSON.stringify({ ...JSON.parse(original.body.toString()), eventId: freshId });
		const old = await post(oldBody, { 'x-parley-event': 'voiceMessage.created', 'x-parley-delivery': freshId, 'x-parley-signature': `t=${oldT},v1=${signWebhook(oldBody, oldT, WEBHOOK_SECRET)}` });
		expect(old.status).toBe(401);
		expect(old.text).toMatch(/outside 300 s/);

		// The same body signed now is accepted once, then refused as a replay: what refused it above was the age.
		const t = Math.floor(Date.now() / 1000);
		const fresh = { 'x-parley-event': 'voiceMessage.created', 'x-parley-delivery': freshId, 'x-parley-signature': `t=${t},v1=${signWebhook(oldBody, t, WEBHOOK_SECRET)}` };
		expect((await post(oldBody, fresh)).status).toBe(204);
		expect((await post(oldBody, fresh)).status).toBe(409);
		expect(delivered.length).toBe(countBefore + 1);
		expect(delivered.at(-1)!.deliveryId).toBe(freshId);
	}, 60_000);
});

describe('SDK subscribeStatus across a node restart', () => {
	it('resubscribes after its last event when the node goes away and comes back: nothing missed, nothing twice', async () => {
		const port = await freePort();
		const config = await testConfig({
			PARLEY_AUTH_JWT_SECRET: JWT_SECRET,
			PARLEY_API_GRPC_ENABLED: 'true',
			PARLEY_API_GRPC_PORT: String(port),
			PARLEY_API_KEYS: `${API_KEY.id}:${API_KEY.secret}`,
		});
		let node = await ParleyServer.create(config, testLogger());
		const api = new ParleyApi({ address: `127.0.0.1:${port}`, key: API_KEY });
		const stop = new AbortController();
		try {
			const ownerId = `restart-${randomUUID().slice(0, 8)}`;
			const id = randomUUID();
			const events: { event: string; sequence: number; eventId: string }[] = [];
			let resolveFirst!: () => void;
			const firstSeen = new Promise<void>((resolve) => (resolveFirst = resolve));
			const following = (async () => {
				const iterator = api.voiceMessages.subscribeStatus({ filter: { ownerId } }, { signal: stop.signal, reconnectPolicy: new ReconnectPolicy({ delaysMs: [100, 200, 400] }) });
				for await (const e of iterator) {
					events.push(e);
					if (events.length === 1) resolveFirst();
					if (events.length === 2) break;
				}
			})();
			await new Promise((r) => setTimeout(r, 300)); // the stream has taken its start position
			const now = Date.now();
			await node.voiceStore.insert({ id, ownerId, destination: { kind: 'channel', channel: 'room' }, source: 'upload', status: 'processing', createdAt: now, updatedAt: now });
			await firstSeen;
			await node.shutdown('restart'); // the open stream ends with UNAVAILABLE
			node = await ParleyServer.create(config, testLogger());
			await node.voiceStore.update(id, { status: 'failed', failureReason: 'test' }); // committed after the restart
			await following;
			expect(events.map((e) => [e.event, e.sequence])).toEqual([
				['voiceMessage.created', 1],
				['voiceMessage.failed', 2],
			]);
		} finally {
			stop.abort();
			api.close();
			await node.shutdown('test over');
		}
	}, 60_000);
});

describe('SDK errors of the rate limit and the deadline', () => {
	it('over the per-key rate: SdkError RESOURCE_EXHAUSTED E_RATE_LIMIT with retryAfterMs; a past deadline: DEADLINE_EXCEEDED without a Parley code', async () => {
		const node = await ParleyServer.create(
			await testConfig({
				PARLEY_AUTH_JWT_SECRET: JWT_SECRET,
				PARLEY_API_GRPC_ENABLED: 'true',
				PARLEY_API_GRPC_PORT: '0',
				PARLEY_API_KEYS: `${API_KEY.id}:${API_KEY.secret}`,
				PARLEY_API_REQUESTS_PER_SECOND: '0.1',
				PARLEY_API_REQUEST_BURST: '1',
			}),
			testLogger(),
		);
		const api = new ParleyApi({ address: `127.0.0.1:${node.api!.port}`, key: API_KEY });
		try {
			await api.channels.listChannels();
			const limited = await api.channels.listChannels().catch((e: unknown) => e);
			expect(limited).toBeInstanceOf(SdkError);
			expect((limited as SdkError).grpcStatus).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
			expect((limited as SdkError).code).toBe('E_RATE_LIMIT');
			// 0.1 calls/s: the next token is seconds away.
			expect((limited as SdkError).retryAfterMs).toBeGreaterThan(1000);
			const late = await api.channels.listChannels({}, { deadlineMs: -1 }).catch((e: unknown) => e);
			expect((late as SdkError).grpcStatus).toBe(GrpcStatus.DEADLINE_EXCEEDED);
			expect((late as SdkError).code).toBeUndefined();
			expect((late as SdkError).retryAfterMs).toBeUndefined();
		} finally {
			api.close();
			await node.shutdown('test over');
		}
	});
});
