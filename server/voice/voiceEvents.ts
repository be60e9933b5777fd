// Lifecycle events of voice messages: one per committed change (created, each status change,
// deleted). The metadata store produces them where it commits, so there is exactly one per
// change; the Redis Stream (server/cluster/VoiceEventStream.ts) and webhooks
// (VoiceWebhooks.ts) carry the same JSON.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { formatDestination, voiceMessageInfo, type VoiceMessage } from './voiceMessage.js';
import { VOICE_MESSAGE_STATUSES, type VoiceMessageStatus } from '../../protocol/schemas.js';

export const VOICE_EVENT_NAMES = [
	'voiceMessage.created',
	'voiceMessage.recording',
	'voiceMessage.uploading',
	'voiceMessage.processing',
	'voiceMessage.ready',
	'voiceMessage.failed',
	'voiceMessage.deleted',
] as const;
export type VoiceEventName = (typeof VOICE_EVENT_NAMES)[number];

export interface VoiceMessageEvent {
	/** Unique per event: the webhook delivery id, and what a consumer deduplicates on. */
	eventId: string;
	/** 1 for a message's first event (created), +1 for each later event of the same message,
	 * assigned where the change commits: a consumer that sees a gap has missed an event. */
	sequence: number;
	/** `voiceMessage.created`, `voiceMessage.deleted`, or `voiceMessage.<new status>`. */
	event: VoiceEventName;
	voiceMessageId: string;
	/** The status after the change (for deleted: the status it had). */
	status: VoiceMessageStatus;
	ownerId: string;
	/** `channel:<name>` or `user:<id>`. */
	destination: string;
	/** The node that committed the change. */
	nodeId: string;
	/** When it was committed, milliseconds since the epoch. */
	at: number;
	message: VoiceMessageInfo;
}

/** Built by a store for a change it commits; undefined when nothing a consumer cares about
 * changed (an update that keeps the status). `sequence` is the event's number among the
 * message's events (the store counts them in the same transaction as the change). */
export function lifecycleEvent(previous: VoiceMessage | undefined, current: VoiceMessage | undefined, nodeId: string, sequence = 1): VoiceMessageEvent | undefined {
	let event: VoiceEventName;
	let m: VoiceMessage;
	if (!previous && current) {
		event = 'voiceMessage.created';
		m = current;
	} else if (previous && !current) {
		event = 'voiceMessage.deleted';
		m = previous;
	} else if (previous && current && previous.status !== current.status) {
		event = `voiceMessage.${current.status}`;
		m = current;
	} else {
		return undefined;
	}
	return {
		eventId: randomUUID(),
		sequence,
		event,
		voiceMessageId: m.id,
		status: m.status,
		ownerId: m.ownerId,
		destination: formatDestination(m.destination),
		nodeId,
		at: Date.now(),
		message: voiceMessageInfo(m),
	};
}

export type VoiceEventListener = (event: VoiceMessageEvent) => void;

const statusSchema = z.enum(VOICE_MESSAGE_STATUSES);
const destinationSchema = z.union([
	z.object({ kind: z.literal('channel'), channel: z.string() }),
	z.object({ kind: z.literal('user'), userId: z.string() }),
]);

/** What a consumer (stream reader, webhook receiver) may rely on: validates untrusted JSON. */
export const voiceMessageEventSchema = z.object({
	eventId: z.uuid(),
	sequence: z.number().int().positive(),
	event: z.enum(VOICE_EVENT_NAMES),
	voiceMessageId: z.string().min(1).max(100),
	status: statusSchema,
	ownerId: z.string().min(1).max(200),
	destination: z.string().regex(/^(channel|user):.+$/),
	nodeId: z.string().min(1).max(200),
	at: z.number().int().nonnegative(),
	message: z.looseObject({
		id: z.string(),
		ownerId: z.string(),
		destination: destinationSchema,
		source: z.enum(['recording', 'upload']),
		status: statusSchema,
		createdAt: z.number(),
	}),
});
