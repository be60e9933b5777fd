// Hostile signaling input, from a seeded PRNG (PARLEY_FUZZ_SEED=<n> replays a run): several
// connections send thousands of generated frames (junk, wrong types, huge strings, deep
// nesting, binary frames, unknown and prototype-named methods, prototype-pollution keys,
// requests out of order with their own, other peers' and made-up ids) while a victim peer
// publishes a tone to a victim listener in the same channel. Checked: every frame gets
// exactly one well-formed reply with a known code and never E_INTERNAL; notifications are
// well-formed; the victims' audio keeps flowing; afterwards mediasoup objects, sessions,
// channels and recordings are back to the baseline and memory stays bounded. Then floods
// and slow clients against the connection limits. FUZZ_DEBUG=1 prints frames left unanswered.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { CLOSE_CODES, PROTOCOL_VERSION, type NotificationName } from '../../protocol/messages.js';
import { ERROR_CODES } from '../../protocol/errors.js';
import { encodeTone } from '../helpers/audio.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { publishWithWerift, streamTone, type ToneStream, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { mediaLoad, sleep, startHarness, waitUntil, type Harness } from './helpers/harness.js';
import { Prng } from './helpers/prng.js';
import { SignalingFuzzer, type IdPool } from './helpers/signalingFuzz.js';
import { listenWithWerift, type WeriftListener } from '../../testkit/weriftListener.js';

const SEED = 0x5eed_2024;
const FUZZERS = 5;
const FRAMES_PER_FUZZER = 4000;
const IN_FLIGHT = 16;
const MAX_MESSAGE_BYTES = 16_384;
const MAX_CONNECTIONS = 64;
const DEBUG = Boolean(process.env.FUZZ_DEBUG);

const NOTIFICATIONS = {
	welcome: true,
	peerJoined: true,
	peerLeft: true,
	newConsumer: true,
	consumerClosed: true,
	consumerPaused: true,
	consumerResumed: true,
	producerScore: true,
	consumerScore: true,
	activeSpeaker: true,
	audioLevels: true,
	channelClosing: true,
	serverShuttingDown: true,
	voiceMessage: true,
	participantMuted: true,
	grantsChanged: true,
} satisfies Record<NotificationName, true>;

interface Tally {
	frames: number;
	replies: number;
	ok: number;
	/** Successful replies by method: how deep the fuzz got. */
	okByMethod: Record<string, number>;
	codes: Record<string, number>;
	kinds: Record<string, number>;
	malformed: string[];
	idMismatches: number;
}

/** One fuzzing connection: sends frames with a bounded number awaiting replies, checks
 * every message it gets. */
class FuzzConnection {
	readonly ws: WebSocket;
	readonly tally: Tally;
	readonly #fuzzer: SignalingFuzzer;
	readonly #expected = new Map<string, number>();
	readonly #methodOf = new Map<number, string>();
	/** Resolves on the welcome: fuzzing starts once admitted. Frames sent before it are held
	 * and bounded (16 frames, 2x maxMessageBytes; asyncUpgrade.test.ts covers that), and a
	 * welcome delayed by a busy machine must not turn a fuzz run into that limit's test. */
	readonly #welcomed: Promise<void>;
	#onWelcome: (() => void) | undefined;
	/** Sent frames by id (FUZZ_DEBUG only). */
	readonly #sent = new Map<string, string>();
	#waiting: (() => void) | undefined;
	#outstanding = 0;
	closed: { code: number; reason: string } | undefined;

	constructor(url: string, fuzzer: SignalingFuzzer, tally: Tally) {
		this.ws = new WebSocket(url);
		this.#welcomed = new Promise<void>((resolve, reject) => {
			this.#onWelcome = resolve;
			this.ws.once('error', reject);
			this.ws.once('close', (code, reason) => reject(new Error(`closed before the welcome: ${code} ${reason.toString()}`)));
		});
		this.#fuzzer = fuzzer;
		this.tally = tally;
		this.ws.on('message', (raw, isBinary) => this.#onMessage(raw.toString(), isBinary));
		this.ws.on('close', (code, reason) => {
			this.closed = { code, reason: reason.toString() };
			this.#wake();
		});
	}

	async run(frames: number): Promise<void> {
		await this.#welcomed;
		// FUZZ_DEBUG=1: frames still unanswered after 15 s (a hang) or at the end are printed.
		const unanswered = () => [...this.#expected].filter(([k, n]) => n > 0 && k !== 'null').map(([k]) => this.#sent.get(k));
		const watchdog = DEBUG ? setTimeout(() => console.log('unanswered after 15 s', unanswered()), 15_000) : undefined;
		for (let i = 0; i < frames && !this.closed; i++) {
			while (this.#outstanding >= IN_FLIGHT && !this.closed) await new Promise<void>((r) => (this.#waiting = r));
			const f = this.#fuzzer.next();
			this.tally.frames++;
			this.tally.kinds[f.kind] = (this.tally.kinds[f.kind] ?? 0) + 1;
			const key = String(f.expectId);
			this.#expected.set(key, (this.#expected.get(key) ?? 0) + 1);
			this.#outstanding++;
			if (f.expectId !== null && f.method) this.#methodOf.set(f.expectId, f.method);
			if (DEBUG) this.#sent.set(key, `${f.kind}: ${f.frame.toString().slice(0, 300)}`);
			this.ws.send(f.frame);
		}
		while (this.#outstanding > 0 && !this.closed) await new Promise<void>((r) => (this.#waiting = r));
		clearTimeout(watchdog);
		if (DEBUG && unanswered().length > 0) console.log('unanswered', unanswered());
	}

	#wake(): void {
		const w = this.#waiting;
		this.#waiting = undefined;
		w?.();
	}

	#onMessage(text: string, isBinary: boolean): void {
		const bad = (why: string): void => {
			this.tally.malformed.push(`${why}: ${text.slice(0, 200)}`);
		};
		if (isBinary) return bad('binary message from the server');
		let msg: Record<string, unknown>;
		try {
			msg = JSON.parse(text) as Record<string, unknown>;
		} catch {
			return bad('not JSON');
		}
		if ('ok' in msg) {
			this.tally.replies++;
			this.#outstanding--;
			const key = String(msg.id);
			const left = this.#expected.get(key) ?? 0;
			if (left === 0) {
				this.tally.idMismatches++;
				if (DEBUG) console.log('reply to no frame sent', text.slice(0, 300));
			}
			else this.#expected.set(key, left - 1);
			const keys = Object.keys(msg).sort().join(',');
			if (msg.id !== null && !(Number.isInteger(msg.id) && (msg.id as number) >= 0)) bad('bad reply id');
			if (msg.ok === true) {
				if (keys !== 'data,id,ok' || typeof msg.data !== 'object' || msg.data === null) bad('bad success reply');
				this.tally.ok++;
				const method = this.#methodOf.get(msg.id as number) ?? '?';
				this.tally.okByMethod[method] = (this.tally.okByMethod[method] ?? 0) + 1;
				this.#fuzzer.learn(msg.data);
			} else {
				const error = msg.error as { code?: unknown; message?: unknown } | undefined;
				const code = String(error?.code);
				if (keys !== 'error,id,ok' || !Object.hasOwn(ERROR_CODES, code) || typeof error?.message !== 'string' || error.message.length === 0 || error.message.length > 500) {
					bad('bad error reply');
				}
				this.tally.codes[code] = (this.tally.codes[code] ?? 0) + 1;
			}
			this.#wake();
			return;
		}
		if (typeof msg.method !== 'string' || !Object.hasOwn(NOTIFICATIONS, msg.method) || typeof msg.data !== 'object' || msg.data === null || Object.keys(msg).sort().join(',') !== 'data,method') {
			return bad('bad notification');
		}
		if (msg.method === 'welcome') this.#onWelcome?.();
		this.#fuzzer.learn(msg.data);
	}
}

describe('signaling under hostile input', () => {
	let h: Harness;
	let speaker: { client: TestSignalingClient; publisher: WeriftPublisher; stream: ToneStream };
	let listener: { client: TestSignalingClient; media: WeriftListener };

	beforeAll(async () => {
		h = await startHarness({
			PARLEY_SIGNALING_REQUESTS_PER_SECOND: '10000',
			PARLEY_SIGNALING_REQUEST_BURST: '100000',
			PARLEY_SIGNALING_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
			PARLEY_CHANNELS_MAX_CHANNELS: '20',
			PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '100',
		});
		const s = await h.joined('room', { userId: 'victim-speaker' });
		const publisher = await publishWithWerift(s.client);
		speaker = { client: s.client, publisher, stream: streamTone(publisher, encodeTone(1000, 50)) };
		const l = await h.joined('room', { userId: 'victim-listener' });
		listener = { client: l.client, media: await listenWithWerift(l.client, 1) };
		await waitUntil(() => listener.media.packets.length > 10, 5000, 'victim audio');
	});

	afterAll(async () => {
		await speaker?.stream.stop();
		await speaker?.publisher.close();
		await listener?.media.close();
		await h.close();
	});

	const snapshot = () => ({
		media: mediaLoad(h.server),
		sessions: h.server.signaling.sessionCount,
		channels: h.server.channels.size,
		recordings: h.server.voice.activeRecordings,
		transcodes: h.server.transcoder.running + h.server.transcoder.queued,
	});

	it(`answers ${FUZZERS * FRAMES_PER_FUZZER} fuzzed frames correctly, without leaks, while the victims keep talking`, async () => {
		const rng = Prng.fromEnv(SEED);
		const baseline = snapshot();
		const rssBefore = process.memoryUsage().rss;
		const caps = await speaker.client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		// The victims' ids are in every fuzzer's pool: acting on them must be refused.
		const shared: IdPool = {
			transport: [listener.media.transportId],
			producer: [speaker.publisher.producerId],
			consumer: listener.media.consumers.map((c) => c.consumerId),
			voiceMessage: [],
		};
		const victimStart = { at: performance.now(), packets: listener.media.packets.length };
		const tally: Tally = { frames: 0, replies: 0, ok: 0, okByMethod: {}, codes: {}, kinds: {}, malformed: [], idMismatches: 0 };
		const connections: FuzzConnection[] = [];
		for (let i = 0; i < FUZZERS; i++) {
			const fuzzer = new SignalingFuzzer(rng.fork(), { maxMessageBytes: MAX_MESSAGE_BYTES, rtpCapabilities: caps.data.rtpCapabilities, shared });
			connections.push(new FuzzConnection(h.wsUrl(await h.token({ userId: `fuzzer-${i}` })), fuzzer, tally));
		}
		onTestFinished(() => connections.forEach((c) => c.ws.close()));
		const started = performance.now();
		await Promise.all(connections.map((c) => c.run(FRAMES_PER_FUZZER)));
		const fuzzMs = performance.now() - started;
		const victimEnd = { at: performance.now(), packets: listener.media.packets.length };

		const summary = { seed: rng.seed, ...tally, malformed: tally.malformed.length, fuzzMs: Math.round(fuzzMs) };
		console.log(`signaling fuzz: ${JSON.stringify(summary)}`);
		expect(connections.map((c) => c.closed), `seed ${rng.seed}`).toEqual(connections.map(() => undefined));
		expect(tally.malformed.slice(0, 5), `seed ${rng.seed}`).toEqual([]);
		expect(tally.replies).toBe(tally.frames);
		expect(tally.idMismatches).toBe(0);
		expect(tally.codes.E_INTERNAL ?? 0, `seed ${rng.seed}`).toBe(0);
		expect(Object.keys(Object.prototype)).toEqual([]);
		expect(({} as Record<string, unknown>).polluted).toBeUndefined();

		// The victims: audio kept flowing at 50 packets/s, with no long gap.
		const window = listener.media.packets.slice(victimStart.packets, victimEnd.packets);
		const expected = ((victimEnd.at - victimStart.at) / 1000) * 50;
		let maxGapMs = 0;
		for (let i = 1; i < window.length; i++) maxGapMs = Math.max(maxGapMs, window[i]!.atMs - window[i - 1]!.atMs);
		console.log(`victim audio during the fuzz: ${window.length} packets of ~${Math.round(expected)} expected, longest gap ${Math.round(maxGapMs)} ms`);
		expect(window.length).toBeGreaterThanOrEqual(expected * 0.9);
		expect(maxGapMs).toBeLessThan(500);
		const peersInRoom = [...h.server.channels.get('room')!.peers.values()].map((p) => p.userId);
		expect(peersInRoom).toEqual(expect.arrayContaining(['victim-listener', 'victim-speaker']));

		// Everything the fuzzers made goes away with them.
		for (const c of connections) c.ws.close();
		await waitUntil(() => JSON.stringify(snapshot()) === JSON.stringify(baseline), 10_000, 'the baseline').catch((err: Error) => {
			throw new Error(`${err.message}: ${JSON.stringify(snapshot())} vs ${JSON.stringify(baseline)}`);
		});
		const rssGrowthMb = (process.memoryUsage().rss - rssBefore) / 1_048_576;
		console.log(`rss growth over the fuzz: ${rssGrowthMb.toFixed(1)} MB`);
		expect(rssGrowthMb).toBeLessThan(150);
	}, 60_000);

	it('accepts connectTransport from a client whose ICE and DTLS started first', async () => {
		// mediasoup-client connects before ICE starts; other clients (and werift bots) may not:
		// mediasoup then runs DTLS as server and waits for the fingerprint.
		const { client } = await h.joined('room');
		const media = await listenWithWerift(client, 1, { iceFirst: true });
		try {
			await waitUntil(() => media.packets.length > 5, 5000, 'audio on the ICE-first listener');
		} finally {
			await media.close();
			client.close();
		}
	});

	it(`bounds a connection flood at signaling.maxConnections (${MAX_CONNECTIONS}), refusing the rest with 4429`, async () => {
		// The victims only (earlier tests' clients are gone).
		await waitUntil(() => h.server.signaling.sessionCount === 2, 5000, 'only the victims connected');
		const before = h.server.signaling.sessionCount;
		const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => h.token({ userId: `flood-${i}` })));
		const outcomes = await Promise.all(
			tokens.map(
				(t) =>
					new Promise<{ ws: WebSocket; welcomed: boolean; code?: number }>((resolve) => {
						const ws = new WebSocket(h.wsUrl(t));
						ws.on('message', (raw) => {
							if (JSON.parse(raw.toString()).method === 'welcome') resolve({ ws, welcomed: true });
						});
						ws.on('close', (code) => resolve({ ws, welcomed: false, code }));
						ws.on('error', () => undefined);
					}),
			),
		);
		const welcomed = outcomes.filter((o) => o.welcomed);
		const refused = outcomes.filter((o) => !o.welcomed);
		const closeAll = () => welcomed.forEach((o) => o.ws.close());
		onTestFinished(closeAll);
		console.log(`connection flood: ${welcomed.length} accepted, ${refused.length} refused (limit ${MAX_CONNECTIONS}, ${before} open before)`);
		expect(welcomed.length).toBe(MAX_CONNECTIONS - before);
		expect(new Set(refused.map((o) => o.code))).toEqual(new Set([CLOSE_CODES.OVERLOADED]));
		expect(h.server.signaling.sessionCount).toBe(MAX_CONNECTIONS);
		// Sockets without a token are refused before they count.
		const anonymous = await Promise.all(
			Array.from({ length: 100 }, () =>
				new Promise<number>((resolve) => {
					const ws = new WebSocket(`ws://127.0.0.1:${h.server.http.port}/ws?v=${PROTOCOL_VERSION}`);
					ws.on('close', (code) => resolve(code));
					ws.on('error', () => undefined);
				}),
			),
		);
		expect(new Set(anonymous)).toEqual(new Set([CLOSE_CODES.AUTH]));
		closeAll();
		await waitUntil(() => h.server.signaling.sessionCount === before, 5000, 'flood sessions closed');
		const after = await TestSignalingClient.connect(h.wsUrl(await h.token()));
		after.client.close();
		expect(after.welcome.protocolVersion).toBe(PROTOCOL_VERSION);
	});

	it('closes slowloris connections (headers never finished) within ~10 s and keeps serving meanwhile', async () => {
		const SOCKETS = 300;
		const opened = performance.now();
		const closedAt: number[] = [];
		const sockets = Array.from({ length: SOCKETS }, (_, i) => {
			const s = net.connect(h.server.http.port, '127.0.0.1');
			let timer: NodeJS.Timeout | undefined;
			s.on('connect', () => {
				s.write(`GET /ws?token=${i} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n`);
				// One header line every 500 ms, never the blank line that ends them.
				timer = setInterval(() => s.write(`X-Slow-${i}: ${'a'.repeat(10)}\r\n`), 500);
			});
			s.on('close', () => {
				clearInterval(timer);
				closedAt.push(performance.now() - opened);
			});
			s.on('error', () => undefined);
			return s;
		});
		// Meanwhile the node serves: health, a new session, the victims' audio.
		const victimBefore = listener.media.packets.length;
		await sleep(3000);
		expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
		const fresh = await TestSignalingClient.connect(h.wsUrl(await h.token()));
		fresh.client.close();
		expect(listener.media.packets.length - victimBefore).toBeGreaterThan(120);
		expect(closedAt.length).toBe(0);
		await waitUntil(() => closedAt.length === SOCKETS, 15_000, 'the server to close every slowloris socket', 100);
		for (const s of sockets) s.destroy();
		const lastMs = Math.max(...closedAt);
		console.log(`slowloris: ${SOCKETS} sockets trickling headers, all closed by the server after ${Math.round(Math.min(...closedAt))}-${Math.round(lastMs)} ms`);
		expect(lastMs).toBeLessThan(15_000);
		expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
	}, 30_000);

	it('closes a connection whose request headers exceed the header limit at once', async () => {
		const s = net.connect(h.server.http.port, '127.0.0.1');
		const started = performance.now();
		await new Promise<void>((resolve) => {
			s.on('connect', () => s.write(`GET /healthz HTTP/1.1\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n`));
			s.on('close', () => resolve());
			s.on('error', () => undefined);
		});
		expect(performance.now() - started).toBeLessThan(1000);
		expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
	});
});

