// The real browser library (ParleyClient in headless Chromium) in a cluster: entered through
// node B, its join is redirected to the channel's home A; A is SIGKILLed; the client
// reconnects (back to its entry URL B, since the node it was redirected to is the one that
// died), B takes the channel over, and the client hears the speaker again. The speaker is
// a werift bot that fails over the same way (entry URLs [A, B]). Measured: kill -> first
// packet on the browser's new receiving connection.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firstNewPacketAt, hearFirstRemoteStream, launchBrowser, trackPeerConnections } from '../helpers/browser.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, token, type NodeProcess } from './helpers/nodes.js';
import { VoiceBot } from './helpers/voiceBot.js';
import { loadClientLibrary } from '../../testkit/browsers/chromium.js';

const repoDir = fileURLToPath(new URL('../..', import.meta.url));
const SPEAKER_HZ = 800;
const REJOIN_BOUND_MS = 15_000;

type PageWindow = Window & { client: import('../../client/index.js').ParleyClient; __pcs: RTCPeerConnection[]; __states: string[] };

describe('ParleyClient in Chromium fails over between nodes', () => {
	let redis: TestRedis;
	let a: NodeProcess;
	let b: NodeProcess;
	let browser: Browser;
	let page: Page;
	let speaker: VoiceBot;

	beforeAll(async () => {
		// The nodes serve client/dist (the library bundle): build it first.
		execFileSync(process.execPath, ['--import', 'tsx', 'client/build.ts'], { cwd: repoDir, stdio: 'pipe' });
		redis = await startRedis();
		[a, b] = await Promise.all([startNode(redis.url, 'node-a'), startNode(redis.url, 'node-b')]);
		browser = await launchBrowser();
	}, 90_000);

	afterAll(async () => {
		await speaker?.close();
		await browser?.close();
		await Promise.all([a?.stop(), b?.stop()]);
		await redis?.stop();
	});

	const hear = () => hearFirstRemoteStream(page);

	it('follows the redirect, then rejoins through its entry node after the home node dies', async () => {
		speaker = new VoiceBot({ name: 'speaker', urls: [a.url, b.url], channel: 'room', toneHz: SPEAKER_HZ, hears: 0 });
		await speaker.start(); // homes 'room' on A

		page = await browser.newPage();
		page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
		await page.addInitScript(trackPeerConnections);
		await page.goto(`${b.httpBase}/`);
		await loadClientLibrary(page);
		const serverUrl = await page.evaluate(
			async ({ token, urls }) => {
				const { ParleyClient } = window as unknown as typeof import('../../client/index.js');
				const client = new ParleyClient({ urls, token });
				const w = window as unknown as PageWindow;
				w.client = client;
				w.__states = [];
				client.on('connectionState', (s) => w.__states.push(s));
				await client.connect();
				await client.join('room');
				return client.serverUrl;
			},
			{ token: await token('listener'), urls: [b.url, a.url] },
		);
		expect(serverUrl).toBe(a.url);
		expect(Math.abs((await hear()) - SPEAKER_HZ)).toBeLessThan(30);

		const known = await page.evaluate(() => (window as unknown as PageWindow).__pcs.length);
		const firstPacket = firstNewPacketAt(page, known);
		const killedAt = Date.now();
		await a.kill();
		const rejoinMs = (await firstPacket) - killedAt;
		console.log(`browser failover (kill home node -> first packet on the new receiving connection): ${rejoinMs} ms`);
		expect(rejoinMs).toBeLessThan(REJOIN_BOUND_MS);

		const after = await page.evaluate(() => {
			const w = window as unknown as PageWindow;
			return { serverUrl: w.client.serverUrl, states: w.__states, channel: w.client.channel };
		});
		expect(after.serverUrl).toBe(b.url);
		expect(after.channel).toBe('room');
		expect(after.states).toEqual(['connecting', 'connected', 'reconnecting', 'reconnected']);
		expect(speaker.serverUrl).toBe(b.url);
		expect(Math.abs((await hear()) - SPEAKER_HZ)).toBeLessThan(30);
	}, 90_000);
});
