// parley.v1.EventService: room and participant events (channel started/ended, participant
// joined/left/muted/removed, recording started/finished; protocol/proto/parley/v1/events.proto).
import type { EventServiceClient } from '../protocol/grpc/generated/parley/v1/EventService.js';
import type { RoomEvent__Output } from '../protocol/grpc/generated/parley/v1/RoomEvent.js';
import type { SubscribeEventsRequest } from '../protocol/grpc/generated/parley/v1/SubscribeEventsRequest.js';
import type { ApiConnection } from './ApiConnection.js';
import { resumingStream, type ResumingStreamOptions } from './resumingStream.js';

export type SubscribeEventsOptions = ResumingStreamOptions;

export class EventClient {
	static readonly SERVICE = 'parley.v1.EventService';
	readonly #api: ApiConnection;
	readonly #client: EventServiceClient;

	constructor(api: ApiConnection) {
		this.#api = api;
		this.#client = api.client<EventServiceClient>(EventClient.SERVICE);
	}

	/**
	 * Room events matching the filter (events.subscribe), as an async iterator: those after
	 * afterEventId that the node still keeps (api.eventRetention), then live ones. Resumes after
	 * the last event on UNAVAILABLE. A node keeps its events in memory: resuming after it
	 * restarted throws SdkError OUT_OF_RANGE (E_EVENT_OUT_OF_RANGE); subscribe again without an
	 * id to go on from now.
	 */
	subscribeEvents(request: SubscribeEventsRequest = {}, options: SubscribeEventsOptions = {}): AsyncGenerator<RoomEvent__Output, void, undefined> {
		return resumingStream('SubscribeEvents', request.afterEventId ?? '', (afterEventId) => this.#api.serverStream<RoomEvent__Output>((md) => this.#client.subscribeEvents({ ...request, afterEventId }, md), options), options);
	}
}
