// The demo page and the browser library end to end: a real Parley server, headless Chromium
// with fake microphones, two participants in one channel. Checks what a user sees: joining,
// the participant list, speaking, mute, reconnect after a dropped connection, leaving.
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
