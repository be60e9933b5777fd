// Reaching Parley through firewalls, with real Chromium in a network namespace of the test's
// own (testkit/netns.ts): the browser sits behind a veth pair and nftables rules inside the
// namespace block what a firewall would, while Parley and a throwaway coturn listen on the
// host end. One Chromium (fake microphone: a 1 kHz tone) and one Parley server serve every
// case; each case connects a fresh listener and speaker and checks, by frequency, that the
// listener hears the tone and, from the browser's stats (client.connectionPath()), which
// path the audio took:
//   direct     no rules: host UDP
//   ICE-TCP    all UDP dropped: mediasoup's TCP candidate
//   relay      UDP to the media port dropped and relayOnly: through coturn
//   refused    a server whose turn.secret coturn does not share: E_TURN_REFUSED, not a hang;
//              and coturn refuses expired credentials while it accepts fresh ones.
// Each case prints its join time: from connect() in the speaker's page to the first RTP
// packet at the listener (both pages in one browser, one clock).
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import * as esbuild from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { turnCredential } from '../../server/media/turnCredentials.js';
import { createVethNamespace, netAdminUnavailable, type VethNamespace } from '../../testkit/netns.js';
import { startCoturn, TURNSERVER, type TestCoturn } from '../../testkit/services/coturn.js';
import { freePortRange } from '../../testkit/ports.js';
import { existsSync } from 'node:fs';
import { CHROMIUM, firstNewPacketAt, hearFirstRemoteStream, trackPeerConnections } from '../helpers/browser.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { writeToneWav } from '../helpers/wav.js';

const JWT_SECRET = 'reachability-test-secret-0123456789-abcdef';
const TURN_SECRET = 'turn-shared-secret-0123456789-abcdefghijkl';
const TONE_HZ = 1000;

const unavailable = netAdminUnavailable() ?? (existsSync(TURNSERVER) ? null : `${TURNSERVER} is not installed: run scripts/setup (coturn)`);
if (unavailable) console.warn(`[reachability] skipped: ${unavailable}`);

interface PathInfo {
	direction: 'send' | 'recv';
	candidateType: string;
	protocol: string;
	relayProtocol: string | null;
}

describe.skipIf(unavailable !== null)('reaching Parley through firewalls (Chromium in a network namespace)', () => {
	let ns: VethNamespace;
	let coturn: TestCoturn;
	let server: ParleyServer;
	/** Hands out credentials under a secret coturn does not share. */
	let wrongSecretServer: ParleyServer;
	let browser: Browser;
	let bundle: string;
	let rtcPort: number;
	const key = new TextEncoder().encode(JWT_SECRET);
	const joinTimes: Record<string, number> = {};

	async function serverWith(turnSecret: string, port: number): Promise<ParleyServer> {
		return ParleyServer.create(
			await testConfig({
				PARLEY_AUTH_JWT_SECRET: JWT_SECRET,
				PARLEY_HTTP_HOST: ns.hostAddress,
				PARLEY_MEDIA_LISTEN_IP: ns.hostAddress,
				PARLEY_MEDIA_RTC_PORT: String(port),
				PARLEY_TURN_URLS: coturn.url('udp'),
				PARLEY_TURN_SECRET: turnSecret,
			}),
			testLogger(),
		);
	}

	/** A page with a connected ParleyClient in `window.client`; errors it emits collect in `window.errors`. */
	async function openClient(target: ParleyServer, name: string, relayOnly: boolean): Promise<Page> {
		const base = `http://${ns.hostAddress}:${target.http.port}`;
		const page = await browser.newPage();
		page.on('pageerror', (err) => console.error(`[${name}] page error: ${err.message}`));
		await page.addInitScript(trackPeerConnections);
		await page.goto(`${base}/healthz`);
		if (!(await page.evaluate('window.isSecureContext && typeof RTCPeerConnection'))) throw new Error(`${name}: ${await page.evaluate('navigator.userAgent + " secure=" + window.isSecureContext')}`);
		await page.addScriptTag({ content: bundle });
		const token = await mintAccessToken({ userId: `user-${name}`, displayName: name, channels: ['room'], grants: { canPublish: true, canSubscribe: true }, ttlS: 600 }, key);
		await page.evaluate(`(async () => {
			const client = new window.ParleyClient({ url: ${JSON.stringify(`ws://${ns.hostAddress}:${target.http.port}/ws`)}, token: ${JSON.stringify(token)}, relayOnly: ${relayOnly} });
			window.client = client;
			window.errors = [];
			client.on('error', (e) => window.errors.push({ code: e.code, message: e.message }));
			window.connectStartedAt = Date.now();
			await client.connect();
			await client.join('room');
		})()`);
		return page;
	}

	const paths = (page: Page) => page.evaluate('window.client.connectionPath()') as Promise<PathInfo[]>;

	/** A listener joins, then a speaker joins and speaks: join time, what the listener hears, both paths. */
	async function call(label: string, relayOnly: boolean): Promise<{ frequencyHz: number; listener: PathInfo[]; speaker: PathInfo[] }> {
		const listener = await openClient(server, `${label}-listener`, relayOnly);
		try {
			const firstPacket = firstNewPacketAt(listener, 0);
			const speaker = await openClient(server, `${label}-speaker`, relayOnly);
			try {
				await speaker.evaluate('window.client.publishMicrophone()');
				const startedAt = (await speaker.evaluate('window.connectStartedAt')) as number;
				const firstAt = await Promise.race([firstPacket, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${label}: no audio at the listener within 15 s`)), 15_000))]);
				joinTimes[label] = firstAt - startedAt;
				console.log(`[reachability] ${label}: join time (connect() -> first RTP at the listener) ${joinTimes[label]} ms`);
				const frequencyHz = await hearFirstRemoteStream(listener, 20);
				return { frequencyHz, listener: await paths(listener), speaker: await paths(speaker) };
			} finally {
				await speaker.close();
			}
		} finally {
			await listener.close();
		}
	}

	beforeAll(async () => {
		ns = createVethNamespace();
		coturn = await startCoturn({ listenIp: ns.hostAddress, secret: TURN_SECRET });
		rtcPort = await freePortRange(2);
		server = await serverWith(TURN_SECRET, rtcPort);
		wrongSecretServer = await serverWith('not-the-turn-secret-0123456789-abcdefghij', await freePortRange(2));
		const built = await esbuild.build({
			stdin: { contents: "import { ParleyClient } from './index.ts'; window.ParleyClient = ParleyClient;", resolveDir: path.resolve('client'), loader: 'ts' },
			bundle: true,
			format: 'iife',
			platform: 'browser',
			target: 'es2022',
			write: false,
			define: { 'process.env.NODE_ENV': '"production"' },
		});
		bundle = built.outputFiles[0]!.text;
		const wav = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-wav-')), `${TONE_HZ}.wav`);
		writeToneWav(wav, TONE_HZ);
		browser = await chromium.launch({
			executablePath: ns.wrapper(CHROMIUM),
			args: [
				'--no-sandbox',
				'--disable-gpu',
				'--disable-quic',
				'--no-first-run',
				'--disable-background-networking',
				'--disable-component-update',
				'--disable-sync',
				'--use-fake-ui-for-media-stream',
				'--use-fake-device-for-media-stream',
				'--autoplay-policy=no-user-gesture-required',
				`--use-file-for-fake-audio-capture=${wav}`,
				// getUserMedia needs a secure context; the server is on the veth address over plain HTTP.
				`--unsafely-treat-insecure-origin-as-secure=${[server, wrongSecretServer].map((s) => `http://${ns.hostAddress}:${s.http.port}`).join(',')}`,
			],
		});
		// Warm up what the first call would otherwise pay for in its join time: the fake
		// microphone's first open and the first peer connection of the browser process.
		const warmUp = await browser.newPage();
		await warmUp.goto(`http://${ns.hostAddress}:${server.http.port}/healthz`);
		await warmUp.evaluate(async () => {
			const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
			const pc = new RTCPeerConnection();
			pc.addTrack(stream.getAudioTracks()[0]!, stream);
			await pc.setLocalDescription(await pc.createOffer());
			pc.close();
			for (const t of stream.getTracks()) t.stop();
		});
		await warmUp.close();
	}, 60_000);

	afterAll(async () => {
		await browser?.close();
		await server?.shutdown('test end');
		await wrongSecretServer?.shutdown('test end');
		await coturn?.close();
		ns?.close();
		if (Object.keys(joinTimes).length > 0) console.log(`[reachability] join times (ms): ${JSON.stringify(joinTimes)}`);
	});

	it('direct: audio flows over host UDP', async () => {
		ns.firewall({});
		const result = await call('direct-udp', false);
		expect(Math.abs(result.frequencyHz - TONE_HZ)).toBeLessThan(30);
		for (const p of [...result.listener, ...result.speaker]) expect(p).toMatchObject({ candidateType: 'host', protocol: 'udp' });
		expect(result.speaker.map((p) => p.direction)).toContain('send');
	}, 30_000);

	it('ICE-TCP: with every UDP datagram dropped, audio flows over mediasoup\u2019s TCP candidate', async () => {
		ns.firewall({ input: ['meta l4proto udp drop'], output: ['meta l4proto udp drop'] });
		const result = await call('ice-tcp', false);
		expect(Math.abs(result.frequencyHz - TONE_HZ)).toBeLessThan(30);
		expect(result.speaker.length).toBeGreaterThan(0);
		// Chromium's active TCP candidate shows as host or, learnt from the server's answer, prflx.
		for (const p of [...result.listener, ...result.speaker]) {
			expect(p.protocol).toBe('tcp');
			expect(['host', 'prflx']).toContain(p.candidateType);
		}
	}, 30_000);

	it('relay: relay-only, with UDP to the media port dropped, audio flows through coturn', async () => {
		const media = `${rtcPort}-${rtcPort + 1}`;
		ns.firewall({ input: [`udp sport ${media} drop`], output: [`udp dport ${media} drop`] });
		const result = await call('turn-relay', true);
		expect(Math.abs(result.frequencyHz - TONE_HZ)).toBeLessThan(30);
		expect(result.speaker.length).toBeGreaterThan(0);
		for (const p of [...result.listener, ...result.speaker]) expect(p).toMatchObject({ candidateType: 'relay', relayProtocol: 'udp' });
	}, 30_000);

	it('refused: coturn refuses a wrong secret (the client says E_TURN_REFUSED) and expired credentials', async () => {
		ns.firewall({});
		{
			const speaker = await openClient(wrongSecretServer, 'refused', true);
			try {
				await speaker.evaluate('window.client.publishMicrophone()');
				await speaker.waitForFunction(() => (window as unknown as { errors: { code: string }[] }).errors.some((e) => e.code === 'E_TURN_REFUSED'), undefined, { timeout: 10_000 });
				const errors = (await speaker.evaluate('window.errors')) as { code: string; message: string }[];
				const refused = errors.find((e) => e.code === 'E_TURN_REFUSED')!;
				expect(refused.message).toContain(coturn.url('udp'));
				// What reaches the application names the server, never the credential.
				expect(refused.message).not.toMatch(/\d{10}:user-/);
				expect(await paths(speaker)).toEqual([]);

				// The same coturn, asked directly from the page: credentials that expired a minute
				// ago are refused (401), fresh ones get a relay candidate.
				const nowS = Math.floor(Date.now() / 1000);
				const gather = (expiresAtS: number) =>
					speaker.evaluate(
						async ({ url, username, credential }) => {
							const pc = new RTCPeerConnection({ iceServers: [{ urls: url, username, credential }], iceTransportPolicy: 'relay' });
							const seen: string[] = [];
							pc.addEventListener('icecandidate', (e) => e.candidate && seen.push(`candidate ${e.candidate.type}`));
							pc.addEventListener('icecandidateerror', (e) => seen.push(`error ${(e as RTCPeerConnectionIceErrorEvent).errorCode}`));
							pc.createDataChannel('probe');
							await pc.setLocalDescription(await pc.createOffer());
							const deadline = Date.now() + 5000;
							while (pc.iceGatheringState !== 'complete' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
							pc.close();
							return seen;
						},
						{ url: coturn.url('udp'), ...turnCredential(TURN_SECRET, 'user-probe', expiresAtS) },
					);
				expect(await gather(nowS - 60)).toContain('error 401');
				expect(await gather(nowS + 600)).toContain('candidate relay');
			} finally {
				await speaker.close();
			}
		}
	}, 30_000);
});
