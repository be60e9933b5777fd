// The public face of the browser library: connect, join a channel, speak, listen, mute,
// leave. It keeps what the user asked for (the channel, the microphone, mute) apart from
// what the network currently allows (one SignalingConnection, one ChannelSession), so that
// after a lost connection or a closing channel it can rebuild the latter from the former
// without the application doing anything. Voice messages ride along: recordings of our own
// live producer (signaling), the HTTP API to list, play and delete them, and tus uploads.
import type { types as mc } from 'mediasoup-client';
import type { Grants, PeerInfo } from '../protocol/messages.js';
import { CHANNEL_NAME_PATTERN } from '../protocol/patterns.js';
import type { VoiceMessageDestination, VoiceMessageInfo } from '../protocol/schemas.js';
import { ChannelSession, voiceCodecOptions, type AudioLevel, type PeerScore, type TransportStats } from './ChannelSession.js';
import type { ConnectionPath } from './connectionPath.js';
import { EntryUrls } from './EntryUrls.js';
import { openMicrophone } from './microphone.js';
import { createDevice, prepareHandlerFactory } from './nativeCapabilities.js';
import { isConnectionLoss, isFinalError, isParleyError, ParleyError, toParleyError } from './ParleyError.js';
import { BackoffReconnectPolicy, type ReconnectPolicy } from './ReconnectPolicy.js';
import { RemoteAudio, type PeerPlayback } from './RemoteAudio.js';
import { SignalingConnection, type SignalingClose, type Welcome } from './SignalingConnection.js';
import { TypedEmitter } from './TypedEmitter.js';
import {
	assertValidDestination,
	httpBaseUrl,
	VoiceMessageApi,
	type ListVoiceMessagesOptions,
	type VoiceMessageListTarget,
	type VoiceMessagePage,
} from './VoiceMessageApi.js';
import { VoiceMessageUploader, type UploadProgress, type VoiceMessageUploaderOptions } from './VoiceMessageUploader.js';
import { VoiceRecorder, type VoiceRecording } from './VoiceRecorder.js';

export type { VoiceRecording } from './VoiceRecorder.js';

/**
 * 'reconnected' is connected again after 'reconnecting' (a lost connection, a closing
 * channel or failed media); 'disconnected' carries an error when it was not asked for.
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'reconnected' | 'disconnected';

export interface ParleyClientOptions {
	/** The signaling endpoint, e.g. `wss://parley.example/ws` (or give `urls`). */
	url?: string;
	/**
	 * Several entry endpoints (nodes of one cluster), tried in turn: connect() moves to the
	 * next when one cannot be reached, and each reconnect after a lost connection starts at
	 * the next one, so a node that died is left behind. Any node accepts any join: a node
	 * that does not serve the channel redirects the client (E_REDIRECT, followed
	 * transparently, at most 3 hops).
	 */
	urls?: string[];
	/**
	 * Hosts an E_REDIRECT may send the client to besides the hosts of the entry URLs (host
	 * names, or `*.example.com` for subdomains). Given: a redirect anywhere else is refused
	 * with E_REDIRECT (the token travels to the target). Not given: the client follows the
	 * node the server names (taken from the cluster's signed node registry). Redirects are
	 * never followed from wss: to ws: or to other schemes either way.
	 */
	redirectHosts?: string[];
	/**
	 * The access token (JWT), or a function returning a fresh one: it is called again for
	 * each reconnect, so a token that expired meanwhile does not end the call.
	 */
	token: string | (() => string | Promise<string>);
	reconnectPolicy?: ReconnectPolicy;
	requestTimeoutMs?: number;
	/** Play remote voices through hidden <audio> elements (default true). */
	playAudio?: boolean;
	/** How long ICE may stay 'disconnected' before an ICE restart (default 3000). */
	iceDisconnectedGraceMs?: number;
	/**
	 * Send and receive audio only through the TURN servers the server hands out (turn.urls),
	 * never directly (iceTransportPolicy 'relay'): hides the browser's addresses from the
	 * media server and tests the relay. Without TURN servers configured nothing connects.
	 */
	relayOnly?: boolean;
	/**
	 * Send Opus inside RED (RFC 2198: each packet carries the previous frames again, so a lost
	 * packet is rebuilt from the next one) when the server offers audio/red and the browser can
	 * send it (Chromium; Firefox sends plain Opus). Default true; false always sends plain
	 * Opus. Listening is unaffected: the server hands RED only to browsers that accept it.
	 */
	opusRed?: boolean;
	/** Builds the mediasoup-client Device; default detects the browser. Tests pass a FakeHandler one. */
	createDevice?: () => mc.Device | Promise<mc.Device>;
	/** Creates the WebSocket; default the browser's. */
	createWebSocket?: (url: string, protocols: string[]) => WebSocket;
	/** Origin of the HTTP API (voice messages, uploads); default `url` with ws -> http, wss -> https. */
	httpUrl?: string;
	/** For the HTTP API; default the browser's fetch. */
	fetch?: typeof fetch;
	/** Upload tuning: chunk size (default 256 KiB), retry policy, resume after reload. */
	upload?: Pick<VoiceMessageUploaderOptions, 'chunkSizeBytes' | 'retryPolicy' | 'resumable' | 'urlStorage' | 'createUpload'>;
}

export interface PublishTrackOptions {
	/** Opus in-band forward error correction: recovers lost packets from the next one (default true). */
	opusFec?: boolean;
	/** Opus discontinuous transmission: almost no packets while silent (default true). */
	opusDtx?: boolean;
	/**
	 * Retransmit lost packets when the server asks (RTCP NACK; default false). Costs a round
	 * trip, so it rarely saves live audio, but a recording can wait for it: with RED at
	 * distance 2 it closes the last holes of a recording made through heavy loss.
	 */
	opusNack?: boolean;
}

export interface PublishMicrophoneOptions extends PublishTrackOptions {
	/** A microphone from navigator.mediaDevices.enumerateDevices(); the default one otherwise. */
	deviceId?: string;
}

export interface UploadVoiceMessageOptions {
	/** Default: the channel we are in. */
	destination?: VoiceMessageDestination;
	onProgress?: (progress: UploadProgress) => void;
	/** Cancels the upload (the server's partial copy is deleted); rejects with E_ABORTED. */
	signal?: AbortSignal;
	/** The name sent with the file; a File's own name by default. */
	fileName?: string;
}

/** How well we hear one remote peer: the server's scores and our receiver's measurements. */
export interface PeerQuality {
	/** The server's 0-10 score of its stream to us (null before its first report). */
	score: number | null;
	/** The server's 0-10 score of how it receives that peer's microphone. */
	producerScore: number | null;
	/** Packets lost on the way to us since the previous call (cumulative on the first), percent. */
	lossPercent: number | null;
	/** Interarrival jitter of that peer's packets at our receiver. */
	jitterMs: number | null;
	/** Round trip between us and the server on the path we receive over. */
	roundTripMs: number | null;
}

export interface JoinResult {
	peerId: string;
	channel: string;
	/** The other peers already in the channel. */
	peers: PeerInfo[];
}

export interface ParleyClientEvents {
	connectionState: [state: ConnectionState, error?: ParleyError];
	/** Every peer in `peers` was announced by one peerJoined, and leaves with one peerLeft. */
	peerJoined: [peer: PeerInfo];
	peerLeft: [peer: PeerInfo];
	peersChanged: [peers: Map<string, PeerInfo>];
	/** The channel's dominant speaker (possibly us), null when nobody speaks. */
	activeSpeaker: [peerId: string | null];
	/** Peers above the speaking threshold (dBov), throttled by the server. */
	audioLevels: [levels: AudioLevel[]];
	muteChanged: [muted: boolean];
	/** A moderator muted or unmuted `peerId` on the server (our own peer id: we cannot unmute
	 * ourselves until they unmute us). */
	mutedByModerator: [peerId: string, muted: boolean];
	/** A moderator changed our grants (without canPublish our microphone was unpublished). */
	grantsChanged: [grants: Grants];
	/** A remote peer muted or unmuted. */
	peerMuteChanged: [peerId: string, muted: boolean];
	/** The server's 0-10 score of how it receives our microphone. */
	producerScore: [score: number];
	/** The server's scores for a remote peer's voice (see peerQuality() for the rest). */
	peerScore: [peerId: string, score: PeerScore];
	remoteStream: [peerId: string, stream: MediaStream];
	remoteStreamRemoved: [peerId: string];
	/**
	 * A voice message we sent or may hear changed status (recording, processing, ready,
	 * failed); `reason` says why a recording ended by itself (e.g. 'max duration reached').
	 */
	voiceMessage: [message: VoiceMessageInfo, reason?: string];
	/** Our recording started (a recording) or ended (null, with why when not stopRecording()). */
	recordingChanged: [recording: VoiceRecording | null, reason?: string];
	/** Something failed without ending the connection (it is still usable). */
	error: [error: ParleyError];
}

/** What the user asked to publish; it outlives sessions so a rejoin can republish it. */
interface Publication {
	track: MediaStreamTrack;
	/** Opened by publishMicrophone (we stop it), or given to publishTrack (the caller does). */
	owned: boolean;
	codecOptions: mc.ProducerCodecOptions;
}

/** The recovery in progress: the loop retries until it has a socket and, if wanted, a channel. */
interface Recovery {
	needsSocket: boolean;
	/** Set by #fail (a final close arrived meanwhile): the loop stops at its next step. */
	abandoned: boolean;
}

const LEAVE_TIMEOUT_MS = 2000;

export class ParleyClient extends TypedEmitter<ParleyClientEvents> {
	/** Entry endpoints (options.urls, or [options.url]) and where the next socket connects. */
	readonly #entryUrls: EntryUrls;
	readonly #token: ParleyClientOptions['token'];
	readonly #requestTimeoutMs: number | undefined;
	readonly #iceDisconnectedGraceMs: number;
	readonly #relayOnly: boolean;
	readonly #opusRed: boolean;
	readonly #createDevice: (() => mc.Device | Promise<mc.Device>) | undefined;
	readonly #createWebSocket: ((url: string, protocols: string[]) => WebSocket) | undefined;
	readonly #reconnectPolicy: ReconnectPolicy;
	readonly #remoteAudio: RemoteAudio;
	#state: ConnectionState = 'disconnected';
	#signaling: SignalingConnection | null = null;
	#welcome: Welcome | null = null;
	#connecting: Promise<Welcome> | null = null;
	#device: mc.Device | null = null;
	#deviceCapabilitiesKey = '';
	/** The channel the user wants to be in; kept through reconnects, cleared by leave(). */
	#targetChannel: string | null = null;
	#session: ChannelSession | null = null;
	#peers = new Map<string, PeerInfo>();
	/** Remote mute as last reported, kept across sessions so a rejoin can correct it. */
	#peerMuted = new Map<string, boolean>();
	#activeSpeakerId: string | null = null;
	/** Latest consumerScore per remote peer, and the receiver counters peerQuality() last saw. */
	#peerScores = new Map<string, PeerScore>();
	#peerPacketCounts = new Map<string, { lost: number; received: number }>();
	#publication: Publication | null = null;
	#muted = false;
	#closedByUser = false;
	#recovery: Recovery | null = null;
	/** Channel operations (join, leave, publish, rejoin) run one at a time, in call order. */
	#operations: Promise<unknown> = Promise.resolve();
	/** Aborted by close(): wakes recovery sleeps. */
	#lifetime = new AbortController();
	#shutdownReconnectAtMs: number | null = null;
	#shutdownTimer: ReturnType<typeof setTimeout> | undefined;
	/** performance.now() when the latest publishMicrophone asked for and got the microphone. */
	#microphoneTimings: Record<string, number> = {};
	/** The token last obtained (audio URLs carry it). */
	#lastToken: string | null = null;
	readonly #voiceApi: VoiceMessageApi;
	readonly #uploader: VoiceMessageUploader;
	readonly #recorder = new VoiceRecorder();

	constructor(options: ParleyClientOptions) {
		super();
		const entryUrls = options.urls?.length ? [...options.urls] : options.url !== undefined ? [options.url] : [];
		if (entryUrls.length === 0) throw new TypeError('url or urls is required');
		this.#entryUrls = new EntryUrls(entryUrls, options.redirectHosts ? { redirectHosts: options.redirectHosts } : {});
		if (typeof options.token !== 'string' && typeof options.token !== 'function') throw new TypeError('token must be a string or a function');
		if (options.httpUrl !== undefined && !/^https?:\/\//.test(options.httpUrl)) throw new TypeError(`httpUrl must be an absolute http:// or https:// URL, got ${JSON.stringify(options.httpUrl)}`);
		this.#token = options.token;
		this.#requestTimeoutMs = options.requestTimeoutMs;
		this.#iceDisconnectedGraceMs = options.iceDisconnectedGraceMs ?? 3000;
		this.#relayOnly = options.relayOnly ?? false;
		this.#opusRed = options.opusRed ?? true;
		this.#createDevice = options.createDevice;
		this.#createWebSocket = options.createWebSocket;
		this.#reconnectPolicy = options.reconnectPolicy ?? new BackoffReconnectPolicy();
		this.#remoteAudio = new RemoteAudio({ play: options.playAudio ?? true });
		this.#remoteAudio.on('stream', (peerId, stream) => this.emit('remoteStream', peerId, stream));
		this.#remoteAudio.on('streamRemoved', (peerId) => this.emit('remoteStreamRemoved', peerId));
		this.#remoteAudio.on('playbackBlocked', (error) => this.emit('error', error));
		this.#remoteAudio.on('error', (error) => this.emit('error', error));
		const httpUrl = options.httpUrl ?? httpBaseUrl(entryUrls[0]!);
		const token = (): Promise<string> => this.#resolveToken('E_NETWORK');
		this.#voiceApi = new VoiceMessageApi({ baseUrl: httpUrl, token, ...(options.fetch && { fetch: options.fetch }) });
		this.#uploader = new VoiceMessageUploader({ ...options.upload, endpoint: new URL('/voice/uploads', this.#voiceApi.baseUrl).toString(), token });
		this.#recorder.on('recordingChanged', (...change) => this.emit('recordingChanged', ...change));
	}

	// ---- state ------------------------------------------------------------------------

	get state(): ConnectionState {
		return this.#state;
	}

	/** The server's welcome of the current connection: user, grants, allowed channels, limits. */
	get welcome(): Welcome | null {
		return this.#welcome;
	}

	get grants(): Grants | null {
		return this.#welcome?.grants ?? null;
	}

	/** The signaling endpoint of the current (or next) connection: an entry URL, or the node a join was redirected to. */
	get serverUrl(): string {
		return this.#entryUrls.current;
	}

	/** The channel joined (or being rejoined); null after leave(). */
	get channel(): string | null {
		return this.#targetChannel;
	}

	/** Our peer id in the channel; a rejoin gets a new one. */
	get peerId(): string | null {
		return this.#session?.peerId ?? null;
	}

	/** The other peers in the channel (a copy). */
	get peers(): Map<string, PeerInfo> {
		return new Map(this.#peers);
	}

	get producerId(): string | null {
		return this.#session?.producerId ?? null;
	}

	/**
	 * What our microphone is sent as (codec mimeTypes, the sent one first): ['audio/red',
	 * 'audio/opus'] with RED (see the opusRed option), ['audio/opus'] without; null when no
	 * producer is live.
	 */
	get producerCodecs(): string[] | null {
		return this.#session?.producerCodecs ?? null;
	}

	/** What we receive from `peerId` as (codec mimeTypes per consumer, as producerCodecs). */
	peerCodecs(peerId: string): string[][] {
		return this.#session?.peerCodecs(peerId) ?? [];
	}

	/** Whether the user muted; applies to the current and any later publication. */
	get muted(): boolean {
		return this.#muted;
	}

	get activeSpeakerId(): string | null {
		return this.#activeSpeakerId;
	}

	/** True when a microphone (or track) is published or waits to be republished. */
	get publishing(): boolean {
		return this.#publication !== null;
	}

	/** Our recording in progress, if any. */
	get recording(): VoiceRecording | null {
		return this.#recorder.recording;
	}

	isPeerMuted(peerId: string): boolean {
		return this.#peerMuted.get(peerId) ?? false;
	}

	/** The microphone (or track) we publish or will republish; null when not publishing. */
	get microphoneTrack(): MediaStreamTrack | null {
		return this.#publication?.track ?? null;
	}

	/** How a remote peer is played for us: volume, local mute, the gain applied. */
	peerPlayback(peerId: string): PeerPlayback {
		return this.#remoteAudio.playback(peerId);
	}

	/** Plays a remote peer louder or quieter for us alone (0-2, 1 as received), with Web Audio. */
	setPeerVolume(peerId: string, volume: number): void {
		this.#remoteAudio.setPlayback(peerId, { volume });
	}

	/** Silences a remote peer for us alone (the peer and the others are not told); keeps the volume. */
	setPeerPlaybackMuted(peerId: string, muted: boolean): void {
		this.#remoteAudio.setPlayback(peerId, { muted });
	}

	/**
	 * How well we hear `peerId`: the server's scores (consumerScore notifications) and, from
	 * our receiver's stats, loss, jitter and the round trip to the server.
	 */
	async peerQuality(peerId: string): Promise<PeerQuality> {
		const score = this.#peerScores.get(peerId);
		const quality: PeerQuality = { score: score?.score ?? null, producerScore: score?.producerScore ?? null, lossPercent: null, jitterMs: null, roundTripMs: null };
		const reports = (await this.#session?.consumerStats(peerId)) ?? [];
		let lost = 0;
		let received = 0;
		let inbound = false;
		for (const report of reports) {
			report.forEach((stat: { type: string; kind?: string; packetsLost?: number; packetsReceived?: number; jitter?: number; state?: string; nominated?: boolean; currentRoundTripTime?: number }) => {
				if (stat.type === 'inbound-rtp' && stat.kind !== 'video') {
					inbound = true;
					lost += stat.packetsLost ?? 0;
					received += stat.packetsReceived ?? 0;
					if (stat.jitter !== undefined) quality.jitterMs = Math.max(quality.jitterMs ?? 0, stat.jitter * 1000);
				} else if (stat.type === 'candidate-pair' && stat.nominated && stat.state === 'succeeded' && stat.currentRoundTripTime !== undefined) {
					quality.roundTripMs = stat.currentRoundTripTime * 1000;
				}
			});
		}
		if (inbound) {
			const previous = this.#peerPacketCounts.get(peerId);
			// Counters restart with a new consumer (a rejoin): then count from zero again.
			const since = previous && previous.received <= received && previous.lost <= lost ? previous : { lost: 0, received: 0 };
			const lostNow = lost - since.lost;
			const total = lostNow + (received - since.received);
			quality.lossPercent = total > 0 ? (100 * lostNow) / total : 0;
			this.#peerPacketCounts.set(peerId, { lost, received });
		}
		return quality;
	}

	/**
	 * When each step of connecting and joining was reached, performance.now() of this page:
	 * the socket's (created, wsOpen, welcome), the latest publishMicrophone's (micRequested,
	 * micOpened: getUserMedia) and the channel session's (ChannelSession.joinTimings).
	 * For measuring where a join's time goes; empty before connect().
	 */
	get joinTimings(): Record<string, number> {
		const open = this.#signaling?.openTimings;
		return { ...(open && { socketCreated: open.created, ...(open.wsOpen !== undefined && { wsOpen: open.wsOpen }), ...(open.welcome !== undefined && { welcome: open.welcome }) }), ...this.#microphoneTimings, ...this.#session?.joinTimings };
	}

	remoteStreams(): Map<string, MediaStream> {
		return this.#remoteAudio.streams();
	}

	/** Retries remote playback after E_AUTOPLAY_BLOCKED; call it from a user gesture. */
	resumeAudio(): Promise<void> {
		return this.#remoteAudio.resumePlayback();
	}

	/**
	 * How our audio reaches the server, per transport: the selected ICE candidate pair from
	 * the browser's stats (host/srflx/relay, udp/tcp, and the relay's own protocol). Empty
	 * when not in a channel or before ICE connected.
	 */
	async connectionPath(): Promise<ConnectionPath[]> {
		return (await this.#session?.connectionPaths()) ?? [];
	}

	/** The server's stats for each of our transports (empty when not in a channel). */
	async stats(): Promise<TransportStats[]> {
		return (await this.#session?.stats()) ?? [];
	}

	// ---- connection -------------------------------------------------------------------

	/** Opens the connection; resolves with the welcome (user, grants, limits). */
	connect(): Promise<Welcome> {
		if (this.#signaling?.isOpen && this.#welcome && !this.#recovery) return Promise.resolve(this.#welcome);
		if (this.#connecting) return this.#connecting;
		if (this.#recovery) return Promise.reject(new ParleyError('E_INVALID_STATE', 'Already reconnecting.'));
		this.#closedByUser = false;
		if (this.#lifetime.signal.aborted) this.#lifetime = new AbortController();
		const connecting = (async (): Promise<Welcome> => {
			this.#setState('connecting');
			try {
				const signaling = await this.#openEntrySignaling();
				this.#setState('connected');
				return signaling.welcome;
			} catch (error) {
				const parleyError = toParleyError(error, 'E_CONNECTION_CLOSED');
				this.#setState('disconnected', parleyError);
				throw parleyError;
			} finally {
				this.#connecting = null;
			}
		})();
		this.#connecting = connecting;
		return connecting;
	}

	/** Leaves the channel, closes the connection; no reconnect. Idempotent. */
	async close(): Promise<void> {
		if (this.#closedByUser && this.#state === 'disconnected') return;
		this.#closedByUser = true;
		this.#lifetime.abort();
		clearTimeout(this.#shutdownTimer);
		const signaling = this.#signaling;
		// Leave politely, but never let a stuck request hold close(): closing the socket
		// makes the server drop us anyway (and fails the stuck request at once).
		const grace = setTimeout(() => signaling?.close(), LEAVE_TIMEOUT_MS);
		try {
			await this.leave();
		} finally {
			clearTimeout(grace);
		}
		signaling?.close();
		if (this.#signaling === signaling) this.#signaling = null;
		this.#remoteAudio.clear();
		this.#setState('disconnected');
	}

	// ---- channel ----------------------------------------------------------------------

	/** Joins `channel`: transports to listen and/or speak as the token grants. */
	async join(channel: string): Promise<JoinResult> {
		if (!CHANNEL_NAME_PATTERN.test(channel)) {
			throw new ParleyError('E_BAD_REQUEST', 'Channel names are 1-64 characters of A-Z a-z 0-9 . _ : - (not starting with punctuation).');
		}
		if (!this.#signaling?.isOpen || this.#recovery) throw new ParleyError('E_NOT_CONNECTED');
		if (this.#targetChannel !== null) throw new ParleyError('E_ALREADY_JOINED');
		this.#targetChannel = channel;
		try {
			return await this.#serially(() => this.#enterChannelFollowingRedirects(channel));
		} catch (error) {
			// After a lost connection the reconnect still brings us into the channel;
			// any other failure means we are not in it.
			if (!isConnectionLoss(error) && this.#targetChannel === channel) this.#targetChannel = null;
			throw error;
		}
	}

	/** Leaves the channel: closes transports and stops the microphone. Never throws. */
	async leave(): Promise<void> {
		this.#targetChannel = null;
		await this.#serially(async () => {
			try {
				await this.#endSession();
			} finally {
				this.#releasePublication();
				this.#setMuted(false);
				this.#syncPeers(new Map());
			}
		});
	}

	// ---- speaking ---------------------------------------------------------------------

	/**
	 * Opens the microphone (mono, echo cancellation, noise suppression, auto gain) and
	 * publishes it as Opus. Needs the canPublish grant (E_FORBIDDEN otherwise). Errors from
	 * the browser come as E_MIC_* / E_INSECURE_CONTEXT. Publishing again replaces the mic.
	 */
	async publishMicrophone({ opusFec = true, opusDtx = true, opusNack = false, deviceId }: PublishMicrophoneOptions = {}): Promise<void> {
		this.#assertCanPublish();
		this.#microphoneTimings = { micRequested: performance.now() };
		// Outside the operation queue: a permission prompt must not hold up a rejoin.
		const track = await openMicrophone(deviceId === undefined ? {} : { deviceId });
		this.#microphoneTimings.micOpened = performance.now();
		try {
			await this.#publish({ track, owned: true, codecOptions: voiceCodecOptions(opusFec, opusDtx, opusNack) });
		} catch (error) {
			if (this.#publication?.track !== track) track.stop();
			throw error;
		}
	}

	/**
	 * Publishes a track the caller owns (a synthetic source, a processed stream). The client
	 * never stops it.
	 */
	async publishTrack(track: MediaStreamTrack, { opusFec = true, opusDtx = true, opusNack = false }: PublishTrackOptions = {}): Promise<void> {
		if (track.kind !== 'audio') throw new TypeError('only audio tracks can be published');
		this.#assertCanPublish();
		await this.#publish({ track, owned: false, codecOptions: voiceCodecOptions(opusFec, opusDtx, opusNack) });
	}

	/**
	 * Speaks through another microphone without leaving or renegotiating: the producer's
	 * track is replaced (the server, listeners and a recording in progress see the same
	 * producer), mute is kept, and the old microphone is stopped if we opened it. Not
	 * publishing yet: publishes that microphone. E_MIC_* when it cannot be opened.
	 */
	async switchMicrophone(deviceId: string): Promise<void> {
		this.#assertCanPublish();
		if (!this.#publication) return this.publishMicrophone({ deviceId });
		const track = await openMicrophone({ deviceId });
		try {
			await this.#serially(async () => {
				const current = this.#publication;
				if (!current) throw new ParleyError('E_INVALID_STATE', 'Stopped publishing while the microphone was opening.');
				const session = this.#session;
				// Reconnecting (no producer): the rejoin publishes the new track.
				if (session?.producerId != null) await session.replaceTrack(track);
				this.#publication = { ...current, track, owned: true };
				if (current.owned) current.track.stop();
			});
		} catch (error) {
			if (this.#publication?.track !== track) track.stop();
			throw error;
		}
	}

	/** Stops publishing (and stops the microphone if we opened it). */
	unpublish(): Promise<void> {
		return this.#serially(async () => {
			try {
				await this.#session?.closeProducer();
			} finally {
				this.#releasePublication();
			}
		});
	}

	/** Mutes: the mic track is disabled at once and the server stops forwarding it. */
	mute(): Promise<void> {
		return this.#applyMute(true);
	}

	unmute(): Promise<void> {
		return this.#applyMute(false);
	}

	// ---- voice messages ---------------------------------------------------------------

	/**
	 * Records our live microphone on the server into a voice message for `destination`
	 * (default: the channel we are in). Needs the canRecord grant and a published microphone.
	 * Resolves with the voice message id; the recording runs until stopRecording(), the
	 * server's maximum duration, or the producer closing (`recordingChanged` says which).
	 */
	async startRecording(destination?: VoiceMessageDestination): Promise<string> {
		this.#assertCanRecord();
		const channel = this.#targetChannel;
		if (channel === null) throw new ParleyError('E_NOT_JOINED');
		const target = destination ?? { kind: 'channel', channel };
		assertValidDestination(target);
		// In the queue: the producer must not be replaced while the server looks it up.
		return this.#recorder.start(() =>
			this.#serially(async () => {
				const session = this.#session;
				const producerId = session?.joined ? session.producerId : null;
				const signaling = this.#signaling;
				if (!signaling?.isOpen) throw new ParleyError('E_NOT_CONNECTED');
				if (!session || producerId === null) throw new ParleyError('E_INVALID_STATE', 'Publish a microphone first: a recording is made from your live voice.');
				const { voiceMessageId, maxDurationMs } = await signaling.request('startRecording', { producerId, destination: target });
				// Decided here, still in the queue: the next operation may replace the producer.
				const producerLive = this.#session === session && session.producerId === producerId;
				this.#recorder.started({ voiceMessageId, destination: target, producerId, maxDurationMs }, { producerLive });
				return voiceMessageId;
			}),
		);
	}

	/**
	 * Stops our recording; resolves with the voice message once the file is complete
	 * (status processing: `voiceMessage` events follow it to ready or failed). Also collects
	 * a recording that ended by itself. E_INVALID_STATE when there is none.
	 */
	stopRecording(): Promise<VoiceMessageInfo> {
		return this.#recorder.stop(async (voiceMessageId) => {
			const signaling = this.#signaling;
			if (!signaling?.isOpen) throw new ParleyError('E_NOT_CONNECTED');
			const { voiceMessage } = await signaling.request('stopRecording', { voiceMessageId });
			return voiceMessage;
		});
	}

	/** One page of voice messages, newest first: a channel's, or those sent to us (`{user: ourUserId}`). */
	listVoiceMessages(target: VoiceMessageListTarget, options: ListVoiceMessagesOptions = {}): Promise<VoiceMessagePage> {
		return this.#voiceApi.list(target, options);
	}

	getVoiceMessage(id: string): Promise<VoiceMessageInfo> {
		return this.#voiceApi.get(id);
	}

	/** Deletes one of our own voice messages (E_FORBIDDEN for others', E_NOT_FOUND when gone). */
	deleteVoiceMessage(id: string): Promise<void> {
		return this.#voiceApi.delete(id);
	}

	/**
	 * Absolute URL of a message's Ogg Opus file for an <audio> src. Browsers cannot send
	 * headers for media, so the server signs a link for this message and our user (asked for
	 * with the token as a header; the token is not in the link). It plays and seeks once the
	 * message is ready, for auth.audioUrlTtlS (default 5 minutes): ask again after that.
	 */
	async voiceMessageAudioUrl(message: VoiceMessageInfo | string): Promise<string> {
		return (await this.#voiceApi.audioUrl(message)).url;
	}

	/**
	 * Uploads an audio file (any format the server can convert) as a voice message to
	 * `destination` (default: our channel), resumably over tus. Resolves with the message
	 * the server created for it (usually still processing; `voiceMessage` events follow it).
	 * Needs the canRecord grant and a connection (the server announces the message on it).
	 */
	async uploadVoiceMessage(file: File | Blob, { destination, onProgress, signal, fileName }: UploadVoiceMessageOptions = {}): Promise<VoiceMessageInfo> {
		this.#assertCanRecord();
		let target = destination;
		if (target === undefined) {
			if (this.#targetChannel === null) throw new ParleyError('E_NOT_JOINED', 'Join a channel or name a destination.');
			target = { kind: 'channel', channel: this.#targetChannel };
		}
		assertValidDestination(target);
		const { uploadUrl } = await this.#uploader.upload(file, {
			destination: target,
			...(onProgress && { onProgress }),
			...(signal && { signal }),
			...(fileName !== undefined && { fileName }),
		});
		// The server names the voice message after the upload, and creates it before it
		// acknowledges the last chunk: the message exists now.
		const id = new URL(uploadUrl, this.#voiceApi.baseUrl).pathname.split('/').pop() ?? '';
		return this.getVoiceMessage(id);
	}

	// ---- internals: voice messages -------------------------------------------------------

	#assertCanRecord(): Welcome {
		const welcome = this.#welcome;
		if (!welcome) throw new ParleyError('E_NOT_CONNECTED');
		if (!welcome.grants.canRecord) throw new ParleyError('E_FORBIDDEN', 'This access token does not allow sending voice messages.');
		return welcome;
	}

	#onVoiceMessage(message: VoiceMessageInfo, reason: string | undefined): void {
		if (message.source === 'recording' && message.status !== 'recording' && message.ownerId === this.#welcome?.userId) {
			this.#recorder.ended(message.id, reason);
		}
		this.emit('voiceMessage', message, reason);
	}

	// ---- internals: connection ---------------------------------------------------------

	#setState(state: ConnectionState, error?: ParleyError): void {
		if (this.#state === state && error === undefined) return;
		this.#state = state;
		this.emit('connectionState', state, error);
	}

	/** The current token (from the provider when it is a function). */
	async #resolveToken(fallbackCode: 'E_CONNECTION_CLOSED' | 'E_NETWORK'): Promise<string> {
		let token: string;
		try {
			token = typeof this.#token === 'function' ? await this.#token() : this.#token;
		} catch (error) {
			// A provider that cannot reach its server is worth retrying; one that says the
			// user may not have a token throws a final ParleyError itself (E_AUTH).
			throw toParleyError(error, fallbackCode);
		}
		this.#lastToken = token;
		return token;
	}

	async #openSignaling(): Promise<SignalingConnection> {
		const token = await this.#resolveToken('E_CONNECTION_CLOSED');
		this.#assertNotClosedByUser();
		const opening = SignalingConnection.open({
			url: this.#entryUrls.current,
			token,
			...(this.#requestTimeoutMs === undefined ? {} : { requestTimeoutMs: this.#requestTimeoutMs }),
			...(this.#createWebSocket === undefined ? {} : { createWebSocket: this.#createWebSocket }),
		});
		// The browser's own capabilities, asked for while the socket opens (the socket first:
		// the probes' peer connections take the main thread for a while; nativeCapabilities.ts).
		if (!this.#createDevice) void prepareHandlerFactory();
		const signaling = await opening;
		if (this.#closedByUser) {
			signaling.close();
			this.#assertNotClosedByUser();
		}
		this.#signaling = signaling;
		this.#welcome = signaling.welcome;
		signaling.on('close', (info) => this.#onSignalingClose(signaling, info));
		signaling.on('error', (error) => this.emit('error', error));
		signaling.on('channelClosing', ({ reason }) => this.#onChannelClosing(signaling, reason));
		signaling.on('serverShuttingDown', ({ reconnectAfterMs }) => this.#onServerShuttingDown(signaling, reconnectAfterMs));
		signaling.on('participantMuted', ({ peerId, muted }) => {
			if (signaling === this.#signaling) this.emit('mutedByModerator', peerId, muted);
		});
		signaling.on('grantsChanged', ({ grants }) => {
			if (signaling !== this.#signaling) return;
			// The server closed our producer; let go of the microphone too (and do not republish it on a rejoin).
			if (!grants.canPublish && this.#publication) this.unpublish().catch((error: unknown) => this.emit('error', toParleyError(error, 'E_MEDIA_FAILED')));
			this.#takeGrants(grants);
		});
		signaling.on('voiceMessage', ({ message, reason }) => {
			if (signaling === this.#signaling) this.#onVoiceMessage(message, reason);
		});
		return signaling;
	}

	/** `grants` (and the checks before a publish) read what the server now allows, not the welcome's. */
	#takeGrants(grants: Grants): void {
		if (this.#welcome) this.#welcome = { ...this.#welcome, grants };
		this.emit('grantsChanged', grants);
	}

	#assertNotClosedByUser(): void {
		if (this.#closedByUser) throw new ParleyError('E_CONNECTION_CLOSED', 'The client was closed.');
	}

	#onSignalingClose(signaling: SignalingConnection, info: SignalingClose): void {
		if (signaling !== this.#signaling) return;
		this.#signaling = null;
		clearTimeout(this.#shutdownTimer);
		if (info.byClient || this.#closedByUser) return;
		// The server dropped our peer with the connection: the media goes now, not later.
		this.#dropSession();
		// A final close ends everything, even a recovery in progress: reconnecting after
		// "replaced" would kick out the user's other session, and auth will not get better.
		if (info.final) this.#fail(info.error);
		else if (this.#recovery) this.#recovery.needsSocket = true;
		else void this.#recover(info.error, { needsSocket: true });
	}

	#onChannelClosing(signaling: SignalingConnection, reason: string): void {
		if (signaling !== this.#signaling || this.#targetChannel === null) return;
		void this.#recover(new ParleyError('E_CHANNEL_CLOSING', `The channel is closing (${reason}); rejoining.`), { needsSocket: false });
	}

	/** Moves to another node before this one goes away, after the delay the server asked for. */
	#onServerShuttingDown(signaling: SignalingConnection, reconnectAfterMs: number): void {
		if (signaling !== this.#signaling) return;
		const delayMs = Math.max(0, reconnectAfterMs);
		this.#shutdownReconnectAtMs = Date.now() + delayMs;
		clearTimeout(this.#shutdownTimer);
		this.#shutdownTimer = setTimeout(() => {
			if (signaling !== this.#signaling || this.#closedByUser) return;
			this.#signaling = null;
			signaling.close(1000, 'server shutting down');
			this.#dropSession();
			if (this.#recovery) this.#recovery.needsSocket = true;
			else void this.#recover(new ParleyError('E_SHUTTING_DOWN'), { needsSocket: true });
		}, delayMs);
	}

	/**
	 * Reconnect (new socket) and/or rejoin (new session on the same socket), retrying on the
	 * reconnect policy's schedule until it works, a final error, or the policy gives up.
	 */
	async #recover(reason: ParleyError, { needsSocket }: { needsSocket: boolean }): Promise<void> {
		if (this.#recovery) {
			if (needsSocket) this.#recovery.needsSocket = true;
			return;
		}
		const recovery: Recovery = { needsSocket, abandoned: false };
		const stopped = (): boolean => this.#closedByUser || recovery.abandoned;
		this.#recovery = recovery;
		this.#setState('reconnecting', reason);
		// With the socket gone the server already dropped our peer; with it alive, the rejoin
		// first leaves politely (#enterChannel) so the server frees the old transports.
		if (needsSocket) this.#dropSession();
		let lastError = reason;
		try {
			for (let attempt = 0; ; attempt += 1) {
				let delayMs = this.#reconnectPolicy.nextDelayMs(attempt);
				if (delayMs === null) {
					this.#fail(new ParleyError('E_RECONNECT_FAILED', `Could not reconnect: ${lastError.message}`, { cause: lastError }));
					return;
				}
				if (this.#shutdownReconnectAtMs !== null) {
					delayMs = Math.max(delayMs, this.#shutdownReconnectAtMs - Date.now());
					this.#shutdownReconnectAtMs = null;
				}
				await this.#sleep(delayMs);
				if (stopped()) return;
				try {
					if (recovery.needsSocket || !this.#signaling?.isOpen) {
						recovery.needsSocket = false;
						this.#signaling?.close();
						this.#signaling = null;
						this.#entryUrls.failover();
						await this.#openSignaling();
					}
					const channel = this.#targetChannel;
					if (channel !== null) await this.#serially(() => this.#enterChannelFollowingRedirects(channel));
					if (stopped()) return;
					if (recovery.needsSocket) throw new ParleyError('E_CONNECTION_CLOSED');
					this.#setState('reconnected');
					return;
				} catch (error) {
					if (stopped()) return;
					lastError = toParleyError(error, 'E_CONNECTION_CLOSED');
					if (isFinalError(lastError)) {
						this.#fail(lastError);
						return;
					}
					// No answer may mean a dead socket whose close event has not come yet.
					if (lastError.code === 'E_TIMEOUT') recovery.needsSocket = true;
				}
			}
		} finally {
			this.#recovery = null;
		}
	}

	/** Gives up: nothing will be retried, the state says why. */
	#fail(error: ParleyError): void {
		if (this.#recovery) this.#recovery.abandoned = true;
		this.#targetChannel = null;
		this.#dropSession();
		this.#releasePublication();
		this.#setMuted(false);
		this.#syncPeers(new Map());
		clearTimeout(this.#shutdownTimer);
		const signaling = this.#signaling;
		this.#signaling = null;
		signaling?.close(1000, error.code);
		this.#setState('disconnected', error);
	}

	#sleep(ms: number): Promise<void> {
		const signal = this.#lifetime.signal;
		if (ms <= 0 || signal.aborted) return Promise.resolve();
		return new Promise((resolve) => {
			const done = (): void => {
				clearTimeout(timer);
				signal.removeEventListener('abort', done);
				resolve();
			};
			const timer = setTimeout(done, ms);
			signal.addEventListener('abort', done, { once: true });
		});
	}

	// ---- internals: channel -----------------------------------------------------------

	#serially<T>(operation: () => Promise<T>): Promise<T> {
		const result = this.#operations.then(operation);
		// The queue only orders operations; each caller still gets its own operation's error.
		this.#operations = result.catch(() => undefined);
		return result;
	}

	/** connect(): the entry endpoints in turn, from the current one, until one answers. */
	async #openEntrySignaling(): Promise<SignalingConnection> {
		this.#entryUrls.reset();
		for (let tried = 1; ; tried++) {
			try {
				return await this.#openSignaling();
			} catch (error) {
				if (tried >= this.#entryUrls.size || isFinalError(error) || this.#closedByUser) throw error;
				this.#entryUrls.failover();
			}
		}
	}

	/** Runs in the operation queue: joins, following E_REDIRECT to the node that serves the channel. */
	async #enterChannelFollowingRedirects(channel: string): Promise<JoinResult> {
		this.#entryUrls.resetHops();
		for (;;) {
			try {
				return await this.#enterChannel(channel);
			} catch (error) {
				if (!isParleyError(error, 'E_REDIRECT')) throw error;
				// Throws the redirect itself past the hop limit, or one refusing a bad target.
				this.#entryUrls.follow(error);
				await this.#moveToRedirect();
			}
		}
	}

	/** Replaces the connection with one to the node a join was redirected to (now the current URL). */
	async #moveToRedirect(): Promise<void> {
		const old = this.#signaling;
		this.#signaling = null;
		clearTimeout(this.#shutdownTimer);
		old?.close(1000, 'redirected');
		try {
			await this.#openSignaling();
		} catch (error) {
			// The socket we left is gone: outside a recovery, start one (it rejoins via an entry endpoint).
			if (!this.#recovery && !this.#closedByUser && !isFinalError(error)) void this.#recover(toParleyError(error, 'E_CONNECTION_CLOSED'), { needsSocket: true });
			throw error;
		}
	}

	/** Runs in the operation queue. A new session each time: stale transports never leak in. */
	async #enterChannel(channel: string): Promise<JoinResult> {
		await this.#endSession();
		const signaling = this.#signaling;
		if (!signaling?.isOpen) throw new ParleyError('E_NOT_CONNECTED');
		const session = new ChannelSession({
			signaling,
			channel,
			grants: signaling.welcome.grants,
			loadDevice: (capabilities) => this.#loadDevice(capabilities),
			iceDisconnectedGraceMs: this.#iceDisconnectedGraceMs,
			iceTransportPolicy: this.#relayOnly ? 'relay' : 'all',
		});
		this.#session = session;
		this.#wireSession(session);
		try {
			await session.join();
		} catch (error) {
			await this.#endSession();
			throw error;
		}
		if (this.#session !== session) throw new ParleyError('E_CONNECTION_CLOSED', 'The channel session was closed.');
		this.#syncPeers(session.peers);
		// A peer may have unmuted while we were away: the new session is the truth.
		for (const peerId of [...this.#peerMuted.keys()]) this.#setPeerMuted(peerId, session.isPeerMuted(peerId));
		// A moderator's decision from before this join (a reload, a reconnect) still holds.
		const moderation = session.moderation;
		if (moderation?.grants) {
			if (!moderation.grants.canPublish && this.#publication) this.#releasePublication();
			this.#takeGrants(moderation.grants);
		}
		if (moderation?.muted && session.peerId) this.emit('mutedByModerator', session.peerId, true);
		if (this.#publication) {
			try {
				await this.#produce(session, this.#publication);
			} catch (error) {
				if (isConnectionLoss(error)) throw error;
				// Still in the channel, listening: report why we are not heard.
				this.#releasePublication();
				this.emit('error', toParleyError(error, 'E_MEDIA_FAILED'));
			}
		}
		return { peerId: session.peerId ?? '', channel, peers: [...session.peers.values()] };
	}

	#wireSession(session: ChannelSession): void {
		// Peer events count once the join completed (#syncPeers then takes the full list).
		const current = (): boolean => this.#session === session && session.joined;
		session.on('track', (consumerId, peerId, track) => this.#remoteAudio.add(consumerId, peerId, track));
		session.on('trackEnded', (consumerId) => this.#remoteAudio.remove(consumerId));
		session.on('peerJoined', (peer) => {
			if (current()) this.#syncPeers(new Map([...this.#peers, [peer.peerId, peer]]));
		});
		session.on('peerLeft', (peer) => {
			if (!current()) return;
			const peers = new Map(this.#peers);
			peers.delete(peer.peerId);
			this.#syncPeers(peers);
		});
		session.on('peerMuteChanged', (peerId, muted) => this.#setPeerMuted(peerId, muted));
		session.on('activeSpeaker', (peerId) => this.#setActiveSpeaker(peerId));
		session.on('audioLevels', (levels) => this.emit('audioLevels', levels));
		session.on('producerScore', (score) => this.emit('producerScore', score));
		session.on('peerScore', (peerId, score) => {
			if (this.#session !== session) return;
			this.#peerScores.set(peerId, score);
			this.emit('peerScore', peerId, score);
		});
		session.on('mediaFailed', (error) => {
			if (this.#session === session) void this.#recover(error, { needsSocket: false });
		});
		session.on('error', (error) => this.emit('error', error));
	}

	/** Ends the session politely (leave request when possible). */
	async #endSession(): Promise<void> {
		const session = this.#session;
		if (!session) return;
		this.#session = null;
		this.#setActiveSpeaker(null);
		this.#recorder.lost('left the channel');
		try {
			await session.leave({ timeoutMs: LEAVE_TIMEOUT_MS });
		} catch (error) {
			this.emit('error', toParleyError(error, 'E_CONNECTION_CLOSED'));
		}
	}

	/** Ends the session locally at once (the connection is gone or going). */
	#dropSession(): void {
		const session = this.#session;
		if (!session) return;
		this.#session = null;
		session.close();
		this.#setActiveSpeaker(null);
		this.#recorder.lost('connection lost');
	}

	async #loadDevice(routerRtpCapabilities: mc.RtpCapabilities): Promise<mc.Device> {
		// The same capabilities (same server config) reuse the loaded Device: load() can run
		// only once per Device.
		const key = JSON.stringify(routerRtpCapabilities);
		if (this.#device && this.#deviceCapabilitiesKey === key) return this.#device;
		let device: mc.Device;
		try {
			device = await (this.#createDevice ? this.#createDevice() : createDevice());
			await device.load({ routerRtpCapabilities });
		} catch (error) {
			throw toParleyError(error, 'E_UNSUPPORTED_BROWSER');
		}
		this.#device = device;
		this.#deviceCapabilitiesKey = key;
		return device;
	}

	#syncPeers(peers: ReadonlyMap<string, PeerInfo>): void {
		let changed = false;
		for (const [peerId, peer] of this.#peers) {
			if (peers.has(peerId)) continue;
			this.#peers.delete(peerId);
			this.#peerMuted.delete(peerId);
			this.#peerScores.delete(peerId);
			this.#peerPacketCounts.delete(peerId);
			this.#remoteAudio.forget(peerId);
			this.emit('peerLeft', peer);
			changed = true;
		}
		for (const [peerId, peer] of peers) {
			if (this.#peers.has(peerId)) continue;
			this.#peers.set(peerId, peer);
			this.emit('peerJoined', peer);
			changed = true;
		}
		if (changed) this.emit('peersChanged', this.peers);
	}

	#setPeerMuted(peerId: string, muted: boolean): void {
		if ((this.#peerMuted.get(peerId) ?? false) === muted) return;
		if (muted) this.#peerMuted.set(peerId, true);
		else this.#peerMuted.delete(peerId);
		this.emit('peerMuteChanged', peerId, muted);
	}

	#setActiveSpeaker(peerId: string | null): void {
		if (this.#activeSpeakerId === peerId) return;
		this.#activeSpeakerId = peerId;
		this.emit('activeSpeaker', peerId);
	}

	// ---- internals: publishing ----------------------------------------------------------

	#assertCanPublish(): void {
		if (!this.#welcome) throw new ParleyError('E_NOT_CONNECTED');
		if (!this.#welcome.grants.canPublish) throw new ParleyError('E_FORBIDDEN', 'This access token does not allow speaking.');
		if (this.#targetChannel === null) throw new ParleyError('E_NOT_JOINED');
	}

	/**
	 * Resolves once published, or once queued for the rejoin in progress (the publication
	 * outlives sessions; the next session publishes it).
	 */
	#publish(publication: Publication): Promise<void> {
		return this.#serially(async () => {
			this.#assertCanPublish();
			const previous = this.#publication;
			const session = this.#session;
			if (previous) {
				// Codec options are fixed per producer: replacing means a new producer.
				await session?.closeProducer();
				this.#releasePublication();
			}
			this.#publication = publication;
			if (!session?.joined) return;
			try {
				await this.#produce(session, publication);
			} catch (error) {
				if (isConnectionLoss(error)) return;
				this.#publication = null;
				throw toParleyError(error, 'E_MEDIA_FAILED');
			}
		});
	}

	async #produce(session: ChannelSession, publication: Publication): Promise<void> {
		await session.produce(publication.track, { codecOptions: publication.codecOptions, paused: this.#muted, opusRed: this.#opusRed });
		// mute() may have been called while the producer was being created.
		if (session.producerPaused !== this.#muted) await session.setProducerPaused(this.#muted);
	}

	#releasePublication(): void {
		const publication = this.#publication;
		this.#publication = null;
		if (publication) this.#recorder.lost('producer closed');
		if (publication?.owned) publication.track.stop();
	}

	#setMuted(muted: boolean): void {
		if (this.#muted === muted) return;
		this.#muted = muted;
		this.emit('muteChanged', muted);
	}

	async #applyMute(muted: boolean): Promise<void> {
		this.#setMuted(muted);
		const session = this.#session;
		if (!session || session.producerId === null) return;
		try {
			await session.setProducerPaused(muted);
		} catch (error) {
			// Lost with the connection: the rejoin publishes with the current mute state.
			if (!isConnectionLoss(error)) throw error;
		}
	}
}
