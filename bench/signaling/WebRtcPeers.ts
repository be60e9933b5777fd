// The join figures' WebRTC peers: testkit's werift publisher and listener (ICE + DTLS + SRTP
// in TypeScript through Parley's real signaling protocol), each on its own signaling
// connection, plus what the figures need: when each frame left, and when a listener got its
// welcome, its join reply and its first audio packet.
import type { RequestData, ResponseData } from '../../protocol/messages.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { listenWithWerift, type WeriftListener } from '../../testkit/weriftListener.js';
import { publishWithWerift, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { FRAME_SAMPLES } from '../audio/speech.js';

async function ok<T>(reply: Promise<{ ok: true; data: T } | { ok: false; error: { code: string; message: string } }>, what: string): Promise<T> {
	const r = await reply;
	if (!r.ok) throw new Error(`${what}: ${r.error.code} ${r.error.message}`);
	return r.data;
}

export interface JoinedClient {
	client: TestSignalingClient;
	/** performance.now() when the socket opened, the welcome arrived and the join reply arrived. */
	wsOpenAt: number;
	welcomeAt: number;
	joinedAt: number;
	/** The transports the join reply carried, by direction. */
	transports: NonNullable<ResponseData['join']['transports']>;
	/** Notifications before the join (a listener looks for newConsumer from here). */
	notificationsBeforeJoin: number;
}

/** Connects, joins `channel` (with the router's capabilities, from the welcome, as its own)
 * asking for `transports` in the join; notes when each step was done (performance.now()). */
export async function connectAndJoin(url: string, channel: string, transports: ('send' | 'recv')[] = []): Promise<JoinedClient> {
	const client = await TestSignalingClient.open(url);
	const wsOpenAt = performance.now();
	try {
		const welcome = await client.waitFor('welcome');
		const welcomeAt = performance.now();
		// A server whose welcome carries no capabilities is asked for them.
		const rtpCapabilities = welcome.routerRtpCapabilities ?? (await ok(client.request('getRouterRtpCapabilities', {}), 'getRouterRtpCapabilities')).rtpCapabilities;
		const notificationsBeforeJoin = client.notifications.length;
		const joined = await ok(client.request('join', { channel, rtpCapabilities: rtpCapabilities as RequestData<'join'>['rtpCapabilities'], transports }), 'join');
		return { client, wsOpenAt, welcomeAt, joinedAt: performance.now(), transports: joined.transports ?? {}, notificationsBeforeJoin };
	} catch (err) {
		client.close();
		throw err;
	}
}

/**
 * A WebRTC publisher through signaling. It sends one frame per `sendNext()` (drive it with a
 * FramePacer), stamps each frame's send instant, and implements StreamSource so listeners
 * can turn an arriving RTP timestamp back into a send time.
 */
export class WebRtcPublisher {
	readonly client: TestSignalingClient;
	readonly producerId: string;
	readonly #publisher: WeriftPublisher;
	readonly #frames: Uint8Array[];
	readonly #sendTimes = new Float64Array(1 << 15);
	readonly #sendFrame = new Int32Array(1 << 15).fill(-1);
	#i = 0;

	private constructor(client: TestSignalingClient, publisher: WeriftPublisher, frames: Uint8Array[]) {
		this.client = client;
		this.producerId = publisher.producerId;
		this.#publisher = publisher;
		this.#frames = frames;
	}

	/** Joins `channel` and publishes; sends nothing until sendNext() is called. */
	static async start(url: string, channel: string, frames: Uint8Array[]): Promise<WebRtcPublisher> {
		const { client, transports } = await connectAndJoin(url, channel, ['send']);
		try {
			return new WebRtcPublisher(client, await publishWithWerift(client, { ...(transports.send && { transport: transports.send }) }), frames);
		} catch (err) {
			client.close();
			throw err;
		}
	}

	/** Frames sent so far. */
	get sent(): number {
		return this.#i;
	}

	sendNext(): void {
		const i = this.#i++;
		const slot = i % this.#sendTimes.length;
		this.#sendFrame[slot] = i;
		this.#sendTimes[slot] = performance.now();
		this.#publisher.write(this.#frames[i % this.#frames.length]!, i * FRAME_SAMPLES, i === 0);
	}

	frameIndexOf(timestamp: number): number {
		return (timestamp >>> 0) / FRAME_SAMPLES;
	}

	sendTimeOf(i: number): number | undefined {
		const slot = i % this.#sendTimes.length;
		return i >= 0 && this.#sendFrame[slot] === i ? this.#sendTimes[slot] : undefined;
	}

	async close(): Promise<void> {
		this.client.close();
		await this.#publisher.close();
	}
}

/**
 * A WebRTC listener through signaling: joins (the receive transport created by the join),
 * then `media` receives one consumer per expected producer on one BUNDLEd transport (see
 * testkit's listenWithWerift).
 */
export class WebRtcListener {
	readonly client: TestSignalingClient;
	readonly media: WeriftListener;
	readonly joined: JoinedClient;

	private constructor(joined: JoinedClient, media: WeriftListener) {
		this.client = joined.client;
		this.joined = joined;
		this.media = media;
	}

	static async join(url: string, channel: string, expectedConsumers: number, timeoutMs = 15_000): Promise<WebRtcListener> {
		const joined = await connectAndJoin(url, channel, ['recv']);
		try {
			const media = await listenWithWerift(joined.client, expectedConsumers, { timeoutMs, since: joined.notificationsBeforeJoin, ...(joined.transports.recv && { transport: joined.transports.recv }) });
			return new WebRtcListener(joined, media);
		} catch (err) {
			joined.client.close();
			throw err;
		}
	}

	async close(): Promise<void> {
		this.client.close();
		await this.media.close();
	}
}

/** A werift listener's join phases, in the order a join passes them. */
export const WERIFT_LISTENER_PHASES = [
	['wsOpen', 'WebSocket open'],
	['welcome', 'welcome notification'],
	['joined', 'join reply (with the receive transport)'],
	['transportCreated', 'receive transport parameters at hand'],
	['consumerAnnounced', 'newConsumer for the talking producer'],
	['answerSet', "werift's answer set (ICE checks start)"],
	['connectReplied', 'connectTransport reply'],
	['consumeDone', 'resumeConsumer reply'],
	['iceConnected', 'ICE connected (werift)'],
	['dtlsConnected', 'DTLS connected (werift)'],
	['firstRtpIn', 'first RTP packet in (listener)'],
] as const;

export type ListenerTimings = Record<(typeof WERIFT_LISTENER_PHASES)[number][0], number>;

/** A listener that joins a channel with one publisher and waits for the first audio packet;
 * its timings are ms from starting to open the WebSocket. */
export async function listenOnce(url: string, channel: string, timeoutMs = 15_000): Promise<{ timings: ListenerTimings; close: () => Promise<void> }> {
	const t0 = performance.now();
	const listener = await WebRtcListener.join(url, channel, 1, timeoutMs);
	let timer: NodeJS.Timeout | undefined;
	try {
		const firstAudioAt = await Promise.race([
			listener.media.firstAudio,
			new Promise<number>((_, reject) => {
				timer = setTimeout(() => reject(new Error('no audio packet in time')), timeoutMs);
			}),
		]);
		// The first packet needs DTLS: both states are known once it arrived, but their
		// events may still be on their way through werift; a missing one stays NaN.
		await listener.media.connected(1000).catch(() => {});
		const j = listener.joined;
		const m = listener.media.times;
		const at = (t: number | undefined) => (t === undefined ? NaN : t - t0);
		return {
			timings: {
				wsOpen: at(j.wsOpenAt),
				welcome: at(j.welcomeAt),
				joined: at(j.joinedAt),
				transportCreated: at(m.transportAt),
				consumerAnnounced: at(m.consumersAt),
				answerSet: at(m.answerAt),
				connectReplied: at(m.connectRepliedAt),
				consumeDone: at(m.resumedAt),
				iceConnected: at(m.iceConnectedAt),
				dtlsConnected: at(m.dtlsConnectedAt),
				firstRtpIn: at(firstAudioAt),
			},
			close: () => listener.close(),
		};
	} catch (err) {
		await listener.close();
		throw err;
	} finally {
		clearTimeout(timer);
	}
}
