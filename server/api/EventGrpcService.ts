// parley.v1.EventService (protocol/proto/parley/v1/events.proto): SubscribeEvents over the
// room event ring of server/events. A token sees the events of the channels its grants cover;
// naming a channel it does not cover in the filter is PERMISSION_DENIED.
import { z } from 'zod';
import { RequestError } from '../../protocol/RequestError.js';
import type { RoomEvent as RoomEventProto } from '../../protocol/grpc/generated/parley/v1/RoomEvent.js';
import { RoomEventOutOfRangeError, type RoomEventLog } from '../events/RoomEventLog.js';
import { isRoomEventId, ROOM_EVENT_TYPES, type RoomEvent } from '../events/roomEvents.js';
import type { ApiCallContext, ApiService } from './GrpcApiServer.js';
import { coversChannel } from './apiAuth.js';

export const EVENT_SERVICE_NAME = 'parley.v1.EventService';

const subscribeRequest = z.object({
	filter: z
		.object({
			channels: z.array(z.string().min(1).max(200)).max(100),
			types: z.array(z.enum(ROOM_EVENT_TYPES)).max(ROOM_EVENT_TYPES.length),
		})
		.partial()
		.nullish(),
	afterEventId: z.union([z.literal(''), z.string().max(256).refine(isRoomEventId, 'must be an event id this service gave out')]).optional(),
});

function toProto(e: RoomEvent): RoomEventProto {
	return { eventId: e.eventId, event: e.event, atMs: String(e.at), nodeId: e.nodeId, channel: e.channel, ...(e.participant && { participant: e.participant }), details: e.details };
}

export function eventGrpcService(deps: { events: RoomEventLog }): ApiService {
	return {
		name: EVENT_SERVICE_NAME,
		methods: {
			SubscribeEvents: {
				kind: 'serverStream',
				request: subscribeRequest,
				async handle(req: z.infer<typeof subscribeRequest>, ctx: ApiCallContext, send: (e: RoomEventProto) => Promise<void>) {
					ctx.authorize('events.subscribe');
					const channels = new Set(req.filter?.channels ?? []);
					const types = new Set<string>(req.filter?.types ?? []);
					for (const c of channels) if (!coversChannel(ctx.principal, c)) throw new RequestError('E_FORBIDDEN', `The API token does not cover channel ${c}.`);
					const accept = (e: RoomEvent) => coversChannel(ctx.principal, e.channel) && (channels.size === 0 || channels.has(e.channel)) && (types.size === 0 || types.has(e.event));
					try {
						// send() waits while the client is not reading; the ring is read at the
						// subscriber's pace (one that falls a whole ring behind gets OUT_OF_RANGE).
						for await (const e of deps.events.subscribe({ ...(req.afterEventId && { after: req.afterEventId }), accept, signal: ctx.signal })) await send(toProto(e));
						if (!ctx.signal.aborted) throw new RequestError('E_SHUTTING_DOWN', 'The server is shutting down: subscribe again with after_event_id set to the last event id received.');
					} catch (err) {
						if (err instanceof RoomEventOutOfRangeError) throw new RequestError('E_EVENT_OUT_OF_RANGE', `${err.message}; subscribe without after_event_id${err.oldestEventId ? ` or after ${err.oldestEventId}` : ''}.`);
						throw err;
					}
				},
			},
		},
	};
}
