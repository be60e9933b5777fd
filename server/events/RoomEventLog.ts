// The room events of the cluster, as this node has seen them: a bounded ring in arrival order
// that subscribers (the gRPC EventService) read and resume in.
//
// Where events come from: this node's ChannelRegistry (channels opened and closed, local peers
// joining, leaving, muted by a moderator, removed) and the voice service's recordings. Each gets
// an id `<nodeId>.<bootEpochMs>.<seq>` here, is appended to the ring, queued for the webhook
// (only by this node: once per cluster) and published on the cluster bus; every other node
// appends what it receives to its own ring, so a subscriber on any node sees every node's events.
//
// Resuming: after_event_id is looked up in the ring; what came after it here follows, then live
// events. An id the ring no longer holds (older than api.eventRetention events, or from before a
// restart) is RoomEventOutOfRangeError. Resuming on the node that served the events is exact;
// on another node the order of different nodes' events can differ by the bus's delay.
// The ring and the webhook queue are in memory: room events are at-least-once while the node
// runs, and a node that stops loses what it had not delivered (the voice events' SQL outbox is
// for durable records; room events describe live state).
import type { Channel, ChannelCloseKind, PeerLeaveKind } from '../channels/Channel.js';
import type { ChannelRegistry } from '../channels/ChannelRegistry.js';
import type { Peer } from '../channels/Peer.js';
import type { ClusterBus } from '../cluster/ClusterBus.js';
import type { Logger } from '../telemetry/logger.js';
import type { RecordingSource, VoiceMessageEvents } from '../voice/VoiceMessageService.js';
import type { VoiceMessage } from '../voice/voiceMessage.js';
import { formatDestination } from '../voice/voiceMessage.js';
import { roomEventId, roomEventSchema, type RoomEvent, type RoomEventType } from './roomEvents.js';

/** The bus topic room events travel on. */
export const ROOM_EVENTS_TOPIC = 'room-events';

export class RoomEventOutOfRangeError extends Error {
	readonly oldestEventId: string | undefined;
	constructor(afterEventId: string, oldestEventId: string | undefined) {
		super(`Event ${afterEventId} is not retained on this node${oldestEventId ? ` (oldest: ${oldestEventId})` : ''}`);
		this.name = 'RoomEventOutOfRangeError';
		this.oldestEventId = oldestEventId;
	}
}

export interface RoomEventLogOptions {
	nodeId: string;
	/** Events the ring keeps (api.eventRetention). */
	retention: number;
	log: Logger;
	/** Called with each event that happened on this node (the webhook queue). */
	onLocalEvent?: (event: RoomEvent) => void;
	/** Start of this process (ms); part of every id so ids of a restarted node differ. */
	bootEpochMs?: number;
}

export interface RoomEventSubscription {
	/** Only events after this id (must be retained); absent: from now on. */
	after?: string;
	/** Which events the subscriber gets (channel filter, grants, types). */
	accept: (event: RoomEvent) => boolean;
	signal: AbortSignal;
}

interface Entry {
	/** Arrival number on this node, from 1. */
	n: number;
	event: RoomEvent;
}

export class RoomEventLog {
	readonly #o: RoomEventLogOptions;
	readonly #bootEpochMs: number;
	#seq = 0;
	#arrivals = 0;
	readonly #ring: Entry[] = [];
	readonly #byId = new Map<string, number>();
	/** Woken on each append and on close. */
	#wake: (() => void)[] = [];
	#closed = false;
	#bus: ClusterBus | undefined;
	#unsubscribe: (() => Promise<void>) | undefined;

	constructor(options: RoomEventLogOptions) {
		if (!(options.retention >= 1)) throw new TypeError('RoomEventLog: retention must be at least 1');
		this.#o = options;
		this.#bootEpochMs = options.bootEpochMs ?? Date.now();
	}

	/** Events retained now (oldest first). */
	get retained(): readonly RoomEvent[] {
		return this.#ring.map((e) => e.event);
	}

	/** Records what happens in `channels` (local peers and this node's channels). */
	observe(channels: ChannelRegistry): void {
		const participant = (p: Peer) => ({ peerId: p.id, userId: p.userId });
		channels.on('channelOpened', (c: Channel) => this.emit('channel.started', c.name, undefined, {}));
		channels.on('channelClosed', (c: Channel, kind: ChannelCloseKind, reason: string) => this.emit('channel.ended', c.name, undefined, { kind, reason }));
		channels.on('peerJoined', (p: Peer, c: Channel) => this.emit('participant.joined', c.name, participant(p), {}));
		channels.on('peerLeft', (p: Peer, c: Channel, kind: PeerLeaveKind, reason: string) => {
			// A removal is its own event (with the moderator's reason) rather than a left.
			if (kind === 'removed') this.emit('participant.removed', c.name, participant(p), { reason });
			else this.emit('participant.left', c.name, participant(p), { reason: kind, ...(kind === 'channelClosed' && { closeReason: reason }) });
		});
		channels.on('participantMuted', (p: Peer, c: Channel, muted: boolean) => this.emit(muted ? 'participant.muted' : 'participant.unmuted', c.name, participant(p), { by: 'moderator' }));
	}

	/** Hooks for VoiceMessageService: recordings taken in a channel. */
	recordingHooks(): Pick<VoiceMessageEvents, 'recordingStarted' | 'recordingFinished'> {
		const recorded = (type: RoomEventType, message: VoiceMessage | undefined, source: RecordingSource | undefined, details: Record<string, string> = {}) => {
			if (!message || !source?.channel) return;
			this.emit(type, source.channel, { peerId: source.peerId ?? '', userId: message.ownerId }, { voiceMessageId: message.id, destination: formatDestination(message.destination), ...details });
		};
		return {
			recordingStarted: (message, source) => recorded('recording.started', message, source),
			recordingFinished: (result, message, source) => recorded('recording.finished', message, source, { reason: result.reason, durationMs: String(Math.round(result.durationMs)) }),
		};
	}

	/** Publishes this node's events to the other nodes and takes theirs. */
	async attachBus(bus: ClusterBus): Promise<void> {
		this.#bus = bus;
		this.#unsubscribe = await bus.subscribe(ROOM_EVENTS_TOPIC, (message, fromNodeId) => {
			if (fromNodeId === this.#o.nodeId) return; // appended when it happened
			const parsed = roomEventSchema.safeParse(message);
			if (!parsed.success || parsed.data.nodeId !== fromNodeId) {
				this.#o.log.warn({ fromNodeId }, 'malformed room event from another node dropped');
				return;
			}
			this.#append(parsed.data);
		});
	}

	/** An event that happened on this node. */
	emit(type: RoomEventType, channel: string, participant: RoomEvent['participant'], details: Record<string, string>): RoomEvent | undefined {
		if (this.#closed) return undefined;
		const event: RoomEvent = {
			eventId: roomEventId(this.#o.nodeId, this.#bootEpochMs, ++this.#seq),
			event: type,
			at: Date.now(),
			nodeId: this.#o.nodeId,
			channel,
			...(participant && { participant }),
			details,
		};
		this.#append(event);
		this.#o.onLocalEvent?.(event);
		this.#bus?.publish(ROOM_EVENTS_TOPIC, event).catch((err: unknown) => this.#o.log.warn({ err, eventId: event.eventId }, 'room event not published to the cluster'));
		return event;
	}

	#append(event: RoomEvent): void {
		if (this.#byId.has(event.eventId)) return;
		const n = ++this.#arrivals;
		this.#ring.push({ n, event });
		this.#byId.set(event.eventId, n);
		while (this.#ring.length > this.#o.retention) this.#byId.delete(this.#ring.shift()!.event.eventId);
		this.#notify();
	}

	#notify(): void {
		const wake = this.#wake;
		this.#wake = [];
		for (const w of wake) w();
	}

	/**
	 * Events after `after` then live ones, until the signal aborts or the log closes. Throws
	 * RoomEventOutOfRangeError when `after` is not retained, or when the subscriber fell so far
	 * behind that the ring dropped events it had not read.
	 */
	async *subscribe({ after, accept, signal }: RoomEventSubscription): AsyncGenerator<RoomEvent> {
		let last: number;
		if (after) {
			const n = this.#byId.get(after);
			if (n === undefined) throw new RoomEventOutOfRangeError(after, this.#ring[0]?.event.eventId);
			last = n;
		} else {
			last = this.#arrivals;
		}
		const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
		while (!signal.aborted && !this.#closed) {
			const oldest = this.#ring[0]?.n ?? this.#arrivals + 1;
			if (last + 1 < oldest) throw new RoomEventOutOfRangeError(this.#ring.find((e) => e.n > last)?.event.eventId ?? String(last), this.#ring[0]?.event.eventId);
			const next = this.#ring[last + 1 - oldest];
			if (next) {
				last = next.n;
				if (accept(next.event)) yield next.event;
				continue;
			}
			await Promise.race([new Promise<void>((resolve) => this.#wake.push(resolve)), aborted]);
		}
	}

	/** Ends subscriptions and leaves the bus topic. */
	async close(): Promise<void> {
		this.#closed = true;
		this.#notify();
		await this.#unsubscribe?.().catch(() => undefined);
	}

	/** True once close() was called (subscriptions have ended). */
	get closed(): boolean {
		return this.#closed;
	}
}

/** `base` (the metrics' hooks) plus the room events of recordings started and finished. */
export function withRecordingEvents(base: VoiceMessageEvents | undefined, events: RoomEventLog): VoiceMessageEvents {
	const room = events.recordingHooks();
	return {
		...base,
		recordingStarted: (message, source) => {
			base?.recordingStarted?.(message, source);
			room.recordingStarted!(message, source);
		},
		recordingFinished: (result, message, source) => {
			base?.recordingFinished?.(result, message, source);
			room.recordingFinished!(result, message, source);
		},
	};
}
