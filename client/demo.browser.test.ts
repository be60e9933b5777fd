// The demo page and the browser library end to end: a real Parley server, headless Chromium
// with fake microphones, two participants in one channel. Checks what a user sees: joining,
// the participant list, speaking, mute, reconnect after a dropped connection, leaving, and
// voice messages (record, live list, waveform, playback, upload).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParleyServer } from '../server/ParleyServer.js';
import { CHROMIUM, launchBrowser } from '../test/helpers/browser.js';
import { testConfig } from '../test/helpers/config.js';
import { testLogger } from '../test/helpers/logger.js';

const repoDir = fileURLToPath(new URL('..', import.meta.url));

interface Participant {
	page: Page;
	errors: string[];
}

describe('demo page (browser)', () => {
	let server: ParleyServer;
	let browser: Browser;
	let base: string;

	beforeAll(async () => {
		// The server reads client/dist once at startup: build it first.
		execFileSync(process.execPath, ['--import', 'tsx', 'client/build.ts'], { cwd: repoDir, stdio: 'pipe' });
		server = await ParleyServer.create(await testConfig(), testLogger());
		base = `http://127.0.0.1:${server.http.port}`;
		browser = await launchBrowser();
	}, 60_000);

	afterAll(async () => {
		await browser?.close();
		await server?.shutdown('test end');
	});

	async function open(): Promise<Participant> {
		const page = await browser.newPage();
		const errors: string[] = [];
		page.on('pageerror', (err) => errors.push(err.message));
		page.on('console', (message) => {
			if (message.type() === 'error') errors.push(message.text());
		});
		await page.goto(base);
		return { page, errors };
	}

	async function join({ page }: Participant, name: string, channel = 'lobby'): Promise<void> {
		await page.fill('#name', name);
		await page.fill('#channel', channel);
		await page.click('#join');
		await page.waitForFunction(() => window.parley?.producerId != null, undefined, { timeout: 15_000 });
	}

	const participantNames = (page: Page) => page.$$eval('[data-testid="participant"] .name', (els) => els.map((e) => e.textContent).sort());

	it('two people join, hear and see each other, mute, survive a dropped connection, leave', async () => {
		const ada = await open();
		const grace = await open();
		await expect(ada.page.textContent('#state')).resolves.toBe('disconnected');
		expect(await ada.page.inputValue('#channel')).toBe('lobby');

		await join(ada, 'Ada');
		await join(grace, 'Grace');
		expect(await ada.page.textContent('#state')).toBe('connected');
		expect(await ada.page.textContent('#channel-name')).toBe('lobby');
		expect(await ada.page.isHidden('#join')).toBe(true);
		expect(await ada.page.isVisible('#leave')).toBe(true);
		await ada.page.waitForFunction(() => document.querySelectorAll('[data-testid="participant"]').length === 2);
		expect(await participantNames(ada.page)).toEqual(['Ada', 'Grace']);
		expect(await ada.page.$$eval('li[data-self="true"] .tag', (els) => els.map((e) => e.textContent))).toContain('you');

		// Each hears the other: a remote stream with a live track, played by an <audio> element.
		for (const { page } of [ada, grace]) {
			await page.waitForFunction(() => window.parley?.remoteStreams().size === 1, undefined, { timeout: 10_000 });
			expect(await page.$$eval('audio', (els) => els.length)).toBe(1);
		}

		// Chromium's fake microphone beeps: someone shows as speaking.
		await grace.page.waitForSelector('li.speaking[data-testid="participant"]', { timeout: 10_000 });

		// Mute: Grace sees Ada muted; unmute clears it.
		const adaPeerId = await ada.page.evaluate(() => window.parley!.peerId);
		await ada.page.click('#mute');
		expect(await ada.page.textContent('#mute')).toBe('Unmute');
		await grace.page.waitForFunction((id) => window.parley!.isPeerMuted(id!), adaPeerId);
		await grace.page.waitForSelector(`li[data-peer-id="${adaPeerId}"] .tag.muted`);
		await ada.page.click('#mute');
		await grace.page.waitForFunction((id) => !window.parley!.isPeerMuted(id!), adaPeerId);

		// Drop Ada's connection without a close handshake: she reconnects and rejoins.
		const adaUserId = await ada.page.evaluate(() => window.parley!.welcome!.userId);
		expect(server.signaling.dropUser(adaUserId)).toBe(1);
		await ada.page.waitForFunction(() => window.parley?.state === 'reconnected', undefined, { timeout: 15_000 });
		await ada.page.waitForFunction(() => window.parley?.producerId != null && window.parley.remoteStreams().size === 1, undefined, { timeout: 10_000 });
		await grace.page.waitForFunction(() => window.parley?.peers.size === 1 && window.parley.remoteStreams().size === 1, undefined, { timeout: 10_000 });
		expect(await participantNames(grace.page)).toEqual(['Ada', 'Grace']);

		const stats = await ada.page.evaluate(async () => (await window.parley!.stats()).map((s) => s.direction).sort());
		expect(stats).toEqual(['recv', 'send']);

		// Leave: Grace is alone again, Ada is back at the form.
		await ada.page.click('#leave');
		await grace.page.waitForFunction(() => document.querySelectorAll('[data-testid="participant"]').length === 1);
		expect(await ada.page.isVisible('#join')).toBe(true);
		expect(await ada.page.textContent('#state')).toBe('disconnected');
		expect(await ada.page.$$eval('audio', (els) => els.length)).toBe(0);

		expect(ada.errors).toEqual([]);
		expect(grace.errors).toEqual([]);
		expect(await ada.page.isHidden('#error')).toBe(true);
	}, 90_000);

	/** Resolves with the <audio> duration (s) once its metadata loaded; rejects on a media error. */
	const audioDuration = (page: Page, selector: string) =>
		page.$eval(
			selector,
			(audio: HTMLAudioElement) =>
				new Promise<number>((resolve, reject) => {
					const done = () => (Number.isFinite(audio.duration) ? resolve(audio.duration) : undefined);
					if (audio.readyState >= 1) done();
					audio.addEventListener('loadedmetadata', done);
					audio.addEventListener('durationchange', done);
					audio.addEventListener('error', () => reject(new Error(`audio error ${audio.error?.code}: ${audio.error?.message}`)));
					setTimeout(() => reject(new Error(`no metadata; readyState ${audio.readyState}, duration ${audio.duration}`)), 10_000);
				}),
		);

	it('records a voice message from the microphone: it appears for both, with waveform and playable audio', async () => {
		const ada = await open();
		const grace = await open();
		await join(ada, 'Ada', 'voice-notes');
		await join(grace, 'Grace', 'voice-notes');
		expect(await ada.page.isVisible('#voice-empty')).toBe(true);
		expect(await ada.page.isEnabled('#upload')).toBe(true);
		await ada.page.waitForSelector('#record:not([disabled])');
		expect(await ada.page.textContent('#record')).toBe('Record');

		await ada.page.click('#record');
		await ada.page.waitForSelector('#record[aria-pressed="true"]');
		const voiceMessageId = await ada.page.evaluate(() => window.parley!.recording!.voiceMessageId);
		await ada.page.waitForTimeout(2000);
		expect(await ada.page.textContent('#record')).toMatch(/^Stop 0:0[23]$/);
		await ada.page.click('#record');
		await ada.page.waitForSelector('#record[aria-pressed="false"]');
		expect(await ada.page.textContent('#record')).toBe('Record');

		const ready = `li[data-testid="voice-message"][data-voice-message-id="${voiceMessageId}"][data-status="ready"]`;
		for (const { page } of [ada, grace]) {
			await page.waitForSelector(ready, { timeout: 10_000 });
			expect(await page.$$eval('li[data-testid="voice-message"]', (els) => els.length)).toBe(1);
			expect(await page.isHidden('#voice-empty')).toBe(true);
		}
		// Grace got it live (notification), with the sender's name from the channel.
		expect(await grace.page.textContent(`${ready} .sender`)).toBe('Ada');
		expect(await ada.page.textContent(`${ready} .sender`)).toBe('Ada (you)');
		expect(await ada.page.textContent(`${ready} .duration`)).toMatch(/^0:0[123]$/);
		const bars = await ada.page.$$eval(`${ready} svg.waveform rect`, (rects) => rects.map((r) => Number(r.getAttribute('height'))));
		expect(bars).toHaveLength(100);
		// The fake microphone beeps: not a flat line.
		expect(Math.max(...bars)).toBeGreaterThan(Math.min(...bars));

		// The <audio> element loads the Ogg Opus file through a signed link (no token in the
		// URL) and knows its length.
		await grace.page.waitForSelector(`${ready} audio[src]`);
		const src = await grace.page.getAttribute(`${ready} audio`, 'src');
		expect(src).toMatch(new RegExp(`^${base}/voice/messages/${voiceMessageId}/audio\\?user=[^&]+&exp=\\d+&sig=[\\w-]+$`));
		const message = await ada.page.evaluate((id) => window.parley!.getVoiceMessage(id), voiceMessageId);
		const durationS = await audioDuration(grace.page, `${ready} audio`);
		expect(durationS).toBeGreaterThan(1.5);
		expect(durationS).toBeLessThan(3.5);
		expect(Math.abs(durationS * 1000 - message.durationMs!)).toBeLessThan(250);
		// And plays.
		const played = await grace.page.$eval(`${ready} audio`, async (audio: HTMLAudioElement) => {
			await audio.play();
			await new Promise((resolve) => setTimeout(resolve, 500));
			audio.pause();
			return audio.currentTime;
		});
		expect(played).toBeGreaterThan(0.2);

		// A newcomer loads it from the list (HTTP).
		const linus = await open();
		await join(linus, 'Linus', 'voice-notes');
		await linus.page.waitForSelector(ready, { timeout: 5000 });
		expect(await linus.page.textContent(`${ready} .sender`)).toBe('Ada');

		for (const participant of [grace, linus]) {
			expect(participant.errors).toEqual([]);
			expect(await participant.page.isHidden('#error')).toBe(true);
			await participant.page.close();
		}

		// The sender deletes it.
		await ada.page.click(`${ready} [data-testid="delete-voice-message"]`);
		await ada.page.waitForSelector('#voice-empty:not([hidden])');
		expect(await server.voiceStore.get(voiceMessageId)).toBeUndefined();
		expect(ada.errors).toEqual([]);
		expect(await ada.page.isHidden('#error')).toBe(true);
		await ada.page.close();
	}, 90_000);

	/** A mono 16-bit PCM WAV: a 440 Hz tone whose loudness rises and falls (a visible waveform). */
	function toneWav(durationMs: number, sampleRate = 48_000): Buffer {
		const samples = Math.round((sampleRate * durationMs) / 1000);
		const wav = Buffer.alloc(44 + samples * 2);
		wav.write('RIFF', 0);
		wav.writeUInt32LE(36 + samples * 2, 4);
		wav.write('WAVEfmt ', 8);
		wav.writeUInt32LE(16, 16);
		wav.writeUInt16LE(1, 20);
		wav.writeUInt16LE(1, 22);
		wav.writeUInt32LE(sampleRate, 24);
		wav.writeUInt32LE(sampleRate * 2, 28);
		wav.writeUInt16LE(2, 32);
		wav.writeUInt16LE(16, 34);
		wav.write('data', 36);
		wav.writeUInt32LE(samples * 2, 40);
		for (let i = 0; i < samples; i++) {
			const envelope = Math.sin((Math.PI * i) / samples);
			wav.writeInt16LE(Math.round(20_000 * envelope * Math.sin((2 * Math.PI * 440 * i) / sampleRate)), 44 + i * 2);
		}
		return wav;
	}

	it('uploads an audio file in chunks with progress; the message appears and becomes playable', async () => {
		const ada = await open();
		await join(ada, 'Ada', 'voice-uploads');
		const patches: number[] = [];
		ada.page.on('requestfinished', (request) => {
			if (request.method() === 'PATCH' && request.url().includes('/voice/uploads/')) patches.push(Number(request.headers()['upload-offset']));
		});
		const wav = toneWav(3000);
		expect(wav.length).toBeGreaterThan(256 * 1024);
		await ada.page.setInputFiles('#upload-input', { name: 'tone.wav', mimeType: 'audio/wav', buffer: wav });

		const uploaded = 'li[data-testid="voice-message"][data-source="upload"]';
		await ada.page.waitForSelector(uploaded, { timeout: 10_000 });
		await ada.page.waitForSelector('#upload-status', { state: 'hidden' });
		expect(await ada.page.textContent('#upload-percent')).toBe('100%');
		expect(await ada.page.getAttribute('#upload-progress', 'value')).toBe('100');
		expect(await ada.page.isEnabled('#upload')).toBe(true);
		// tus, in 256 KiB chunks: two PATCHes, at these offsets.
		expect(patches).toEqual([0, 256 * 1024]);

		// Processing (transcoding to Ogg Opus) ends in ready, or in failed with the reason shown.
		await ada.page.waitForSelector(`${uploaded}:is([data-status="ready"], [data-status="failed"])`, { timeout: 20_000 });
		const status = await ada.page.getAttribute(uploaded, 'data-status');
		const statusText = status === 'failed' ? await ada.page.textContent(`${uploaded} [data-testid="voice-message-status"]`) : null;
		expect(statusText).toBeNull();
		expect(await ada.page.$$eval(`${uploaded} svg.waveform rect`, (rects) => rects.length)).toBe(100);
		const durationS = await audioDuration(ada.page, `${uploaded} audio`);
		expect(durationS).toBeGreaterThan(2.8);
		expect(durationS).toBeLessThan(3.2);
		expect(ada.errors).toEqual([]);
		await ada.page.close();
	}, 60_000);

	it('resumes an upload after a page reload (library, same user)', async () => {
		const tokenResponse = await fetch(`${base}/dev/token`, {
			method: 'POST',
			headers: { 'content-type': 'application/json' },
			body: JSON.stringify({ displayName: 'Ada', channel: 'voice-resume' }),
		});
		const { token } = (await tokenResponse.json()) as { token: string };
		const { page, errors } = await open();
		const wav = toneWav(6000);
		const wavBase64 = wav.toString('base64');
		const requests: string[] = [];
		let holdSecondChunk = true;
		await page.route('**/voice/uploads**', async (route) => {
			const request = route.request();
			const offset = request.headers()['upload-offset'];
			requests.push(`${request.method()} ${offset ?? ''}`.trim());
			// The page "crashes" while sending the second chunk: it never gets through.
			if (holdSecondChunk && request.method() === 'PATCH' && offset !== '0') return;
			await route.continue();
		});
		/** Loads the library as a module, connects with the token and starts uploading the same file. */
		const startUpload = (target: Page) =>
			target.evaluate(`
				import(${JSON.stringify(`${base}/parley-client.js`)}).then(async (lib) => {
					const client = new lib.ParleyClient({ url: ${JSON.stringify(`${base.replace('http', 'ws')}/ws`)}, token: ${JSON.stringify(token)}, playAudio: false });
					await client.connect();
					const bytes = Uint8Array.from(atob(${JSON.stringify(wavBase64)}), (c) => c.charCodeAt(0));
					const file = new File([bytes], 'tone.wav', { type: 'audio/wav', lastModified: 1700000000000 });
					window.uploadResult = client.uploadVoiceMessage(file, { destination: { kind: 'channel', channel: 'voice-resume' } })
						.then((message) => ({ message }), (error) => ({ error: error.code + ': ' + error.message }));
				})`);
		await startUpload(page);
		await expect.poll(() => requests, { timeout: 10_000 }).toEqual(['POST', 'PATCH 0', `PATCH ${256 * 1024}`]);
		// The upload URL is in localStorage (tus-js-client's fingerprint store).
		expect(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length)).toBe(1);

		holdSecondChunk = false;
		await page.reload();
		requests.length = 0;
		await startUpload(page);
		const result = (await page.waitForFunction(() => (window as unknown as { uploadResult?: Promise<unknown> }).uploadResult, undefined, { timeout: 15_000 }).then((handle) =>
			handle.jsonValue(),
		)) as { message?: { id: string; source: string; status: string }; error?: string };
		expect(result.error).toBeUndefined();
		expect(result.message).toMatchObject({ source: 'upload' });
		// No new upload: it asked where it stood (HEAD) and sent the rest from there.
		expect(requests.filter((r) => r !== 'OPTIONS')).toEqual(['HEAD', `PATCH ${256 * 1024}`, `PATCH ${512 * 1024}`]);
		// Finished: forgotten, so the same file again would be a new message.
		expect(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length)).toBe(0);
		await expect.poll(async () => (await server.voiceStore.get(result.message!.id))?.status, { timeout: 20_000 }).toBe('ready');
		expect(errors).toEqual([]);
		await page.close();
	}, 60_000);

	it('shows the server error when the token request is refused', async () => {
		const { page } = await open();
		await page.fill('#name', 'x'.repeat(64));
		await page.evaluate(() => {
			// Over the server's 64-character limit: the input's maxlength stops real users.
			(document.getElementById('name') as HTMLInputElement).removeAttribute('maxlength');
		});
		await page.fill('#name', 'x'.repeat(65));
		await page.click('#join');
		await page.waitForSelector('#error:not([hidden])');
		expect(await page.getAttribute('#error', 'data-code')).toBe('E_BAD_REQUEST');
		expect(await page.textContent('#error')).toMatch(/displayName/);
		expect(await page.isVisible('#join')).toBe(true);
	});

	it('shows a clear message for an invalid channel name without asking the server', async () => {
		const { page } = await open();
		await page.fill('#name', 'Ada');
		await page.fill('#channel', '../secret');
		await page.click('#join');
		await page.waitForSelector('#error:not([hidden])');
		expect(await page.textContent('#error')).toMatch(/Channel names are/);
	});

	it('joins listen-only and shows why when the microphone is refused', async () => {
		// No --use-fake-ui-for-media-stream: headless Chromium denies the permission prompt.
		const denying = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--use-fake-device-for-media-stream'] });
		try {
			const page = await denying.newPage();
			await page.goto(base);
			await page.fill('#name', 'Ada');
			await page.click('#join');
			await page.waitForSelector('#error:not([hidden])');
			expect(await page.getAttribute('#error', 'data-code')).toBe('E_MIC_PERMISSION_DENIED');
			expect(await page.textContent('#error')).toMatch(/Microphone access was denied/);
			expect(await page.evaluate(() => window.parley?.state)).toBe('connected');
			expect(await page.isVisible('#participants')).toBe(true);
			expect(await page.isDisabled('#mute')).toBe(true);
		} finally {
			await denying.close();
		}
	});

	it('renders the form from file:// without errors (no server needed)', async () => {
		const page = await browser.newPage();
		const errors: string[] = [];
		page.on('pageerror', (err) => errors.push(err.message));
		page.on('console', (message) => {
			if (message.type() === 'error') errors.push(message.text());
		});
		await page.goto(new URL('client/dist/index.html', `file://${repoDir}`).href);
		expect(await page.isVisible('#join')).toBe(true);
		expect(await page.isHidden('#room')).toBe(true);
		expect(await page.textContent('#state')).toBe('disconnected');
		expect(errors).toEqual([]);
		await page.close();
	});

	it('serves the library alone as an ES module', async () => {
		const { page, errors } = await open();
		// A string, not a function: vitest would rewrite a dynamic import() inside a function.
		const exported = (await page.evaluate(`import(${JSON.stringify(`${base}/parley-client.js`)}).then((lib) => Object.keys(lib))`)) as string[];
		expect(exported).toEqual(expect.arrayContaining(['BackoffReconnectPolicy', 'ParleyClient', 'ParleyError', 'PROTOCOL_VERSION']));
		expect(errors).toEqual([]);
		await page.close();
	});
});
