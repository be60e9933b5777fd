// Real Chromium reaching Parley through firewalls, for the reachability tests and the join-time
// bench: Chromium runs in a network namespace of its own (testkit/netns.ts) behind a veth pair,
// nftables rules inside it block what a firewall would, and Parley (in this process) and a
// throwaway coturn listen on the host end. Nothing leaves the machine. One Chromium with a
// fake microphone (a tone) serves every call; each call connects a fresh listener and speaker
// page, so each join pays for its own WebSocket, ICE, DTLS and first packet.
//
// The paths a call can take (NetworkPath):
//   direct-udp  no rules: host UDP to the media port
//   ice-tcp     every UDP datagram dropped, and coturn unreachable: mediasoup's TCP candidate
//   turn-relay  UDP to the media ports and TCP to coturn dropped, relayOnly: through coturn (TURN over UDP)
//   turn-tcp    every UDP datagram dropped and relayOnly: through coturn over TCP (a firewall
//               that passes only TCP)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { loadConfig } from '../../server/config/loadConfig.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { createLogger } from '../../server/telemetry/logger.js';
import { CHROMIUM, launchChromium, loadClientLibrary } from '../browsers/chromium.js';
import { firstRtpAt, hearFirstRemoteStream, trackPeerConnections } from '../browsers/pageAudio.js';
import { createVethNamespace, type VethNamespace } from '../netns.js';
import { freePortRange } from '../ports.js';
import { startCoturn, type TestCoturn } from '../services/coturn.js';
import { writeToneWav } from '../wav.js';

const REPO_DIR = fileURLToPath(new URL('../..', import.meta.url));

export type NetworkPath = 'direct-udp' | 'ice-tcp' | 'turn-relay' | 'turn-tcp';
export const NETWORK_PATHS: readonly NetworkPath[] = ['direct-udp', 'ice-tcp', 'turn-relay', 'turn-tcp'];

/** One direction of a page's media, from client.connectionPath() (the selected candidate pair). */
export interface PathInfo {
	direction: 'send' | 'recv';
	candidateType: string;
	protocol: string;
	relayProtocol: string | null;
	/** The pair's current round trip (ICE consent checks), when the browser has one. */
	roundTripMs?: number | null;
}

export interface CallResult {
	path: NetworkPath;
	/** From connect() in the speaker's page to the first RTP packet at the listener (one browser,
	 * one clock): the earlier of the listener's remote track unmuting (Chromium does on the first
	 * packet) and a getStats poll every 5 ms seeing packetsReceived > 0. */
	joinMs: number;
	/** What the listener heard (dominant frequency), when asked for. */
	frequencyHz: number | null;
	listener: PathInfo[];
	speaker: PathInfo[];
	/**
	 * The join's steps in ms from the speaker's socket being created (both pages' clocks made
	 * one through performance.timeOrigin): the speaker's client.joinTimings as they are, the
	 * listener's prefixed `listener.`, the peer connections' own steps (PeerConnectionEvents of
	 * the speaker's send and the listener's recv connection: `send.iceConnected`,
	 * `listener.recv.dtlsConnected`, ...), `firstRtpInPolled` (the listener's getStats poll,
	 * every 5 ms) and `firstRtpIn` (the listener's first packet, as joinMs).
	 */
	phases: Record<string, number>;
}

export interface ReachabilityLabOptions {
	/** The Parley environment to start from (log level, storage folder, limits); the lab sets
	 * the addresses, ports and TURN options itself. */
	env: Record<string, string>;
	jwtSecret: string;
	turnSecret: string;
	toneHz: number;
}

export class ReachabilityLab {
	readonly ns: VethNamespace;
	readonly coturn: TestCoturn;
	readonly server: ParleyServer;
	readonly browser: Browser;
	readonly rtcPort: number;
	readonly #key: Uint8Array;
	readonly #wavDir: string;
	readonly #options: ReachabilityLabOptions;
	readonly #extraServers: ParleyServer[] = [];
	#calls = 0;

	private constructor(parts: { options: ReachabilityLabOptions; ns: VethNamespace; coturn: TestCoturn; server: ParleyServer; browser: Browser; rtcPort: number; key: Uint8Array; wavDir: string }) {
		this.#options = parts.options;
		this.ns = parts.ns;
		this.coturn = parts.coturn;
		this.server = parts.server;
		this.browser = parts.browser;
		this.rtcPort = parts.rtcPort;
		this.#key = parts.key;
		this.#wavDir = parts.wavDir;
	}

	/** Needs root (see netAdminUnavailable() in testkit/netns.ts) and coturn. */
	static async start(options: ReachabilityLabOptions): Promise<ReachabilityLab> {
		// The pages load the library bundle the server serves (client/dist): built from the
		// sources first, so a run never measures a stale one (about a second).
		execFileSync(process.execPath, ['--import', 'tsx', 'client/build.ts'], { cwd: REPO_DIR, stdio: 'pipe' });
		const ns = createVethNamespace();
		const cleanup: (() => Promise<unknown> | void)[] = [() => ns.close()];
		try {
			const coturn = await startCoturn({ listenIp: ns.hostAddress, secret: options.turnSecret });
			cleanup.unshift(() => coturn.close());
			const rtcPort = await freePortRange(2);
			const server = await ReachabilityLab.#startServer(options, ns, coturn, options.turnSecret, rtcPort);
			cleanup.unshift(() => server.shutdown('reachability lab closed'));
			const wavDir = mkdtempSync(path.join(os.tmpdir(), 'parley-lab-wav-'));
			cleanup.push(() => rmSync(wavDir, { recursive: true, force: true }));
			const wav = path.join(wavDir, `${options.toneHz}.wav`);
			writeToneWav(wav, options.toneHz);
			const browser = await launchChromium({
				executablePath: ns.wrapper(CHROMIUM),
				fakeMicWav: wav,
				// getUserMedia needs a secure context; Parley is on the veth address over plain HTTP.
				// Every port of that address is allowed, so servers started later (serverWith) are too.
				extraArgs: [`--unsafely-treat-insecure-origin-as-secure=http://${ns.hostAddress}:${server.http.port}`],
			});
			const lab = new ReachabilityLab({ options, ns, coturn, server, browser, rtcPort, key: new TextEncoder().encode(options.jwtSecret), wavDir });
			await lab.#warmUp();
			return lab;
		} catch (err) {
			for (const step of cleanup) await step();
			throw err;
		}
	}

	static async #startServer(options: ReachabilityLabOptions, ns: VethNamespace, coturn: TestCoturn, turnSecret: string, rtcPort: number): Promise<ParleyServer> {
		const env = {
			...options.env,
			PARLEY_AUTH_JWT_SECRET: options.jwtSecret,
			PARLEY_HTTP_HOST: ns.hostAddress,
			PARLEY_HTTP_PORT: '0',
			PARLEY_MEDIA_WORKERS: '1',
			PARLEY_MEDIA_LISTEN_IP: ns.hostAddress,
			PARLEY_MEDIA_RTC_PORT: String(rtcPort),
			PARLEY_TURN_URLS: `${coturn.url('udp')},${coturn.url('tcp')}`,
			PARLEY_TURN_SECRET: turnSecret,
		};
		const config = await loadConfig({ env });
		return ParleyServer.create(config, createLogger(config.logLevel));
	}

	/** A second Parley on the same namespace and coturn whose TURN credentials are minted under
	 * `turnSecret` (e.g. one coturn does not share); closed with the lab. Its origin is not a
	 * secure context in the lab's browser: open it through openClient, which loads the page
	 * from the lab's own server. */
	async serverWith(turnSecret: string): Promise<ParleyServer> {
		const server = await ReachabilityLab.#startServer(this.#options, this.ns, this.coturn, turnSecret, await freePortRange(2));
		this.#extraServers.push(server);
		return server;
	}

	/** The rules a path needs, set in the namespace. */
	firewallFor(path: NetworkPath): void {
		if (path === 'direct-udp') this.ns.firewall({});
		// ICE-TCP: TURN out of reach as well (it is offered over TCP too), so the pair must be mediasoup's own TCP candidate.
		else if (path === 'ice-tcp') this.ns.firewall({ input: ['meta l4proto udp drop'], output: ['meta l4proto udp drop', `tcp dport ${this.coturn.port} drop`] });
		else if (path === 'turn-tcp') this.ns.firewall({ input: ['meta l4proto udp drop'], output: ['meta l4proto udp drop'] });
		else {
			// TURN over UDP only: coturn's TCP port closed too, else the browser may settle on either.
			const media = `${this.rtcPort}-${this.rtcPort + 1}`;
			this.ns.firewall({ input: [`udp sport ${media} drop`], output: [`udp dport ${media} drop`, `tcp dport ${this.coturn.port} drop`] });
		}
	}

	/**
	 * A page with a connected, joined ParleyClient in `window.client` (errors it emits collect
	 * in `window.errors`), served by the lab's server; `target` is the server it connects to.
	 * `publish`: publishMicrophone() is called together with join(), as an application does
	 * that wants to be heard soonest (the microphone opens while the join runs).
	 */
	async openClient(name: string, options: { relayOnly: boolean; target?: ParleyServer; channel?: string; publish?: boolean }): Promise<Page> {
		const target = options.target ?? this.server;
		const page = await this.browser.newPage();
		page.on('pageerror', (err) => console.error(`[${name}] page error: ${err.message}`));
		await page.addInitScript(trackPeerConnections);
		// The library bundle, from the lab's own (secure-context) origin.
		await page.goto(`http://${this.ns.hostAddress}:${this.server.http.port}/`);
		await loadClientLibrary(page);
		const token = await mintAccessToken({ userId: `user-${name}`, displayName: name, channels: ['*'], grants: { canPublish: true, canSubscribe: true }, ttlS: 600 }, this.#key);
		await page.evaluate(
			async ({ url, token, relayOnly, channel, publish }) => {
				const w = window as unknown as Record<string, unknown> & { ParleyClient: new (o: unknown) => { on(e: string, f: (x: { code: string; message: string }) => void): void; connect(): Promise<void>; join(c: string): Promise<unknown>; publishMicrophone(): Promise<void> } };
				const client = new w.ParleyClient({ url, token, relayOnly });
				w.client = client;
				const errors: { code: string; message: string }[] = [];
				w.errors = errors;
				client.on('error', (e) => errors.push({ code: e.code, message: e.message }));
				w.connectStartedAt = performance.timeOrigin + performance.now();
				await client.connect();
				await Promise.all([client.join(channel), publish ? client.publishMicrophone() : undefined]);
			},
			{ url: `ws://${this.ns.hostAddress}:${target.http.port}/ws`, token, relayOnly: options.relayOnly, channel: options.channel ?? 'room', publish: options.publish ?? false },
		);
		return page;
	}

	/** The page's selected candidate pairs (client.connectionPath()). */
	paths(page: Page): Promise<PathInfo[]> {
		return page.evaluate('window.client.connectionPath()') as Promise<PathInfo[]>;
	}

	/**
	 * A listener joins a channel of its own, then a speaker joins and publishes, both over
	 * `path`: the join time, what the listener hears (when `listen`), and both pages' paths.
	 */
	async call(path: NetworkPath, options: { listen?: boolean; timeoutMs?: number } = {}): Promise<CallResult> {
		const { listen = true, timeoutMs = 15_000 } = options;
		this.firewallFor(path);
		const relayOnly = path === 'turn-relay' || path === 'turn-tcp';
		const channel = `room-${++this.#calls}`;
		const listener = await this.openClient(`${path}-listener-${this.#calls}`, { relayOnly, channel });
		try {
			const firstPacketPolled = firstRtpAt(listener);
			const speaker = await this.openClient(`${path}-speaker-${this.#calls}`, { relayOnly, channel, publish: true });
			try {
				let timer: NodeJS.Timeout | undefined;
				const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${path}: no audio at the listener within ${timeoutMs} ms`)), timeoutMs)));
				const polledAt = await Promise.race([firstPacketPolled, timeout]).finally(() => clearTimeout(timer));
				const frequencyHz = listen ? await hearFirstRemoteStream(listener, 20) : null;
				const [own, other] = await Promise.all([pageTimings(speaker, 'send'), pageTimings(listener, 'recv')]);
				const startedAt = (await speaker.evaluate('window.connectStartedAt')) as number;
				const zero = own.origin + (own.timings.socketCreated ?? 0);
				const at = (origin: number, t: number | undefined): number | undefined => (t === undefined ? undefined : origin + t - zero);
				const phases: Record<string, number> = {};
				const put = (step: string, t: number | undefined): void => {
					if (t !== undefined) phases[step] = t;
				};
				for (const [step, t] of Object.entries(own.timings)) put(step, at(own.origin, t));
				for (const [step, t] of Object.entries(own.pc)) put(`send.${step}`, at(own.origin, t));
				for (const [step, t] of Object.entries(other.timings)) put(`listener.${step}`, at(other.origin, t));
				for (const [step, t] of Object.entries(other.pc)) put(`listener.recv.${step}`, at(other.origin, t));
				put('firstRtpInPolled', at(other.origin, polledAt));
				const firstIn = Math.min(polledAt, other.pc.remoteUnmuted ?? Infinity);
				put('firstRtpIn', at(other.origin, firstIn));
				return { path, joinMs: other.origin + firstIn - startedAt, frequencyHz, listener: await this.paths(listener), speaker: await this.paths(speaker), phases };
			} finally {
				await closePage(speaker);
			}
		} finally {
			await closePage(listener);
		}
	}

	/** What the first call would otherwise pay for in its join time: the fake microphone's
	 * first open and the browser process's first peer connection. */
	async #warmUp(): Promise<void> {
		const page = await this.browser.newPage();
		await page.goto(`http://${this.ns.hostAddress}:${this.server.http.port}/healthz`);
		await page.evaluate(async () => {
			const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
			const pc = new RTCPeerConnection();
			pc.addTrack(stream.getAudioTracks()[0]!, stream);
			await pc.setLocalDescription(await pc.createOffer());
			pc.close();
			for (const t of stream.getTracks()) t.stop();
		});
		await page.close();
	}

	async close(): Promise<void> {
		await this.browser.close().catch(() => {});
		for (const s of [this.server, ...this.#extraServers]) await s.shutdown('reachability lab closed').catch(() => {});
		await this.coturn.close();
		this.ns.close();
		rmSync(this.#wavDir, { recursive: true, force: true });
	}
}

/**
 * A page's performance.timeOrigin, its client.joinTimings and the PeerConnectionEvents of its
 * `direction` connection (the one whose transceivers send, or receive; the Device's
 * capability probe has none left).
 */
async function pageTimings(page: Page, direction: 'send' | 'recv'): Promise<{ origin: number; timings: Record<string, number>; pc: Record<string, number> }> {
	return page.evaluate((dir) => {
		const w = window as unknown as { client: { joinTimings: Record<string, number> }; __pcs: RTCPeerConnection[]; __pcEvents: Record<string, number>[] };
		const index = w.__pcs.findIndex((pc) => pc.getTransceivers().some((t) => t.currentDirection === (dir === 'send' ? 'sendonly' : 'recvonly')));
		return { origin: performance.timeOrigin, timings: w.client.joinTimings, pc: index >= 0 ? w.__pcEvents[index]! : {} };
	}, direction);
}

/**
 * Closes a page's client before the page: closing its peer connections releases their TURN
 * allocations (a refresh with lifetime 0), where a page torn down at once leaves them to
 * expire on coturn, whose few relay ports the next calls then cannot get.
 */
async function closePage(page: Page): Promise<void> {
	await page.evaluate('window.client?.close()').catch(() => undefined);
	await page.close();
}
