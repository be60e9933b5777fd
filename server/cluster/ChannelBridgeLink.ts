// One end of a pipe between this node's router for a channel and another node's router for
// the same channel (ChannelBridge.ts places them in a star around the home node).
//
// Outbound: every peer and producer of the local channel that did not come over this link
// is announced to the other end; each such producer is consumed on our PipeTransport and
// the other end produces it on its own with the same id. Inbound: the other end's peers
// become remote peers of the local channel, its producers are produced on our
// PipeTransport and consumed by local listeners like any other producer. A hub forwards
// what one satellite sends to every other satellite by the same rule (it is in the
// channel, it did not come over that link).
//
// Events go out in order, one bridge.sync request at a time (batched), and come in in order
// (applied one batch after the other). A request that fails breaks the link: state on the
// two ends could differ from then on, so the link closes and the owner decides what that
// means (a hub drops the satellite's peers; a satellite closes its channel).
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import type { Channel, ChannelCloseKind } from '../channels/Channel.js';
import { Peer, SILENT_LINK } from '../channels/Peer.js';
import { CLOSE_CODES } from '../../protocol/messages.js';
import type { Logger } from '../telemetry/logger.js';
import { ClusterBusError, type ClusterBus } from './ClusterBus.js';
import { MAX_EVENTS_PER_MESSAGE, BRIDGE_CLOSE, BRIDGE_SYNC, type BridgeClose, type BridgeEvent, type BridgeSync } from './ChannelBridgeMessages.js';

export type BridgeRole = 'hub' | 'satellite';

/** Why a link closed. `lost`: the other end is gone or stopped answering; `remote`: it
 * closed its end; `local`: this node closed it (channel closed, last local peer left, shutdown). */
export type BridgeLinkCloseKind = 'lost' | 'remote' | 'local';

export interface BridgeLinkEvents {
	closed: [kind: BridgeLinkCloseKind, reason: string];
}

export interface ChannelBridgeLinkOptions {
	channel: Channel;
	role: BridgeRole;
	remoteNodeId: string;
	bus: ClusterBus;
	pipe: ms.PipeTransport;
	log: Logger;
}

interface ProducerAppData extends ms.AppData {
	peerId: string;
}

/** A bridge.close is a courtesy (the other end also notices failed syncs and the registry). */
const CLOSE_NOTICE_TIMEOUT_MS = 1000;
/** How often a sync refused for lack of Redis is retried before the link gives up (60 times,
 * every 500 ms: a Redis restart does not tear bridges down). */
const UNAVAILABLE_RETRIES = 60;
const UNAVAILABLE_RETRY_DELAY_MS = 500;

/** Remote peers may publish; they never consume here (they have no transports here). */
const REMOTE_GRANTS = { canPublish: true, canSubscribe: false, canRecord: false };

export class ChannelBridgeLink extends EventEmitter<BridgeLinkEvents> {
	readonly channel: Channel;
	readonly role: BridgeRole;
	readonly remoteNodeId: string;
	readonly pipe: ms.PipeTransport;
	readonly #bus: ClusterBus;
	readonly #log: Logger;
	/** Our producers piped to the other end: producer id -> pipe consumer. */
	readonly #outbound = new Map<string, ms.Consumer>();
	/** Peers announced to the other end (so a peerLeft is sent only for those). */
	readonly #announced = new Set<string>();
	/** The other end's producers, produced on our pipe: producer id -> producer. */
	readonly #inbound = new Map<string, ms.Producer>();
	/** Outbound work in order (consuming a producer before announcing it). */
	#outChain: Promise<void> = Promise.resolve();
	/** Inbound batches in order; a satellite's first link waits for the bridge.open reply. */
	#inChain: Promise<void>;
	#openInbound: (() => void) | undefined;
	#pending: BridgeEvent[] = [];
	#sending = false;
	/** Outbound events are sent once the other end knows this link. */
	#flowing = false;
	#closed = false;
	#closeNotice: Promise<void> = Promise.resolve();
	#detach: () => void = () => undefined;

	constructor(options: ChannelBridgeLinkOptions) {
		super();
		this.channel = options.channel;
		this.role = options.role;
		this.remoteNodeId = options.remoteNodeId;
		this.pipe = options.pipe;
		this.#bus = options.bus;
		this.#log = options.log;
		// A satellite applies syncs only after the open reply (which may, in theory, arrive
		// after the first sync); a hub has nothing to wait for.
		this.#inChain =
			this.role === 'satellite'
				? new Promise<void>((resolve) => {
						this.#openInbound = resolve;
					})
				: Promise.resolve();
		const onChannelClosed = (_kind: ChannelCloseKind, reason: string) => this.close('local', `channel closed: ${reason}`);
		this.channel.once('closed', onChannelClosed);
		this.pipe.observer.once('close', () => this.close('local', 'pipe transport closed'));
		this.#detach = () => this.channel.off('closed', onChannelClosed);
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** Settles once the other end has been told of our close (or could not be). */
	get closeNotice(): Promise<void> {
		return this.#closeNotice;
	}

	/** Remote peers this link added to the local channel. */
	remotePeers(): Peer[] {
		return [...this.channel.peers.values()].filter((p) => p.remoteNodeId === this.remoteNodeId);
	}

	/** Counts for tests and logs. */
	get counts(): { outbound: number; inbound: number; remotePeers: number } {
		return { outbound: this.#outbound.size, inbound: this.#inbound.size, remotePeers: this.remotePeers().length };
	}

	/**
	 * Starts following the local channel: first the channel as it is now, as events for the
	 * other end, then every change in order. `send`: queue the snapshot for bridge.sync
	 * (satellite); else it is returned (hub: it goes back in the bridge.open reply). Nothing
	 * is sent before startFlowing().
	 */
	async start(send: boolean): Promise<BridgeEvent[]> {
		if (this.#closed) throw new Error(`bridge link to ${this.remoteNodeId} is closed`);
		const channel = this.channel;
		const onPeerJoined = (peer: Peer) => {
			if (this.#forwards(peer)) this.#step(async () => this.#announcePeer(peer));
		};
		// A peer of the other end closed here needs no word back (its node told us).
		const onPeerLeft = (peer: Peer) => {
			if (this.#forwards(peer)) this.#step(async () => (this.#announced.delete(peer.id) ? [{ type: 'peerLeft', peerId: peer.id }] : []));
		};
		const onProducerAdded = (peer: Peer, producer: ms.Producer) => {
			if (this.#forwards(peer)) this.#step(() => this.#pipeProducer(peer, producer));
		};
		const detachClosed = this.#detach;
		channel.on('peerJoined', onPeerJoined);
		channel.on('peerLeft', onPeerLeft);
		channel.on('producerAdded', onProducerAdded);
		this.#detach = () => {
			detachClosed();
			channel.off('peerJoined', onPeerJoined);
			channel.off('peerLeft', onPeerLeft);
			channel.off('producerAdded', onProducerAdded);
		};
		let result: BridgeEvent[] = [];
		// Queued in the same tick as the listeners: every later change follows it.
		const done = this.#step(async () => {
			const events: BridgeEvent[] = [];
			for (const peer of [...this.channel.peers.values()]) {
				if (!this.#forwards(peer) || peer.closed) continue;
				events.push(...this.#announcePeer(peer));
				for (const producer of [...peer.producers.values()]) events.push(...(await this.#pipeProducer(peer, producer)));
			}
			if (send) return events;
			result = events;
			return [];
		});
		await done;
		if (this.#closed) throw new Error(`bridge link to ${this.remoteNodeId} closed while taking the snapshot`);
		return result;
	}

	/** The other end knows this link now: send what is queued. */
	startFlowing(): void {
		this.#flowing = true;
		this.#kick();
	}

	/** Satellite: applies the open reply's events; syncs that arrived meanwhile follow. */
	async receiveInitial(events: BridgeEvent[]): Promise<void> {
		try {
			await this.#apply(events);
		} finally {
			this.#openInbound?.();
			this.#openInbound = undefined;
		}
	}

	/** Applies a batch from the other end, after every earlier batch. Rejects (and closes
	 * the link) if the batch does not fit the state: the sender closes its end too. */
	receive(events: BridgeEvent[]): Promise<void> {
		const applied = this.#inChain.then(() => this.#apply(events));
		this.#inChain = applied.catch(() => undefined);
		return applied.catch((err: unknown) => {
			this.close('lost', `bad sync from ${this.remoteNodeId}: ${(err as Error).message}`);
			throw err;
		});
	}

	/**
	 * Closes our end: the pipe transport (and every piped producer and consumer with it),
	 * the remote peers it brought (the local peers hear peerLeft). `notifyRemote`: tell the
	 * other end (best effort; it also finds out when its requests fail or we leave the registry).
	 */
	close(kind: BridgeLinkCloseKind, reason: string, notifyRemote = kind === 'local'): void {
		if (this.#closed) return;
		this.#closed = true;
		this.#detach();
		this.#openInbound?.();
		this.#pending = [];
		this.pipe.close();
		this.#outbound.clear();
		this.#inbound.clear();
		for (const peer of this.remotePeers()) this.channel.removePeer(peer);
		this.#log.info({ channel: this.channel.name, remoteNodeId: this.remoteNodeId, role: this.role, kind, reason }, 'bridge link closed');
		if (notifyRemote) {
			const message: BridgeClose = { channel: this.channel.name, reason: reason.slice(0, 256) };
			this.#closeNotice = this.#bus.request(this.remoteNodeId, BRIDGE_CLOSE, message, CLOSE_NOTICE_TIMEOUT_MS).then(
				() => undefined,
				(err: unknown) => this.#log.debug({ err, remoteNodeId: this.remoteNodeId }, 'bridge.close not delivered'),
			);
		}
		this.emit('closed', kind, reason);
	}

	// ---- outbound -----------------------------------------------------------------------

	/** Goes over this link: local peers, and (at a hub) peers of the other satellites. */
	#forwards(peer: Peer): boolean {
		return peer.remoteNodeId !== this.remoteNodeId;
	}

	#step(work: () => Promise<BridgeEvent[]>): Promise<void> {
		const next = this.#outChain.then(async () => {
			if (this.#closed) return;
			const events = await work();
			if (this.#closed || events.length === 0) return;
			this.#pending.push(...events);
			this.#kick();
		});
		this.#outChain = next.catch((err: unknown) => this.close('local', `bridge link failed: ${(err as Error).message}`));
		return this.#outChain;
	}

	#announcePeer(peer: Peer): BridgeEvent[] {
		if (this.#announced.has(peer.id)) return [];
		this.#announced.add(peer.id);
		return [{ type: 'peerJoined', peer: { peerId: peer.id, userId: peer.userId, displayName: peer.displayName } }];
	}

	/** Consumes `producer` on the pipe and describes it for the other end. */
	async #pipeProducer(peer: Peer, producer: ms.Producer): Promise<BridgeEvent[]> {
		if (producer.closed || peer.closed || this.#outbound.has(producer.id)) return [];
		let consumer: ms.Consumer;
		try {
			consumer = await this.pipe.consume({ producerId: producer.id });
		} catch (err) {
			// Closed meanwhile (producer, or our pipe): nothing to pipe.
			if (producer.closed || this.pipe.closed) return [];
			throw err;
		}
		if (this.#closed || producer.closed) {
			consumer.close();
			return [];
		}
		this.#outbound.set(producer.id, consumer);
		consumer.observer.once('close', () => {
			if (this.#outbound.get(producer.id) === consumer) this.#outbound.delete(producer.id);
		});
		consumer.on('producerclose', () => this.#step(async () => [{ type: 'producerClosed', producerId: producer.id }]));
		consumer.on('producerpause', () => this.#step(async () => [{ type: 'producerPaused', producerId: producer.id, paused: true }]));
		consumer.on('producerresume', () => this.#step(async () => [{ type: 'producerPaused', producerId: producer.id, paused: false }]));
		return [
			{
				type: 'producer',
				peerId: peer.id,
				producerId: producer.id,
				// Same wire format as the signaling schema; mediasoup checks the rest on produce().
				rtpParameters: consumer.rtpParameters as unknown as Extract<BridgeEvent, { type: 'producer' }>['rtpParameters'],
				paused: consumer.producerPaused,
			},
		];
	}

	#kick(): void {
		if (this.#sending || !this.#flowing || this.#closed || this.#pending.length === 0) return;
		this.#sending = true;
		void this.#flush().finally(() => {
			this.#sending = false;
			this.#kick();
		});
	}

	async #flush(): Promise<void> {
		while (!this.#closed && this.#pending.length > 0) {
			const events = this.#pending.slice(0, MAX_EVENTS_PER_MESSAGE);
			const message: BridgeSync = { channel: this.channel.name, events };
			for (let attempt = 0; ; attempt++) {
				try {
					await this.#bus.request(this.remoteNodeId, BRIDGE_SYNC, message);
					break;
				} catch (err) {
					if (this.#closed) return;
					// Redis away for a moment: media keeps flowing over the pipe meanwhile;
					// the changes go out when it is back (or the link gives up).
					if (err instanceof ClusterBusError && err.code === 'unavailable' && attempt < UNAVAILABLE_RETRIES) {
						await new Promise((r) => setTimeout(r, UNAVAILABLE_RETRY_DELAY_MS));
						continue;
					}
					const kind: BridgeLinkCloseKind = err instanceof ClusterBusError && err.code === 'remote' ? 'remote' : 'lost';
					this.close(kind, `bridge.sync to ${this.remoteNodeId} failed: ${(err as Error).message}`, kind === 'remote');
					return;
				}
			}
			this.#pending.splice(0, events.length);
		}
	}

	// ---- inbound ------------------------------------------------------------------------

	async #apply(events: BridgeEvent[]): Promise<void> {
		for (const event of events) {
			if (this.#closed) return;
			switch (event.type) {
				case 'peerJoined': {
					const existing = this.channel.peers.get(event.peer.peerId);
					if (existing) {
						if (existing.remoteNodeId === this.remoteNodeId) continue; // announced twice: harmless
						throw new Error(`peer ${event.peer.peerId} is already in channel ${this.channel.name} from elsewhere`);
					}
					// The same user joined on another node (a client that failed over while its
					// old connection here lingers): like a second join on one node, the newer
					// one wins, so nobody hears themselves through the other node.
					const twin = [...this.channel.peers.values()].find((p) => !p.remote && p.userId === event.peer.userId);
					if (twin) {
						this.channel.removePeer(twin);
						twin.link.disconnect(CLOSE_CODES.REPLACED, 'E_REPLACED: the same user joined this channel on another node');
					}
					const peer = new Peer({
						id: event.peer.peerId,
						remoteNodeId: this.remoteNodeId,
						userId: event.peer.userId,
						displayName: event.peer.displayName,
						grants: REMOTE_GRANTS,
						rtpCapabilities: { codecs: [] },
						link: SILENT_LINK,
					});
					this.channel.addPeer(peer);
					break;
				}
				case 'peerLeft': {
					const peer = this.#remotePeer(event.peerId);
					if (peer) this.channel.removePeer(peer);
					break;
				}
				case 'producer': {
					const peer = this.#remotePeer(event.peerId);
					if (!peer) throw new Error(`producer ${event.producerId} of unknown peer ${event.peerId}`);
					if (this.#inbound.has(event.producerId)) throw new Error(`producer ${event.producerId} announced twice`);
					const producer = await this.pipe.produce<ProducerAppData>({
						id: event.producerId,
						kind: 'audio',
						rtpParameters: event.rtpParameters as ms.RtpParameters,
						paused: event.paused,
						appData: { peerId: peer.id },
					});
					if (this.#closed || peer.closed) {
						producer.close();
						break;
					}
					this.#inbound.set(producer.id, producer);
					producer.observer.once('close', () => {
						if (this.#inbound.get(producer.id) === producer) this.#inbound.delete(producer.id);
					});
					await this.channel.addRemoteProducer(peer, producer);
					break;
				}
				case 'producerPaused': {
					const producer = this.#inbound.get(event.producerId);
					if (!producer) break; // closed here meanwhile (its peer left)
					if (event.paused) await producer.pause();
					else await producer.resume();
					break;
				}
				case 'producerClosed':
					this.#inbound.get(event.producerId)?.close();
					break;
			}
		}
	}

	#remotePeer(peerId: string): Peer | undefined {
		const peer = this.channel.peers.get(peerId);
		if (peer && peer.remoteNodeId !== this.remoteNodeId) throw new Error(`peer ${peerId} did not come from ${this.remoteNodeId}`);
		return peer;
	}
}
