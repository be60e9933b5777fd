// One membership in one channel over one signaling connection: the join sequence, the send
// and recv transports, the microphone producer and the remote consumers. It owns all of
// them and closes them together. It never reconnects: when media cannot recover in place it
// emits `mediaFailed`, and ParleyClient replaces the whole session (a new one per rejoin or
// reconnect keeps stale ids and half-closed transports from leaking between attempts).
import type { types as mc } from 'mediasoup-client';
import type { Grants, JoinModeration, Method, Notifications, PeerInfo, RequestData, ResponseData, TransportInfo } from '../protocol/messages.js';
import { connectionPathOf, type ConnectionPath } from './connectionPath.js';
import { isConnectionLoss, isParleyError, ParleyError, toParleyError } from './ParleyError.js';
import type { RequestOptions, SignalingConnection } from './SignalingConnection.js';
import { TypedEmitter } from './TypedEmitter.js';

export type AudioLevel = Notifications['audioLevels']['levels'][number];

export interface TransportStats {
	direction: 'send' | 'recv';
	transportId: string;
	/** The server's view of the transport (mediasoup WebRtcTransport stats). */
	stats: unknown[];
}

/** The server's 0-10 scores of one remote peer's voice: server to us, and speaker to server. */
export interface PeerScore {
	score: number;
	producerScore: number;
}

export interface ChannelSessionOptions {
	signaling: SignalingConnection;
	channel: string;
	grants: Grants;
	/** Returns a Device loaded with these router capabilities (the owner may reuse one). */
	loadDevice: (routerRtpCapabilities: mc.RtpCapabilities) => Promise<mc.Device>;
	/** How long ICE may stay 'disconnected' before we restart it (it often recovers alone). */
	iceDisconnectedGraceMs: number;
	/** ICE restarts in a row without reaching 'connected' before giving up on the session. */
	maxIceRestarts?: number;
	/** 'relay': only TURN relay candidates (the server gives the TURN servers); default 'all'. */
	iceTransportPolicy?: RTCIceTransportPolicy;
}

export interface ChannelSessionEvents {
	peerJoined: [peer: PeerInfo];
	peerLeft: [peer: PeerInfo];
	activeSpeaker: [peerId: string | null];
	audioLevels: [levels: AudioLevel[]];
	producerScore: [score: number];
	peerScore: [peerId: string, score: PeerScore];
	/** A remote track is ready to play. */
	track: [consumerId: string, peerId: string, track: MediaStreamTrack];
	trackEnded: [consumerId: string];
	peerMuteChanged: [peerId: string, muted: boolean];
	/** Media cannot recover in place (ICE restart failed): the owner should rejoin. */
	mediaFailed: [error: ParleyError];
	error: [error: ParleyError];
}

type NewConsumer = Notifications['newConsumer'];

interface RemoteConsumer {
	data: NewConsumer;
	paused: boolean;
	/** pending: waiting for the recv transport; live: consumer created. */
	state: 'pending' | 'consuming' | 'live' | 'closed';
	consumer: mc.Consumer | null;
}

interface IceWatch {
	timer: ReturnType<typeof setTimeout> | undefined;
	restartsInARow: number;
	restarting: boolean;
}

/**
 * Voice-tuned Opus: mono, 20 ms frames, in-band FEC, DTX and NACK as asked. Without opusNack
 * mediasoup-client takes NACK out of the answer (the router always lists it), so the server
 * never asks for a lost packet again.
 */
export function voiceCodecOptions(opusFec: boolean, opusDtx: boolean, opusNack = false): mc.ProducerCodecOptions {
	return { opusStereo: false, opusFec, opusDtx, opusPtime: 20, opusNack };
}

/**
 * The codec to produce with for Opus RED (RFC 2198), or undefined for plain Opus. The Device's
 * capabilities are what the router offers and the browser can send alike, so audio/red is
 * there only when both have it (Chromium; Firefox 153 offers none). Opus must be there too:
 * RED's blocks are Opus frames, and mediasoup-client (as patched) answers with both.
 */
export function opusRedCodec(capabilities: mc.RtpCapabilities): mc.RtpCodecCapability | undefined {
	const codecs = capabilities.codecs ?? [];
	const red = codecs.find((c) => c.kind === 'audio' && c.mimeType.toLowerCase() === 'audio/red');
	const opus = codecs.find((c) => c.kind === 'audio' && c.mimeType.toLowerCase() === 'audio/opus');
	return red && opus && red.clockRate === opus.clockRate ? red : undefined;
}

const DEFAULT_MAX_ICE_RESTARTS = 2;

/**
 * The RED codec's fmtp ("111/111") lists its blocks in this browser's payload types, which the
 * server renumbers for each listener: it is left out of what the server is told, and each
 * listener's SDP gets one in its own numbers (patches/mediasoup-client+*.patch).
 */
function withoutRedBlockList(rtpParameters: mc.RtpParameters): mc.RtpParameters {
	return { ...rtpParameters, codecs: rtpParameters.codecs.map((c) => (c.mimeType.toLowerCase() === 'audio/red' ? { ...c, parameters: {} } : c)) };
}

/**
 * mediasoup-client types codec `parameters` as Record<string, unknown>; the protocol's
 * schema (rightly, for untrusted input) as Record<string, string | number>. What the browser
 * produces are SDP fmtp values, which are strings or numbers, and the server validates them
 * anyway, so the value is passed through as the protocol's type.
 */
function asProtocolValue<M extends 'join' | 'produce', K extends keyof RequestData<M>>(value: mc.RtpCapabilities | mc.RtpParameters): RequestData<M>[K] {
	return value as RequestData<M>[K];
}

export class ChannelSession extends TypedEmitter<ChannelSessionEvents> {
	readonly channel: string;
	readonly #signaling: SignalingConnection;
	readonly #options: ChannelSessionOptions;
	readonly #unsubscribe: (() => void)[] = [];
	readonly #peers = new Map<string, PeerInfo>();
	readonly #consumers = new Map<string, RemoteConsumer>();
	readonly #iceWatches = new Map<string, IceWatch>();
	#peerId: string | null = null;
	#moderation: JoinModeration | undefined;
	#joined = false;
	#closed = false;
	#sendTransport: mc.Transport | null = null;
	#recvTransport: mc.Transport | null = null;
	/** The router capabilities as this browser can use them (set by join()). */
	#device: mc.Device | null = null;
	#producer: mc.Producer | null = null;
	/** What the server was last told (pauseProducer/resumeProducer succeeded). */
	#serverPaused = false;
	#pauseChain: Promise<void> = Promise.resolve();
	readonly #joinTimings: Record<string, number> = {};

	/** Listens to the connection at once so no notification is missed during join(). */
	constructor(options: ChannelSessionOptions) {
		super();
		this.channel = options.channel;
		this.#signaling = options.signaling;
		this.#options = options;
		const s = options.signaling;
		this.#unsubscribe.push(
			s.on('peerJoined', (peer) => this.#onPeerJoined(peer)),
			s.on('peerLeft', ({ peerId }) => this.#onPeerLeft(peerId)),
			s.on('newConsumer', (data) => this.#onNewConsumer(data)),
			s.on('consumerClosed', ({ consumerId }) => this.#closeConsumer(consumerId)),
			s.on('consumerPaused', ({ consumerId }) => this.#setConsumerPaused(consumerId, true)),
			s.on('consumerResumed', ({ consumerId }) => this.#setConsumerPaused(consumerId, false)),
			s.on('activeSpeaker', ({ peerId }) => this.emit('activeSpeaker', peerId)),
			s.on('audioLevels', ({ levels }) => this.emit('audioLevels', levels)),
			s.on('producerScore', ({ producerId, score }) => {
				if (producerId === this.#producer?.id) this.emit('producerScore', score);
			}),
			s.on('consumerScore', ({ consumerId, score, producerScore }) => {
				const peerId = this.#consumers.get(consumerId)?.data.peerId;
				if (peerId !== undefined) this.emit('peerScore', peerId, { score, producerScore });
			}),
		);
	}

	/** Our peer id in the channel (set once the server accepted the join). */
	/** A moderator's standing decision for us in this channel (from the join), if any. */
	get moderation(): JoinModeration | undefined {
		return this.#moderation;
	}

	get peerId(): string | null {
		return this.#peerId;
	}

	/** True once the join sequence completed (transports exist). */
	get joined(): boolean {
		return this.#joined;
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** The other peers in the channel. */
	get peers(): ReadonlyMap<string, PeerInfo> {
		return this.#peers;
	}

	get producerId(): string | null {
		return this.#producer?.id ?? null;
	}

	/**
	 * The codecs our producer sends, as negotiated (mimeTypes, the sent one first):
	 * ['audio/red', 'audio/opus'] with RED, ['audio/opus'] without; null when not publishing.
	 */
	get producerCodecs(): string[] | null {
		return this.#producer ? this.#producer.rtpParameters.codecs.filter((c) => !/\/rtx$/i.test(c.mimeType)).map((c) => c.mimeType) : null;
	}

	/** The codecs of what we receive from `peerId` (one list per live consumer), as above. */
	peerCodecs(peerId: string): string[][] {
		const lists: string[][] = [];
		for (const remote of this.#consumers.values()) {
			const consumer = remote.consumer;
			if (remote.data.peerId !== peerId || !consumer || consumer.closed) continue;
			lists.push(consumer.rtpParameters.codecs.filter((c) => !/\/rtx$/i.test(c.mimeType)).map((c) => c.mimeType));
		}
		return lists;
	}

	/** Local pause state of our producer (null when not publishing). */
	get producerPaused(): boolean | null {
		return this.#producer ? this.#producer.paused : null;
	}

	/** A peer counts as muted when everything we hear from it is paused. */
	isPeerMuted(peerId: string): boolean {
		let any = false;
		for (const remote of this.#consumers.values()) {
			if (remote.data.peerId !== peerId) continue;
			if (!remote.paused) return false;
			any = true;
		}
		return any;
	}

	/**
	 * Device.load (with the welcome's router capabilities) -> join, which creates the
	 * transports (recv if the token may listen, send if it may speak) and returns them: one
	 * round trip. A server that sends no capabilities in its welcome, or no transports in its
	 * join reply, gets getRouterRtpCapabilities and createTransport requests instead.
	 * Consumers announced meanwhile wait for the recv transport.
	 */
	async join(): Promise<void> {
		this.#mark('joinStarted');
		const rtpCapabilities = this.#signaling.welcome.routerRtpCapabilities ?? (await this.#request('getRouterRtpCapabilities', {})).rtpCapabilities;
		const device = await this.#options.loadDevice(rtpCapabilities);
		this.#assertOpen();
		this.#device = device;
		this.#mark('deviceLoaded');
		const { canSubscribe, canPublish } = this.#options.grants;
		const directions = [...(canSubscribe ? (['recv'] as const) : []), ...(canPublish ? (['send'] as const) : [])];
		const joined = await this.#request('join', { channel: this.channel, rtpCapabilities: asProtocolValue<'join', 'rtpCapabilities'>(device.rtpCapabilities), transports: directions });
		this.#assertOpen();
		this.#mark('joinReplied');
		this.#peerId = joined.peerId;
		this.#moderation = joined.moderation;
		for (const peer of joined.peers) this.#peers.set(peer.peerId, peer);
		// The server lists only the others; stay correct even if that ever changes.
		this.#peers.delete(joined.peerId);
		await Promise.all(directions.map((direction) => this.#createTransport(device, direction, joined.transports?.[direction])));
		this.#assertOpen();
		this.#mark('transportsCreated');
		this.#joined = true;
	}

	/**
	 * performance.now() at each step of the join and of the first publish and track, once
	 * reached (the bench's join phases): joinStarted, deviceLoaded, joinReplied,
	 * transportsCreated, sendConnectRequested / recvConnectRequested and ...ConnectReplied
	 * (connectTransport), sendConnected / recvConnected (ICE and DTLS up: the transport's
	 * connection state), produceRequested, produced, newConsumer, firstTrack,
	 * firstConsumerResumed.
	 */
	get joinTimings(): Readonly<Record<string, number>> {
		return this.#joinTimings;
	}

	#mark(step: string): void {
		this.#joinTimings[step] ??= performance.now();
	}

	/**
	 * Publishes `track` on the send transport. The track stays the caller's (stopTracks: false).
	 * With `opusRed`, Opus goes out inside RED when the router and the browser both can
	 * (opusRedCodec), plain Opus otherwise.
	 */
	async produce(track: MediaStreamTrack, { codecOptions, paused, opusRed = false }: { codecOptions: mc.ProducerCodecOptions; paused: boolean; opusRed?: boolean }): Promise<void> {
		this.#assertOpen();
		const transport = this.#sendTransport;
		if (!transport) {
			throw this.#options.grants.canPublish ? new ParleyError('E_NOT_JOINED') : new ParleyError('E_FORBIDDEN', 'This access token does not allow speaking.');
		}
		if (this.#producer) throw new ParleyError('E_INVALID_STATE', 'Already publishing; unpublish first.');
		const codec = opusRed && this.#device ? opusRedCodec(this.#device.rtpCapabilities) : undefined;
		let producer: mc.Producer;
		try {
			// `paused` travels in appData to the 'produce' handler so the server creates the
			// producer paused: a muted user is never forwarded, not even for one round trip.
			producer = await transport.produce({ track, codecOptions, ...(codec && { codec }), stopTracks: false, appData: { paused } });
		} catch (error) {
			throw toParleyError(error, 'E_MEDIA_FAILED');
		}
		if (this.#closed) {
			producer.close();
			this.#assertOpen();
		}
		this.#serverPaused = paused;
		if (paused) producer.pause();
		this.#producer = producer;
		this.#mark('produced');
		producer.on('trackended', () => this.emit('error', new ParleyError('E_MIC_ENDED')));
		producer.on('transportclose', () => {
			if (this.#producer === producer) this.#producer = null;
		});
	}

	/**
	 * Mute or unmute: the local producer at once (the mic track is disabled), then the server
	 * so it stops forwarding and tells listeners. Calls run in order so a quick
	 * mute/unmute/mute cannot reach the server reordered.
	 */
	setProducerPaused(paused: boolean): Promise<void> {
		const run = async (): Promise<void> => {
			const producer = this.#producer;
			if (!producer || producer.closed || this.#closed) return;
			if (paused) producer.pause();
			else producer.resume();
			if (this.#serverPaused === paused) return;
			await this.#request(paused ? 'pauseProducer' : 'resumeProducer', { producerId: producer.id });
			if (this.#producer === producer) this.#serverPaused = paused;
		};
		const result = this.#pauseChain.then(run);
		// The chain only orders calls; each caller still gets its own call's error.
		this.#pauseChain = result.catch(() => undefined);
		return result;
	}

	/**
	 * Sends `track` instead of the current one on the same producer (no renegotiation, the
	 * server and listeners see no change). The track stays the caller's.
	 */
	async replaceTrack(track: MediaStreamTrack): Promise<void> {
		const producer = this.#producer;
		if (!producer || producer.closed || this.#closed) throw new ParleyError('E_INVALID_STATE', 'Not publishing.');
		try {
			await producer.replaceTrack({ track });
		} catch (error) {
			throw toParleyError(error, 'E_MEDIA_FAILED');
		}
		// mediasoup-client disables the new track itself when the producer is paused (muted).
	}

	/** The browser's receiver stats for what we hear from `peerId` (one report per consumer). */
	async consumerStats(peerId: string): Promise<RTCStatsReport[]> {
		const live: mc.Consumer[] = [];
		for (const remote of this.#consumers.values()) if (remote.data.peerId === peerId && remote.consumer && !remote.consumer.closed) live.push(remote.consumer);
		return Promise.all(live.map((consumer) => consumer.getStats()));
	}

	async closeProducer(): Promise<void> {
		const producer = this.#producer;
		if (!producer) return;
		this.#producer = null;
		producer.close();
		try {
			await this.#request('closeProducer', { producerId: producer.id });
		} catch (error) {
			// Gone with the connection, or already gone on the server: nothing left to close.
			if (!isConnectionLoss(error) && !isParleyError(error, 'E_NOT_FOUND')) throw error;
		}
	}

	async stats(): Promise<TransportStats[]> {
		const transports = [this.#sendTransport, this.#recvTransport].filter((t): t is mc.Transport => t !== null && !t.closed);
		return Promise.all(
			transports.map(async (transport) => {
				const { stats } = await this.#request('getTransportStats', { transportId: transport.id });
				return { direction: transport.direction, transportId: transport.id, stats };
			}),
		);
	}

	/** The selected ICE candidate pair of each of our transports (the browser's stats); a
	 * transport that has not connected yet is left out. */
	async connectionPaths(): Promise<ConnectionPath[]> {
		const transports = [this.#sendTransport, this.#recvTransport].filter((t): t is mc.Transport => t !== null && !t.closed);
		const paths = await Promise.all(transports.map(async (t) => connectionPathOf(t.direction, await t.getStats())));
		return paths.filter((p): p is ConnectionPath => p !== null);
	}

	/** Tells the server we leave (when it knows us and can hear us), then closes everything. */
	async leave(options: RequestOptions = {}): Promise<void> {
		try {
			if (!this.#closed && this.#peerId !== null && this.#signaling.isOpen) await this.#request('leave', {}, options);
		} catch (error) {
			if (!isConnectionLoss(error) && !isParleyError(error, 'E_NOT_JOINED')) throw error;
		} finally {
			this.close();
		}
	}

	/** Closes transports, producer and consumers locally (the server is not told). Idempotent. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const off of this.#unsubscribe.splice(0)) off();
		for (const watch of this.#iceWatches.values()) clearTimeout(watch.timer);
		this.#iceWatches.clear();
		for (const consumerId of [...this.#consumers.keys()]) this.#closeConsumer(consumerId);
		this.#producer?.close();
		this.#producer = null;
		this.#sendTransport?.close();
		this.#recvTransport?.close();
		this.removeAllListeners();
	}

	#request<M extends Method>(method: M, data: RequestData<M>, options?: RequestOptions): Promise<ResponseData[M]> {
		return this.#signaling.request(method, data, options);
	}

	#assertOpen(): void {
		// Closing the session mid-join (connection lost, leave) ends the join quietly: the
		// owner already knows why and decides what comes next.
		if (this.#closed) throw new ParleyError('E_CONNECTION_CLOSED', 'The channel session was closed.');
	}

	/** `info`: the transport the join reply carried; without one, it is asked for. */
	async #createTransport(device: mc.Device, direction: 'send' | 'recv', info?: TransportInfo): Promise<void> {
		info ??= await this.#request('createTransport', { direction });
		this.#assertOpen();
		const options: mc.TransportOptions = {
			id: info.transportId,
			iceParameters: info.iceParameters,
			iceCandidates: info.iceCandidates,
			dtlsParameters: info.dtlsParameters,
			iceServers: info.iceServers ?? [],
			iceTransportPolicy: this.#options.iceTransportPolicy ?? 'all',
		};
		const transport = direction === 'send' ? device.createSendTransport(options) : device.createRecvTransport(options);
		this.#watchTurnRefusal(transport);
		// The browser may go on at once (set its description, start ICE and DTLS) rather than
		// wait a round trip for the reply: the server's transport answers ICE checks and runs
		// DTLS as the server from the first check (mediasoup: role 'auto' becomes 'server'),
		// so a ClientHello that arrives before connectTransport is not lost; the handshake
		// completes once the server has our fingerprint. Produce and consume requests follow
		// this one on the same socket, and the server's worker takes them in order.
		transport.on('connect', ({ dtlsParameters }, callback) => {
			this.#mark(`${direction}ConnectRequested`);
			this.#request('connectTransport', { transportId: transport.id, dtlsParameters }).then(
				() => this.#mark(`${direction}ConnectReplied`),
				(error: unknown) => this.#connectFailed(transport, error),
			);
			callback();
		});
		if (direction === 'send') {
			this.#sendTransport = transport;
			transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
				this.#mark('produceRequested');
				const data = { transportId: transport.id, kind, rtpParameters: asProtocolValue<'produce', 'rtpParameters'>(withoutRedBlockList(rtpParameters)), paused: appData.paused === true };
				this.#request('produce', data).then(
					({ producerId }) => callback({ id: producerId }),
					errback,
				);
			});
		} else {
			this.#recvTransport = transport;
			let pending = false;
			for (const remote of this.#consumers.values()) {
				if (remote.state !== 'pending') continue;
				pending = true;
				void this.#consume(remote);
			}
			if (!pending) void this.#connectRecvEarly(transport, device);
		}
		this.#watchIce(transport);
	}

	/** A connectTransport that failed leaves a transport the server cannot key: the owner rejoins. */
	#connectFailed(transport: mc.Transport, error: unknown): void {
		if (this.#closed || transport.closed || isConnectionLoss(error)) return;
		this.emit('mediaFailed', new ParleyError('E_MEDIA_FAILED', `The ${transport.direction} connection could not be set up: ${toParleyError(error, 'E_MEDIA_FAILED').message}`, { cause: error }));
	}

	/**
	 * A receive transport connects (ICE, DTLS) only once it has something to receive, so the
	 * first voice a listener hears would wait for both after the speaker's producer appeared.
	 * With nothing to hear yet, a placeholder receiver sets the connection up now: an Opus
	 * m-section of its own (mid `warmup`, an SSRC nobody sends), closed again at once (its
	 * m-section stays, disabled, as the first of the bundle). The server is never told of it.
	 */
	async #connectRecvEarly(transport: mc.Transport, device: mc.Device): Promise<void> {
		const opus = device.rtpCapabilities.codecs?.find((c) => c.kind === 'audio' && c.mimeType.toLowerCase() === 'audio/opus');
		if (!opus || opus.preferredPayloadType === undefined) return;
		const rtpParameters: mc.RtpParameters = {
			mid: 'warmup',
			codecs: [{ mimeType: opus.mimeType, payloadType: opus.preferredPayloadType, clockRate: opus.clockRate, ...(opus.channels !== undefined && { channels: opus.channels }), parameters: {}, rtcpFeedback: [] }],
			headerExtensions: [],
			encodings: [{ ssrc: 1 + Math.floor(Math.random() * 0xfffffffe) }],
			rtcp: { cname: 'parley-warmup', reducedSize: true },
		};
		try {
			const placeholder = await transport.consume({ id: 'warmup', producerId: 'warmup', kind: 'audio', rtpParameters });
			placeholder.close();
			this.#mark('recvWarmedUp');
		} catch (error) {
			// Nothing is lost: the first real consumer sets the connection up instead.
			if (this.#closed || transport.closed) return;
			this.emit('error', new ParleyError('E_MEDIA_FAILED', `Could not set up the receive connection ahead: ${toParleyError(error, 'E_MEDIA_FAILED').message}`, { cause: error }));
		}
	}

	// ---- ICE recovery -----------------------------------------------------------------

	/**
	 * A TURN server answering 401 (RFC 8656: wrong or expired credentials) is said once per
	 * transport as E_TURN_REFUSED, naming the server, so a misconfigured secret shows up at
	 * once instead of as a silent relay-less call (or, relay-only, a connection that never
	 * comes up). Other candidate errors (an unreachable server, 701) are not errors of ours.
	 */
	#watchTurnRefusal(transport: mc.Transport): void {
		let said = false;
		transport.on('icecandidateerror', (event) => {
			if (said || this.#closed || event.errorCode !== 401 || !/^turns?:/.test(event.url ?? '')) return;
			said = true;
			const message = `The TURN server ${event.url} refused the credentials of the ${transport.direction} connection (${event.errorCode} ${event.errorText || 'Unauthorized'}): its secret differs from the server's turn.secret, or the credentials expired.`;
			this.emit('error', new ParleyError('E_TURN_REFUSED', message));
		});
	}

	/**
	 * 'failed' restarts ICE at once; 'disconnected' gets a grace period first because it
	 * often heals by itself (Wi-Fi roaming, a lost burst).
	 */
	#watchIce(transport: mc.Transport): void {
		const watch: IceWatch = { timer: undefined, restartsInARow: 0, restarting: false };
		this.#iceWatches.set(transport.id, watch);
		transport.on('connectionstatechange', (state) => {
			if (this.#closed) return;
			clearTimeout(watch.timer);
			watch.timer = undefined;
			if (state === 'connected') {
				watch.restartsInARow = 0;
				this.#mark(`${transport.direction}Connected`);
			}
			else if (state === 'failed') void this.#restartIce(transport, watch);
			else if (state === 'disconnected') {
				watch.timer = setTimeout(() => void this.#restartIce(transport, watch), this.#options.iceDisconnectedGraceMs);
			}
		});
	}

	async #restartIce(transport: mc.Transport, watch: IceWatch): Promise<void> {
		if (this.#closed || transport.closed || watch.restarting) return;
		if (watch.restartsInARow >= (this.#options.maxIceRestarts ?? DEFAULT_MAX_ICE_RESTARTS)) {
			this.emit('mediaFailed', new ParleyError('E_MEDIA_FAILED', `The ${transport.direction} connection did not recover after ICE restarts.`));
			return;
		}
		watch.restarting = true;
		watch.restartsInARow += 1;
		try {
			const { iceParameters, iceServers } = await this.#request('restartIce', { transportId: transport.id });
			if (this.#closed || transport.closed) return;
			// Fresh TURN credentials: the old ones may have expired during a long relayed call.
			if (iceServers) await transport.updateIceServers({ iceServers });
			await transport.restartIce({ iceParameters });
		} catch (error) {
			// Signaling is down too: the reconnect replaces this whole session.
			if (this.#closed || isConnectionLoss(error)) return;
			this.emit('mediaFailed', new ParleyError('E_MEDIA_FAILED', `ICE restart failed: ${toParleyError(error, 'E_MEDIA_FAILED').message}`, { cause: error }));
			return;
		} finally {
			watch.restarting = false;
		}
		// A restart that never connects may produce no further state change: check again.
		clearTimeout(watch.timer);
		watch.timer = setTimeout(() => {
			if (transport.connectionState === 'failed' || transport.connectionState === 'disconnected') void this.#restartIce(transport, watch);
		}, Math.max(5000, 2 * this.#options.iceDisconnectedGraceMs));
	}

	// ---- remote peers and consumers ---------------------------------------------------

	#onPeerJoined(peer: PeerInfo): void {
		if (peer.peerId === this.#peerId) return;
		this.#peers.set(peer.peerId, peer);
		this.emit('peerJoined', peer);
	}

	#onPeerLeft(peerId: string): void {
		// Their consumers go with them even if a consumerClosed is late or never comes.
		for (const [consumerId, remote] of this.#consumers) if (remote.data.peerId === peerId) this.#closeConsumer(consumerId);
		const peer = this.#peers.get(peerId);
		if (!peer) return;
		this.#peers.delete(peerId);
		this.emit('peerLeft', peer);
	}

	#onNewConsumer(data: NewConsumer): void {
		if (this.#consumers.has(data.consumerId)) return;
		this.#mark('newConsumer');
		const wasMuted = this.isPeerMuted(data.peerId);
		const remote: RemoteConsumer = { data, paused: data.producerPaused, state: 'pending', consumer: null };
		this.#consumers.set(data.consumerId, remote);
		this.#emitIfMuteChanged(data.peerId, wasMuted);
		// The server may announce consumers right after creating the recv transport, before
		// our createTransport continuation ran: those wait in 'pending'.
		if (this.#recvTransport) void this.#consume(remote);
	}

	async #consume(remote: RemoteConsumer): Promise<void> {
		const transport = this.#recvTransport;
		if (!transport || remote.state !== 'pending') return;
		remote.state = 'consuming';
		const { consumerId, producerId, peerId, kind, rtpParameters } = remote.data;
		// Server-side consumers start paused; resumed while the browser sets its receiver up
		// rather than after, so the round trip is not added to the time to first audio. The
		// cost: on a receive connection that is already up, a packet that arrives before the
		// receiver exists (its m-section) is dropped, at most the first one or two.
		const resumed = this.#request('resumeConsumer', { consumerId }).then(() => this.#mark('firstConsumerResumed'));
		resumed.catch(() => undefined);
		try {
			const consumer = await transport.consume({ id: consumerId, producerId, kind, rtpParameters, appData: { peerId } });
			if (this.#isGone(remote)) {
				consumer.close();
				return;
			}
			remote.consumer = consumer;
			remote.state = 'live';
			if (remote.paused) consumer.pause();
			this.#mark('firstTrack');
			this.emit('track', consumerId, peerId, consumer.track);
			await resumed;
		} catch (error) {
			if (this.#isGone(remote) || isConnectionLoss(error)) return;
			this.emit('error', new ParleyError('E_MEDIA_FAILED', `Could not receive audio from a peer: ${toParleyError(error, 'E_MEDIA_FAILED').message}`, { cause: error }));
		}
	}

	/** Closed while an await was in flight (a separate method so the state is re-read). */
	#isGone(remote: RemoteConsumer): boolean {
		return this.#closed || remote.state === 'closed';
	}

	#closeConsumer(consumerId: string): void {
		const remote = this.#consumers.get(consumerId);
		if (!remote) return;
		const wasMuted = this.isPeerMuted(remote.data.peerId);
		const wasLive = remote.state === 'live';
		remote.state = 'closed';
		this.#consumers.delete(consumerId);
		remote.consumer?.close();
		if (wasLive) this.emit('trackEnded', consumerId);
		this.#emitIfMuteChanged(remote.data.peerId, wasMuted);
	}

	#setConsumerPaused(consumerId: string, paused: boolean): void {
		const remote = this.#consumers.get(consumerId);
		if (!remote || remote.paused === paused) return;
		const wasMuted = this.isPeerMuted(remote.data.peerId);
		remote.paused = paused;
		if (paused) remote.consumer?.pause();
		else remote.consumer?.resume();
		this.#emitIfMuteChanged(remote.data.peerId, wasMuted);
	}

	#emitIfMuteChanged(peerId: string, wasMuted: boolean): void {
		// Closing drops every consumer: that says nothing about whether the peer is muted.
		if (this.#closed) return;
		const muted = this.isPeerMuted(peerId);
		if (muted !== wasMuted) this.emit('peerMuteChanged', peerId, muted);
	}
}
