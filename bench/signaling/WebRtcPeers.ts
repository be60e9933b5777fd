// The join figures' WebRTC peers: testkit's werift publisher and listener (ICE + DTLS + SRTP
// in TypeScript through Parley's real signaling protocol), each on its own signaling
// connection, plus what the figures need: when each frame left, and when a listener got its
// welcome, its join reply and its first audio packet.
import type { RequestData } from '../../protocol/messages.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { listenWithWerift, type WeriftListener } from '../../testkit/weriftListener.js';
import { publishWithWerift, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { FRAME_SAMPLES } from '../audio/speech.js';

async function ok<T>(reply: Promise<{ ok: true; data: T } | { ok: false; error: { code: string; message: string } }>, what: string): Promise<T> {
	const r = await reply;
	if (!r.ok) throw new Error(`${what}: ${r.error.code} ${r.error.message}`);
	return r.data;
}

/** Connects, joins `channel` (with the router's capabilities as its own); notes when the
 * welcome and the join reply arrived (performance.now()). */
export async function connectAndJoin(url: string, channel: string): Promise<{ client: TestSignalingClient; welcomeAt: number; joinedAt: number }> {
	const { client } = await TestSignalingClient.connect(url);
	const welcomeAt = performance.now();
	try {
		const caps = await ok(client.request('getRouterRtpCapabilities', {}), 'getRouterRtpCapabilities');
		await ok(client.request('join', { channel, rtpCapabilities: caps.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] }), 'join');
	} catch (err) {
		client.close();
		throw err;
	}
	return { client, welcomeAt, joinedAt: performance.now() };
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
		const { client } = await connectAndJoin(url, channel);
		try {
			return new WebRtcPublisher(client, await publishWithWerift(client), frames);
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
 * A WebRTC listener through signaling: joins, then `media` receives one consumer per expected
 * producer on one BUNDLEd transport (see testkit's listenWithWerift).
 */
export class WebRtcListener {
	readonly client: TestSignalingClient;
	readonly media: WeriftListener;
	/** performance.now() when the welcome and the join reply arrived. */
	readonly welcomeAt: number;
	readonly joinedAt: number;

	private constructor(joined: { client: TestSignalingClient; welcomeAt: number; joinedAt: number }, media: WeriftListener) {
		this.client = joined.client;
		this.welcomeAt = joined.welcomeAt;
		this.joinedAt = joined.joinedAt;
		this.media = media;
	}

	static async join(url: string, channel: string, expectedConsumers: number, timeoutMs = 15_000): Promise<WebRtcListener> {
		const joined = await connectAndJoin(url, channel);
		try {
			return new WebRtcListener(joined, await listenWithWerift(joined.client, expectedConsumers, { timeoutMs }));
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

export interface ListenerTimings {
	/** From starting to open the WebSocket, in ms. */
	welcomeMs: number;
	joinedMs: number;
	firstAudioMs: number;
}

/** A listener that joins a channel with one publisher and waits for the first audio packet. */
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
		return {
			timings: { welcomeMs: listener.welcomeAt - t0, joinedMs: listener.joinedAt - t0, firstAudioMs: firstAudioAt - t0 },
			close: () => listener.close(),
		};
	} catch (err) {
		await listener.close();
		throw err;
	} finally {
		clearTimeout(timer);
	}
}
