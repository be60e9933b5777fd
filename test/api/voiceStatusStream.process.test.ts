// SubscribeStatus against the Parley process, the way a backend follows voice messages: one
// subscriber (a real grpc-js client) sees an uploaded message (tus) and two recorded ones (a
// werift producer, startRecording) through every status. It drops its stream and resumes
// while a recording is stopped, and resumes again after the node is killed mid-recording and
// started again on the same SQLite store (the next start finalizes that recording). What it got,
// stream after stream, is exactly the event log read once from the start: no gap, no duplicate.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { mintApiToken } from '../../server/api/apiAuth.js';
import { loadApiPackage } from '../../server/api/GrpcApiServer.js';
import { freePort } from '../../testkit/ports.js';
import { makeTempFolder, removeTempFolder } from '../../testkit/services/daemon.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { writeToneWav } from '../../testkit/wav.js';
import { publishWithWerift, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { encodeTone } from '../helpers/audio.js';
import { testEnv } from '../helpers/config.js';
import { logLine, startServerProcess, type ServerProcess } from '../helpers/serverProcess.js';
import { tusUpload } from '../../testkit/tusUpload.js';

const JWT_SECRET = 'status-stream-process-secret-0123456789';
const API_KEY = { id: 'backend', secret: 'status-stream-api-secret-0123456789-abc' };
const OWNER = 'ada';

interface StatusEvent {
	eventId: string;
	event: string;
	sequence: number;
	message: { id: string; status: string };
}

type StatusClient = grpc.Client & { SubscribeStatus(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<StatusEvent> };

/**
 * A backend's subscriber: one stream at a time, each resuming after the last event it got.
 * `got` is everything received over all its streams; `ended` how each stream ended.
 */
class ResumingSubscriber {
	readonly got: StatusEvent[] = [];
	readonly ended: string[] = [];
	#call: grpc.ClientReadableStream<StatusEvent> | null = null;

	constructor(
		readonly client: StatusClient,
		readonly metadata: () => Promise<grpc.Metadata>,
	) {}

	async open(): Promise<void> {
		const last = this.got.at(-1)?.eventId;
		const call = this.client.SubscribeStatus({ filter: { ownerId: OWNER }, ...(last !== undefined && { afterEventId: last }) }, await this.metadata());
		this.#call = call;
		call.on('data', (e: StatusEvent) => this.got.push(e));
		call.on('error', (err: grpc.ServiceError) => this.ended.push(grpc.status[err.code]));
		// Let the stream take its start position before anything it should see happens.
		await new Promise((r) => setTimeout(r, 300));
	}

	cancel(): void {
		this.#call?.cancel();
		this.#call = null;
	}

	of(id: string): StatusEvent[] {
		return this.got.filter((e) => e.message.id === id);
	}

	async waitFor(id: string, status: string, timeoutMs = 20_000): Promise<void> {
		await expect.poll(() => this.of(id).map((e) => e.message.status), { timeout: timeoutMs, interval: 50 }).toContain(status);
	}
}

describe('SubscribeStatus across a subscriber reconnect and a node restart (server process)', () => {
	const dir = makeTempFolder('status-stream');
	const cleanups: (() => unknown)[] = [];
	const processes: ServerProcess[] = [];

	afterAll(async () => {
		for (const c of cleanups.reverse()) await c();
		for (const s of processes) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
		removeTempFolder(dir);
	});

	async function start(env: Record<string, string>): Promise<{ server: ServerProcess; httpPort: number }> {
		const server = startServerProcess(env);
		processes.push(server);
		const httpPort = Number(new URL(String((await logLine(server, 'parley listening', 30_000)).http)).port);
		return { server, httpPort };
	}

	/** A signaling client of OWNER joined to `room`, publishing with werift. */
	async function publisherOn(httpPort: number, token: string): Promise<{ client: TestSignalingClient; publisher: WeriftPublisher }> {
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${httpPort}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
		cleanups.push(() => client.close());
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		const joined = await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		if (!joined.ok) throw new Error(`join: ${joined.error.code}`);
		const publisher = await publishWithWerift(client);
		cleanups.push(() => publisher.close());
		return { client, publisher };
	}

	async function startRecording(client: TestSignalingClient, publisher: WeriftPublisher): Promise<string> {
		const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
		if (!rec.ok) throw new Error(`startRecording: ${rec.error.code}`);
		return rec.data.voiceMessageId;
	}

	it('sees every status of an uploaded and two recorded messages in order, nothing missed or repeated', async () => {
		const apiPort = await freePort();
		const env = await testEnv({
			PARLEY_AUTH_JWT_SECRET: JWT_SECRET,
			PARLEY_LOG_LEVEL: 'info',
			PARLEY_API_GRPC_ENABLED: 'true',
			PARLEY_API_GRPC_PORT: String(apiPort),
			PARLEY_API_KEYS: `${API_KEY.id}:${API_KEY.secret}`,
		});
		let { server, httpPort } = await start(env);
		const token = await mintAccessToken({ userId: OWNER, channels: ['room'], grants: { canPublish: true, canRecord: true }, ttlS: 600 }, new TextEncoder().encode(JWT_SECRET));
		const pkg = grpc.loadPackageDefinition(loadApiPackage()) as unknown as { parley: { v1: { VoiceMessageService: grpc.ServiceClientConstructor } } };
		// One channel for the whole test, as a backend keeps it: grpc-js reconnects it after the restart.
		const client = new pkg.parley.v1.VoiceMessageService(`127.0.0.1:${apiPort}`, grpc.credentials.createInsecure()) as unknown as StatusClient;
		cleanups.push(() => client.close());
		const metadata = async () => {
			const m = new grpc.Metadata();
			m.set('authorization', `Bearer ${await mintApiToken({ keyId: API_KEY.id, secret: API_KEY.secret, grant: { channels: ['*'], operations: ['voiceMessages.read'] }, ttlS: 60 })}`);
			return m;
		};
		const subscriber = new ResumingSubscriber(client, metadata);
		await subscriber.open();

		// An uploaded message, followed live.
		const wav = `${dir}/memo.wav`;
		writeToneWav(wav, 600, 2);
		const uploadUrl = await tusUpload(readFileSync(wav), { endpoint: `http://127.0.0.1:${httpPort}/voice/uploads`, token, metadata: { destination: 'channel:room', filename: 'memo.wav', filetype: 'audio/wav' } });
		const uploaded = uploadUrl.split('/').pop()!;
		await subscriber.waitFor(uploaded, 'ready');

		// A recorded message; the subscriber drops its stream once it saw the recording start,
		// and resumes after the recording was stopped and processed.
		const first = await publisherOn(httpPort, token);
		const recorded = await startRecording(first.client, first.publisher);
		await subscriber.waitFor(recorded, 'recording');
		subscriber.cancel();
		await first.publisher.send(encodeTone(1000, 50)); // 1 s
		const stopped = await first.client.request('stopRecording', { voiceMessageId: recorded });
		if (!stopped.ok) throw new Error(`stopRecording: ${stopped.error.code}`);
		await new Promise((r) => setTimeout(r, 1500)); // processed while nobody listens
		await subscriber.open();
		await subscriber.waitFor(recorded, 'ready');

		// A recording the node dies in (SIGKILL): the next start on the same store finalizes it.
		const second = await publisherOn(httpPort, token);
		const interrupted = await startRecording(second.client, second.publisher);
		await subscriber.waitFor(interrupted, 'recording');
		await second.publisher.send(encodeTone(1000, 100)); // 2 s
		server.child.kill('SIGKILL');
		await server.exited;
		await expect.poll(() => subscriber.ended.filter((code) => code !== 'CANCELLED').length, { timeout: 10_000 }).toBe(1); // the stream broke with the node
		({ server, httpPort } = await start(env));
		await logLine(server, 'unfinished recordings recovered');
		await subscriber.open();
		await subscriber.waitFor(interrupted, 'ready');
		subscriber.cancel();

		console.log(`streams ended by: ${subscriber.ended.join(', ')}; events: ${subscriber.got.map((e) => `${e.message.id.slice(0, 4)}:${e.sequence}:${e.message.status}`).join(' ')}`);
		for (const id of [uploaded, recorded, interrupted]) {
			const events = subscriber.of(id);
			expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1)); // every event, in order, once
			expect(events.at(-1)!.message.status).toBe('ready');
		}
		expect(subscriber.of(uploaded)[0]!.event).toBe('voiceMessage.created');
		expect(subscriber.of(recorded).map((e) => e.message.status)).toEqual(expect.arrayContaining(['recording', 'processing', 'ready']));
		expect(subscriber.of(recorded)[0]!.message.status).toBe('recording');
		expect(subscriber.of(interrupted)[0]!.message.status).toBe('recording');
		// Event ids: each once, increasing over all the streams.
		const ids = subscriber.got.map((e) => BigInt(e.eventId));
		expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);

		// The log read once, from before the first event, on the restarted node: the same events.
		const whole = new ResumingSubscriber(client, metadata);
		whole.got.push({ ...subscriber.got[0]!, eventId: String(BigInt(subscriber.got[0]!.eventId) - 1n) });
		await whole.open();
		await expect.poll(() => whole.got.length, { timeout: 10_000 }).toBe(subscriber.got.length + 1);
		await new Promise((r) => setTimeout(r, 300)); // nothing more arrives
		whole.cancel();
		expect(whole.got.slice(1).map((e) => [e.eventId, e.message.id, e.sequence, e.message.status])).toEqual(subscriber.got.map((e) => [e.eventId, e.message.id, e.sequence, e.message.status]));

		server.child.kill('SIGTERM');
		expect(await server.exited).toBe(0);
	}, 120_000);
});
