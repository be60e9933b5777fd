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
import { EventLogOutOfRangeError, InvalidEventPositionError, matchesFilter, type LoggedVoiceEvent, type VoiceEventBatch, type VoiceEventFilter, type VoiceEventLog } from './VoiceEventLog.js';

const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/;

/** The greatest stream id below `id` ('0-0' stays). */
function streamIdBefore(id: string): string {
	const [, ms, seq] = STREAM_ID.exec(id)!;
	if (BigInt(seq!) > 0n) return `${ms}-${BigInt(seq!) - 1n}`;
	return BigInt(ms!) > 0n ? `${BigInt(ms!) - 1n}-18446744073709551615` : '0-0';
}

/** Stream ids compare by (ms, seq) as numbers. */
function compareStreamIds(a: string, b: string): number {
	const [, am, as] = STREAM_ID.exec(a)!;
	const [, bm, bs] = STREAM_ID.exec(b)!;
	const ms = BigInt(am!) - BigInt(bm!);
	return ms !== 0n ? (ms < 0n ? -1 : 1) : Number(BigInt(as!) - BigInt(bs!));
}

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

/** Also the event log of the Redis store (VoiceEventLog): positions are stream ids. */
export class VoiceEventStream implements VoiceEventLog {
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

	async readEvents(after: string, filter: VoiceEventFilter, scanLimit: number): Promise<VoiceEventBatch> {
		const from = after === '0' ? '0-0' : after;
		if (!STREAM_ID.test(from)) throw new InvalidEventPositionError(`"${after.slice(0, 40)}" is not an event id of this log`);
		const entries = (await this.#redis.xrange(this.key, `(${from}`, '+', 'COUNT', scanLimit)) as [string, string[]][];
		// Trimmed (MAXLEN) past `from`: entries after it may be gone. Checked after the read, so
		// a trim between the two is seen.
		const info = await this.#streamInfo();
		if (info.oldest && compareStreamIds(from, info.oldest) < 0) {
			throw new EventLogOutOfRangeError(`events after ${after} are no longer kept (the stream is trimmed at cluster.eventStreamMaxLen)`, info.oldest);
		}
		if (entries.length === 0) {
			if (compareStreamIds(from, info.lastId) > 0) throw new InvalidEventPositionError(`event ${after} is ahead of the log (newest ${info.lastId})`);
			return { events: [], readThrough: after };
		}
		const events: LoggedVoiceEvent[] = [];
		for (const [streamId, fields] of entries) {
			const event = VoiceEventStream.parse(fields);
			// An entry that is not an event (written by something else) is skipped, not delivered.
			if (!(event instanceof Error) && matchesFilter(event, filter)) events.push({ position: streamId, event });
		}
		return { events, readThrough: entries.at(-1)![0] };
	}

	async headPosition(): Promise<string> {
		return (await this.#streamInfo()).lastId;
	}

	/**
	 * The stream's last id, and when entries have been removed (trimmed or deleted), the oldest
	 * position one can resume from without a gap: the id just before the first entry kept
	 * (nothing can lie between the two), or the last id when none is kept. XTRIM does not record
	 * what it removed (max-deleted-entry-id counts XDEL only), so this is told from
	 * entries-added against length (Redis 7).
	 */
	async #streamInfo(): Promise<{ lastId: string; oldest: string | undefined }> {
		let reply: unknown[];
		try {
			reply = (await this.#redis.xinfo('STREAM', this.key)) as unknown[];
		} catch (err) {
			if (err instanceof Error && /no such key/i.test(err.message)) return { lastId: '0-0', oldest: undefined };
			throw err;
		}
		const info = new Map<string, unknown>();
		for (let i = 0; i + 1 < reply.length; i += 2) info.set(String(reply[i]), reply[i + 1]);
		const lastId = String(info.get('last-generated-id') ?? '0-0');
		const removed = Number(info.get('entries-added') ?? 0) - Number(info.get('length') ?? 0);
		if (removed <= 0) return { lastId, oldest: undefined };
		const first = info.get('first-entry') as [string, string[]] | null | undefined;
		return { lastId, oldest: first ? streamIdBefore(first[0]) : lastId };
	}

	/** Acknowledges entries of `group` (they leave its pending list). */
	ack(group: string, ...streamIds: string[]): Promise<number> {
		return streamIds.length === 0 ? Promise.resolve(0) : this.#redis.xack(this.key, group, ...streamIds);
	}
}
