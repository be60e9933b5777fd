// The demo page and the browser library end to end: a real Parley server, headless Chromium
// (one launch; contexts for the odd cases) with fake microphones. Checks what a user sees and
// does: joining, the participant list, mute seen by the other side, push-to-talk (key and
// button), per-peer volume (Web Audio gain) and local mute, connection quality, the
// microphone picker, an unplugged microphone, a refused permission, a server restart
// mid-call (reconnecting banner, recovery), voice messages (record, list, play with a
// decoded waveform, delete, upload with progress) and a 360 px wide layout.
// UPDATE_SCREENSHOT=1 also writes client/demo/screenshot.png (the README shows it).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParleyServer } from '../server/ParleyServer.js';
import { loadConfig } from '../server/config/loadConfig.js';
import { launchBrowser } from '../test/helpers/browser.js';
import { testEnv } from '../test/helpers/config.js';
import { testLogger } from '../test/helpers/logger.js';
import { freePort } from '../testkit/ports.js';

const repoDir = fileURLToPath(new URL('..', import.meta.url));

interface Participant {
	page: Page;
	errors: string[];
}

/**
 * Chromium itself logs a failed WebSocket handshake as a console error (page code cannot
 * prevent it); expected only while the server is down on purpose.
 */
const SERVER_DOWN_NOISE = /WebSocket connection to .* failed|Failed to load resource: net::ERR_CONNECTION_REFUSED/;

describe('demo page (browser)', () => {
	let server: ParleyServer;
	let browser: Browser;
	let base: string;
	/** Same port, secret and storage for the restart: clients come back to the "same" server. */
	let env: Record<string, string>;
	let serverDown = false;

	const startServer = async (): Promise<ParleyServer> => ParleyServer.create(await loadConfig({ env }), testLogger());

	beforeAll(async () => {
		// The server reads client/dist once at startup: build it first.
		execFileSync(process.execPath, ['--import', 'tsx', 'client/build.ts'], { cwd: repoDir, stdio: 'pipe' });
		env = await testEnv({ PARLEY_HTTP_PORT: String(await freePort()), PARLEY_AUTH_JWT_SECRET: 'demo-browser-test-secret-0123456789abcdef', PARLEY_SHUTDOWN_DEADLINE_MS: '1000' });
		server = await startServer();
		base = `http://127.0.0.1:${server.http.port}`;
		browser = await launchBrowser();
	}, 60_000);

	afterAll(async () => {
		await browser?.close();
		await server?.shutdown('test end');
	});

	async function open(page?: Page): Promise<Participant> {
		page ??= await browser.newPage();
		const errors: string[] = [];
		page.on('pageerror', (err) => errors.push(err.message));
		page.on('console', (message) => {
			if (message.type() === 'error' && !(serverDown && SERVER_DOWN_NOISE.test(message.text()))) errors.push(message.text());
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
	const row = (peerId: string | null) => `li[data-testid="participant"][data-peer-id="${peerId}"]`;
	const hears = (page: Page) => page.waitForFunction(() => window.parley?.remoteStreams().size === 1, undefined, { timeout: 10_000 });

	it('a call: mute seen by the other, push-to-talk, volume and local mute, quality, level, microphone picker, unplugged microphone', async () => {
		const ada = await open();
		const grace = await open();
		await expect(ada.page.textContent('#state')).resolves.toBe('disconnected');
		await join(ada, 'Ada');
		await join(grace, 'Grace');
		expect(await ada.page.textContent('#channel-name')).toBe('lobby');
		await ada.page.waitForFunction(() => document.querySelectorAll('[data-testid="participant"]').length === 2);
		expect(await participantNames(ada.page)).toEqual(['Ada', 'Grace']);
		await hears(ada.page);
		await hears(grace.page);
		const adaId = await ada.page.evaluate(() => window.parley!.peerId);
		const adaOnGrace = row(adaId);

		// The own microphone's level: the fake microphone beeps, the meter moves.
		await ada.page.waitForFunction(() => (document.getElementById('mic-level') as HTMLMeterElement).value > 0.05, undefined, { timeout: 5000 });

		// Mute: Grace sees it (and her screen reader hears it); unmute clears it.
		await ada.page.click('#mute');
		expect(await ada.page.textContent('#mute')).toBe('Unmute');
		await grace.page.waitForSelector(`${adaOnGrace}[data-muted="true"] .tag.muted`);
		await grace.page.waitForFunction(() => document.getElementById('announcer')?.textContent === 'Ada muted.');
		// Muted: the meter shows nothing.
		await ada.page.waitForFunction(() => (document.getElementById('mic-level') as HTMLMeterElement).value === 0);

		// Push-to-talk with Space (focus on the page, not in a field): heard while held.
		expect(await ada.page.isEnabled('#ptt')).toBe(true);
		await ada.page.click('h1');
		await ada.page.keyboard.down('Space');
		await grace.page.waitForSelector(`${adaOnGrace}[data-muted="false"]`);
		expect(await ada.page.getAttribute('#ptt', 'aria-pressed')).toBe('true');
		await ada.page.keyboard.up('Space');
		await grace.page.waitForSelector(`${adaOnGrace}[data-muted="true"]`);
		expect(await ada.page.evaluate(() => window.parley!.muted)).toBe(true);
		// The hold-to-talk button (touch and mouse).
		await ada.page.hover('#ptt');
		await ada.page.mouse.down();
		await grace.page.waitForSelector(`${adaOnGrace}[data-muted="false"]`);
		await ada.page.mouse.up();
		await grace.page.waitForSelector(`${adaOnGrace}[data-muted="true"]`);
		await ada.page.click('#mute');
		await grace.page.waitForSelector(`${adaOnGrace}[data-muted="false"]`);
		expect(await ada.page.isDisabled('#ptt')).toBe(true);

		// Volume for Ada on Grace's side, by keyboard: 100% -> 50%, a Web Audio gain of 0.5.
		expect(await grace.page.evaluate((id) => window.parley!.peerPlayback(id!).gain, adaId)).toBeNull();
		await grace.page.focus(`${adaOnGrace} [data-testid="peer-volume"]`);
		for (let i = 0; i < 5; i++) await grace.page.keyboard.press('ArrowLeft');
		expect(await grace.page.textContent(`${adaOnGrace} .volume-value`)).toBe('50%');
		expect(await grace.page.evaluate((id) => window.parley!.peerPlayback(id!), adaId)).toEqual({ volume: 0.5, muted: false, gain: 0.5 });
		expect(await grace.page.getAttribute(`${adaOnGrace} [data-testid="peer-volume"]`, 'aria-label')).toBe('Volume of Ada');
		// The <audio> element is muted now: the gain node plays her.
		expect(await grace.page.$$eval('audio[data-parley-peer-id]', (els) => els.map((e) => (e as HTMLAudioElement).muted))).toEqual([true]);
		// Silence her for Grace alone: gain 0, Ada is not told.
		await grace.page.click(`${adaOnGrace} [data-testid="peer-silence"]`);
		await grace.page.waitForSelector(`${adaOnGrace} .tag.silenced`);
		expect(await grace.page.evaluate((id) => window.parley!.peerPlayback(id!).gain, adaId)).toBe(0);
		expect(await ada.page.evaluate(() => window.parley!.muted)).toBe(false);
		await grace.page.click(`${adaOnGrace} [data-testid="peer-silence"]`);
		expect(await grace.page.evaluate((id) => window.parley!.peerPlayback(id!).gain, adaId)).toBe(0.5);

		// Connection quality of Ada as Grace hears her: the server's score, loss, jitter, RTT.
		await grace.page.waitForSelector(`${adaOnGrace} [data-testid="quality"][data-score]`, { timeout: 10_000 });
		await grace.page.waitForFunction((sel) => /% loss · \d+ ms jitter · \d+ ms RTT/.test(document.querySelector(sel)?.textContent ?? ''), `${adaOnGrace} [data-testid="quality"]`, { timeout: 5000 });
		expect(Number(await grace.page.getAttribute(`${adaOnGrace} [data-testid="quality"]`, 'data-score'))).toBeGreaterThanOrEqual(5);

		// Microphone picker: Chromium's fake devices, labelled (permission was given).
		const microphones = await ada.page.$$eval('#mic-select option', (options) => options.map((o) => ({ id: (o as HTMLOptionElement).value, label: o.textContent ?? '', selected: (o as HTMLOptionElement).selected })));
		expect(microphones.length).toBeGreaterThanOrEqual(2);
		expect(microphones.every((m) => /fake/i.test(m.label))).toBe(true);
		const other = microphones.find((m) => !m.selected && m.id !== 'default')!;
		const producerId = await ada.page.evaluate(() => window.parley!.producerId);
		await ada.page.selectOption('#mic-select', other.id);
		await ada.page.waitForFunction((id) => window.parley!.microphoneTrack?.getSettings().deviceId === id, other.id);
		// The same producer carries the new microphone: Grace still hears Ada.
		expect(await ada.page.evaluate(() => window.parley!.producerId)).toBe(producerId);
		expect(await grace.page.evaluate(() => window.parley!.remoteStreams().size)).toBe(1);

		// Unplugged (the track ends): a clear message by the picker, and picking one again works.
		await ada.page.evaluate(() => window.parley!.microphoneTrack!.dispatchEvent(new Event('ended')));
		await ada.page.waitForSelector('#mic-note:not([hidden])');
		expect(await ada.page.textContent('#mic-note')).toMatch(/microphone stopped .*Choose another microphone/i);
		expect(await ada.page.getAttribute('#mic-note', 'data-code')).toBe('E_MIC_ENDED');
		await ada.page.selectOption('#mic-select', microphones.find((m) => m.id !== other.id)!.id);
		await ada.page.waitForSelector('#mic-note', { state: 'hidden' });

		expect(ada.errors).toEqual([]);
		expect(grace.errors).toEqual([]);
		expect(await ada.page.isHidden('#error')).toBe(true);
		await ada.page.close();
		await grace.page.close();
	}, 40_000);

	it('a server restart mid-call shows the reconnecting banner with the reason, then both are back', async () => {
		const ada = await open();
		const grace = await open();
		await join(ada, 'Ada', 'restart');
		await join(grace, 'Grace', 'restart');
		await hears(ada.page);
		await hears(grace.page);

		serverDown = true;
		await server.shutdown('test restart');
		for (const { page } of [ada, grace]) {
			await page.waitForSelector('#reconnecting:not([hidden])', { timeout: 10_000 });
			expect(await page.textContent('#reconnecting')).toMatch(/^Reconnecting… \S/);
			expect(await page.getAttribute('#reconnecting', 'data-code')).toMatch(/^E_/);
		}
		server = await startServer();
		for (const { page } of [ada, grace]) {
			await page.waitForFunction(() => window.parley?.state === 'reconnected', undefined, { timeout: 15_000 });
			expect(await page.isHidden('#reconnecting')).toBe(true);
		}
		serverDown = false;
		await ada.page.waitForFunction(() => window.parley!.peers.size === 1 && window.parley!.remoteStreams().size === 1, undefined, { timeout: 10_000 });
		await grace.page.waitForFunction(() => window.parley!.peers.size === 1 && window.parley!.remoteStreams().size === 1, undefined, { timeout: 10_000 });
		expect(await participantNames(grace.page)).toEqual(['Ada', 'Grace']);
		for (const participant of [ada, grace]) {
			expect(participant.errors).toEqual([]);
			await participant.page.close();
		}
	}, 40_000);

	it('a refused microphone permission: the message says so, the call goes on listen-only', async () => {
		const context = await browser.newContext();
		// As when the user clicks "Block": getUserMedia rejects with NotAllowedError.
		await context.addInitScript(() => {
			navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
		});
		try {
			const { page, errors } = await open(await context.newPage());
			await page.fill('#name', 'Ada');
			await page.fill('#channel', 'denied');
			await page.click('#join');
			await page.waitForSelector('#mic-note:not([hidden])');
			expect(await page.textContent('#mic-note')).toMatch(/Microphone access was denied.*You can still listen/);
			expect(await page.getAttribute('#mic-note', 'data-code')).toBe('E_MIC_PERMISSION_DENIED');
			// Said once, by the microphone picker, not again as a page error.
			expect(await page.isHidden('#error')).toBe(true);
			expect(await page.evaluate(() => window.parley?.state)).toBe('connected');
			expect(await page.isVisible('#participants')).toBe(true);
			expect(await page.isDisabled('#mute')).toBe(true);
			expect(await page.isDisabled('#ptt')).toBe(true);
			expect(await page.isDisabled('#record')).toBe(true);
			expect(errors).toEqual([]);
		} finally {
			await context.close();
		}
	});

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

	/** Waits for a message's decoded waveform and returns its canvas's bar count and whether any pixel is drawn. */
	const decodedWaveform = async (page: Page, item: string) => {
		await page.waitForSelector(`${item} canvas[data-testid="waveform"][data-source="decoded"]`, { timeout: 10_000 });
		return page.$eval(`${item} canvas[data-testid="waveform"]`, (canvas: HTMLCanvasElement) => {
			const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
			let drawn = 0;
			for (let i = 3; i < pixels.length; i += 4) if (pixels[i]! > 0) drawn++;
			return { bars: Number(canvas.dataset.bars), drawnFraction: drawn / (canvas.width * canvas.height) };
		});
	};

	it('voice messages: record, live list with status, play with a decoded waveform, delete, upload with progress; 360 px and keyboard', async () => {
		const ada = await open();
		const grace = await open();
		await join(ada, 'Ada', 'voice-notes');
		await join(grace, 'Grace', 'voice-notes');
		expect(await ada.page.isVisible('#voice-empty')).toBe(true);
		await ada.page.waitForSelector('#record:not([disabled])');

		await ada.page.click('#record');
		await ada.page.waitForSelector('#record[aria-pressed="true"]');
		const voiceMessageId = await ada.page.evaluate(() => window.parley!.recording!.voiceMessageId);
		const item = `li[data-testid="voice-message"][data-voice-message-id="${voiceMessageId}"]`;
		// Listed at once for Grace, with its status.
		await grace.page.waitForSelector(`${item}[data-status="recording"]`);
		expect(await grace.page.textContent(`${item} [data-testid="voice-message-status"]`)).toBe('Recording…');
		await ada.page.waitForTimeout(2000);
		await ada.page.click('#record');
		const ready = `${item}[data-status="ready"]`;
		for (const { page } of [ada, grace]) await page.waitForSelector(ready, { timeout: 10_000 });
		expect(await grace.page.textContent(`${ready} .sender`)).toBe('Ada');
		expect(await ada.page.textContent(`${ready} .sender`)).toBe('Ada (you)');

		// The waveform is the file itself, decoded with Web Audio and drawn on a canvas.
		const waveform = await decodedWaveform(grace.page, ready);
		expect(waveform.bars).toBe(100);
		expect(waveform.drawnFraction).toBeGreaterThan(0.05);
		// Play: the button turns to Pause and the time runs.
		await grace.page.click(`${ready} [data-testid="play"]`);
		await grace.page.waitForSelector(`${ready} [data-testid="play"][aria-pressed="true"]`);
		await grace.page.waitForFunction((sel) => (document.querySelector(sel) as HTMLAudioElement).currentTime > 0.3, `${ready} audio`, { timeout: 5000 });
		await grace.page.click(`${ready} [data-testid="play"]`);
		// The button follows the element's 'pause' event, which the browser fires in a later task.
		await grace.page.waitForSelector(`${ready} [data-testid="play"][aria-pressed="false"]`, { timeout: 5000 });
		expect(await grace.page.textContent(`${ready} [data-testid="play"]`)).toBe('Play');

		// Upload a file: tus in 256 KiB chunks, progress to 100%, then ready with its waveform.
		const patches: number[] = [];
		ada.page.on('requestfinished', (request) => {
			if (request.method() === 'PATCH' && request.url().includes('/voice/uploads/')) patches.push(Number(request.headers()['upload-offset']));
		});
		const percents: string[] = [];
		await ada.page.exposeFunction('__percent', (text: string) => percents.push(text));
		await ada.page.evaluate(() => {
			const percent = document.getElementById('upload-percent')!;
			new MutationObserver(() => (window as unknown as { __percent: (t: string) => void }).__percent(percent.textContent ?? '')).observe(percent, { childList: true, characterData: true, subtree: true });
		});
		await ada.page.setInputFiles('#upload-input', { name: 'tone.wav', mimeType: 'audio/wav', buffer: toneWav(3000) });
		const uploaded = 'li[data-testid="voice-message"][data-source="upload"]';
		await ada.page.waitForSelector(uploaded, { timeout: 10_000 });
		await ada.page.waitForSelector('#upload-status', { state: 'hidden' });
		expect(patches).toEqual([0, 256 * 1024]);
		expect(percents.at(-1)).toBe('100%');
		// Progress in between, not only the end.
		expect(percents.some((p) => p !== '0%' && p !== '100%')).toBe(true);
		await ada.page.waitForSelector(`${uploaded}[data-status="ready"]`, { timeout: 20_000 });
		expect((await decodedWaveform(ada.page, `${uploaded}[data-status="ready"]`)).bars).toBe(100);

		if (process.env.UPDATE_SCREENSHOT) {
			await grace.page.setViewportSize({ width: 1100, height: 480 });
			await grace.page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
			await grace.page.screenshot({ path: fileURLToPath(new URL('demo/screenshot.png', import.meta.url)), fullPage: true });
		}

		// 360 px wide (a small phone): nothing scrolls sideways, with peers and messages shown.
		for (const { page } of [ada, grace]) {
			await page.setViewportSize({ width: 360, height: 740 });
			expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
		}
		// Keyboard: Tab walks the controls in reading order, each with an accessible name.
		await grace.page.focus('#mute');
		const order: string[] = [];
		for (let i = 0; i < 5; i++) {
			order.push(await grace.page.evaluate(() => {
				const el = document.activeElement as HTMLElement;
				return el.id || el.dataset.testid || el.tagName;
			}));
			await grace.page.keyboard.press('Tab');
		}
		expect(order).toEqual(['mute', 'leave', 'mic-select', 'record', 'upload']);
		const unnamed = await grace.page.$$eval('button, input:not([hidden]), select, meter, progress', (els) =>
			els.filter((el) => !(el as HTMLElement).closest('[hidden]') && !(el.getAttribute('aria-label') || (el as HTMLInputElement).labels?.length || el.textContent?.trim())).map((el) => el.outerHTML),
		);
		expect(unnamed).toEqual([]);

		// The sender deletes the recording: gone from her list and from the server.
		await ada.page.click(`${ready} [data-testid="delete-voice-message"]`);
		await ada.page.waitForSelector(ready, { state: 'detached' });
		expect(await server.voiceStore.get(voiceMessageId)).toBeUndefined();

		for (const participant of [ada, grace]) {
			expect(participant.errors).toEqual([]);
			expect(await participant.page.isHidden('#error')).toBe(true);
			await participant.page.close();
		}
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
		await page.close();
	});

	it('shows a clear message for an invalid channel name without asking the server', async () => {
		const { page } = await open();
		await page.fill('#name', 'Ada');
		await page.fill('#channel', '../secret');
		await page.click('#join');
		await page.waitForSelector('#error:not([hidden])');
		expect(await page.textContent('#error')).toMatch(/Channel names are/);
		await page.close();
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
