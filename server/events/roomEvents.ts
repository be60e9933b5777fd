// Room and participant events: what happened in a channel, told to backends on the gRPC
// EventService stream and the signed webhook. One shape for both (the webhook body is this
// JSON), and the schema a node checks events of other nodes against.
import { z } from 'zod';
import { ROOM_EVENT_TYPES, type RoomEventType } from '../../protocol/roomEvents.js';

export { ROOM_EVENT_TYPES, type RoomEventType };

export const roomEventSchema = z.strictObject({
	/** `<nodeId>.<bootEpochMs>.<seq>`: unique in the cluster, ordered per node (seq from 1). */
	eventId: z.string().min(1).max(256),
	event: z.enum(ROOM_EVENT_TYPES),
	/** Milliseconds since the epoch, on the node where it happened. */
	at: z.number().int().nonnegative(),
	/** The node where it happened (and which delivers its webhook). */
	nodeId: z.string().min(1).max(200),
	channel: z.string().min(1).max(200),
	participant: z.strictObject({ peerId: z.string().max(200), userId: z.string().max(200) }).optional(),
	/** Per type: reason and kind (left, removed, ended), voiceMessageId (recording.*), ... */
	details: z.record(z.string(), z.string()),
});
export type RoomEvent = z.infer<typeof roomEventSchema>;

/** An event's id: `<nodeId>.<bootEpochMs>.<seq>`. */
export function roomEventId(nodeId: string, bootEpochMs: number, seq: number): string {
	return `${nodeId}.${bootEpochMs}.${seq}`;
}

/** Whether `id` has the form of an event id (not whether it is retained). */
export function isRoomEventId(id: string): boolean {
	return /^.+\.\d+\.\d+$/.test(id);
}
