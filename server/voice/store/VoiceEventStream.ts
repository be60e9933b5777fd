// Voice-message lifecycle events on the Redis Stream `parley:voice-meta`, for consumers
// (indexers, notifiers, billing) that read them with consumer groups (XREADGROUP + XACK).
//
// Appending happens inside RedisVoiceMessageStore's scripts, in the same atomic step that
// commits the change, so each change has exactly one entry (no entry for a change that did not
// commit, no change without its entry, even if the node dies right after). This module owns
// the stream's name, its cap and its entry format, and the reading side.
//
// Entry fields (all strings): eventId, sequence (the event's number among its message's), event, voiceMessageId, status, ownerId, destination,
// nodeId, at (ms since the epoch), message (JSON of the public VoiceMessageInfo).
import type { Redis } from 'ioredis';
import { voiceMessageEventSchema, type VoiceMessageEvent } from '../voiceEvents.js';

export const VOICE_EVENT_STREAM_KEY = 'parley:voice-meta';

export interface VoiceEventStreamOptions {
	/** Approximate cap (XADD MAXLEN ~): older entries are trimmed (cluster.eventStreamMaxLen). */
	maxLen: number;
	/** Stream key; tests use their own. */
	key?: string;
}

/** An entry read from the stream: its stream id and the validated event. */
export interface VoiceEventEntry {
	streamId: string;
	event: VoiceMessageEvent;
}

/** An entry whose fields are not a valid event (written by something else): reported, so the
 * consumer can acknowledge and skip it instead of reading it forever. */
export interface MalformedVoiceEventEntry {
	streamId: string;
	error: string;
}

export class VoiceEventStream {
	readonly key: string;
	readonly maxLen: number;
	readonly #redis: Redis;

	constructor(redis: Redis, options: VoiceEventStreamOptions) {
		if (!Number.isInteger(options.maxLen) || options.maxLen < 1) throw new TypeError('maxLen must be a positive integer');
		this.#redis = redis;
		this.key = options.key ?? VOICE_EVENT_STREAM_KEY;
		this.maxLen = options.maxLen;
	}

	/** The entry's field/value list (what XADD takes after the id). */
	static fields(e: VoiceMessageEvent): string[] {
		return [
			'eventId', e.eventId,
			'sequence', String(e.sequence),
			'event', e.event,
			'voiceMessageId', e.voiceMessageId,
			'status', e.status,
			'ownerId', e.ownerId,
			'destination', e.destination,
			'nodeId', e.nodeId,
			'at', String(e.at),
			'message', JSON.stringify(e.message),
		];
	}

	/** Parses an entry's flat field list; stream contents are untrusted (anyone with Redis
	 * access can XADD), so they are validated. */
	static parse(fields: string[]): VoiceMessageEvent | Error {
		const record: Record<string, string> = {};
		for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
		let message: unknown;
		try {
			message = JSON.parse(record.message ?? '');
		} catch {
			return new Error('message is not JSON');
		}
		const parsed = voiceMessageEventSchema.safeParse({ ...record, sequence: Number(record.sequence), at: Number(record.at), message });
		return parsed.success ? (parsed.data as VoiceMessageEvent) : new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
	}

	/** Creates a consumer group (and the stream) if missing. `startId` '0' reads the whole
	 * retained history, '$' only what comes next. */
	async createGroup(group: string, startId: '0' | '$' = '$'): Promise<void> {
		try {
			await this.#redis.xgroup('CREATE', this.key, group, startId, 'MKSTREAM');
		} catch (err) {
			if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err;
		}
	}

	/**
	 * Entries not yet delivered to any consumer of `group` (XREADGROUP ... >), at most `count`,
	 * waiting up to `blockMs` when there are none (0: do not wait). A blocking read holds its
	 * connection: give each blocking reader a connection of its own.
	 */
	async read(group: string, consumer: string, { count = 100, blockMs = 0 }: { count?: number; blockMs?: number } = {}): Promise<(VoiceEventEntry | MalformedVoiceEventEntry)[]> {
		const reply = (await (blockMs > 0
			? this.#redis.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', this.key, '>')
			: this.#redis.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', this.key, '>'))) as [string, [string, string[]][]][] | null;
		const entries = reply?.[0]?.[1] ?? [];
		return entries.map(([streamId, fields]) => {
			const event = VoiceEventStream.parse(fields);
			return event instanceof Error ? { streamId, error: event.message } : { streamId, event };
		});
	}

	/** Acknowledges entries of `group` (they leave its pending list). */
	ack(group: string, ...streamIds: string[]): Promise<number> {
		return streamIds.length === 0 ? Promise.resolve(0) : this.#redis.xack(this.key, group, ...streamIds);
	}
}
