// Recordings when the server process goes away: SIGTERM finalizes them with everything
// received; after a SIGKILL, the next start closes the file a crash left behind.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type RequestData } from '../protocol/messages.js';
import { mintAccessToken } from '../server/auth/accessToken.js';
import { PAGE_FLAG_EOS, readPages } from '../server/voice/ogg/OggPageWriter.js';
import { SqliteVoiceMessageStore } from '../server/voice/store/SqliteVoiceMessageStore.js';
import { LocalVoiceStorage } from '../server/voice/files/VoiceStorage.js';
import type { VoiceMessage } from '../server/voice/voiceMessage.js';
import { decodeFileToMono, dominantFrequency, encodeTone } from './helpers/audio.js';
import { testEnv } from './helpers/config.js';
import { logLine, startServerProcess, type ServerProcess } from './helpers/serverProcess.js';
import { TestSignalingClient } from '../testkit/signalingClient.js';
import { publishWithWerift, type WeriftPublisher } from '../testkit/weriftPublisher.js';

const SECRET = 'recording-process-test-secret-0123456789';

describe('recordings across server stops', () => {
	const servers: ServerProcess[] = [];
	const cleanups: (() => unknown)[] = [];
	afterEach(async () => {
		for (const c of cleanups.splice(0)) await c();
		for (const s of servers.splice(0)) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
	});

	async function startRecordingOn(env: Record<string, string>): Promise<{ server: ServerProcess; publisher: WeriftPublisher; id: string }> {
		const server = startServerProcess(env);
		servers.push(server);
		const port = new URL(String((await logLine(server, 'parley listening')).http)).port;
		const token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canPublish: true, canRecord: true }, ttlS: 600 }, new TextEncoder().encode(SECRET));
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
		cleanups.push(() => client.close());
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		const publisher = await publishWithWerift(client);
		cleanups.push(() => publisher.close());
		const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
		if (!rec.ok) throw new Error(`startRecording: ${rec.error.code}`);
		return { server, publisher, id: rec.data.voiceMessageId };
	}

	async function stored(env: Record<string, string>, id: string): Promise<{ message: VoiceMessage; file: string }> {
		const store = new SqliteVoiceMessageStore(env.PARLEY_VOICE_DATABASE_PATH!, { nodeId: 'test' });
		try {
			const message = (await store.get(id))!;
			return { message, file: new LocalVoiceStorage(env.PARLEY_STORAGE_DIR!).pathOf(message) };
		} finally {
			await store.close();
		}
	}

	it('SIGTERM during a recording leaves a playable file with everything received', async () => {
		const env = await testEnv({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_LOG_LEVEL: 'info' });
		const { server, publisher, id } = await startRecordingOn(env);
		const sent = await publisher.send(encodeTone(1000, 100)); // 2 s
		await new Promise((r) => setTimeout(r, 100));
		server.child.kill('SIGTERM');
		expect(await server.exited).toBe(0);
		const { message, file } = await stored(env, id);
		expect(message.status).toBe('ready');
		expect(message.recording).toMatchObject({ packetsReceived: sent, packetsWritten: sent });
		const audio = decodeFileToMono(file);
		expect(Math.abs(audio.length / 48 - 2000)).toBeLessThanOrEqual(40);
		expect(Math.abs(dominantFrequency(audio.subarray(4800)) - 1000)).toBeLessThanOrEqual(10);
	});

	it('after SIGKILL, the next start finalizes the file the crash left', async () => {
		const env = await testEnv({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_LOG_LEVEL: 'info' });
		const { server, publisher, id } = await startRecordingOn(env);
		await publisher.send(encodeTone(1000, 150)); // 3 s
		await new Promise((r) => setTimeout(r, 100));
		server.child.kill('SIGKILL');
		await server.exited;
		expect((await stored(env, id)).message.status).toBe('recording');

		const restarted = startServerProcess(env);
		servers.push(restarted);
		const recovered = await logLine(restarted, 'unfinished recordings recovered');
		expect(recovered).toMatchObject({ finalized: 1, failed: 0 });
		await logLine(restarted, 'parley listening');
		const { message, file } = await stored(env, id);
		expect(message.status).toBe('ready');
		// Pages are written about once a second: at most the last second is lost.
		expect(message.durationMs).toBeGreaterThanOrEqual(2000);
		expect(message.durationMs).toBeLessThanOrEqual(3000);
		expect(Math.abs(decodeFileToMono(file).length / 48 - message.durationMs!)).toBeLessThanOrEqual(40);
		expect(readPages(readFileSync(file)).at(-1)!.flags & PAGE_FLAG_EOS).toBe(PAGE_FLAG_EOS);
		restarted.child.kill('SIGTERM');
		expect(await restarted.exited).toBe(0);
	});
});
