// One participant of a channel: a user on one signaling connection, with the mediasoup
// objects they own. Closing a peer closes its transports, and with them its producers and
// consumers (mediasoup propagates the close).
//
// The peer keeps its transports, producers and consumers to itself (as mediasoup's Router
// keeps its transports): each is added in one place, which also drops it again when it
// closes, and is found by id through a lookup that answers E_NOT_FOUND.
//
// A remote peer (`remoteNodeId` set) is connected to another node of a channel that bridges
// nodes: it has no transports and no link of its own; its producers are the piped copies of
// its real producers (same ids), which local listeners consume like any other.
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import type { Grants, NotificationName, Notifications, PeerInfo } from '../../protocol/messages.js';
import { RequestError } from '../../protocol/RequestError.js';

/** How a peer reaches its client: implemented by the signaling session. */
export interface PeerLink {
	notify<N extends NotificationName>(name: N, data: Notifications[N], options?: { lossy?: boolean }): void;
	/** Ends the client's connection (replaced by a newer one, ...). */
	disconnect(code: number, reason: string): void;
}

export type TransportDirection = 'send' | 'recv';
export interface TransportAppData extends ms.AppData {
	peerId: string;
	direction: TransportDirection;
}

/** Signaling creates WebRTC transports; the bench registers plain RTP ones (no DTLS/ICE). */
export type PeerTransport = ms.WebRtcTransport<TransportAppData> | ms.PlainTransport<TransportAppData>;

/** The link of a peer with no client here: a remote peer is told things on its own node,
 * a bench peer reads its state instead. */
export const SILENT_LINK: PeerLink = {
	notify: () => undefined,
	disconnect: () => undefined,
};

export class Peer {
	readonly id: string;
	/** The node the peer is connected to, when that is not this one. */
	readonly remoteNodeId: string | undefined;
	readonly userId: string;
	readonly displayName: string;
	readonly rtpCapabilities: ms.RtpCapabilities;
	readonly link: PeerLink;
	readonly #transports = new Map<string, PeerTransport>();
	readonly #producers = new Map<string, ms.Producer>();
	readonly #consumers = new Map<string, ms.Consumer>();
	#grants: Grants;
	/** Producers a moderator paused (Channel.muteParticipant): resumed on unmute, not the ones
	 * the peer paused itself. Non-empty or flagged while muted. */
	#mutedByModerator = false;
	readonly #moderatorPaused = new Set<string>();
	#closed = false;

	constructor(options: {
		userId: string;
		displayName: string;
		grants: Grants;
		rtpCapabilities: ms.RtpCapabilities;
		link: PeerLink;
		/** Remote peers keep the id their own node gave them. */
		id?: string;
		remoteNodeId?: string;
	}) {
		this.id = options.id ?? randomUUID();
		this.remoteNodeId = options.remoteNodeId;
		this.userId = options.userId;
		this.displayName = options.displayName;
		this.#grants = { ...options.grants };
		this.rtpCapabilities = options.rtpCapabilities;
		this.link = options.link;
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** What the peer may do: its token's grants, as a moderator may have changed them since. */
	get grants(): Readonly<Grants> {
		return this.#grants;
	}

	/** Channel.updateGrants is the one caller (it also closes what a revoked grant covered). */
	setGrants(grants: Grants): void {
		this.#grants = { ...grants };
	}

	get mutedByModerator(): boolean {
		return this.#mutedByModerator;
	}

	/** Marks the peer muted or not by a moderator and returns, on unmute, the producers the
	 * moderator paused (to resume); Channel.muteParticipant does the pausing. */
	setMutedByModerator(muted: boolean, paused: Iterable<string> = []): string[] {
		this.#mutedByModerator = muted;
		if (muted) {
			for (const id of paused) this.#moderatorPaused.add(id);
			return [];
		}
		const resume = [...this.#moderatorPaused];
		this.#moderatorPaused.clear();
		return resume;
	}

	get remote(): boolean {
		return this.remoteNodeId !== undefined;
	}

	/** Read-only views (metrics, the bridge's snapshot); add through addTransport() & co. */
	get transports(): ReadonlyMap<string, PeerTransport> {
		return this.#transports;
	}

	get producers(): ReadonlyMap<string, ms.Producer> {
		return this.#producers;
	}

	get consumers(): ReadonlyMap<string, ms.Consumer> {
		return this.#consumers;
	}

	info(): PeerInfo {
		return { peerId: this.id, userId: this.userId, displayName: this.displayName };
	}

	/** The receive transport consumers are created on (a peer has at most one). */
	get recvTransport(): PeerTransport | undefined {
		for (const t of this.#transports.values()) if (t.appData.direction === 'recv') return t;
		return undefined;
	}

	/** Takes ownership of `transport` until it closes (the peer's close closes it). */
	addTransport(transport: PeerTransport): void {
		this.#adopt(transport, this.#transports);
	}

	addProducer(producer: ms.Producer): void {
		this.#adopt(producer, this.#producers);
	}

	addConsumer(consumer: ms.Consumer): void {
		this.#adopt(consumer, this.#consumers);
	}

	transport(transportId: string): PeerTransport {
		const t = this.#transports.get(transportId);
		if (!t) throw new RequestError('E_NOT_FOUND', `No transport ${transportId} of yours.`);
		return t;
	}

	/** A transport signaling made: any other kind is none of the client's. */
	webRtcTransport(transportId: string): ms.WebRtcTransport<TransportAppData> {
		const t = this.transport(transportId);
		if (t.type !== 'webrtc') throw new RequestError('E_NOT_FOUND', `No transport ${transportId} of yours.`);
		return t;
	}

	producer(producerId: string): ms.Producer {
		const p = this.#producers.get(producerId);
		if (!p) throw new RequestError('E_NOT_FOUND', `No producer ${producerId} of yours.`);
		return p;
	}

	consumer(consumerId: string): ms.Consumer {
		const c = this.#consumers.get(consumerId);
		if (!c) throw new RequestError('E_NOT_FOUND', `No consumer ${consumerId} of yours.`);
		return c;
	}

	notify<N extends NotificationName>(name: N, data: Notifications[N], options?: { lossy?: boolean }): void {
		if (!this.#closed) this.link.notify(name, data, options);
	}

	/** Closes every transport (and so every producer and consumer) of the peer, and the
	 * producers of a remote peer (they live on a pipe transport shared with others). */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const t of [...this.#transports.values()]) t.close();
		for (const p of [...this.#producers.values()]) p.close();
		// Emptied by the close events already; cleared in case one was closed without them.
		this.#transports.clear();
		this.#producers.clear();
		this.#consumers.clear();
	}

	#adopt<T extends { readonly id: string; readonly closed: boolean; close(): void; readonly observer: { once(event: 'close', listener: () => void): unknown } }>(child: T, into: Map<string, T>): void {
		// Kept, it would stay forever: the peer's close has run, or the child's close event has.
		if (this.#closed || child.closed) {
			child.close();
			throw new Error(`cannot add ${child.id} to peer ${this.id}: ${this.#closed ? 'the peer' : 'it'} is closed`);
		}
		into.set(child.id, child);
		child.observer.once('close', () => {
			if (into.get(child.id) === child) into.delete(child.id);
		});
	}
}
