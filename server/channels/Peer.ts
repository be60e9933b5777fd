// One participant of a channel: a user on one signaling connection, with the mediasoup
// objects they own. Closing a peer closes its transports, and with them its producers and
// consumers (mediasoup propagates the close).
//
// A remote peer (`remoteNodeId` set) is connected to another node of a channel that bridges
// nodes: it has no transports and no link of its own; its producers are the piped copies of
// its real producers (same ids), which local listeners consume like any other.
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import type { Grants, NotificationName, Notifications, PeerInfo } from '../../protocol/messages.js';

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

/** The link of a remote peer: it is told things on its own node, not here. */
export const REMOTE_PEER_LINK: PeerLink = {
	notify: () => undefined,
	disconnect: () => undefined,
};

export class Peer {
	readonly id: string;
	/** The node the peer is connected to, when that is not this one. */
	readonly remoteNodeId: string | undefined;
	readonly userId: string;
	readonly displayName: string;
	readonly grants: Grants;
	readonly rtpCapabilities: ms.RtpCapabilities;
	readonly link: PeerLink;
	readonly transports = new Map<string, ms.WebRtcTransport<TransportAppData>>();
	readonly producers = new Map<string, ms.Producer>();
	readonly consumers = new Map<string, ms.Consumer>();
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
		this.grants = options.grants;
		this.rtpCapabilities = options.rtpCapabilities;
		this.link = options.link;
	}

	get closed(): boolean {
		return this.#closed;
	}

	get remote(): boolean {
		return this.remoteNodeId !== undefined;
	}

	info(): PeerInfo {
		return { peerId: this.id, userId: this.userId, displayName: this.displayName };
	}

	/** The receive transport consumers are created on (a peer has at most one). */
	get recvTransport(): ms.WebRtcTransport<TransportAppData> | undefined {
		for (const t of this.transports.values()) if (t.appData.direction === 'recv') return t;
		return undefined;
	}

	notify<N extends NotificationName>(name: N, data: Notifications[N], options?: { lossy?: boolean }): void {
		if (!this.#closed) this.link.notify(name, data, options);
	}

	/** Closes every transport (and so every producer and consumer) of the peer, and the
	 * producers of a remote peer (they live on a pipe transport shared with others). */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const t of this.transports.values()) t.close();
		for (const p of this.producers.values()) p.close();
		this.transports.clear();
		this.producers.clear();
		this.consumers.clear();
	}
}
