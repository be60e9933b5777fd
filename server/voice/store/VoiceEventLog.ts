// The durable, ordered log of voice-message lifecycle events that status subscriptions read
// (the backend API's SubscribeStatus): "the events after position X that match a filter", so
// a subscriber that reconnects with the position of the last event it got misses nothing and
// sees nothing twice.
//
// Two implementations, one per metadata store:
// - SQL store: the outbox table itself (voice_outbox), whose rows are kept for
//   metadata.eventRetentionS after they are done. Its position is handed out in commit order
//   (SqlVoiceMessageStore takes the voice_event_log row's lock before writing the row), so a
//   reader that has seen position p will never see a smaller one commit later.
// - Redis store: the stream parley:voice-meta (VoiceEventStream), whose entry ids are ordered
//   by the Lua script that commits each change; trimmed at cluster.eventStreamMaxLen.
import type { VoiceMessageStatus } from '../../../protocol/schemas.js';
import type { VoiceEventName, VoiceMessageEvent } from '../voiceEvents.js';

/** An event and its position in the log: the subscription's event id and resume token. */
export interface LoggedVoiceEvent {
	/** Stable and ordered within one log: decimal digits (SQL) or a stream id `<ms>-<n>` (Redis). */
	position: string;
	event: VoiceMessageEvent;
}

/** Which events a subscriber wants; every field set must match (absent: any). */
export interface VoiceEventFilter {
	ownerId?: string;
	/** `channel:<name>` or `user:<id>`. */
	destination?: string;
	voiceMessageId?: string;
	/** The status after the change (for deleted events: the status the message had). */
	statuses?: readonly VoiceMessageStatus[];
	events?: readonly VoiceEventName[];
}

export interface VoiceEventBatch {
	/** Matching events, oldest first. */
	events: LoggedVoiceEvent[];
	/** The position read up to (matching or not): pass as `after` for the next read. */
	readThrough: string;
}

export interface VoiceEventLog {
	/**
	 * Events committed after position `after` that match `filter`, oldest first; looks at up
	 * to `scanLimit` events of the log (matching or not) per call. Rejects with
	 * EventLogOutOfRangeError when events after `after` have been pruned or trimmed, and with
	 * InvalidEventPositionError for a position that is malformed or ahead of the log.
	 */
	readEvents(after: string, filter: VoiceEventFilter, scanLimit: number): Promise<VoiceEventBatch>;
	/** The position of the newest event ('0' when there is none): where "from now on" starts. */
	headPosition(): Promise<string>;
}

/** The subscriber asked for events older than the log keeps (OUT_OF_RANGE). */
export class EventLogOutOfRangeError extends Error {
	override readonly name = 'EventLogOutOfRangeError';
	/** The oldest position one may resume from now. */
	readonly oldestPosition: string;
	constructor(message: string, oldestPosition: string) {
		super(message);
		this.oldestPosition = oldestPosition;
	}
}

/** A position that is not one of this log's (malformed, or ahead of the newest event). */
export class InvalidEventPositionError extends Error {
	override readonly name = 'InvalidEventPositionError';
}

export function matchesFilter(event: VoiceMessageEvent, filter: VoiceEventFilter): boolean {
	if (filter.ownerId !== undefined && event.ownerId !== filter.ownerId) return false;
	if (filter.destination !== undefined && event.destination !== filter.destination) return false;
	if (filter.voiceMessageId !== undefined && event.voiceMessageId !== filter.voiceMessageId) return false;
	if (filter.statuses && filter.statuses.length > 0 && !filter.statuses.includes(event.status)) return false;
	if (filter.events && filter.events.length > 0 && !filter.events.includes(event.event)) return false;
	return true;
}
