// Original file: protocol/proto/parley/v1/voice_messages.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { DeleteVoiceMessageRequest as _parley_v1_DeleteVoiceMessageRequest, DeleteVoiceMessageRequest__Output as _parley_v1_DeleteVoiceMessageRequest__Output } from '../../parley/v1/DeleteVoiceMessageRequest.js';
import type { DeleteVoiceMessageResponse as _parley_v1_DeleteVoiceMessageResponse, DeleteVoiceMessageResponse__Output as _parley_v1_DeleteVoiceMessageResponse__Output } from '../../parley/v1/DeleteVoiceMessageResponse.js';
import type { GetVoiceMessageRequest as _parley_v1_GetVoiceMessageRequest, GetVoiceMessageRequest__Output as _parley_v1_GetVoiceMessageRequest__Output } from '../../parley/v1/GetVoiceMessageRequest.js';
import type { ListVoiceMessagesRequest as _parley_v1_ListVoiceMessagesRequest, ListVoiceMessagesRequest__Output as _parley_v1_ListVoiceMessagesRequest__Output } from '../../parley/v1/ListVoiceMessagesRequest.js';
import type { ListVoiceMessagesResponse as _parley_v1_ListVoiceMessagesResponse, ListVoiceMessagesResponse__Output as _parley_v1_ListVoiceMessagesResponse__Output } from '../../parley/v1/ListVoiceMessagesResponse.js';
import type { SubscribeStatusRequest as _parley_v1_SubscribeStatusRequest, SubscribeStatusRequest__Output as _parley_v1_SubscribeStatusRequest__Output } from '../../parley/v1/SubscribeStatusRequest.js';
import type { VoiceMessage as _parley_v1_VoiceMessage, VoiceMessage__Output as _parley_v1_VoiceMessage__Output } from '../../parley/v1/VoiceMessage.js';
import type { VoiceMessageStatusEvent as _parley_v1_VoiceMessageStatusEvent, VoiceMessageStatusEvent__Output as _parley_v1_VoiceMessageStatusEvent__Output } from '../../parley/v1/VoiceMessageStatusEvent.js';

export interface VoiceMessageServiceClient extends grpc.Client {
  Delete(argument: _parley_v1_DeleteVoiceMessageRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_DeleteVoiceMessageResponse__Output>): grpc.ClientUnaryCall;
  Delete(argument: _parley_v1_DeleteVoiceMessageRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_DeleteVoiceMessageResponse__Output>): grpc.ClientUnaryCall;
  Delete(argument: _parley_v1_DeleteVoiceMessageRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_DeleteVoiceMessageResponse__Output>): grpc.ClientUnaryCall;
  Delete(argument: _parley_v1_DeleteVoiceMessageRequest, callback: grpc.requestCallback<_parley_v1_DeleteVoiceMessageResponse__Output>): grpc.ClientUnaryCall;
  delete(argument: _parley_v1_DeleteVoiceMessageRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_DeleteVoiceMessageResponse__Output>): grpc.ClientUnaryCall;
  delete(argument: _parley_v1_DeleteVoiceMessageRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_DeleteVoiceMessageResponse__Output>): grpc.ClientUnaryCall;
  delete(argument: _parley_v1_DeleteVoiceMessageRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_DeleteVoiceMessageResponse__Output>): grpc.ClientUnaryCall;
  delete(argument: _parley_v1_DeleteVoiceMessageRequest, callback: grpc.requestCallback<_parley_v1_DeleteVoiceMessageResponse__Output>): grpc.ClientUnaryCall;
  
  Get(argument: _parley_v1_GetVoiceMessageRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_VoiceMessage__Output>): grpc.ClientUnaryCall;
  Get(argument: _parley_v1_GetVoiceMessageRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_VoiceMessage__Output>): grpc.ClientUnaryCall;
  Get(argument: _parley_v1_GetVoiceMessageRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_VoiceMessage__Output>): grpc.ClientUnaryCall;
  Get(argument: _parley_v1_GetVoiceMessageRequest, callback: grpc.requestCallback<_parley_v1_VoiceMessage__Output>): grpc.ClientUnaryCall;
  get(argument: _parley_v1_GetVoiceMessageRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_VoiceMessage__Output>): grpc.ClientUnaryCall;
  get(argument: _parley_v1_GetVoiceMessageRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_VoiceMessage__Output>): grpc.ClientUnaryCall;
  get(argument: _parley_v1_GetVoiceMessageRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_VoiceMessage__Output>): grpc.ClientUnaryCall;
  get(argument: _parley_v1_GetVoiceMessageRequest, callback: grpc.requestCallback<_parley_v1_VoiceMessage__Output>): grpc.ClientUnaryCall;
  
  List(argument: _parley_v1_ListVoiceMessagesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListVoiceMessagesResponse__Output>): grpc.ClientUnaryCall;
  List(argument: _parley_v1_ListVoiceMessagesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_ListVoiceMessagesResponse__Output>): grpc.ClientUnaryCall;
  List(argument: _parley_v1_ListVoiceMessagesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListVoiceMessagesResponse__Output>): grpc.ClientUnaryCall;
  List(argument: _parley_v1_ListVoiceMessagesRequest, callback: grpc.requestCallback<_parley_v1_ListVoiceMessagesResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _parley_v1_ListVoiceMessagesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListVoiceMessagesResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _parley_v1_ListVoiceMessagesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_ListVoiceMessagesResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _parley_v1_ListVoiceMessagesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListVoiceMessagesResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _parley_v1_ListVoiceMessagesRequest, callback: grpc.requestCallback<_parley_v1_ListVoiceMessagesResponse__Output>): grpc.ClientUnaryCall;
  
  SubscribeStatus(argument: _parley_v1_SubscribeStatusRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_parley_v1_VoiceMessageStatusEvent__Output>;
  SubscribeStatus(argument: _parley_v1_SubscribeStatusRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_parley_v1_VoiceMessageStatusEvent__Output>;
  subscribeStatus(argument: _parley_v1_SubscribeStatusRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_parley_v1_VoiceMessageStatusEvent__Output>;
  subscribeStatus(argument: _parley_v1_SubscribeStatusRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_parley_v1_VoiceMessageStatusEvent__Output>;
  
}

export interface VoiceMessageServiceHandlers extends grpc.UntypedServiceImplementation {
  Delete: grpc.handleUnaryCall<_parley_v1_DeleteVoiceMessageRequest__Output, _parley_v1_DeleteVoiceMessageResponse>;
  
  Get: grpc.handleUnaryCall<_parley_v1_GetVoiceMessageRequest__Output, _parley_v1_VoiceMessage>;
  
  List: grpc.handleUnaryCall<_parley_v1_ListVoiceMessagesRequest__Output, _parley_v1_ListVoiceMessagesResponse>;
  
  SubscribeStatus: grpc.handleServerStreamingCall<_parley_v1_SubscribeStatusRequest__Output, _parley_v1_VoiceMessageStatusEvent>;
  
}

export interface VoiceMessageServiceDefinition extends grpc.ServiceDefinition {
  Delete: MethodDefinition<_parley_v1_DeleteVoiceMessageRequest, _parley_v1_DeleteVoiceMessageResponse, _parley_v1_DeleteVoiceMessageRequest__Output, _parley_v1_DeleteVoiceMessageResponse__Output>
  Get: MethodDefinition<_parley_v1_GetVoiceMessageRequest, _parley_v1_VoiceMessage, _parley_v1_GetVoiceMessageRequest__Output, _parley_v1_VoiceMessage__Output>
  List: MethodDefinition<_parley_v1_ListVoiceMessagesRequest, _parley_v1_ListVoiceMessagesResponse, _parley_v1_ListVoiceMessagesRequest__Output, _parley_v1_ListVoiceMessagesResponse__Output>
  SubscribeStatus: MethodDefinition<_parley_v1_SubscribeStatusRequest, _parley_v1_VoiceMessageStatusEvent, _parley_v1_SubscribeStatusRequest__Output, _parley_v1_VoiceMessageStatusEvent__Output>
}
