// Voice-message metadata shared by every node of a cluster, in Redis.
//
// Why Redis and not a shared SQL database: nodes of a cluster already depend on Redis (bus,
// registry, placement, rate limits) and the cluster design adds nothing else to run. The data
// is small (one hash per message), the access paths are few (by id, newest first per
// destination, by status for recovery), and Lua scripts give the atomicity SQLite's
// transactions gave. Durability is Redis's: run it with `appendonly yes` and `appendfsync
// everysec` (a status acknowledged less than about a second before a crash of the Redis host
// can be lost) or `appendfsync always` (nothing acknowledged is lost, at a write cost); with
// persistence off, a Redis restart forgets every voice message (files stay on disk).
//
// Keys (server/cluster/README.md):
//   parley:vm:<id>                    hash {record: JSON VoiceMessage, status, ver}
//   parley:vm:dest:<channel:c|user:u> sorted set id by createdAt (newest first pages)
//   parley:vm:status:<status>         set of ids (recovery)
// A message and its indexes change together in one script; an update is a compare-and-set on
// `ver` (read, merge in JS, write if nobody wrote in between; else read again), so the JSON is
// built by the same code as SQLite's and no field is lost to a concurrent writer. When the
// status changes, the same script appends the lifecycle event to the stream
// (VoiceEventStream), so the stream has exactly one entry per committed change. The hash's
// `seq` counts the message's events (HINCRBY in the same script): the event's sequence.
// A message written before `seq` existed counts its created event as 1.
import { ReplyError, type Redis } from 'ioredis';
import { lifecycleEvent, type VoiceMessageEvent } from '../voiceEvents.js';
import {
	DuplicateVoiceMessageError,
	pageCursor,
	pageOf,
	VoiceStoreUnavailableError,
	usageOfMessages,
	type ListOptions,
	type StoredUsage,
	type UpdateCondition,
	type VoiceMessagePage,
	type VoiceMessagePatch,
	type VoiceMessageStore,
	type VoiceMessageStoreOptions,
} from './VoiceMessageStore.js';
import { formatDestination, type Destination, type VoiceMessage } from '../voiceMessage.js';
import { VOICE_MESSAGE_ID_PATTERN } from '../../../protocol/patterns.js';
import { type VoiceMessageStatus } from '../../../protocol/schemas.js';
import { evalScript, redisScript, type RedisScript } from '../../redis/redisConnection.js';
import { VoiceEventStream } from './VoiceEventStream.js';

const KEY_PREFIX = 'parley:vm:';
const messageKey = (id: string) => `${KEY_PREFIX}${id}`;
const destinationKey = (d: Destination) => `${KEY_PREFIX}dest:${formatDestination(d)}`;
const statusKey = (s: VoiceMessageStatus) => `${KEY_PREFIX}status:${s}`;
/** Ids of one owner's messages (usageOf: the per-user quotas). */
const ownerKey = (ownerId: string) => `${KEY_PREFIX}owner:${ownerId}`;
/** Compare-and-set attempts before an update gives up (only under heavy contention on one id). */
const MAX_CAS_ATTEMPTS = 20;

// Sets the value of the event's 'sequence' field (event fields start at ARGV[first]) and appends it.
const APPEND_EVENT = `
local function appendEvent(stream, maxLen, first, seq)
  local fields = {}
  for i = first, #ARGV do fields[#fields + 1] = ARGV[i] end
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'sequence' then fields[i + 1] = tostring(seq) end
  end
  redis.call('XADD', stream, 'MAXLEN', '~', maxLen, '*', unpack(fields))
end
local function nextSeq(key)
  if not redis.call('HGET', key, 'seq') then redis.call('HSET', key, 'seq', 1) end
  return redis.call('HINCRBY', key, 'seq', 1)
end
`;

// KEYS: message, destination index, status index, stream, owner index
// ARGV: id, record, status, createdAt, appendEvent (0/1), maxLen, event fields...
// Returns 0 (exists) or 1.
const INSERT = `${APPEND_EVENT}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'status', ARGV[3], 'ver', 1, 'seq', 1)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
if ARGV[5] == '1' then appendEvent(KEYS[4], ARGV[6], 7, 1) end
return 1`;

// KEYS: message, old status index, new status index, stream
// ARGV: id, expected ver, record, new status, hasEvent (0/1), appendEvent (0/1), maxLen, event fields...
// Returns 0 (lost the race) or {1, the event's sequence (0: no event)}.
const UPDATE = `${APPEND_EVENT}
if redis.call('HGET', KEYS[1], 'ver') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'record', ARGV[3], 'status', ARGV[4], 'ver', tonumber(ARGV[2]) + 1)
if KEYS[2] ~= KEYS[3] then
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[1])
end
local seq = 0
if ARGV[5] == '1' then seq = nextSeq(KEYS[1]) end
if ARGV[6] == '1' then appendEvent(KEYS[4], ARGV[7], 8, seq) end
return {1, seq}`;

// KEYS: message, destination index, status index, stream, owner index
// ARGV: id, expected ver, appendEvent (0/1), maxLen, event fields...
// Returns 0 (lost the race) or {1, the deleted event's sequence}.
const DELETE = `${APPEND_EVENT}
if redis.call('HGET', KEYS[1], 'ver') ~= ARGV[2] then return 0 end
local seq = nextSeq(KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[1])
if ARGV[3] == '1' then appendEvent(KEYS[4], ARGV[4], 5, seq) end
return {1, seq}`;

// A page, newest first, read in one step so it is consistent: ties on createdAt are ordered
// by id descending (as SQLite's ORDER BY created_at DESC, id DESC), and the cursor
// "<createdAt>:<id>" continues strictly after its message.
// KEYS: destination index. ARGV: key prefix, count, cursor createdAt ('' for none), cursor id
const LIST = `
local count = tonumber(ARGV[2])
local ids = {}
if ARGV[3] == '' then
  ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'LIMIT', 0, count)
else
  local same = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[3], ARGV[3])
  for _, id in ipairs(same) do
    if id < ARGV[4] and #ids < count then table.insert(ids, id) end
  end
  if #ids < count then
    local older = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[3], '-inf', 'LIMIT', 0, count - #ids)
    for _, id in ipairs(older) do table.insert(ids, id) end
  end
end
local records = {}
for _, id in ipairs(ids) do
  local r = redis.call('HGET', ARGV[1] .. id, 'record')
  if r then table.insert(records, r) end
end
return records`;

const SCRIPTS = { insert: redisScript(INSERT), update: redisScript(UPDATE), delete: redisScript(DELETE), list: redisScript(LIST) };

export interface RedisVoiceMessageStoreOptions extends VoiceMessageStoreOptions {
	/** Where lifecycle events are appended (atomically with the change); none: no stream. */
	events?: VoiceEventStream;
}

export class RedisVoiceMessageStore implements VoiceMessageStore {
	readonly #redis: Redis;
	readonly #o: RedisVoiceMessageStoreOptions;

	/** `redis` is the node's command connection; its owner (ParleyServer) closes it. */
	constructor(redis: Redis, options: RedisVoiceMessageStoreOptions) {
		this.#redis = redis;
		this.#o = options;
	}

	async insert(m: VoiceMessage): Promise<void> {
		const event = lifecycleEvent(undefined, m, this.#o.nodeId);
		const inserted = await this.#run(
			SCRIPTS.insert,
			[messageKey(m.id), destinationKey(m.destination), statusKey(m.status), this.#streamKey, ownerKey(m.ownerId)],
			[m.id, JSON.stringify(m), m.status, String(m.createdAt), ...this.#eventArgs(event)],
		);
		if (inserted !== 1) throw new DuplicateVoiceMessageError(`voice message ${m.id} exists`);
		this.#emit(event);
	}

	async update(id: string, patch: VoiceMessagePatch, condition?: UpdateCondition): Promise<VoiceMessage | undefined> {
		for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
			const current = await this.#read(id);
			if (!current) return undefined;
			if (condition && current.message.nodeId !== condition.nodeId) return undefined;
			// JSON drops keys whose value is undefined, as SQLite's JSON column does.
			const next = JSON.parse(JSON.stringify({ ...current.message, ...patch, updatedAt: Date.now() })) as VoiceMessage;
			const event = lifecycleEvent(current.message, next, this.#o.nodeId);
			const written = await this.#run(
				SCRIPTS.update,
				[messageKey(id), statusKey(current.message.status), statusKey(next.status), this.#streamKey],
				[id, current.ver, JSON.stringify(next), next.status, event ? '1' : '0', ...this.#eventArgs(event)],
			);
			if (Array.isArray(written)) {
				if (event) this.#emit({ ...event, sequence: Number(written[1]) });
				return next;
			}
		}
		throw new Error(`voice message ${id}: too many concurrent updates`);
	}

	async get(id: string): Promise<VoiceMessage | undefined> {
		return (await this.#read(id))?.message;
	}

	async listFor(destination: Destination, { limit, before }: ListOptions): Promise<VoiceMessagePage> {
		const cursor = pageCursor(before);
		const records = (await this.#run(SCRIPTS.list, [destinationKey(destination)], [KEY_PREFIX, String(limit + 1), cursor ? String(cursor.createdAt) : '', cursor?.id ?? ''])) as string[];
		const all = records.map((r) => JSON.parse(r) as VoiceMessage);
		return pageOf(all, limit);
	}

	/** From the owner's id set (kept for the quotas), sorted here: an owner's messages are
	 * bounded by voice.maxStoredMessagesPerUser, so this reads at most that many records. */
	async listByOwner(ownerId: string, { limit, before }: ListOptions): Promise<VoiceMessagePage> {
		const cursor = pageCursor(before);
		const newestFirst = (await this.#messagesIn(ownerKey(ownerId)))
			.filter((m) => m.ownerId === ownerId)
			.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
		const older = cursor ? newestFirst.filter((m) => m.createdAt < cursor.createdAt || (m.createdAt === cursor.createdAt && m.id < cursor.id)) : newestFirst;
		return pageOf(older.slice(0, limit + 1), limit);
	}

	async listByStatus(status: VoiceMessageStatus): Promise<VoiceMessage[]> {
		// The set and the hash change together, but a change may land between the two reads.
		return (await this.#messagesIn(statusKey(status))).filter((m) => m.status === status);
	}

	async usageOf(ownerId: string): Promise<StoredUsage> {
		return usageOfMessages(await this.#messagesIn(ownerKey(ownerId)));
	}

	/** The messages whose ids an index set holds (ids whose hash is gone are skipped). */
	async #messagesIn(setKey: string): Promise<VoiceMessage[]> {
		const ids = await this.#reach(() => this.#redis.smembers(setKey));
		if (ids.length === 0) return [];
		const pipeline = this.#redis.pipeline();
		for (const id of ids) pipeline.hget(messageKey(id), 'record');
		const replies = (await this.#reach(() => pipeline.exec())) ?? [];
		const messages: VoiceMessage[] = [];
		for (const [err, record] of replies) {
			if (err) throw err;
			if (typeof record === 'string') messages.push(JSON.parse(record) as VoiceMessage);
		}
		return messages;
	}

	async delete(id: string): Promise<boolean> {
		for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
			const current = await this.#read(id);
			if (!current) return false;
			const m = current.message;
			const event = lifecycleEvent(m, undefined, this.#o.nodeId);
			const removed = await this.#run(SCRIPTS.delete, [messageKey(id), destinationKey(m.destination), statusKey(m.status), this.#streamKey, ownerKey(m.ownerId)], [id, current.ver, ...this.#eventArgs(event)]);
			if (Array.isArray(removed)) {
				if (event) this.#emit({ ...event, sequence: Number(removed[1]) });
				return true;
			}
		}
		throw new Error(`voice message ${id}: too many concurrent updates`);
	}

	/** The connection belongs to the node (ParleyServer closes it after the store). */
	async close(): Promise<void> {}

	get #streamKey(): string {
		return this.#o.events?.key ?? `${KEY_PREFIX}no-stream`;
	}

	#eventArgs(event: VoiceMessageEvent | undefined): string[] {
		const stream = this.#o.events;
		return stream && event ? ['1', String(stream.maxLen), ...VoiceEventStream.fields(event)] : ['0', '0'];
	}

	#emit(event: VoiceMessageEvent | undefined): void {
		if (event) this.#o.onEvent?.(event);
	}

	/** The record and its version; ids are validated before they become keys. */
	async #read(id: string): Promise<{ message: VoiceMessage; ver: string } | undefined> {
		if (!VOICE_MESSAGE_ID_PATTERN.test(id)) return undefined;
		const [record, ver] = await this.#reach(() => this.#redis.hmget(messageKey(id), 'record', 'ver'));
		if (record === null || record === undefined || ver === null || ver === undefined) return undefined;
		return { message: JSON.parse(record) as VoiceMessage, ver };
	}

	async #run(s: RedisScript, keys: string[], args: string[]): Promise<unknown> {
		return this.#reach(() => evalScript(this.#redis, s, keys, args));
	}

	/** Errors Redis answered stay as they are (bugs); failing to reach it becomes
	 * VoiceStoreUnavailableError, which callers answer as a storage outage (503). */
	async #reach<T>(command: () => Promise<T>): Promise<T> {
		try {
			return await command();
		} catch (err) {
			if (err instanceof ReplyError) throw err;
			throw new VoiceStoreUnavailableError(`the voice-message store (Redis) is unreachable: ${(err as Error).message}`, { cause: err });
		}
	}
}
