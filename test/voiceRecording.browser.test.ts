// Recording a voice message from a real Chromium producer: the page's fake microphone plays
// a 1 kHz tone, the browser library publishes it and asks the server to record ~3 s; the
// stored Ogg Opus file must decode to the recorded duration and the tone's frequency, and
// the metadata's packet counts must agree with mediasoup's count of what it forwarded.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParleyServer } from '../server/ParleyServer.js';
import { mintAccessToken } from '../server/auth/accessToken.js';
import type { VoiceMessageInfo } from '../protocol/schemas.js';
import { decodeFileToMono, dominantFrequency, probeDurationMs } from './helpers/audio.js';
import { launchBrowser } from './helpers/browser.js';
import { testConfig } from './helpers/config.js';
import { testLogger } from './helpers/logger.js';
import { writeToneWav } from './helpers/wav.js';
import { loadClientLibrary } from '../testkit/browsers/chromium.js';

const SECRET = 'browser-recording-secret-0123456789-abcdef';

describe('recording a voice message from Chromium', () => {
	let server: ParleyServer;
	let browser: Browser;
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-browser-rec-'));

	beforeAll(async () => {
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET }), testLogger());
		const wav = path.join(dir, 'tone.wav');
		writeToneWav(wav, 1000, 10);
		browser = await launchBrowser(wav);
	}, 60_000);

	afterAll(async () => {
		await browser?.close();
		await server?.shutdown('test end');
	});

	it('stores ~3 s of the tone, exactly as received', async () => {
		const token = await mintAccessToken({ userId: 'ada', displayName: 'Ada', channels: ['room'], grants: { canPublish: true, canRecord: true }, ttlS: 600 }, new TextEncoder().encode(SECRET));
		const page = await browser.newPage();
		await page.goto(`http://127.0.0.1:${server.http.port}/`);
		await loadClientLibrary(page);
		const recorded = await page.evaluate(
			async ({ token, url }) => {
				const { ParleyClient } = window as unknown as typeof import('../client/index.js');
				const client = new ParleyClient({ url, token });
				await client.connect();
				await client.join('room');
				await client.publishMicrophone();
				await new Promise((r) => setTimeout(r, 500)); // let the tone settle in the encoder
				const startedAt = performance.now();
				const id = await client.startRecording();
				await new Promise((r) => setTimeout(r, 3000));
				const stopAsked = performance.now();
				const info = await client.stopRecording();
				return { id, info, wallMs: stopAsked - startedAt, stopMs: performance.now() - stopAsked };
			},
			{ token, url: `ws://127.0.0.1:${server.http.port}/ws` },
		);
		expect(recorded.info.id).toBe(recorded.id);
		expect(recorded.stopMs).toBeLessThan(100);

		// Ready once hashed and its waveform drawn.
		let message: VoiceMessageInfo | undefined;
		for (let i = 0; i < 100 && message?.status !== 'ready'; i++) {
			message = (await (await fetch(`http://127.0.0.1:${server.http.port}/voice/messages/${recorded.id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as VoiceMessageInfo;
			if (message.status !== 'ready') await new Promise((r) => setTimeout(r, 50));
		}
		expect(message?.status).toBe('ready');
		// The file spans what was recorded: start to stop, give or take signaling and a packet.
		expect(Math.abs(message!.durationMs! - recorded.wallMs)).toBeLessThan(250);

		const audio = await fetch(`http://127.0.0.1:${server.http.port}${message!.audioUrl}`, { headers: { authorization: `Bearer ${token}` } });
		const file = path.join(dir, 'recorded.ogg');
		writeFileSync(file, Buffer.from(await audio.arrayBuffer()));
		const pcm = decodeFileToMono(file);
		expect(Math.abs(pcm.length / 48 - message!.durationMs!)).toBeLessThanOrEqual(40);
		expect(Math.abs(probeDurationMs(file) - message!.durationMs!)).toBeLessThanOrEqual(40);
		expect(Math.abs(dominantFrequency(pcm.subarray(4800)) - 1000)).toBeLessThanOrEqual(10);

		const counts = (await server.voiceStore.get(recorded.id))!.recording!;
		expect(counts.packetsReceived).toBeGreaterThan(140);
		expect(counts.packetsWritten).toBe(counts.packetsReceived - counts.duplicates - counts.late - (counts.packetsAfterStop ?? 0));
		expect(counts.packetsForwarded).toBe(counts.packetsReceived);
		expect(counts.gaps).toBe(0);
	}, 60_000);
});
