// SIGTERM while the node is busy: a peer publishing and recording, a peer listening, an
// upload whose ffmpeg hangs (so the drain cannot finish and the deadline must cut it off),
// and an upload half sent. Extends test/server.process.test.ts (idle node) and
// test/voiceRecording.process.test.ts (one recording): every client is told
// (serverShuttingDown, then close 4503), the process exits 0 within the deadline, nothing
// is left running (workers, the hung ffmpeg), and after a restart nothing is lost: the
// recording is ready with everything received, the half upload resumes from its
// acknowledged offset, and the conversion the deadline cut off runs again.
import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { CLOSE_CODES, PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { SqliteVoiceMessageStore } from '../../server/voice/store/SqliteVoiceMessageStore.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { encodeTone } from '../helpers/audio.js';
import { testEnv } from '../helpers/config.js';
import { freePort } from '../../testkit/ports.js';
import { processAlive } from '../helpers/process.js';
import { logLine, startServerProcess, type ServerProcess } from '../helpers/serverProcess.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { writeToneWav } from '../helpers/wav.js';
import { publishWithWerift, streamTone } from '../../testkit/weriftPublisher.js';
import { hangingTools } from './helpers/fakeTools.js';
import { KEY, SECRET, sleep, waitUntil } from './helpers/harness.js';
import { createUploadId, headUpload, patchUpload, uploadFile } from './helpers/tus.js';
import { listenWithWerift } from '../../testkit/weriftListener.js';

const DEADLINE_MS = 3000;
const CHUNK = 16 * 1024;

describe('graceful shutdown of a busy node', () => {
	const servers: ServerProcess[] = [];
	const cleanups: (() => unknown)[] = [];
	afterEach(async () => {
		for (const c of cleanups.splice(0)) await c();
		for (const s of servers.splice(0)) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
	});

	async function start(env: Record<string, string>): Promise<ServerProcess> {
		const s = startServerProcess(env);
		servers.push(s);
		await logLine(s, 'parley listening');
		return s;
	}

	async function stored(env: Record<string, string>, id: string): Promise<VoiceMessage | undefined> {
		const store = new SqliteVoiceMessageStore(env.PARLEY_VOICE_DATABASE_PATH!, { nodeId: 'test' });
		try {
			return await store.get(id);
		} finally {
			await store.close();
		}
	}

	it('drains within the deadline, tells every client, and loses nothing acknowledged', async () => {
		const tools = hangingTools('.accepted'); // upload inputs are handed to ffmpeg as <id>.part.accepted
		const env = await testEnv({
			PARLEY_AUTH_JWT_SECRET: SECRET,
			PARLEY_LOG_LEVEL: 'info',
			PARLEY_HTTP_PORT: String(await freePort()),
			PARLEY_MEDIA_WORKERS: '2',
			PARLEY_SHUTDOWN_DEADLINE_MS: String(DEADLINE_MS),
		});
		const server = await start({ ...env, PATH: `${tools.dir}:${process.env.PATH}` });
		const workerPids = (await logLine(server, 'mediasoup workers started')).pids as number[];
		const base = `http://127.0.0.1:${env.PARLEY_HTTP_PORT}`;
		const token = (userId: string) => mintAccessToken({ userId, channels: ['room'], grants: { canPublish: true, canSubscribe: true, canRecord: true }, ttlS: 600 }, KEY);
		const connect = async (userId: string) => {
			const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${env.PARLEY_HTTP_PORT}/ws?token=${await token(userId)}&v=${PROTOCOL_VERSION}`);
			cleanups.push(() => client.close());
			const caps = await client.request('getRouterRtpCapabilities', {});
			if (!caps.ok) throw new Error('caps');
			const join = await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
			if (!join.ok) throw new Error(`join: ${join.error.code}`);
			return client;
		};

		// Ada publishes and records; Bob listens to her.
		const ada = await connect('ada');
		const publisher = await publishWithWerift(ada);
		cleanups.push(() => publisher.close());
		const stream = streamTone(publisher, encodeTone(1000, 50));
		cleanups.push(() => stream.stop());
		const bob = await connect('bob');
		const listener = await listenWithWerift(bob, 1);
		cleanups.push(() => listener.close());
		const rec = await ada.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
		if (!rec.ok) throw new Error(`startRecording: ${rec.error.code}`);

		// Carol's upload is complete and converting, but ffprobe hangs on it.
		const carol = await connect('carol');
		const wav = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-shutdown-')), 'tone.wav');
		writeToneWav(wav, 440, 1);
		const carolUpload = await uploadFile({ base, token: await token('carol') }, readFileSync(wav), CHUNK);
		await waitUntil(() => readFileSync(tools.pidFile, 'utf8').trim() !== '', 5000, 'the hung ffprobe');
		const hungPids = readFileSync(tools.pidFile, 'utf8').trim().split('\n').map(Number);

		// Dave sent half of his upload: two chunks acknowledged.
		const dave = { base, token: await token('dave') };
		const daveFile = readFileSync(wav);
		const daveUpload = await createUploadId(dave, daveFile.length);
		for (let off = 0; off < 2 * CHUNK; off += CHUNK) expect((await patchUpload(dave, daveUpload, off, daveFile.subarray(off, off + CHUNK))).status).toBe(204);

		await sleep(1500);
		expect(listener.packets.length).toBeGreaterThan(40);
		const clients = [ada, bob, carol];
		const sentAtTerm = stream.sent;
		const termAt = Date.now();
		server.child.kill('SIGTERM');

		const closes = await Promise.all(clients.map((c) => c.closed));
		// Told at once, not after the stuck conversion: the deadline is for work, not for clients.
		const toldMs = Date.now() - termAt;
		expect(toldMs).toBeLessThan(1000);
		for (const [i, c] of clients.entries()) {
			expect(c.notifications.some((n) => n.method === 'serverShuttingDown'), `client ${i} told`).toBe(true);
			expect(closes[i]!.code).toBe(CLOSE_CODES.SHUTTING_DOWN);
		}
		const sentAtClose = stream.sent;
		expect(await server.exited).toBe(0);
		const exitMs = Date.now() - termAt;
		console.log(`busy shutdown: clients told and closed after ${toldMs} ms, exit after ${exitMs} ms (deadline ${DEADLINE_MS} ms)`);
		expect(exitMs).toBeLessThan(DEADLINE_MS + 1500);
		expect((await logLine(server, 'shutdown deadline reached')).unfinished).toEqual(['voice and signaling']);
		expect(hungPids.filter(processAlive)).toEqual([]);
		expect(workerPids.filter(processAlive)).toEqual([]);
		// New connections are refused once draining starts (the listen socket is closed).
		await expect(fetch(`${base}/healthz`)).rejects.toThrow();

		// The recording was finalized before the workers went away: it is complete.
		const recording = (await stored(env, rec.data.voiceMessageId))!;
		expect(['ready', 'processing']).toContain(recording.status);
		expect(recording.recording!.packetsWritten).toBeGreaterThanOrEqual(sentAtTerm - 60 - 5);
		expect(recording.recording!.packetsWritten).toBeLessThanOrEqual(sentAtClose + 5);

		// After a restart with working tools, nothing acknowledged is lost.
		await start(env);
		const afterRestart = (await stored(env, rec.data.voiceMessageId))!;
		expect(afterRestart.status).toBe('ready');
		expect(afterRestart.durationMs).toBe(recording.durationMs);
		// Carol's upload was acknowledged: its conversion runs again, now with working tools.
		await waitUntil(async () => (await stored(env, carolUpload))?.status === 'ready', 10_000, "carol's upload converted after the restart");
		expect((await stored(env, carolUpload))!.durationMs).toBe(1000);
		const head = await headUpload(dave, daveUpload);
		expect(head.headers.get('upload-offset')).toBe(String(2 * CHUNK));
		for (let off = 2 * CHUNK; off < daveFile.length; off += CHUNK) expect((await patchUpload(dave, daveUpload, off, daveFile.subarray(off, off + CHUNK))).status).toBe(204);
		await waitUntil(async () => (await stored(env, daveUpload))?.status === 'ready', 10_000, "dave's upload ready");
	}, 60_000);
});
