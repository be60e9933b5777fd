import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { EventFilter as _parley_v1_EventFilter, EventFilter__Output as _parley_v1_EventFilter__Output } from './parley/v1/EventFilter.js';
import type { EventParticipant as _parley_v1_EventParticipant, EventParticipant__Output as _parley_v1_EventParticipant__Output } from './parley/v1/EventParticipant.js';
import type { EventServiceClient as _parley_v1_EventServiceClient, EventServiceDefinition as _parley_v1_EventServiceDefinition } from './parley/v1/EventService.js';
import type { RoomEvent as _parley_v1_RoomEvent, RoomEvent__Output as _parley_v1_RoomEvent__Output } from './parley/v1/RoomEvent.js';
import type { SubscribeEventsRequest as _parley_v1_SubscribeEventsRequest, SubscribeEventsRequest__Output as _parley_v1_SubscribeEventsRequest__Output } from './parley/v1/SubscribeEventsRequest.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  parley: {
    v1: {
      EventFilter: MessageTypeDefinition<_parley_v1_EventFilter, _parley_v1_EventFilter__Output>
      EventParticipant: MessageTypeDefinition<_parley_v1_EventParticipant, _parley_v1_EventParticipant__Output>
      EventService: SubtypeConstructor<typeof grpc.Client, _parley_v1_EventServiceClient> & { service: _parley_v1_EventServiceDefinition }
      RoomEvent: MessageTypeDefinition<_parley_v1_RoomEvent, _parley_v1_RoomEvent__Output>
      SubscribeEventsRequest: MessageTypeDefinition<_parley_v1_SubscribeEventsRequest, _parley_v1_SubscribeEventsRequest__Output>
    }
  }
}

