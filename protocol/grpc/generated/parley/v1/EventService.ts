// Original file: protocol/proto/parley/v1/events.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { RoomEvent as _parley_v1_RoomEvent, RoomEvent__Output as _parley_v1_RoomEvent__Output } from '../../parley/v1/RoomEvent.js';
import type { SubscribeEventsRequest as _parley_v1_SubscribeEventsRequest, SubscribeEventsRequest__Output as _parley_v1_SubscribeEventsRequest__Output } from '../../parley/v1/SubscribeEventsRequest.js';

export interface EventServiceClient extends grpc.Client {
  SubscribeEvents(argument: _parley_v1_SubscribeEventsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_parley_v1_RoomEvent__Output>;
  SubscribeEvents(argument: _parley_v1_SubscribeEventsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_parley_v1_RoomEvent__Output>;
  subscribeEvents(argument: _parley_v1_SubscribeEventsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_parley_v1_RoomEvent__Output>;
  subscribeEvents(argument: _parley_v1_SubscribeEventsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_parley_v1_RoomEvent__Output>;
  
}

export interface EventServiceHandlers extends grpc.UntypedServiceImplementation {
  SubscribeEvents: grpc.handleServerStreamingCall<_parley_v1_SubscribeEventsRequest__Output, _parley_v1_RoomEvent>;
  
}

export interface EventServiceDefinition extends grpc.ServiceDefinition {
  SubscribeEvents: MethodDefinition<_parley_v1_SubscribeEventsRequest, _parley_v1_RoomEvent, _parley_v1_SubscribeEventsRequest__Output, _parley_v1_RoomEvent__Output>
}
