// The backend API's moderator calls, seen by real Chromium pages running the client library:
// a real gRPC client mutes, unmutes, revokes publishing from and removes a Chromium speaker
// whose fake microphone plays a tone, while a Chromium listener measures what it hears (Web
// Audio analyser on the received stream). One browser serves every page (the listeners
// capture nothing; only the speakers' tone matters).
import * as grpc from '@grpc/grpc-js';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { mintApiToken } from '../../server/api/apiAuth.js';
import { loadApiPackage } from '../../server/api/GrpcApiServer.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { CLOSE_CODES } from '../../protocol/messages.js';
import { launchChromium, loadClientLibrary } from '../../testkit/browsers/chromium.js';
import { measureStreamInPage, type Spectrum } from '../../testkit/browsers/pageAudio.js';
import { makeTempFolder, removeTempFolder } from '../../testkit/services/daemon.js';
import { writeToneWav } from '../../testkit/wav.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';

const JWT_SECRET = 'moderation-browser-secret-0123456789-abcdef';
const API_SECRET = 'moderation-api-secret-0123456789-abcdefgh';
const TONE_HZ = 440;
/** Below this the listener hears nothing (a silent track reads -Infinity; the tone about -30 dBFS). */
const SILENT_DB = -90;
/** How soon a moderator's call must be heard (or no longer heard) by the listener. */
const HEARD_WITHIN_MS = 5000;

/** What a page recorded (an init script): the client's events and every WebSocket it opened. */
interface PageLog {
	events: { name: string; args: unknown[] }[];
	sockets: { url: string; closeCode: number | null; closeReason: string | null }[];
}

/** Runs in the page before anything else: records each WebSocket and how it closed. */
function trackWebSockets(): void {
	const w = window as unknown as { __log: PageLog };
	w.__log = { events: [], sockets: [] };
	const Original = window.WebSocket;
	window.WebSocket = class extends Original {
		constructor(url: string | URL, protocols?: string | string[]) {
			super(url, protocols);
			const entry = { url: String(url), closeCode: null as number | null, closeReason: null as string | null };
			w.__log.sockets.push(entry);
			this.addEventListener('close', (e) => {
				entry.closeCode = e.code;
				entry.closeReason = e.reason;
			});
		}
	} as typeof WebSocket;
}

type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

describe('moderating Chromium participants through the backend API', () => {
	let server: ParleyServer;
	let browser: Browser;
	let channelService: grpc.Client & Record<string, Unary>;
	const dir = makeTempFolder('moderation-browser');
	const pages: Page[] = [];
	let rooms = 0;

	beforeAll(async () => {
		const wav = `${dir}/tone.wav`;
		writeToneWav(wav, TONE_HZ, 10);
		[server, browser] = await Promise.all([
			testConfig({ PARLEY_AUTH_JWT_SECRET: JWT_SECRET, PARLEY_API_GRPC_ENABLED: 'true', PARLEY_API_GRPC_PORT: '0', PARLEY_API_KEYS: `backend:${API_SECRET}` }).then((c) => ParleyServer.create(c, testLogger())),
			launchChromium({ fakeMicWav: wav }),
		]);
		const pkg = grpc.loadPackageDefinition(loadApiPackage()) as unknown as { parley: { v1: { ChannelService: grpc.ServiceClientConstructor } } };
		channelService = new pkg.parley.v1.ChannelService(`127.0.0.1:${server.api!.port}`, grpc.credentials.createInsecure()) as typeof channelService;
	}, 60_000);

	afterAll(async () => {
		await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
		await browser?.close();
		channelService?.close();
		await server?.shutdown('test end');
		removeTempFolder(dir);
	});

	/** A moderator's call (a token for the moderated rooms, every operation). */
	async function moderate(method: string, request: object): Promise<void> {
		const md = new grpc.Metadata();
		md.set('authorization', `Bearer ${await mintApiToken({ keyId: 'backend', secret: API_SECRET, grant: { channels: ['mod-*'], operations: ['*'] }, ttlS: 60 })}`);
		await new Promise<void>((resolve, reject) => channelService[method]!.call(channelService, request, md, (err) => (err ? reject(err) : resolve())));
	}

	/** A page whose `window.client` joined `channel` as `userId` (publishing its microphone when `publish`). */
	async function joined(userId: string, channel: string, publish: boolean): Promise<Page> {
		const page = await browser.newPage();
		pages.push(page);
		page.on('pageerror', (err) => console.error(`[${userId}] ${err.message}`));
		await page.addInitScript(trackWebSockets);
		await page.goto(`http://127.0.0.1:${server.http.port}/`);
		await loadClientLibrary(page);
		const token = await mintAccessToken({ userId, displayName: userId, channels: ['*'], grants: { canPublish: true, canSubscribe: true }, ttlS: 600 }, new TextEncoder().encode(JWT_SECRET));
		await page.evaluate(
			async ({ url, token, channel, publish }) => {
				type Client = { on(e: string, f: (...a: unknown[]) => void): void; connect(): Promise<unknown>; join(c: string): Promise<unknown>; publishMicrophone(): Promise<void> };
				const w = window as unknown as { ParleyClient: new (o: unknown) => Client; client: Client; __log: PageLog };
				const client = new w.ParleyClient({ url, token });
				w.client = client;
				for (const name of ['mutedByModerator', 'grantsChanged', 'connectionState', 'error']) {
					client.on(name, (...args) => {
						// ParleyErrors keep their code and close code (an Error serialises to {}).
						w.__log.events.push({ name, args: args.map((a) => (a instanceof Error ? { code: (a as { code?: string }).code, closeCode: (a as { closeCode?: number }).closeCode, message: a.message } : a)) });
					});
				}
				await client.connect();
				await client.join(channel);
				if (publish) await client.publishMicrophone();
			},
			{ url: `ws://127.0.0.1:${server.http.port}/ws`, token, channel, publish },
		);
		return page;
	}

	const logOf = (page: Page) => page.evaluate(() => (window as unknown as { __log: PageLog }).__log);

	/** Leaves the first remote stream of the listener's client where measureStreamInPage reads it. */
	async function listenToFirstRemoteStream(page: Page): Promise<void> {
		await page.evaluate(async () => {
			const client = (window as unknown as { client: { remoteStreams(): Map<string, MediaStream> } }).client;
			const deadline = Date.now() + 10_000;
			while (client.remoteStreams().size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
			(window as unknown as { __spectrumStream: MediaStream }).__spectrumStream = [...client.remoteStreams().values()][0]!;
		});
	}

	/** 250 ms of the listened stream; nothing at all once its track is gone (the consumer closed). */
	async function measure(page: Page): Promise<Spectrum & { trackGone: boolean }> {
		const trackGone = await page.evaluate(() => (window as unknown as { __spectrumStream: MediaStream }).__spectrumStream.getAudioTracks().length === 0);
		if (trackGone) return { frequencyHz: 0, levelDb: -Infinity, trackGone };
		try {
			return { ...(await measureStreamInPage(page, 5)), trackGone };
		} catch (err) {
			// The track went between the check and the measurement (the consumer closed meanwhile).
			if (/has no audio track/.test(String(err))) return { frequencyHz: 0, levelDb: -Infinity, trackGone: true };
			throw err;
		}
	}

	/** Measures 250 ms windows until `done` holds (or HEARD_WITHIN_MS passes): how long it took, and the last window. */
	async function until(page: Page, done: (s: Spectrum) => boolean): Promise<{ afterMs: number; spectrum: Spectrum & { trackGone: boolean } }> {
		const start = Date.now();
		let spectrum = await measure(page);
		while (!done(spectrum) && Date.now() - start < HEARD_WITHIN_MS) spectrum = await measure(page);
		return { afterMs: Date.now() - start, spectrum };
	}
	const hearsTone = (s: Spectrum) => Math.abs(s.frequencyHz - TONE_HZ) <= 15 && s.levelDb > SILENT_DB;
	const silent = (s: Spectrum) => !(s.levelDb > SILENT_DB);

	/** A speaker publishing the tone and a listener hearing it, in a new room. */
	async function speakerAndListener(): Promise<{ channel: string; speaker: Page; listener: Page }> {
		const channel = `mod-${++rooms}`;
		const listener = await joined(`listener-${rooms}`, channel, false);
		const speaker = await joined(`speaker-${rooms}`, channel, true);
		await listenToFirstRemoteStream(listener);
		const heard = await until(listener, hearsTone);
		expect(heard.spectrum.frequencyHz).toBeCloseTo(TONE_HZ, -1);
		return { channel, speaker, listener };
	}

	it('MuteParticipant silences the speaker for the listener and tells the speaker; unmute brings the tone back', async () => {
		const { channel, speaker, listener } = await speakerAndListener();
		const speakerPeerId = await speaker.evaluate(() => (window as unknown as { client: { peerId: string } }).client.peerId);

		await moderate('MuteParticipant', { channel, participant: { userId: `speaker-${rooms}` }, muted: true });
		const muted = await until(listener, silent);
		console.log(`muted: silent after ${muted.afterMs} ms (${muted.spectrum.levelDb} dBFS)`);
		expect(silent(muted.spectrum)).toBe(true);
		await expect.poll(async () => (await logOf(speaker)).events.filter((e) => e.name === 'mutedByModerator').map((e) => e.args), { timeout: HEARD_WITHIN_MS }).toEqual([[speakerPeerId, true]]);

		await moderate('MuteParticipant', { channel, participant: { userId: `speaker-${rooms}` }, muted: false });
		const back = await until(listener, hearsTone);
		console.log(`unmuted: tone back after ${back.afterMs} ms (${back.spectrum.frequencyHz} Hz, ${back.spectrum.levelDb.toFixed(1)} dBFS)`);
		expect(hearsTone(back.spectrum)).toBe(true);
		const moderatorMutes = async (page: Page) => (await logOf(page)).events.filter((e) => e.name === 'mutedByModerator').map((e) => e.args);
		await expect.poll(() => moderatorMutes(speaker), { timeout: HEARD_WITHIN_MS }).toEqual([
			[speakerPeerId, true],
			[speakerPeerId, false],
		]);
		// Everyone else in the room is told too.
		expect(await moderatorMutes(listener)).toEqual([
			[speakerPeerId, true],
			[speakerPeerId, false],
		]);
	}, 40_000);

	it('UpdateParticipant without canPublish stops the active producer: the listener hears nothing, the page gets grantsChanged, publishing again is refused', async () => {
		const { channel, speaker, listener } = await speakerAndListener();
		await moderate('UpdateParticipant', { channel, participant: { userId: `speaker-${rooms}` }, canPublish: false });

		const stopped = await until(listener, silent);
		console.log(`publish revoked: silent after ${stopped.afterMs} ms (track gone: ${stopped.spectrum.trackGone})`);
		expect(silent(stopped.spectrum)).toBe(true);
		// The server closed the producer: none left in the room.
		const room = server.channels.get(channel)!;
		expect([...room.peers.values()].flatMap((p) => [...p.producers.values()])).toEqual([]);
		await expect.poll(async () => (await logOf(speaker)).events.filter((e) => e.name === 'grantsChanged').map((e) => (e.args[0] as { canPublish: boolean }).canPublish), { timeout: HEARD_WITHIN_MS }).toEqual([false]);

		expect(await speaker.evaluate(() => (window as unknown as { client: { grants: { canPublish: boolean } } }).client.grants.canPublish)).toBe(false);
		// The page let go of its microphone (not republished on a rejoin), with no error.
		await expect.poll(() => speaker.evaluate(() => (window as unknown as { client: { microphoneTrack: MediaStreamTrack | null } }).client.microphoneTrack), { timeout: HEARD_WITHIN_MS }).toBeNull();
		expect((await logOf(speaker)).events.filter((e) => e.name === 'error')).toEqual([]);
		const again = await speaker.evaluate(async () => {
			try {
				await (window as unknown as { client: { publishMicrophone(): Promise<void> } }).client.publishMicrophone();
				return null;
			} catch (error) {
				return (error as { code?: string }).code ?? String(error);
			}
		});
		expect(again).toBe('E_FORBIDDEN');
		expect([...room.peers.values()].flatMap((p) => [...p.producers.values()])).toEqual([]);
	}, 40_000);

	it('RemoveParticipant closes the page session with 4403 E_REMOVED, and the client does not reconnect', async () => {
		const { channel, speaker, listener } = await speakerAndListener();
		await moderate('RemoveParticipant', { channel, participant: { userId: `speaker-${rooms}` } });

		await expect.poll(async () => (await logOf(speaker)).sockets[0]?.closeCode, { timeout: HEARD_WITHIN_MS }).toBe(CLOSE_CODES.REMOVED);
		const log = await logOf(speaker);
		expect(log.sockets[0]!.closeReason).toMatch(/^E_REMOVED/);
		const states = log.events.filter((e) => e.name === 'connectionState');
		expect(states.at(-1)!.args).toEqual(['disconnected', expect.objectContaining({ code: 'E_REMOVED', closeCode: CLOSE_CODES.REMOVED })]);
		expect(silent((await until(listener, silent)).spectrum)).toBe(true);

		// Longer than the reconnect policy's first delays: still one socket, not reconnecting, not in the room.
		await new Promise((r) => setTimeout(r, 3000));
		const later = await logOf(speaker);
		expect(later.sockets).toHaveLength(1);
		expect(later.events.filter((e) => e.name === 'connectionState').map((e) => e.args[0])).not.toContain('reconnecting');
		expect([...server.channels.get(channel)!.peers.values()].map((p) => p.userId)).toEqual([`listener-${rooms}`]);
	}, 40_000);
});
