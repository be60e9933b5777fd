// A voice channel: one mediasoup router, its peers, and the audio observers that drive
// speaking indicators. Every producer of a peer is consumed by every other peer that may
// listen; consumers start paused and the client resumes them once its side exists.
// Peers of other nodes (a channel bridging nodes, server/cluster/ChannelBridge.ts) are remote
// peers here: announced, observed and consumed like local ones, but owned by the bridge.
//
// Events fire while the channel changes state (a peer half-removed, the channel closing):
// they go through safeEmit, so a listener that throws cannot stop the change half-way.
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import { RequestError } from '../../protocol/RequestError.js';
import { CLOSE_CODES, type Grants, type NotificationName, type Notifications, type PeerInfo } from '../../protocol/messages.js';
import type { Logger } from '../telemetry/logger.js';
import { usesOpusRed } from '../media/mediaCodecs.js';
import type { Peer, TransportAppData, TransportDirection } from './Peer.js';
import { safeEmit } from './safeEmit.js';

export interface ChannelOptions {
	maxPeers: number;
	maxTransportsPerPeer: number;
	maxProducersPerPeer: number;
	audioLevelIntervalMs: number;
	audioLevelThresholdDb: number;
	/** Offer NACK retransmission to consumers (audio RTX). */
	enableRtx: boolean;
}

/** How a channel ended. `requested`: Channel.close() (empty, shutdown, home moved, ...);
 * `routerClosed`: its router closed under it (its media worker died, or the worker was
 * closed first). Peers hear the same channelClosing either way. */
export type ChannelCloseKind = 'requested' | 'routerClosed';

/** Why a peer left: `left` (it left or its connection closed), `replaced` (the same user joined
 * again), `removed` (by a moderator, removeParticipant), `channelClosed` (the channel closed
 * under it). */
export type PeerLeaveKind = 'left' | 'replaced' | 'removed' | 'channelClosed';

export interface ChannelEvents {
	/** The last peer left. */
	empty: [];
	/** The channel and its router are gone; every peer has left (peerLeft came first). */
	closed: [kind: ChannelCloseKind, reason: string];
	/** A peer joined (metrics count these). */
	peerJoined: [Peer];
	/** A peer left: removed, replaced, or the channel closed under it. `reason`: the moderator's
	 * (removed) or the channel's close reason (channelClosed), else the kind again. */
	peerLeft: [Peer, kind: PeerLeaveKind, reason: string];
	/** A moderator muted or unmuted a local peer (muteParticipant). */
	participantMuted: [Peer, muted: boolean];
	/** A producer (a local peer's, or a remote peer's piped copy) is ready to be consumed. */
	producerAdded: [Peer, ms.Producer];
}

/** What a moderator decided for a user in a channel. */
export interface Moderation {
	muted?: boolean;
	/** Replace the token's grants. */
	grants?: Grants;
}

interface ProducerAppData extends ms.AppData {
	peerId: string;
}

export class Channel extends EventEmitter<ChannelEvents> {
	readonly name: string;
	readonly router: ms.Router;
	readonly #peers = new Map<string, Peer>();
	/** Moderators' mutes and grant changes by user id, for as long as the channel lives (a
	 * user's peers come and go; one entry per moderated user). */
	readonly #moderation = new Map<string, Moderation>();
	readonly #options: ChannelOptions;
	readonly #log: Logger;
	readonly #audioLevels: ms.AudioLevelObserver;
	readonly #activeSpeaker: ms.ActiveSpeakerObserver;
	/** Peer id of the current dominant speaker, cleared when that peer stops producing. */
	#dominantPeerId: string | null = null;
	#closed = false;

	private constructor(name: string, router: ms.Router, audioLevels: ms.AudioLevelObserver, activeSpeaker: ms.ActiveSpeakerObserver, options: ChannelOptions, log: Logger) {
		super();
		this.name = name;
		this.router = router;
		this.#audioLevels = audioLevels;
		this.#activeSpeaker = activeSpeaker;
		this.#options = options;
		this.#log = log;
		audioLevels.on('volumes', (volumes) => {
			const levels = volumes.map((v) => ({ peerId: (v.producer.appData as ProducerAppData).peerId, volumeDb: Math.round(v.volume) }));
			this.broadcast('audioLevels', { levels }, { lossy: true });
		});
		audioLevels.on('silence', () => this.broadcast('audioLevels', { levels: [] }, { lossy: true }));
		activeSpeaker.on('dominantspeaker', ({ producer }) => {
			this.#dominantPeerId = (producer.appData as ProducerAppData).peerId;
			this.broadcast('activeSpeaker', { peerId: this.#dominantPeerId });
		});
		// A router closes without us asking when its worker dies.
		router.observer.once('close', () => this.#routerClosed());
	}

	static async create(name: string, router: ms.Router, options: ChannelOptions, log: Logger): Promise<Channel> {
		try {
			const audioLevels = await router.createAudioLevelObserver({
				maxEntries: 16,
				threshold: options.audioLevelThresholdDb,
				interval: options.audioLevelIntervalMs,
			});
			const activeSpeaker = await router.createActiveSpeakerObserver({ interval: 300 });
			return new Channel(name, router, audioLevels, activeSpeaker, options, log);
		} catch (err) {
			router.close();
			throw err;
		}
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** Every peer, local and remote, by id (read-only: peers come and go through addPeer
	 * and removePeer). */
	get peers(): ReadonlyMap<string, Peer> {
		return this.#peers;
	}

	/** Peers connected to this node (not remote ones). */
	get localPeerCount(): number {
		let n = 0;
		for (const p of this.#peers.values()) if (!p.remote) n++;
		return n;
	}

	/**
	 * Adds a peer. A local peer of the same user already here is returned as `replaced` (and
	 * removed). The limit counts local peers: a channel bridges nodes to hold more than one
	 * node can. Remote peers were admitted by their own node: no limit, no replacement.
	 */
	addPeer(peer: Peer): { replaced: Peer | undefined; others: PeerInfo[] } {
		this.#assertOpen();
		if (this.#peers.has(peer.id)) throw new RequestError('E_INVALID_STATE', `Peer ${peer.id} is already in channel ${this.name}.`);
		// What a moderator decided for this user holds over the token for the channel's life:
		// reconnecting (or reloading the page) must not undo a mute or a revoked grant.
		const moderated = peer.remote ? undefined : this.#moderation.get(peer.userId);
		if (moderated?.grants) peer.setGrants(moderated.grants);
		if (moderated?.muted) peer.setMutedByModerator(true);
		const replaced = peer.remote ? undefined : [...this.#peers.values()].find((p) => !p.remote && p.userId === peer.userId);
		if (!peer.remote && !replaced && this.localPeerCount >= this.#options.maxPeers) {
			throw new RequestError('E_CHANNEL_FULL', `Channel ${this.name} is full (${this.#options.maxPeers} peers).`);
		}
		if (replaced) this.removePeer(replaced, 'replaced');
		const others = [...this.#peers.values()].map((p) => p.info());
		this.#peers.set(peer.id, peer);
		safeEmit(this, this.#log, 'peerJoined', peer);
		this.broadcast('peerJoined', peer.info(), { except: peer });
		return { replaced, others };
	}

	/** Removes a peer, closing everything it owns; tells the others. */
	removePeer(peer: Peer, kind: PeerLeaveKind = 'left', reason: string = kind): void {
		if (!this.#peers.delete(peer.id)) return;
		peer.close();
		safeEmit(this, this.#log, 'peerLeft', peer, kind, reason);
		this.broadcast('peerLeft', { peerId: peer.id });
		if (this.#dominantPeerId === peer.id) {
			this.#dominantPeerId = null;
			this.broadcast('activeSpeaker', { peerId: null });
		}
		if (this.#peers.size === 0) safeEmit(this, this.#log, 'empty');
	}

	async createTransport(peer: Peer, direction: TransportDirection, webRtcServer: ms.WebRtcServer): Promise<ms.WebRtcTransport<TransportAppData>> {
		this.#assertMember(peer);
		if (peer.transports.size >= this.#options.maxTransportsPerPeer) {
			throw new RequestError('E_TOO_MANY_TRANSPORTS', `At most ${this.#options.maxTransportsPerPeer} transports per peer.`);
		}
		if (direction === 'recv' && peer.recvTransport) {
			throw new RequestError('E_INVALID_STATE', 'This peer already has a receive transport.');
		}
		const transport = await this.router.createWebRtcTransport<TransportAppData>({
			webRtcServer,
			enableUdp: true,
			enableTcp: true,
			preferUdp: true,
			appData: { peerId: peer.id, direction },
		});
		if (peer.closed) {
			transport.close();
			throw new RequestError('E_NOT_JOINED', 'Left the channel while the transport was being created.');
		}
		peer.addTransport(transport);
		// A transport whose DTLS failed or was closed by the client cannot carry media again.
		transport.on('dtlsstatechange', (state) => {
			if (state === 'failed' || state === 'closed') transport.close();
		});
		if (direction === 'recv') {
			// Hear everyone already talking.
			for (const other of this.#peers.values()) {
				if (other === peer) continue;
				for (const producer of other.producers.values()) void this.#consume(peer, producer, other);
			}
		}
		return transport;
	}

	async produce(peer: Peer, transportId: string, kind: string, rtpParameters: ms.RtpParameters, paused: boolean): Promise<ms.Producer> {
		this.#assertMember(peer);
		const transport = peer.transport(transportId);
		if (transport.appData.direction !== 'send') throw new RequestError('E_INVALID_STATE', 'Produce on a send transport.');
		if (kind !== 'audio') throw new RequestError('E_UNSUPPORTED_MEDIA', `Only audio can be produced (got "${kind}").`);
		// Opus, optionally inside RED (RFC 2198), whose blocks must be Opus of this producer:
		// RED without its Opus codec could not be stripped for listeners that lack RED.
		const foreign = rtpParameters.codecs.find((c) => !/^audio\/(opus|rtx|red)$/i.test(c.mimeType));
		if (foreign) throw new RequestError('E_UNSUPPORTED_MEDIA', `Only Opus audio can be produced (got "${foreign.mimeType}").`);
		if (usesOpusRed(rtpParameters) && !rtpParameters.codecs.some((c) => /^audio\/opus$/i.test(c.mimeType))) {
			throw new RequestError('E_UNSUPPORTED_MEDIA', 'audio/red is produced with the Opus codec its blocks carry.');
		}
		if (peer.producers.size >= this.#options.maxProducersPerPeer) {
			throw new RequestError('E_TOO_MANY_PRODUCERS', `At most ${this.#options.maxProducersPerPeer} producers per peer.`);
		}
		// RED's fmtp is its block list in the publisher's payload types ("111/111"); handed on,
		// it would reach listeners' SDPs as a list of payload types they do not use, and a
		// Chromium listener then decodes nothing. Their own SDPs get one in their numbering.
		rtpParameters = { ...rtpParameters, codecs: rtpParameters.codecs.map((c) => (/^audio\/red$/i.test(c.mimeType) ? { ...c, parameters: {} } : c)) };
		let producer: ms.Producer<ProducerAppData>;
		try {
			producer = await transport.produce<ProducerAppData>({ kind: 'audio', rtpParameters, paused: paused || peer.mutedByModerator, appData: { peerId: peer.id } });
		} catch (err) {
			// mediasoup validates the RTP parameters against the router's codecs; the worker
			// refuses a MID or SSRC this transport already receives.
			const message = (err as Error).message;
			if (err instanceof TypeError || (err as Error).name === 'UnsupportedError' || /already exists in RTP listener/.test(message)) throw new RequestError('E_BAD_REQUEST', message);
			throw err;
		}
		if (peer.closed) {
			producer.close();
			throw new RequestError('E_NOT_JOINED', 'Left the channel while producing.');
		}
		if (peer.mutedByModerator && !paused) peer.setMutedByModerator(true, [producer.id]);
		await this.#addProducer(peer, producer);
		return producer;
	}

	/** Records a moderator's decision for a user, applied again when they rejoin (addPeer). */
	#moderate(userId: string, change: Moderation): void {
		const next = { ...this.#moderation.get(userId), ...change };
		if (!next.muted && !next.grants) this.#moderation.delete(userId);
		else this.#moderation.set(userId, next);
	}

	/** Moderation of one user, as this channel's peers see it. */
	moderationOf(userId: string): Readonly<Moderation> | undefined {
		return this.#moderation.get(userId);
	}

	/** A peer of this channel by id (NOT_FOUND otherwise). */
	peer(peerId: string): Peer {
		const peer = this.#peers.get(peerId);
		if (!peer) throw new RequestError('E_NOT_FOUND', `No participant ${peerId} in channel ${this.name}.`);
		return peer;
	}

	/**
	 * A moderator mutes (pauses every producer of) a local peer on the server, or unmutes it
	 * (resumes the producers the mute paused). Everyone, the peer included, hears
	 * participantMuted; listeners' consumers also report consumerPaused/Resumed. While muted the
	 * peer cannot resume its producers (signaling refuses) and new ones start paused.
	 */
	async muteParticipant(peer: Peer, muted: boolean): Promise<void> {
		this.#assertMember(peer);
		if (peer.remote) throw new RequestError('E_INVALID_STATE', `Participant ${peer.id} is connected to node ${peer.remoteNodeId}; mute them there.`);
		this.#moderate(peer.userId, { muted });
		if (muted) {
			const playing = [...peer.producers.values()].filter((p) => !p.paused);
			peer.setMutedByModerator(true, playing.map((p) => p.id));
			await Promise.all(playing.map((p) => p.pause().catch((err: unknown) => this.#ignoreClosed(err, p))));
		} else {
			if (!peer.mutedByModerator) return;
			const resume = peer.setMutedByModerator(false);
			await Promise.all(resume.map((id) => peer.producers.get(id)?.resume().catch((err: unknown) => this.#ignoreClosed(err))));
		}
		this.broadcast('participantMuted', { peerId: peer.id, muted });
		safeEmit(this, this.#log, 'participantMuted', peer, muted);
	}

	/**
	 * A moderator changes a local peer's grants. Revoking canPublish closes its producers at
	 * once (listeners get consumerClosed); revoking canSubscribe closes its consumers. The peer
	 * hears grantsChanged; later requests are checked against the new grants.
	 */
	updateGrants(peer: Peer, grants: Grants): void {
		this.#assertMember(peer);
		if (peer.remote) throw new RequestError('E_INVALID_STATE', `Participant ${peer.id} is connected to node ${peer.remoteNodeId}; update them there.`);
		peer.setGrants(grants);
		this.#moderate(peer.userId, { grants: { ...grants } });
		if (!grants.canPublish) for (const p of [...peer.producers.values()]) p.close();
		if (!grants.canSubscribe) for (const c of [...peer.consumers.values()]) c.close();
		peer.notify('grantsChanged', { grants: { ...grants } });
	}

	/** A moderator removes a local peer: it leaves the channel (the others hear peerLeft) and its
	 * connection closes with CLOSE_CODES.REMOVED (the client does not reconnect by itself). */
	removeParticipant(peer: Peer, reason: string): void {
		this.#assertMember(peer);
		if (peer.remote) throw new RequestError('E_INVALID_STATE', `Participant ${peer.id} is connected to node ${peer.remoteNodeId}; remove them there.`);
		const link = peer.link;
		this.removePeer(peer, 'removed', reason);
		link.disconnect(CLOSE_CODES.REMOVED, `E_REMOVED: ${reason}`);
	}

	/** A moderator closes the channel: everyone hears channelClosing, then their connections
	 * close with CLOSE_CODES.REMOVED (so they do not rejoin at once). Returns how many local
	 * peers were disconnected. */
	closeByModerator(reason: string): number {
		const local = [...this.#peers.values()].filter((p) => !p.remote).map((p) => p.link);
		this.close(reason);
		for (const link of local) link.disconnect(CLOSE_CODES.REMOVED, `E_REMOVED: ${reason}`);
		return local.length;
	}

	#ignoreClosed(err: unknown, producer?: ms.Producer): void {
		// A producer that closed meanwhile has nothing left to pause or resume.
		if (producer?.closed) return;
		const name = (err as Error).name;
		if (name !== 'InvalidStateError' && name !== 'NotFoundError') this.#log.warn({ err, channel: this.name }, 'moderator mute: producer pause/resume failed');
	}

	/** A remote peer's producer, piped into this router by the bridge (appData.peerId set). */
	async addRemoteProducer(peer: Peer, producer: ms.Producer): Promise<void> {
		this.#assertMember(peer);
		if (!peer.remote) throw new TypeError('addRemoteProducer takes a remote peer');
		await this.#addProducer(peer, producer);
	}

	/** Observes a new producer and has every other peer consume it. */
	async #addProducer(peer: Peer, producer: ms.Producer): Promise<void> {
		peer.addProducer(producer);
		producer.on('score', (scores) => {
			peer.notify('producerScore', { producerId: producer.id, score: scores[0]?.score ?? 0 }, { lossy: true });
		});
		// Listeners' consumers first, then the audio-level observers: the worker answers in
		// order, so listeners hear the new voice a worker round trip sooner.
		for (const other of this.#peers.values()) {
			if (other !== peer) void this.#consume(other, producer, peer);
		}
		await Promise.all([
			this.#audioLevels.addProducer({ producerId: producer.id }),
			this.#activeSpeaker.addProducer({ producerId: producer.id }),
		]).catch((err: unknown) => this.#log.warn({ err, producerId: producer.id }, 'could not observe producer audio'));
		if (producer.closed || peer.closed) return;
		safeEmit(this, this.#log, 'producerAdded', peer, producer);
	}

	async #consume(listener: Peer, producer: ms.Producer, speaker: Peer): Promise<void> {
		const transport = listener.recvTransport;
		if (!transport || !listener.grants.canSubscribe || listener.closed || producer.closed) return;
		if (!this.router.canConsume({ producerId: producer.id, rtpCapabilities: listener.rtpCapabilities })) {
			this.#log.warn({ peerId: listener.id, producerId: producer.id }, 'peer cannot consume producer (capabilities)');
			return;
		}
		let consumer: ms.Consumer;
		try {
			consumer = await transport.consume({
				producerId: producer.id,
				rtpCapabilities: listener.rtpCapabilities,
				// Started paused: the client resumes once its consumer exists, so no early
				// packets are lost and the first keyframe-less audio starts clean.
				paused: true,
				enableRtx: this.#options.enableRtx,
				appData: { peerId: speaker.id },
			});
		} catch (err) {
			// The producer or transport closed meanwhile: nothing to hear.
			if (!producer.closed && !transport.closed) this.#log.warn({ err, peerId: listener.id }, 'consume failed');
			return;
		}
		if (listener.closed || transport.closed) {
			// The listener left while the consumer was being created: mediasoup registers it on
			// the closed transport and would never close it (a leak, and a wrong worker load).
			// The worker dropped it with the transport; only the Node side needs telling.
			if (transport.closed) consumer.transportClosed();
			else consumer.close();
			return;
		}
		listener.addConsumer(consumer);
		consumer.on('producerclose', () => listener.notify('consumerClosed', { consumerId: consumer.id }));
		consumer.on('producerpause', () => listener.notify('consumerPaused', { consumerId: consumer.id }));
		consumer.on('producerresume', () => listener.notify('consumerResumed', { consumerId: consumer.id }));
		// Lossy like producerScore: only the latest score matters to a quality display.
		consumer.on('score', ({ score, producerScore }) => listener.notify('consumerScore', { consumerId: consumer.id, score, producerScore }, { lossy: true }));
		listener.notify('newConsumer', {
			consumerId: consumer.id,
			producerId: producer.id,
			peerId: speaker.id,
			kind: 'audio',
			// Same wire format; the two packages' typings differ only in enumerated URIs.
			rtpParameters: consumer.rtpParameters as unknown as Notifications['newConsumer']['rtpParameters'],
			producerPaused: consumer.producerPaused,
		});
		// 'score' fires only on change: a speaker already at 10 would never be reported.
		listener.notify('consumerScore', { consumerId: consumer.id, score: consumer.score.score, producerScore: consumer.score.producerScore }, { lossy: true });
	}

	broadcast<N extends NotificationName>(name: N, data: Notifications[N], options: { lossy?: boolean; except?: Peer } = {}): void {
		for (const p of this.#peers.values()) if (p !== options.except) p.notify(name, data, options);
	}

	/** Closes the channel on purpose (`closed` with kind `requested`); every peer is told to
	 * rejoin (`channelClosing` with `reason`). */
	close(reason: string): void {
		if (this.#closed) return;
		this.#close('requested', reason);
	}

	/** The router closed under us: the same goodbye to peers as close(), another kind for
	 * listeners (the channel did not decide this, its media did). */
	#routerClosed(): void {
		if (this.#closed) return;
		this.#close('routerClosed', 'media worker lost');
	}

	#close(kind: ChannelCloseKind, reason: string): void {
		this.#closed = true;
		const peers = [...this.#peers.values()];
		this.#peers.clear();
		for (const p of peers) {
			p.notify('channelClosing', { reason });
			p.close();
			safeEmit(this, this.#log, 'peerLeft', p, 'channelClosed', reason);
		}
		// Already closed on the routerClosed path (a no-op then).
		this.router.close();
		this.#log[kind === 'requested' ? 'info' : 'warn']({ channel: this.name, kind, reason, peers: peers.length }, 'channel closed');
		safeEmit(this, this.#log, 'closed', kind, reason);
	}

	#assertOpen(): void {
		if (this.#closed) throw new RequestError('E_INVALID_STATE', `Channel ${this.name} is closing; join again.`);
	}

	#assertMember(peer: Peer): void {
		this.#assertOpen();
		if (this.#peers.get(peer.id) !== peer) throw new RequestError('E_NOT_JOINED');
	}
}
