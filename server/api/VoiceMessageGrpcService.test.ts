// parley.v1.VoiceMessageService through a real gRPC client (@grpc/grpc-js) against the API
// server, over the SQL store on SQLite and the status feed: pages, grants, Delete and its
// event, bad requests, and SubscribeStatus in order, resumed without gaps or duplicates.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../telemetry/logger.js';
import { SqlVoiceMessageStore } from '../voice/store/SqlVoiceMessageStore.js';
import type { VoiceMessage } from '../voice/voiceMessage.js';
import { VoiceStatusFeed } from '../voice/VoiceStatusFeed.js';
import { mintApiToken } from './apiAuth.js';
import { GrpcApiServer, loadApiPackage } from './GrpcApiServer.js';
import { voiceMessageGrpcService } from './VoiceMessageGrpcService.js';
import type { ApiOperation } from '../../protocol/apiOperations.js';

const KEY = { id: 'backend', secret: 'a-secret-of-enough-length-for-tests' };

interface Context {
	store: SqlVoiceMessageStore;
	feed: VoiceStatusFeed;
	server: GrpcApiServer;
	client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
}

let c: Context;

beforeEach(async () => {
	const feed: { current?: VoiceStatusFeed } = {};
	const store = await SqlVoiceMessageStore.open(`sqlite:${path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-grpc-vm-')), 'parley.db')}`, {
		nodeId: 'n1',
		onEvent: () => feed.current?.notify(),
	});
	feed.current = new VoiceStatusFeed({ log: store, pollMs: 100 });
	const server = new GrpcApiServer({
		host: '127.0.0.1',
		port: 0,
		maxMessageBytes: 1 << 20,
		keys: [KEY],
		maxTokenLifetimeS: 600,
		rateLimit: { ratePerSecond: 1000, burst: 1000 },
		services: [voiceMessageGrpcService({ store, feed: feed.current, remove: (id) => store.delete(id) })],
		log: createLogger('silent'),
	});
	await server.listen();
	const pkg = grpc.loadPackageDefinition(loadApiPackage()) as unknown as { parley: { v1: { VoiceMessageService: grpc.ServiceClientConstructor } } };
	const client = new pkg.parley.v1.VoiceMessageService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as Context['client'];
	c = { store, feed: feed.current, server, client };
});

afterEach(async () => {
	c.client.close();
	c.feed.close();
	await c.server.close();
	await c.store.close();
});

async function auth(operations: ApiOperation[] = ['voiceMessages.read', 'voiceMessages.delete'], channels = ['*']): Promise<grpc.Metadata> {
	const md = new grpc.Metadata();
	md.set('authorization', `Bearer ${await mintApiToken({ keyId: KEY.id, secret: KEY.secret, grant: { channels, operations }, ttlS: 60 })}`);
	return md;
}

function unary<T>(method: string, request: object, md: grpc.Metadata): Promise<T> {
	return new Promise((resolve, reject) => {
		(c.client[method] as (r: object, m: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: T) => void) => void).call(c.client, request, md, (err, res) => (err ? reject(err) : resolve(res)));
	});
}

interface StatusEvent {
	eventId: string;
	event: string;
	sequence: number;
	message: { id: string; status: string };
}

/** Reads `count` events of a SubscribeStatus call, then cancels it. */
function subscribe(request: object, md: grpc.Metadata, count: number): { events: Promise<StatusEvent[]>; call: grpc.ClientReadableStream<StatusEvent> } {
	const call = (c.client.SubscribeStatus as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<StatusEvent>).call(c.client, request, md);
	const events = new Promise<StatusEvent[]>((resolve, reject) => {
		const got: StatusEvent[] = [];
		call.on('data', (e: StatusEvent) => {
			got.push(e);
			if (got.length === count) {
				call.cancel();
				resolve(got);
			}
		});
		call.on('error', (err: grpc.ServiceError) => {
			if (err.code !== grpc.status.CANCELLED) reject(err);
		});
	});
	return { events, call };
}

function message(createdAt: number, extra: Partial<VoiceMessage> = {}): VoiceMessage {
	return { id: randomUUID(), ownerId: 'ada', destination: { kind: 'channel', channel: 'room' }, source: 'upload', status: 'processing', createdAt, updatedAt: createdAt, ...extra };
}

describe('VoiceMessageService over gRPC', () => {
	it('gets, lists by owner and by destination in pages, and hides what the token does not cover', async () => {
		const ms = [message(1000), message(1001), message(1002, { destination: { kind: 'channel', channel: 'secret' } }), message(1003, { destination: { kind: 'user', userId: 'bob' } })];
		for (const m of ms) await c.store.insert(m);
		const md = await auth();
		expect(await unary<{ id: string; destination: string; createdAtMs: string }>('Get', { id: ms[0]!.id }, md)).toMatchObject({ id: ms[0]!.id, destination: 'channel:room', createdAtMs: '1000' });

		const first = await unary<{ messages: { id: string }[]; page: { nextPageToken: string } }>('List', { ownerId: 'ada', page: { pageSize: 3 } }, md);
		expect(first.messages.map((m) => m.id)).toEqual([ms[3]!.id, ms[2]!.id, ms[1]!.id]);
		const second = await unary<{ messages: { id: string }[]; page: { nextPageToken: string } }>('List', { ownerId: 'ada', page: { pageSize: 3, pageToken: first.page.nextPageToken } }, md);
		expect(second.messages.map((m) => m.id)).toEqual([ms[0]!.id]);
		expect(second.page.nextPageToken).toBe('');

		const roomOnly = await auth(['voiceMessages.read'], ['room']);
		const narrow = await unary<{ messages: { id: string }[] }>('List', { ownerId: 'ada' }, roomOnly);
		expect(narrow.messages.map((m) => m.id)).toEqual([ms[1]!.id, ms[0]!.id]);
		await expect(unary('Get', { id: ms[2]!.id }, roomOnly)).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
		await expect(unary('List', { destination: 'channel:secret' }, roomOnly)).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
	});

	it('answers INVALID_ARGUMENT with the field for bad requests and NOT_FOUND for unknown ids', async () => {
		const md = await auth();
		await expect(unary('Get', { id: 'nope' }, md)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('id') });
		await expect(unary('List', {}, md)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('owner_id') });
		await expect(unary('List', { destination: 'room' }, md)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('destination') });
		await expect(unary('List', { ownerId: 'ada', page: { pageSize: 101 } }, md)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
		await expect(unary('List', { ownerId: 'ada', page: { pageToken: 'garbage' } }, md)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
		await expect(unary('Get', { id: randomUUID() }, md)).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
		await expect(unary('Delete', { id: randomUUID() }, md)).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
		await expect(unary('Delete', { id: randomUUID() }, await auth(['voiceMessages.read']))).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
		const bad = subscribe({ filter: { statuses: ['sleeping'] } }, md, 1);
		await expect(bad.events).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
		const ahead = subscribe({ afterEventId: '99999' }, md, 1);
		await expect(ahead.events).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
	});

	it('streams every status of a message in order, and a subscriber resuming after its last event gets the rest once; Delete emits deleted', async () => {
		const md = await auth();
		const m = message(1000, { status: 'uploading' });
		const first = subscribe({ filter: { voiceMessageId: m.id } }, md, 2);
		await new Promise((r) => setTimeout(r, 300)); // the stream has taken its start position
		await c.store.insert(m);
		await c.store.insert(message(1001)); // another message: filtered out
		await c.store.update(m.id, { status: 'processing' });
		const got = await first.events;
		expect(got.map((e) => [e.event, e.sequence])).toEqual([
			['voiceMessage.created', 1],
			['voiceMessage.processing', 2],
		]);
		// While nobody listens:
		await c.store.update(m.id, { status: 'ready' });
		await unary('Delete', { id: m.id }, md);
		await expect(unary('Get', { id: m.id }, md)).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });

		const resumed = await subscribe({ filter: { voiceMessageId: m.id }, afterEventId: got[1]!.eventId }, md, 2).events;
		expect(resumed.map((e) => [e.event, e.sequence])).toEqual([
			['voiceMessage.ready', 3],
			['voiceMessage.deleted', 4],
		]);
		expect(new Set([...got, ...resumed].map((e) => e.eventId)).size).toBe(4);
		await new Promise((r) => setTimeout(r, 200));
		expect(c.feed.subscribers).toBe(0); // cancelled streams end their subscriptions
	}, 30_000);

	it('ends open streams at shutdown with UNAVAILABLE (resume elsewhere): the feed closes, the server closes before its deadline', async () => {
		const md = await auth();
		const call = (c.client.SubscribeStatus as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<StatusEvent>).call(c.client, {}, md);
		const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
		call.on('data', () => {});
		call.on('error', () => {});
		await new Promise((r) => setTimeout(r, 300));
		expect(c.feed.subscribers).toBe(1);
		const deadline = AbortSignal.timeout(10_000);
		const started = Date.now();
		// What the node's teardown does: the feed first, then the server waits for calls in flight.
		c.feed.close();
		await c.server.close(deadline);
		expect(deadline.aborted).toBe(false);
		expect(Date.now() - started).toBeLessThan(10_000);
		expect((await status).code).toBe(grpc.status.UNAVAILABLE);
		expect(c.feed.subscribers).toBe(0);
	}, 30_000);

	it('ends a stream resuming before what the log keeps with OUT_OF_RANGE', async () => {
		const md = await auth();
		const m = message(1000);
		await c.store.insert(m);
		for (const target of ['stream', 'webhook'] as const) await c.store.markDone(target, (await c.store.claim(target, 'n1', 100, 60_000)).map((e) => e.position));
		await c.store.prune(Date.now() + 1);
		await c.store.insert(message(1001));
		await expect(subscribe({ afterEventId: '0' }, md, 1).events).rejects.toMatchObject({ code: grpc.status.OUT_OF_RANGE });
	});
});
