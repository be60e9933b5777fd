// Recording a live producer into a voice message, through Parley's real signaling, with a
// real WebRTC publisher (werift: ICE + DTLS + SRTP) whose packets, timestamps and losses
// the test controls. The browser path is covered in client/demo.browser.test.ts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeFileToMono, dominantFrequency, encodeTone, probeDurationMs } from '../../../test/helpers/audio.js';
import { testConfig } from '../../../test/helpers/config.js';
import { testLogger } from '../../../test/helpers/logger.js';
import { TestSignalingClient } from '../../../testkit/signalingClient.js';
import { publishWithWerift, type WeriftPublisher } from '../../../testkit/weriftPublisher.js';
import { startRecordingPublisher } from '../../../test/helpers/recordingPublisher.js';
import { ParleyServer } from '../../ParleyServer.js';
import { mintAccessToken } from '../../auth/accessToken.js';
import { PROTOCOL_VERSION, type RequestData } from '../../../protocol/messages.js';
import type { VoiceMessageInfo } from '../../../protocol/schemas.js';
import { SqliteVoiceMessageStore } from '../store/SqliteVoiceMessageStore.js';
import { LocalVoiceStorage } from '../files/VoiceStorage.js';

const SECRET = 'recording-test-secret-0123456789-abcdefgh';

describe('recording a live producer', () => {
	let server: ParleyServer;
	let client: TestSignalingClient;
	let publisher: WeriftPublisher;

	beforeEach(async () => {
		({ server, client, publisher } = await startRecordingPublisher(SECRET));
	});

	afterEach(async () => {
		await publisher?.close();
		client?.close();
		await server?.shutdown('test end');
	});

	async function start(): Promise<string> {
		const reply = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
		if (!reply.ok) throw new Error(`startRecording: ${reply.error.code}`);
		return reply.data.voiceMessageId;
	}

	async function stop(id: string): Promise<{ info: VoiceMessageInfo; stopMs: number }> {
		const t0 = performance.now();
		const reply = await client.request('stopRecording', { voiceMessageId: id });
		const stopMs = performance.now() - t0;
		if (!reply.ok) throw new Error(`stopRecording: ${reply.error.code}`);
		return { info: reply.data.voiceMessage, stopMs };
	}

	const fileOf = async (id: string) => new LocalVoiceStorage(server.storageDir).pathOf((await server.voiceStore.get(id))!);

	it('writes every received packet of a 3 s tone; the file decodes to 3 s of 1 kHz', async () => {
		const id = await start();
		const sent = await publisher.send(encodeTone(1000, 150));
		await new Promise((r) => setTimeout(r, 100)); // the last packets cross the worker
		const t0 = performance.now();
		const { info, stopMs } = await stop(id);
		expect(stopMs).toBeLessThan(100);
		expect(['processing', 'ready']).toContain(info.status);
		const ready = await client.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status === 'ready');
		console.log(`stop -> file complete (stopRecording answered): ${stopMs.toFixed(1)} ms; stop -> ready (hash + waveform): ${(performance.now() - t0).toFixed(0)} ms`);
		expect(ready.message.audioUrl).toBe(`/voice/messages/${id}/audio`);

		const m = (await server.voiceStore.get(id))!;
		expect(m.recording).toMatchObject({ packetsReceived: sent, packetsWritten: sent, packetsForwarded: sent, gaps: 0, packetsMissing: 0, duplicates: 0, late: 0 });
		expect(m.durationMs).toBe(3000);
		const file = await fileOf(id);
		expect(Math.abs(probeDurationMs(file) - 3000)).toBeLessThanOrEqual(40);
		const audio = decodeFileToMono(file);
		expect(Math.abs(audio.length / 48 - 3000)).toBeLessThanOrEqual(40);
		expect(Math.abs(dominantFrequency(audio.subarray(4800)) - 1000)).toBeLessThanOrEqual(10);
		expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
		// A steady tone: a flat, loud waveform.
		expect(m.waveform).toHaveLength(100);
		expect(Math.min(...m.waveform!.slice(5, 95))).toBeGreaterThan(20);
	});

	it('keeps the timeline through DTX silence and packets lost before the server, counting the gaps', async () => {
		const id = await start();
		// 150 frames (3 s of speech) with 1 s of DTX silence after frame 75 (the sender is
		// quiet for that second), and every 10th frame lost on the way (never the first or the last).
		const frames = encodeTone(500, 150);
		const lost = (i: number) => i % 10 === 5;
		let sent = await publisher.send(frames.slice(0, 76), { skip: lost, timestampOf: (i) => 7_000 + i * 960 });
		await new Promise((r) => setTimeout(r, 1000));
		sent += await publisher.send(frames.slice(76), { skip: (i) => lost(76 + i), timestampOf: (i) => 7_000 + (76 + i) * 960 + 48_000 });
		await new Promise((r) => setTimeout(r, 100));
		await stop(id);
		await client.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status === 'ready');
		const m = (await server.voiceStore.get(id))!;
		expect(sent).toBe(135);
		expect(m.recording).toMatchObject({ packetsReceived: 135, packetsWritten: 135, gaps: 15, packetsMissing: 15 });
		expect(m.durationMs).toBe(4000);
		expect(Math.abs(decodeFileToMono(await fileOf(id)).length / 48 - 4000)).toBeLessThanOrEqual(40);
	});

	it('finalizes a running recording at shutdown with everything received', async () => {
		const id = await start();
		const sent = await publisher.send(encodeTone(1000, 100));
		await new Promise((r) => setTimeout(r, 100));
		const file = await fileOf(id);
		await server.shutdown('test');
		// The server closed its store: read what it left on disk.
		const store = new SqliteVoiceMessageStore(server.config.voice.databasePath, { nodeId: 'test' });
		const m = (await store.get(id))!;
		await store.close();
		expect(m.status).toBe('ready');
		expect(m.recording).toMatchObject({ packetsReceived: sent, packetsWritten: sent });
		expect(Math.abs(decodeFileToMono(file).length / 48 - 2000)).toBeLessThanOrEqual(40);
		expect(sent).toBe(100);
	});

	it('stops at the duration limit and says so', async () => {
		await server.shutdown('restart');
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_VOICE_MAX_DURATION_MS: '1000' }), testLogger());
		const token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canPublish: true, canRecord: true }, ttlS: 600 }, new TextEncoder().encode(SECRET));
		({ client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${token}&v=${PROTOCOL_VERSION}`));
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		await publisher.close();
		publisher = await publishWithWerift(client);
		const id = await start();
		await publisher.send(encodeTone(1000, 75));
		const stopped = await client.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status !== 'recording');
		expect(stopped.reason).toBe('max duration reached');
		const m = (await server.voiceStore.get(id))!;
		expect(m.durationMs).toBeGreaterThan(900);
		expect(m.durationMs).toBeLessThanOrEqual(1040);
	});

	it('refuses recording without the grant, or someone else’s producer', async () => {
		const token = await mintAccessToken({ userId: 'bob', channels: ['room'], grants: { canPublish: true, canRecord: false }, ttlS: 600 }, new TextEncoder().encode(SECRET));
		const { client: bob } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
		const caps = await bob.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		await bob.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		const reply = await bob.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
		expect(reply.ok ? 'OK' : reply.error.code).toBe('E_FORBIDDEN');
		bob.close();
		const other = await client.request('startRecording', { producerId: '00000000-0000-0000-0000-000000000000', destination: { kind: 'channel', channel: 'room' } });
		expect(other.ok ? 'OK' : other.error.code).toBe('E_NOT_FOUND');
		const elsewhere = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'secret' } });
		expect(elsewhere.ok ? 'OK' : elsewhere.error.code).toBe('E_FORBIDDEN');
	});
});
