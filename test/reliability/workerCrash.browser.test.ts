// The worker-crash recovery of workerCrash.test.ts with the real browser library: two
// headless Chromium processes (1 kHz and 2 kHz fake microphones) run ParleyClient, which
// rejoins on `channelClosing` and republishes on its own. Measured: SIGKILL of the worker
// to the first packet on a receiving RTCPeerConnection created after the kill (the page
// polls WebRTC stats every 20 ms), then the tone is checked by frequency.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ParleyClient } from '../../client/index.js';
import { firstNewPacketAt, hearFirstRemoteStream, launchBrowser, trackPeerConnections } from '../helpers/browser.js';
import { writeToneWav } from '../helpers/wav.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { loadClientLibrary } from '../../testkit/browsers/chromium.js';

const RECOVERY_TARGET_MS = 3000;

interface Person {
	name: string;
	browser: Browser;
	page: Page;
	states: string[];
}

type PageWindow = { client: ParleyClient; __pcs: RTCPeerConnection[] };

describe('worker crash with the browser client', () => {
	let h: Harness;
	const people: Person[] = [];

	beforeAll(async () => {
		h = await startHarness({ PARLEY_MEDIA_WORKERS: '2' });
	}, 60_000);

	afterAll(async () => {
		await Promise.all(people.map((p) => p.browser.close()));
		await h.close();
	});

	async function person(name: string, toneHz: number): Promise<Person> {
		const wav = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-wav-')), `${toneHz}.wav`);
		writeToneWav(wav, toneHz);
		const browser = await launchBrowser(wav);
		const page = await browser.newPage();
		page.on('pageerror', (err) => console.error(`[${name}] page error: ${err.message}`));
		await page.addInitScript(trackPeerConnections);
		await page.goto(`${h.base}/`);
		await loadClientLibrary(page);
		const token = await h.token({ userId: `user-${name}`, displayName: name, channels: ['room'] });
		const states: string[] = [];
		await page.exposeFunction('recordState', (s: string) => states.push(s));
		await page.evaluate(
			async ({ token, url }) => {
				const { ParleyClient } = window as unknown as typeof import('../../client/index.js');
				const client = new ParleyClient({ url, token });
				(window as unknown as PageWindow).client = client;
				client.on('connectionState', (s) => (window as unknown as { recordState(s: string): void }).recordState(s));
				await client.connect();
				await client.join('room');
				await client.publishMicrophone({ opusFec: true, opusDtx: true });
			},
			{ token, url: `ws://127.0.0.1:${h.server.http.port}/ws` },
		);
		const p = { name, browser, page, states };
		people.push(p);
		return p;
	}

	/** Strongest frequency the page hears from the other person over ~1 s. */
	const hearOther = (p: Person) => hearFirstRemoteStream(p.page);

	it(`rejoins on channelClosing and hears the other again within ${RECOVERY_TARGET_MS} ms`, async () => {
		const ada = await person('ada', 1000);
		const bob = await person('bob', 2000);
		expect(Math.abs((await hearOther(ada)) - 2000)).toBeLessThan(30);
		expect(Math.abs((await hearOther(bob)) - 1000)).toBeLessThan(30);

		const channel = h.server.channels.get('room')!;
		const pid = h.server.workers.info()[h.server.workers.workerIndexOf(channel.router)!]!.pid!;
		const known = await Promise.all(people.map((p) => p.page.evaluate(() => (window as unknown as PageWindow).__pcs.length)));
		const watches = people.map((p, i) => firstNewPacketAt(p.page, known[i]!));
		const killedAt = Date.now();
		process.kill(pid, 'SIGKILL');
		const recoveredMs = (await Promise.all(watches)).map((t) => t - killedAt);
		console.log(`browser worker crash recovery (kill -> first packet on a new receiving connection, ms): ${JSON.stringify(recoveredMs)}`);

		for (const ms of recoveredMs) expect(ms).toBeLessThan(RECOVERY_TARGET_MS);
		for (const p of people) expect(p.states).toEqual(expect.arrayContaining(['reconnecting', 'reconnected']));
		expect(h.server.channels.get('room')!.closed).toBe(false);
		expect(Math.abs((await hearOther(ada)) - 2000)).toBeLessThan(30);
		expect(Math.abs((await hearOther(bob)) - 1000)).toBeLessThan(30);
	}, 90_000);
});
