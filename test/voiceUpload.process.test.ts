// A voice-message upload that survives the server dying: the standard tus-js-client sends
// a speech file in small chunks to a Parley process, which is SIGKILLed mid-upload and
// started again on the same port and data; the client resumes where the durable offset
// was, and the voice message ends up ready, its original's sha256 equal to the source's.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Upload } from 'tus-js-client';
import { afterEach, describe, expect, it } from 'vitest';
import { mintAccessToken } from '../server/auth/accessToken.js';
import type { VoiceMessageInfo } from '../protocol/schemas.js';
import { probeDurationMs } from './helpers/audio.js';
import { testEnv } from './helpers/config.js';
import { freePort } from '../testkit/ports.js';
import { logLine, startServerProcess, type ServerProcess } from './helpers/serverProcess.js';

const SECRET = 'upload-process-test-secret-0123456789-abc';
const CHUNK = 16 * 1024;

describe('resumable voice-message upload across a server crash', () => {
	const servers: ServerProcess[] = [];
	afterEach(() => {
		for (const s of servers.splice(0)) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
	});

	it('resumes after SIGKILL and restart; the stored original matches the source', async () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-upload-'));
		const wav = path.join(dir, 'speech.wav');
		execFileSync('espeak-ng', ['-w', wav, 'Parley keeps every byte it acknowledged, even when the server dies in the middle of an upload.']);
		const source = readFileSync(wav);
		const sourceSha = createHash('sha256').update(source).digest('hex');
		expect(source.length).toBeGreaterThan(8 * CHUNK);

		const env = await testEnv({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_HTTP_PORT: String(await freePort()), PARLEY_LOG_LEVEL: 'info' });
		const start = async () => {
			const s = startServerProcess(env);
			servers.push(s);
			await logLine(s, 'parley listening');
			return s;
		};
		let server = await start();
		const base = `http://127.0.0.1:${env.PARLEY_HTTP_PORT}`;
		const token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canRecord: true }, ttlS: 600 }, new TextEncoder().encode(SECRET));

		let chunks = 0;
		let bytesSent = 0;
		let restarted: Promise<void> | undefined;
		await new Promise<void>((resolve, reject) => {
			const upload = new Upload(source, {
				endpoint: `${base}/voice/uploads`,
				chunkSize: CHUNK,
				headers: { authorization: `Bearer ${token}` },
				metadata: { destination: 'channel:room', filename: 'speech.wav', filetype: 'audio/wav' },
				retryDelays: [200, 500, 1000, 2000, 4000, 8000],
				onChunkComplete: (chunkSize) => {
					chunks++;
					bytesSent += chunkSize;
					if (chunks === 5) {
						// The server dies right after acknowledging chunk 5, and comes back.
						server.child.kill('SIGKILL');
						restarted = server.exited.then(async () => {
							server = await start();
						});
					}
				},
				onSuccess: () => resolve(),
				onError: (err) => reject(err),
			});
			upload.start();
		});
		await restarted;
		// Resumed from the durable offset: at most one chunk was sent twice.
		expect(bytesSent).toBeLessThanOrEqual(source.length + CHUNK);

		let message: VoiceMessageInfo | undefined;
		const deadline = Date.now() + 20_000;
		while (Date.now() < deadline) {
			const list = (await (await fetch(`${base}/voice/messages?channel=room`, { headers: { authorization: `Bearer ${token}` } })).json()) as { messages: VoiceMessageInfo[] };
			message = list.messages.find((m) => m.originalSha256 === sourceSha);
			if (message && message.status !== 'processing') break;
			await new Promise((r) => setTimeout(r, 200));
		}
		expect(message).toMatchObject({ status: 'ready', source: 'upload', originalName: 'speech.wav', ownerId: 'ada' });
		const audio = await fetch(`${base}${message!.audioUrl}`, { headers: { authorization: `Bearer ${token}` } });
		expect(audio.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
		const ogg = path.join(dir, 'stored.ogg');
		await import('node:fs/promises').then((fs) => audio.arrayBuffer().then((b) => fs.writeFile(ogg, Buffer.from(b))));
		expect(Math.abs(probeDurationMs(ogg) - probeDurationMs(wav))).toBeLessThanOrEqual(60);
		expect(Math.abs(message!.durationMs! - probeDurationMs(wav))).toBeLessThanOrEqual(60);
	}, 90_000);
});
