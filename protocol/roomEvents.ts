// The names of room and participant events (the gRPC EventService and the webhook's
// X-Parley-Event), shared by the server, its config and backends.
export const ROOM_EVENT_TYPES = [
	'channel.started',
	'channel.ended',
	'participant.joined',
	'participant.left',
	'participant.muted',
	'participant.unmuted',
	'participant.removed',
	'recording.started',
	'recording.finished',
] as const;
export type RoomEventType = (typeof ROOM_EVENT_TYPES)[number];

export function isRoomEventType(value: string): value is RoomEventType {
	return (ROOM_EVENT_TYPES as readonly string[]).includes(value);
}
