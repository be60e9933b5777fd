// A recorded producer's sender controls its RTP timestamps and its pacing: the recording
// must stay bounded on the media timeline whatever they are. Real signaling and a real
// WebRTC publisher (werift), as in recording.test.ts.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeTone, probeDurationMs } from '../../../test/helpers/audio.js';
import type { TestSignalingClient } from '../../../testkit/signalingClient.js';
import type { WeriftPublisher } from '../../../testkit/weriftPublisher.js';
import { startRecordingPublisher } from '../../../test/helpers/recordingPublisher.js';
import type { ParleyServer } from '../../ParleyServer.js';
import { LocalVoiceStorage } from '../files/VoiceStorage.js';
import { DEFAULT_RECORDING_BOUNDS } from './ProducerRecording.js';

const SECRET = 'recording-bounds-secret-0123456789-abcdef';

describe('recording bounds against the sender', () => {
	let server: ParleyServer | undefined;
	let client: TestSignalingClient | undefined;
	let publisher: WeriftPublisher | undefined;

	async function setUp(env: Record<string, string> = {}): Promise<{ server: ParleyServer; client: TestSignalingClient; publisher: WeriftPublisher }> {
		const started = await startRecordingPublisher(SECRET, env);
		({ server, client, publisher } = started);
		return started;
	}

	afterEach(async () => {
		await publisher?.close();
		client?.close();
		await server?.shutdown('test end');
		server = client = publisher = undefined;
	});

	async function start(c: TestSignalingClient, p: WeriftPublisher): Promise<string> {
		const reply = await c.request('startRecording', { producerId: p.producerId, destination: { kind: 'channel', channel: 'room' } });
		if (!reply.ok) throw new Error(`startRecording: ${reply.error.code}`);
		return reply.data.voiceMessageId;
	}

	async function stopAndWaitReady(s: ParleyServer, c: TestSignalingClient, id: string) {
		const reply = await c.request('stopRecording', { voiceMessageId: id });
		if (!reply.ok) throw new Error(`stopRecording: ${reply.error.code}`);
		const stoppedAt = performance.now(); // the file is complete when stopRecording answers
		await c.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status === 'ready');
		const m = (await s.voiceStore.get(id))!;
		return { m, file: new LocalVoiceStorage(s.storageDir).pathOf(m), stoppedAt };
	}

	it('a timestamp jump of 2^31 adds no hours of silence and does not stall the event loop', async () => {
		const { server, client, publisher } = await setUp();
		const frames = encodeTone(1000, 100); // 2 s
		const id = await start(client, publisher);
		const delay = monitorEventLoopDelay({ resolution: 1 });
		delay.enable();
		// From frame 50 on, the stream continues 2^31 - 480 samples later (~12.4 h).
		await publisher.send(frames, { timestampOf: (i) => i * 960 + (i >= 50 ? 2 ** 31 - 480 : 0) });
		await new Promise((r) => setTimeout(r, 100));
		delay.disable();
		const { m, file } = await stopAndWaitReady(server, client, id);
		const maxStallMs = delay.max / 1e6;
		console.log(`bomb: max event-loop delay ${maxStallMs.toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms; ${m.durationMs} ms, ${statSync(file).size} bytes`);
		// Loose for a loaded 2-core machine; the filler for 12.4 h stalled it for 800-2700 ms.
		expect(maxStallMs).toBeLessThan(250);
		expect(delay.percentile(99) / 1e6).toBeLessThan(20);
		expect(m.recording).toMatchObject({ packetsWritten: 100, timestampJumps: 1 });
		// 2 s of audio; the jump adds at most fillAheadMs (the wall clock did not move).
		expect(m.durationMs).toBeGreaterThanOrEqual(2000);
		expect(m.durationMs).toBeLessThanOrEqual(2000 + DEFAULT_RECORDING_BOUNDS.fillAheadMs);
		expect(Math.abs(probeDurationMs(file) - m.durationMs!)).toBeLessThanOrEqual(40);
		expect(statSync(file).size).toBeLessThan(100_000);
	});

	it('packets faster than real time record no more than the wall clock plus the tolerance, and are counted', async () => {
		const { server, client, publisher } = await setUp();
		const frames = encodeTone(1000, 1000); // 20 s of audio...
		const id = await start(client, publisher);
		const t0 = performance.now();
		await publisher.send(frames, { paceMs: 1 }); // ...sent in about 1 s
		await new Promise((r) => setTimeout(r, 100));
		const { m, file, stoppedAt } = await stopAndWaitReady(server, client, id);
		const wallMs = stoppedAt - t0;
		console.log(`fast: ${frames.length} frames in ${wallMs.toFixed(0)} ms wall -> ${m.durationMs} ms recorded, ${m.recording?.packetsAhead} dropped as ahead`);
		expect(m.durationMs).toBeLessThanOrEqual(wallMs + DEFAULT_RECORDING_BOUNDS.aheadToleranceMs);
		expect(probeDurationMs(file)).toBeLessThanOrEqual(wallMs + DEFAULT_RECORDING_BOUNDS.aheadToleranceMs + 40);
		expect(m.recording!.packetsAhead).toBeGreaterThan(0);
		expect(m.recording!.packetsWritten + m.recording!.packetsAhead!).toBe(m.recording!.packetsReceived);
	});

	it('the duration limit holds on the media timeline: audio sent ahead of time stops at the limit', async () => {
		const { server, client, publisher } = await setUp({ PARLEY_VOICE_MAX_DURATION_MS: '3000' });
		const frames = encodeTone(1000, 200); // 4 s of audio in 2 s (1.5 s ahead when the limit is reached)
		const id = await start(client, publisher);
		const t0 = performance.now();
		const stopped = client.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status !== 'recording').then((d) => ({ ...d, afterMs: performance.now() - t0 }));
		await publisher.send(frames, { paceMs: 10 });
		const { reason, afterMs: stoppedAfterMs } = await stopped;
		expect(reason).toBe('max duration reached');
		expect(stoppedAfterMs).toBeLessThan(2900); // before the wall-clock limit
		await client.waitFor('voiceMessage', (d) => d.message.id === id && d.message.status === 'ready');
		const m = (await server.voiceStore.get(id))!;
		expect(m.durationMs).toBeGreaterThan(2900);
		expect(m.durationMs).toBeLessThanOrEqual(3000);
		expect(probeDurationMs(new LocalVoiceStorage(server.storageDir).pathOf(m))).toBeLessThanOrEqual(3040);
	});
});
