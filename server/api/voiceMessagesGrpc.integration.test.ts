// SubscribeStatus and Delete against a running Parley (ParleyServer.create: SQLite store,
// disk storage, ffmpeg): a real gRPC client follows a tus upload (stock tus-js-client) through
// every status in order, Delete removes the file and the record, and a subscriber resuming
// after its last event gets the deleted event once.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { mintAccessToken } from '../auth/accessToken.js';
import { ParleyServer } from '../ParleyServer.js';
import { LocalVoiceStorage } from '../voice/files/VoiceStorage.js';
import type { VoiceMessage } from '../voice/voiceMessage.js';
import { mintApiToken } from './apiAuth.js';
import { GrpcApiServer, loadApiPackage } from './GrpcApiServer.js';
import { voiceMessageGrpcService } from './VoiceMessageGrpcService.js';
import { tusUpload } from '../../testkit/tusUpload.js';

const SECRET = 'grpc-voice-integration-secret-0123456789';
const KEY = { id: 'backend', secret: 'a-secret-of-enough-length-for-tests' };

interface StatusEvent {
	eventId: string;
	event: string;
	sequence: number;
	message: { id: string; status: string };
}

describe('VoiceMessageService against a running Parley', () => {
	let server: ParleyServer;
	let api: GrpcApiServer;
	let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-grpc-int-'));

	async function serve(node: ParleyServer): Promise<{ api: GrpcApiServer; client: typeof client }> {
		const api = new GrpcApiServer({
			host: '127.0.0.1',
			port: 0,
			maxMessageBytes: 1 << 20,
			keys: [KEY],
			maxTokenLifetimeS: 600,
			rateLimit: { ratePerSecond: 1000, burst: 1000 },
			services: [voiceMessageGrpcService({ store: node.voiceStore, feed: node.voiceStatusFeed, remove: (id) => node.voice.removeById(id) })],
			log: testLogger(),
		});
		await api.listen();
		const pkg = grpc.loadPackageDefinition(loadApiPackage()) as unknown as { parley: { v1: { VoiceMessageService: grpc.ServiceClientConstructor } } };
		return { api, client: new pkg.parley.v1.VoiceMessageService(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure()) as typeof client };
	}

	let config: Awaited<ReturnType<typeof testConfig>>;
	beforeAll(async () => {
		config = await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET });
		server = await ParleyServer.create(config, testLogger());
		({ api, client } = await serve(server));
	}, 60_000);

	afterAll(async () => {
		client?.close();
		await api?.close(AbortSignal.timeout(5000));
		await server?.shutdown('test end');
	});

	async function md(): Promise<grpc.Metadata> {
		const m = new grpc.Metadata();
		m.set('authorization', `Bearer ${await mintApiToken({ keyId: KEY.id, secret: KEY.secret, grant: { channels: ['*'], operations: ['voiceMessages.read', 'voiceMessages.delete'] }, ttlS: 60 })}`);
		return m;
	}

	/** Events of a SubscribeStatus call until `until` says stop, then cancels it. */
	function follow(request: object, metadata: grpc.Metadata, until: (got: StatusEvent[]) => boolean, via = client): Promise<StatusEvent[]> {
		const call = (via.SubscribeStatus as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<StatusEvent>).call(via, request, metadata);
		return new Promise((resolve, reject) => {
			const got: StatusEvent[] = [];
			call.on('data', (e: StatusEvent) => {
				got.push(e);
				if (until(got)) {
					call.cancel();
					resolve(got);
				}
			});
			call.on('error', (err: grpc.ServiceError) => {
				if (err.code !== grpc.status.CANCELLED) reject(err);
			});
		});
	}

	it('sees every status of an uploaded message in order; Delete removes file and record; a resumed subscriber gets the deleted event once', async () => {
		const wav = path.join(dir, 'speech.wav');
		execFileSync('espeak-ng', ['-w', wav, 'A voice message for the backend.']);
		const token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canRecord: true }, ttlS: 600 }, new TextEncoder().encode(SECRET));
		const metadata = await md();
		let id = '';
		const statuses = follow({ filter: { destination: 'channel:room' } }, metadata, (got) => got.some((e) => e.message.id === id && ['ready', 'failed'].includes(e.message.status)));
		await new Promise((r) => setTimeout(r, 300)); // the stream has taken its start position
		const url = await tusUpload(readFileSync(wav), { endpoint: `http://127.0.0.1:${server.http.port}/voice/uploads`, token, metadata: { destination: 'channel:room', filename: 'memo.wav', filetype: 'audio/wav' } });
		id = url.split('/').pop()!;
		const got = (await statuses).filter((e) => e.message.id === id);
		expect(got.map((e) => e.sequence)).toEqual(got.map((_, i) => i + 1)); // every event, in order
		expect(got[0]!.event).toBe('voiceMessage.created');
		expect(got.at(-1)!.event).toBe('voiceMessage.ready');
		expect(got.map((e) => e.message.status)).toContain('processing');

		const m = (await server.voiceStore.get(id))!;
		const file = new LocalVoiceStorage(server.storageDir).pathOf(m);
		expect(existsSync(file)).toBe(true);
		await new Promise<void>((resolve, reject) =>
			(client.Delete as (r: object, m: grpc.Metadata, cb: (err: grpc.ServiceError | null) => void) => void).call(client, { id }, metadata, (err) => (err ? reject(err) : resolve())),
		);
		expect(existsSync(file)).toBe(false);
		expect(await server.voiceStore.get(id)).toBeUndefined();

		const resumed = await follow({ filter: { voiceMessageId: id }, afterEventId: got.at(-1)!.eventId }, metadata, (e) => e.length === 1);
		expect(resumed.map((e) => [e.event, e.sequence])).toEqual([['voiceMessage.deleted', got.length + 1]]);
	}, 60_000);

	it('resumes across a node restart: the same event ids, nothing missed or repeated', async () => {
		const metadata = await md();
		const m: VoiceMessage = { id: randomUUID(), ownerId: 'restart-user', destination: { kind: 'channel', channel: 'room' }, source: 'upload', status: 'processing', createdAt: Date.now(), updatedAt: Date.now() };
		const first = follow({ filter: { ownerId: m.ownerId } }, metadata, (got) => got.length === 2);
		await new Promise((r) => setTimeout(r, 300)); // the stream has taken its start position
		await server.voiceStore.insert(m);
		await server.voiceStore.update(m.id, { status: 'failed', failureReason: 'test' });
		const got = await first;

		client.close();
		await api.close(AbortSignal.timeout(5000));
		await server.shutdown('restart');
		server = await ParleyServer.create(config, testLogger());
		({ api, client } = await serve(server));

		await server.voice.removeById(m.id); // committed after the restart
		const resumed = await follow({ filter: { ownerId: m.ownerId }, afterEventId: got[1]!.eventId }, metadata, (e) => e.length === 1);
		expect(got.map((e) => e.event)).toEqual(['voiceMessage.created', 'voiceMessage.failed']);
		expect(resumed.map((e) => [e.event, e.sequence])).toEqual([['voiceMessage.deleted', 3]]);
		// The same log after the restart: reading from before the first event gives the same ids.
		const again = await follow({ filter: { ownerId: m.ownerId }, afterEventId: String(Number(got[0]!.eventId) - 1) }, metadata, (e) => e.length === 3);
		expect(again.map((e) => e.eventId)).toEqual([...got, ...resumed].map((e) => e.eventId));
	}, 90_000);
});
