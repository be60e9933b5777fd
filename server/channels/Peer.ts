// One participant of a channel: a user on one signaling connection, with the mediasoup
// objects they own. Closing a peer closes its transports, and with them its producers and
// consumers (mediasoup propagates the close).
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import type { Grants, NotificationName, Notifications, PeerInfo } from '../signaling/protocol.js';

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

export class Peer {
	readonly id = randomUUID();
	readonly userId: string;
	readonly displayName: string;
	readonly grants: Grants;
	readonly rtpCapabilities: ms.RtpCapabilities;
	readonly link: PeerLink;
	readonly transports = new Map<string, ms.WebRtcTransport<TransportAppData>>();
	readonly producers = new Map<string, ms.Producer>();
	readonly consumers = new Map<string, ms.Consumer>();
	#closed = false;

	constructor(options: { userId: string; displayName: string; grants: Grants; rtpCapabilities: ms.RtpCapabilities; link: PeerLink }) {
		this.userId = options.userId;
		this.displayName = options.displayName;
		this.grants = options.grants;
		this.rtpCapabilities = options.rtpCapabilities;
		this.link = options.link;
	}

	get closed(): boolean {
		return this.#closed;
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

	/** Closes every transport (and so every producer and consumer) of the peer. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const t of this.transports.values()) t.close();
		this.transports.clear();
		this.producers.clear();
		this.consumers.clear();
	}
}
