// Live voice channels end to end, the way users run them: three headless Chromium
// processes (one per person, each with its own fake microphone), the browser library
// (client/dist/parley-client.js) against a real Parley server and real mediasoup workers.
// Audio is checked by frequency: Ada's microphone plays 1 kHz, Bob's 2 kHz, and each page
// measures what it receives with a Web Audio AnalyserNode.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParleyServer } from '../server/ParleyServer.js';
import { mintAccessToken, type MintOptions } from '../server/auth/accessToken.js';
import { launchBrowser, measureStreamInPage, type Spectrum, trackPeerConnections } from './helpers/browser.js';
import { testConfig } from './helpers/config.js';
import { testLogger } from './helpers/logger.js';
import { writeToneWav } from './helpers/wav.js';
import { loadClientLibrary } from '../testkit/browsers/chromium.js';

const SECRET = 'browser-test-secret-0123456789-abcdefghij';

interface Person {
	name: string;
	userId: string;
	browser: Browser;
	page: Page;
}

describe('voice channel in real browsers', () => {
	let server: ParleyServer;
	let base: string;
	const people: Person[] = [];
	const key = new TextEncoder().encode(SECRET);

	async function person(name: string, toneHz: number | undefined, grants: MintOptions['grants'], channels = ['room']): Promise<Person> {
		let wav: string | undefined;
		if (toneHz) {
			wav = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-wav-')), `${toneHz}.wav`);
			writeToneWav(wav, toneHz);
		}
		const browser = await launchBrowser(wav);
		const page = await browser.newPage();
		page.on('pageerror', (err) => console.error(`[${name}] page error: ${err.message}`));
		await page.addInitScript(trackPeerConnections);
		await page.goto(`${base}/`);
		const userId = `user-${name.toLowerCase()}`;
		const token = await mintAccessToken({ userId, displayName: name, channels, grants, ttlS: 600 }, key);
		await loadClientLibrary(page);
		await page.evaluate(
			async ({ token, url }) => {
				const { ParleyClient } = window as unknown as typeof import('../client/index.js');
				const client = new ParleyClient({ url, token });
				(window as unknown as { client: unknown }).client = client;
				await client.connect();
			},
			{ token, url: `ws://127.0.0.1:${server.http.port}/ws` },
		);
		const p = { name, userId, browser, page };
		people.push(p);
		return p;
	}

	/** Strongest frequency of what `listener` receives from `speaker`, over ~1.5 s. */
	async function hear(listener: Person, speaker: Person): Promise<Spectrum> {
		const speakerPeerId = await peerIdOf(speaker);
		await listener.page.waitForFunction(
			(peerId) => (window as unknown as { client: import('../client/index.js').ParleyClient }).client.remoteStreams().has(peerId),
			speakerPeerId,
			{ timeout: 15_000 },
		);
		await listener.page.evaluate((peerId) => {
			const client = (window as unknown as { client: import('../client/index.js').ParleyClient }).client;
			(window as unknown as { __spectrumStream: MediaStream }).__spectrumStream = client.remoteStreams().get(peerId)!;
		}, speakerPeerId);
		return measureStreamInPage(listener.page);
	}

	const peerIdOf = (p: Person) => p.page.evaluate(() => (window as unknown as { client: import('../client/index.js').ParleyClient }).client.peerId!);

	function run<T>(p: Person, fn: string): Promise<T> {
		// `client` is the page's ParleyClient; fn is an async arrow body using it.
		return p.page.evaluate(`(async () => { const client = window.client; ${fn} })()`) as Promise<T>;
	}

	const serverLoad = () => server.workers.info().reduce((sum, w) => ({ transports: sum.transports + w.transports, producers: sum.producers + w.producers, consumers: sum.consumers + w.consumers }), { transports: 0, producers: 0, consumers: 0 });

	beforeAll(async () => {
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET }), testLogger());
		base = `http://127.0.0.1:${server.http.port}`;
	}, 60_000);

	afterAll(async () => {
		await Promise.all(people.map((p) => p.browser.close()));
		await server.shutdown('test end');
	});

	it('two speakers hear each other’s tone, a listener hears both, mute, reconnect and leave work', async () => {
		const ada = await person('Ada', 1000, { canPublish: true, canSubscribe: true });
		const bob = await person('Bob', 2000, { canPublish: true, canSubscribe: true });
		const cleo = await person('Cleo', undefined, { canPublish: false, canSubscribe: true }, ['room', 'side']);
		for (const p of [ada, bob, cleo]) await run(p, `await client.join('room');`);
		for (const p of [ada, bob]) await run(p, `await client.publishMicrophone({ opusFec: true, opusDtx: true });`);

		// Each speaker hears the other's tone, not its own.
		const adaHears = await hear(ada, bob);
		const bobHears = await hear(bob, ada);
		expect(Math.abs(adaHears.frequencyHz - 2000)).toBeLessThan(30);
		expect(Math.abs(bobHears.frequencyHz - 1000)).toBeLessThan(30);
		expect(adaHears.levelDb).toBeGreaterThan(-60);

		// The listener without canPublish hears both, separately.
		expect(Math.abs((await hear(cleo, ada)).frequencyHz - 1000)).toBeLessThan(30);
		expect(Math.abs((await hear(cleo, bob)).frequencyHz - 2000)).toBeLessThan(30);

		// Opus with in-band FEC, as negotiated in SDP and reported by WebRTC stats.
		const fec = await ada.page.evaluate(async () => {
			const pcs = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs;
			const fmtp: string[] = [];
			let packetsSent = 0;
			for (const pc of pcs) {
				(await pc.getStats()).forEach((s: { type: string; mimeType?: string; sdpFmtpLine?: string; packetsSent?: number }) => {
					if (s.type === 'codec' && s.mimeType === 'audio/opus') fmtp.push(s.sdpFmtpLine ?? '');
					if (s.type === 'outbound-rtp') packetsSent += s.packetsSent ?? 0;
				});
			}
			return { fmtp, packetsSent, sdpHasFec: pcs.some((pc) => /a=fmtp:\d+ .*useinbandfec=1/.test(pc.localDescription?.sdp ?? '')) };
		});
		expect(fec.sdpHasFec).toBe(true);
		expect(fec.fmtp.some((f) => f.includes('useinbandfec=1'))).toBe(true);
		expect(fec.packetsSent).toBeGreaterThan(10);

		// Cleo may not speak: her client says so, and so does the server when asked directly
		// (a second raw connection with her token, in another channel her token allows).
		expect(await run(cleo, `try { await client.publishMicrophone(); return 'published'; } catch (e) { return e.code; }`)).toBe('E_FORBIDDEN');
		const refused = await cleo.page.evaluate(
			async ({ url, token }) => {
				const ws = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
				const replies = new Map<number, { ok: boolean; data?: { rtpCapabilities?: unknown }; error?: { code: string } }>();
				await new Promise((resolve) => ws.addEventListener('open', resolve));
				ws.addEventListener('message', (e) => {
					const m = JSON.parse(String(e.data)) as { id?: number; ok?: boolean };
					if (typeof m.id === 'number') replies.set(m.id, m as never);
				});
				const ask = async (id: number, method: string, data: unknown) => {
					ws.send(JSON.stringify({ id, method, data }));
					while (!replies.has(id)) await new Promise((r) => setTimeout(r, 20));
					return replies.get(id)!;
				};
				const caps = await ask(1, 'getRouterRtpCapabilities', {});
				await ask(2, 'join', { channel: 'side', rtpCapabilities: caps.data!.rtpCapabilities });
				const send = await ask(3, 'createTransport', { direction: 'send' });
				const produce = await ask(4, 'produce', { transportId: 'none', kind: 'audio', rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }] } });
				ws.close();
				return [send.error?.code, produce.error?.code];
			},
			{ url: `ws://127.0.0.1:${server.http.port}/ws`, token: await mintAccessToken({ userId: cleo.userId, channels: ['room', 'side'], grants: { canPublish: false }, ttlS: 600 }, key) },
		);
		expect(refused).toEqual(['E_FORBIDDEN', 'E_FORBIDDEN']);

		// Mute: Bob stops hearing Ada; unmute brings the tone back.
		await run(ada, `await client.mute();`);
		await bob.page.waitForTimeout(500);
		const muted = await hear(bob, ada);
		expect(muted.levelDb).toBeLessThan(adaHears.levelDb - 30);
		await run(ada, `await client.unmute();`);
		await bob.page.waitForTimeout(500);
		const unmuted = await hear(bob, ada);
		expect(Math.abs(unmuted.frequencyHz - 1000)).toBeLessThan(30);
		expect(unmuted.levelDb).toBeGreaterThan(muted.levelDb + 30);

		// The server drops Ada's WebSocket: her client reconnects, rejoins and republishes,
		// and Bob hears her again.
		const states: string[] = [];
		await ada.page.exposeFunction('recordState', (s: string) => states.push(s));
		await run(ada, `client.on('connectionState', (s) => window.recordState(s));`);
		const adaPeerBefore = await peerIdOf(ada);
		expect(server.signaling.dropUser(ada.userId)).toBe(1);
		await ada.page.waitForFunction((before) => {
			const c = (window as unknown as { client: import('../client/index.js').ParleyClient }).client;
			return (c.state === 'connected' || c.state === 'reconnected') && c.peerId !== null && c.peerId !== before && c.producerId !== null;
		}, adaPeerBefore, { timeout: 20_000 }).catch(async (err: Error) => {
			const now = await ada.page.evaluate(() => {
				const c = (window as unknown as { client: import('../client/index.js').ParleyClient }).client;
				return { state: c.state, peerId: c.peerId, producerId: c.producerId, channel: c.channel };
			});
			throw new Error(`${err.message}; states ${states.join(',')}; client ${JSON.stringify(now)} (before ${adaPeerBefore})`);
		});
		expect(states).toContain('reconnecting');
		expect(states).toContain('reconnected');
		expect(Math.abs((await hear(bob, ada)).frequencyHz - 1000)).toBeLessThan(30);

		// Leaving: the others are told, and once everyone left the server holds nothing.
		const bobPeer = await peerIdOf(bob);
		await run(bob, `await client.leave();`);
		await ada.page.waitForFunction((id) => !(window as unknown as { client: import('../client/index.js').ParleyClient }).client.peers.has(id), bobPeer, { timeout: 5000 });
		await run(ada, `await client.leave();`);
		await run(cleo, `await client.leave();`);
		const deadline = Date.now() + 5000;
		while (Date.now() < deadline && serverLoad().transports > 0) await new Promise((r) => setTimeout(r, 50));
		expect(serverLoad()).toEqual({ transports: 0, producers: 0, consumers: 0 });
	}, 120_000);
});
