// A Node peer that behaves like ParleyClient in a cluster, over the real protocol: it
// connects to its entry URLs in turn, follows E_REDIRECT on join (at most 3 hops), and when
// its connection drops reconnects on ParleyClient's default schedule, rotating to the next
// entry URL (or back to the entry URL after a redirect), then rejoins. Media through werift:
// it publishes a tone and listens to the others, so tests check decoded audio.
import { BackoffReconnectPolicy } from '../../../client/ReconnectPolicy.js';
import { PROTOCOL_VERSION, type RequestData } from '../../../protocol/messages.js';
import { decodeToMono, dominantFrequency, encodeTone } from '../../helpers/audio.js';
import { TestSignalingClient } from '../../../testkit/signalingClient.js';
import { publishWithWerift, streamTone, type ToneStream, type WeriftPublisher } from '../../../testkit/weriftPublisher.js';
import { listenWithWerift, type WeriftListener } from '../../../testkit/weriftListener.js';
import { sleep, token, waitUntil, type NodeProcess } from './nodes.js';

type RtpCapabilities = RequestData<'join'>['rtpCapabilities'];

const MAX_REDIRECTS = 3;

export interface VoiceBotOptions {
	name: string;
	/** Entry URLs (ws://host:port/ws), like ParleyClient's `urls`. */
	urls: string[];
	channel: string;
	/** The tone this bot publishes; 0: listen only. */
	toneHz: number;
	/** How many other publishers it listens to. */
	hears: number;
}

export interface JoinRecord {
	url: string;
	redirects: number;
}

export class VoiceBot {
	readonly name: string;
	readonly joins: JoinRecord[] = [];
	/** Why each reconnect attempt failed (for test failure messages). */
	readonly attemptErrors: string[] = [];
	client: TestSignalingClient | undefined;
	publisher: WeriftPublisher | undefined;
	listener: WeriftListener | undefined;
	serverUrl: string;
	readonly #options: VoiceBotOptions;
	readonly #policy = new BackoffReconnectPolicy();
	readonly #tone: Uint8Array[];
	#stream: ToneStream | undefined;
	#entryIndex = 0;
	#redirected = false;
	#closed = false;
	#recovering: Promise<void> | undefined;

	constructor(options: VoiceBotOptions) {
		this.name = options.name;
		this.#options = options;
		this.serverUrl = options.urls[0]!;
		this.#tone = options.toneHz > 0 ? encodeTone(options.toneHz, 50) : [];
	}

	/** Connects, joins (following redirects), publishes and listens. */
	async start(): Promise<void> {
		await this.#enter();
	}

	/** Dominant frequency of the last `packets` packets heard (0 when too few arrived). */
	heardHz(packets = 100): number {
		const got = this.listener?.packets ?? [];
		if (got.length < 20) return 0;
		return dominantFrequency(decodeToMono(got.slice(-packets).map((p) => p.payload)));
	}

	/** Packets heard on the current listener. */
	get heardPackets(): number {
		return this.listener?.packets.length ?? 0;
	}

	async close(): Promise<void> {
		this.#closed = true;
		await this.#teardown();
		this.client?.close();
	}

	async #enter(): Promise<void> {
		const client = await this.#connectAndJoin();
		if (this.#options.toneHz > 0) {
			this.publisher = await publishWithWerift(client);
			this.#stream = streamTone(this.publisher, this.#tone);
		}
		if (this.#options.hears > 0) this.listener = await listenWithWerift(client, this.#options.hears, { timeoutMs: 20_000 });
	}

	async #connectAndJoin(): Promise<TestSignalingClient> {
		for (let hops = 0; ; hops++) {
			const { client } = await TestSignalingClient.connect(`${this.serverUrl}?token=${encodeURIComponent(await token(this.name))}&v=${PROTOCOL_VERSION}`);
			const caps = await client.request('getRouterRtpCapabilities', {});
			if (!caps.ok) throw new Error(`${this.name} getRouterRtpCapabilities: ${caps.error.code}`);
			const join = await client.request('join', { channel: this.#options.channel, rtpCapabilities: caps.data.rtpCapabilities as RtpCapabilities });
			if (join.ok) {
				this.client = client;
				this.joins.push({ url: this.serverUrl, redirects: hops });
				void client.closed.then(() => {
					if (this.client === client && !this.#closed) this.#recovering ??= this.#recover().finally(() => (this.#recovering = undefined));
				});
				return client;
			}
			client.close();
			if (join.error.code !== 'E_REDIRECT' || !join.error.redirect || hops >= MAX_REDIRECTS) throw new Error(`${this.name} join: ${join.error.code}: ${join.error.message}`);
			this.serverUrl = join.error.redirect.url;
			this.#redirected = true;
		}
	}

	/** ParleyClient's #recover with #nextEntryUrl, for a bot. */
	async #recover(): Promise<void> {
		await this.#teardown();
		for (let attempt = 0; !this.#closed; attempt++) {
			const delayMs = this.#policy.nextDelayMs(attempt);
			if (delayMs === null) throw new Error(`${this.name} gave up reconnecting: ${this.attemptErrors.join('; ')}`);
			await sleep(delayMs);
			if (this.#redirected) this.#redirected = false;
			else this.#entryIndex = (this.#entryIndex + 1) % this.#options.urls.length;
			this.serverUrl = this.#options.urls[this.#entryIndex]!;
			try {
				await this.#enter();
				return;
			} catch (err) {
				this.attemptErrors.push(`${this.serverUrl}: ${(err as Error).message}`);
				await this.#teardown();
				this.client?.close();
			}
		}
	}

	async #teardown(): Promise<void> {
		const { publisher, listener } = this;
		const stream = this.#stream;
		this.#stream = undefined;
		this.publisher = undefined;
		this.listener = undefined;
		await stream?.stop().catch(() => undefined);
		await publisher?.close().catch(() => undefined);
		await listener?.close().catch(() => undefined);
	}
}

/**
 * Two bots talking in `channel`, homed on `home`: x enters with urls [home, other], y with
 * [other, home] (so its join is redirected to home, like ParleyClient's). Both are pushed to
 * `track` before they start, so the caller closes them even when starting fails.
 */
export async function startTalkingPair(
	home: NodeProcess,
	other: NodeProcess,
	channel: string,
	bots: { names: [string, string]; tonesHz: [number, number] },
	track: VoiceBot[],
): Promise<[VoiceBot, VoiceBot]> {
	const x = new VoiceBot({ name: bots.names[0], urls: [home.url, other.url], channel, toneHz: bots.tonesHz[0], hears: 1 });
	const y = new VoiceBot({ name: bots.names[1], urls: [other.url, home.url], channel, toneHz: bots.tonesHz[1], hears: 1 });
	track.push(x, y);
	// x first: its join makes home the channel's home, which y's redirect then names.
	const xStarted = x.start();
	await waitUntil(() => x.joins.length === 1, 10_000, 'x joined');
	await Promise.all([xStarted, y.start()]);
	return [x, y];
}
