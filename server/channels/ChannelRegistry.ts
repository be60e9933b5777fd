// All channels of this node, by name. Creates a channel (a router on the least-loaded
// worker) on first join, closes it after it stayed empty for a grace period, and enforces
// the per-node channel limit.
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import type { WorkerPool } from '../media/WorkerPool.js';
import { RequestError } from '../../protocol/RequestError.js';
import type { Logger } from '../telemetry/logger.js';
import { Channel, type ChannelCloseKind, type ChannelOptions, type PeerLeaveKind } from './Channel.js';
import type { Peer } from './Peer.js';
import { safeEmit } from './safeEmit.js';

export interface ChannelRegistryOptions extends ChannelOptions {
	maxChannels: number;
	/** Channels one user may have opened (created) and still open here; 0 or absent: no limit. */
	maxChannelsPerUser?: number;
	emptyCloseDelayMs: number;
	mediaCodecs: ms.RouterRtpCodecCapability[];
}

/** What happens in any channel of the registry (metrics, room events): local peers only. */
export interface ChannelRegistryEvents {
	peerJoined: [Peer, Channel];
	peerLeft: [Peer, Channel, kind: PeerLeaveKind, reason: string];
	participantMuted: [Peer, Channel, muted: boolean];
	/** A channel (its router) was created on this node. */
	channelOpened: [Channel];
	/** A channel of this node closed (after its peers' peerLeft). */
	channelClosed: [Channel, kind: ChannelCloseKind, reason: string];
}

export class ChannelRegistry extends EventEmitter<ChannelRegistryEvents> {
	readonly #pool: WorkerPool;
	readonly #options: ChannelRegistryOptions;
	readonly #log: Logger;
	readonly #channels = new Map<string, Channel>();
	/** Channels being created, so concurrent first joins share one router. */
	readonly #creating = new Map<string, Promise<Channel>>();
	readonly #emptyTimers = new Map<string, NodeJS.Timeout>();
	/** Who opened each channel that is open or being created (by a user's join), for maxChannelsPerUser. */
	readonly #openedBy = new Map<string, string>();
	#closed = false;

	constructor(pool: WorkerPool, options: ChannelRegistryOptions, log: Logger) {
		super();
		this.#pool = pool;
		this.#options = options;
		this.#log = log;
	}

	get size(): number {
		return this.#channels.size;
	}

	get(name: string): Channel | undefined {
		return this.#channels.get(name);
	}

	channels(): Channel[] {
		return [...this.#channels.values()];
	}

	/** Channels `userId` opened that are open or being created now. */
	openedByCount(userId: string): number {
		let count = 0;
		for (const opener of this.#openedBy.values()) if (opener === userId) count++;
		return count;
	}

	/** The open channel `name`, created if needed. Cancels a pending empty-close. `openedBy`:
	 * the user whose join it is (a channel that user creates counts toward their quota). */
	async open(name: string, openedBy?: string): Promise<Channel> {
		if (this.#closed) throw new RequestError('E_SHUTTING_DOWN');
		clearTimeout(this.#emptyTimers.get(name));
		this.#emptyTimers.delete(name);
		const existing = this.#channels.get(name);
		if (existing && !existing.closed) return existing;
		const pending = this.#creating.get(name);
		if (pending) return pending;
		if (this.#channels.size + this.#creating.size >= this.#options.maxChannels) {
			throw new RequestError('E_TOO_MANY_CHANNELS', `This server hosts its maximum of ${this.#options.maxChannels} channels.`);
		}
		const perUser = this.#options.maxChannelsPerUser ?? 0;
		if (openedBy !== undefined && perUser > 0 && this.openedByCount(openedBy) >= perUser) {
			throw new RequestError('E_TOO_MANY_USER_CHANNELS', `You have ${perUser} channels open on this server that you opened; join an open channel, or wait until one of yours is empty and closes.`);
		}
		if (openedBy !== undefined) this.#openedBy.set(name, openedBy);
		const creation = this.#create(name).finally(() => this.#creating.delete(name));
		this.#creating.set(name, creation);
		// A creation that fails opened nothing.
		creation.catch(() => {
			if (!this.#channels.has(name)) this.#openedBy.delete(name);
		});
		return creation;
	}

	async #create(name: string): Promise<Channel> {
		const router = await this.#pool.createRouter({ mediaCodecs: this.#options.mediaCodecs, appData: { channel: name } });
		const channel = await Channel.create(name, router, this.#options, this.#log.child({ channel: name }));
		this.#channels.set(name, channel);
		channel.on('empty', () => this.#scheduleEmptyClose(channel));
		// Remote peers (a channel bridging nodes) are counted by the node they are connected to.
		// Relayed with safeEmit too: one listener (metrics) that throws must not keep the
		// others (the cluster's load figures) from hearing it.
		channel.on('peerJoined', (peer) => {
			if (!peer.remote) safeEmit(this, this.#log, 'peerJoined', peer, channel);
		});
		channel.on('peerLeft', (peer, kind, reason) => {
			if (!peer.remote) safeEmit(this, this.#log, 'peerLeft', peer, channel, kind, reason);
		});
		channel.on('participantMuted', (peer, muted) => safeEmit(this, this.#log, 'participantMuted', peer, channel, muted));
		channel.once('closed', (kind, reason) => {
			if (this.#channels.get(name) === channel) {
				this.#channels.delete(name);
				if (!this.#creating.has(name)) this.#openedBy.delete(name);
			}
			clearTimeout(this.#emptyTimers.get(name));
			this.#emptyTimers.delete(name);
			safeEmit(this, this.#log, 'channelClosed', channel, kind, reason);
		});
		this.#log.info({ channel: name, worker: this.#pool.workerIndexOf(router) }, 'channel opened');
		safeEmit(this, this.#log, 'channelOpened', channel);
		return channel;
	}

	/** Closes `channel` after the grace period if it has no peers by then (a channel opened
	 * for someone who never joined: nothing else would ever close it). */
	closeIfUnused(channel: Channel): void {
		if (channel.peers.size === 0 && !channel.closed) this.#scheduleEmptyClose(channel);
	}

	#scheduleEmptyClose(channel: Channel): void {
		clearTimeout(this.#emptyTimers.get(channel.name));
		const timer = setTimeout(() => {
			this.#emptyTimers.delete(channel.name);
			if (channel.peers.size === 0) channel.close('empty');
		}, this.#options.emptyCloseDelayMs);
		timer.unref();
		this.#emptyTimers.set(channel.name, timer);
	}

	/** Closes every channel (shutdown). */
	closeAll(reason: string): void {
		this.#closed = true;
		for (const t of this.#emptyTimers.values()) clearTimeout(t);
		this.#emptyTimers.clear();
		for (const c of this.#channels.values()) c.close(reason);
		this.#channels.clear();
		this.#openedBy.clear();
	}
}
