// Original file: protocol/proto/parley/v1/channels.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { CloseChannelRequest as _parley_v1_CloseChannelRequest, CloseChannelRequest__Output as _parley_v1_CloseChannelRequest__Output } from '../../parley/v1/CloseChannelRequest.js';
import type { CloseChannelResponse as _parley_v1_CloseChannelResponse, CloseChannelResponse__Output as _parley_v1_CloseChannelResponse__Output } from '../../parley/v1/CloseChannelResponse.js';
import type { ListChannelsRequest as _parley_v1_ListChannelsRequest, ListChannelsRequest__Output as _parley_v1_ListChannelsRequest__Output } from '../../parley/v1/ListChannelsRequest.js';
import type { ListChannelsResponse as _parley_v1_ListChannelsResponse, ListChannelsResponse__Output as _parley_v1_ListChannelsResponse__Output } from '../../parley/v1/ListChannelsResponse.js';
import type { ListParticipantsRequest as _parley_v1_ListParticipantsRequest, ListParticipantsRequest__Output as _parley_v1_ListParticipantsRequest__Output } from '../../parley/v1/ListParticipantsRequest.js';
import type { ListParticipantsResponse as _parley_v1_ListParticipantsResponse, ListParticipantsResponse__Output as _parley_v1_ListParticipantsResponse__Output } from '../../parley/v1/ListParticipantsResponse.js';
import type { MuteParticipantRequest as _parley_v1_MuteParticipantRequest, MuteParticipantRequest__Output as _parley_v1_MuteParticipantRequest__Output } from '../../parley/v1/MuteParticipantRequest.js';
import type { MuteParticipantResponse as _parley_v1_MuteParticipantResponse, MuteParticipantResponse__Output as _parley_v1_MuteParticipantResponse__Output } from '../../parley/v1/MuteParticipantResponse.js';
import type { RemoveParticipantRequest as _parley_v1_RemoveParticipantRequest, RemoveParticipantRequest__Output as _parley_v1_RemoveParticipantRequest__Output } from '../../parley/v1/RemoveParticipantRequest.js';
import type { RemoveParticipantResponse as _parley_v1_RemoveParticipantResponse, RemoveParticipantResponse__Output as _parley_v1_RemoveParticipantResponse__Output } from '../../parley/v1/RemoveParticipantResponse.js';
import type { UpdateParticipantRequest as _parley_v1_UpdateParticipantRequest, UpdateParticipantRequest__Output as _parley_v1_UpdateParticipantRequest__Output } from '../../parley/v1/UpdateParticipantRequest.js';
import type { UpdateParticipantResponse as _parley_v1_UpdateParticipantResponse, UpdateParticipantResponse__Output as _parley_v1_UpdateParticipantResponse__Output } from '../../parley/v1/UpdateParticipantResponse.js';

export interface ChannelServiceClient extends grpc.Client {
  CloseChannel(argument: _parley_v1_CloseChannelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_CloseChannelResponse__Output>): grpc.ClientUnaryCall;
  CloseChannel(argument: _parley_v1_CloseChannelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_CloseChannelResponse__Output>): grpc.ClientUnaryCall;
  CloseChannel(argument: _parley_v1_CloseChannelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_CloseChannelResponse__Output>): grpc.ClientUnaryCall;
  CloseChannel(argument: _parley_v1_CloseChannelRequest, callback: grpc.requestCallback<_parley_v1_CloseChannelResponse__Output>): grpc.ClientUnaryCall;
  closeChannel(argument: _parley_v1_CloseChannelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_CloseChannelResponse__Output>): grpc.ClientUnaryCall;
  closeChannel(argument: _parley_v1_CloseChannelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_CloseChannelResponse__Output>): grpc.ClientUnaryCall;
  closeChannel(argument: _parley_v1_CloseChannelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_CloseChannelResponse__Output>): grpc.ClientUnaryCall;
  closeChannel(argument: _parley_v1_CloseChannelRequest, callback: grpc.requestCallback<_parley_v1_CloseChannelResponse__Output>): grpc.ClientUnaryCall;
  
  ListChannels(argument: _parley_v1_ListChannelsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListChannelsResponse__Output>): grpc.ClientUnaryCall;
  ListChannels(argument: _parley_v1_ListChannelsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_ListChannelsResponse__Output>): grpc.ClientUnaryCall;
  ListChannels(argument: _parley_v1_ListChannelsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListChannelsResponse__Output>): grpc.ClientUnaryCall;
  ListChannels(argument: _parley_v1_ListChannelsRequest, callback: grpc.requestCallback<_parley_v1_ListChannelsResponse__Output>): grpc.ClientUnaryCall;
  listChannels(argument: _parley_v1_ListChannelsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListChannelsResponse__Output>): grpc.ClientUnaryCall;
  listChannels(argument: _parley_v1_ListChannelsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_ListChannelsResponse__Output>): grpc.ClientUnaryCall;
  listChannels(argument: _parley_v1_ListChannelsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListChannelsResponse__Output>): grpc.ClientUnaryCall;
  listChannels(argument: _parley_v1_ListChannelsRequest, callback: grpc.requestCallback<_parley_v1_ListChannelsResponse__Output>): grpc.ClientUnaryCall;
  
  ListParticipants(argument: _parley_v1_ListParticipantsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListParticipantsResponse__Output>): grpc.ClientUnaryCall;
  ListParticipants(argument: _parley_v1_ListParticipantsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_ListParticipantsResponse__Output>): grpc.ClientUnaryCall;
  ListParticipants(argument: _parley_v1_ListParticipantsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListParticipantsResponse__Output>): grpc.ClientUnaryCall;
  ListParticipants(argument: _parley_v1_ListParticipantsRequest, callback: grpc.requestCallback<_parley_v1_ListParticipantsResponse__Output>): grpc.ClientUnaryCall;
  listParticipants(argument: _parley_v1_ListParticipantsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListParticipantsResponse__Output>): grpc.ClientUnaryCall;
  listParticipants(argument: _parley_v1_ListParticipantsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_ListParticipantsResponse__Output>): grpc.ClientUnaryCall;
  listParticipants(argument: _parley_v1_ListParticipantsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_ListParticipantsResponse__Output>): grpc.ClientUnaryCall;
  listParticipants(argument: _parley_v1_ListParticipantsRequest, callback: grpc.requestCallback<_parley_v1_ListParticipantsResponse__Output>): grpc.ClientUnaryCall;
  
  MuteParticipant(argument: _parley_v1_MuteParticipantRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_MuteParticipantResponse__Output>): grpc.ClientUnaryCall;
  MuteParticipant(argument: _parley_v1_MuteParticipantRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_MuteParticipantResponse__Output>): grpc.ClientUnaryCall;
  MuteParticipant(argument: _parley_v1_MuteParticipantRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_MuteParticipantResponse__Output>): grpc.ClientUnaryCall;
  MuteParticipant(argument: _parley_v1_MuteParticipantRequest, callback: grpc.requestCallback<_parley_v1_MuteParticipantResponse__Output>): grpc.ClientUnaryCall;
  muteParticipant(argument: _parley_v1_MuteParticipantRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_MuteParticipantResponse__Output>): grpc.ClientUnaryCall;
  muteParticipant(argument: _parley_v1_MuteParticipantRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_MuteParticipantResponse__Output>): grpc.ClientUnaryCall;
  muteParticipant(argument: _parley_v1_MuteParticipantRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_MuteParticipantResponse__Output>): grpc.ClientUnaryCall;
  muteParticipant(argument: _parley_v1_MuteParticipantRequest, callback: grpc.requestCallback<_parley_v1_MuteParticipantResponse__Output>): grpc.ClientUnaryCall;
  
  RemoveParticipant(argument: _parley_v1_RemoveParticipantRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_RemoveParticipantResponse__Output>): grpc.ClientUnaryCall;
  RemoveParticipant(argument: _parley_v1_RemoveParticipantRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_RemoveParticipantResponse__Output>): grpc.ClientUnaryCall;
  RemoveParticipant(argument: _parley_v1_RemoveParticipantRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_RemoveParticipantResponse__Output>): grpc.ClientUnaryCall;
  RemoveParticipant(argument: _parley_v1_RemoveParticipantRequest, callback: grpc.requestCallback<_parley_v1_RemoveParticipantResponse__Output>): grpc.ClientUnaryCall;
  removeParticipant(argument: _parley_v1_RemoveParticipantRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_RemoveParticipantResponse__Output>): grpc.ClientUnaryCall;
  removeParticipant(argument: _parley_v1_RemoveParticipantRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_RemoveParticipantResponse__Output>): grpc.ClientUnaryCall;
  removeParticipant(argument: _parley_v1_RemoveParticipantRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_RemoveParticipantResponse__Output>): grpc.ClientUnaryCall;
  removeParticipant(argument: _parley_v1_RemoveParticipantRequest, callback: grpc.requestCallback<_parley_v1_RemoveParticipantResponse__Output>): grpc.ClientUnaryCall;
  
  UpdateParticipant(argument: _parley_v1_UpdateParticipantRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_UpdateParticipantResponse__Output>): grpc.ClientUnaryCall;
  UpdateParticipant(argument: _parley_v1_UpdateParticipantRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_UpdateParticipantResponse__Output>): grpc.ClientUnaryCall;
  UpdateParticipant(argument: _parley_v1_UpdateParticipantRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_UpdateParticipantResponse__Output>): grpc.ClientUnaryCall;
  UpdateParticipant(argument: _parley_v1_UpdateParticipantRequest, callback: grpc.requestCallback<_parley_v1_UpdateParticipantResponse__Output>): grpc.ClientUnaryCall;
  updateParticipant(argument: _parley_v1_UpdateParticipantRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_UpdateParticipantResponse__Output>): grpc.ClientUnaryCall;
  updateParticipant(argument: _parley_v1_UpdateParticipantRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_parley_v1_UpdateParticipantResponse__Output>): grpc.ClientUnaryCall;
  updateParticipant(argument: _parley_v1_UpdateParticipantRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_parley_v1_UpdateParticipantResponse__Output>): grpc.ClientUnaryCall;
  updateParticipant(argument: _parley_v1_UpdateParticipantRequest, callback: grpc.requestCallback<_parley_v1_UpdateParticipantResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface ChannelServiceHandlers extends grpc.UntypedServiceImplementation {
  CloseChannel: grpc.handleUnaryCall<_parley_v1_CloseChannelRequest__Output, _parley_v1_CloseChannelResponse>;
  
  ListChannels: grpc.handleUnaryCall<_parley_v1_ListChannelsRequest__Output, _parley_v1_ListChannelsResponse>;
  
  ListParticipants: grpc.handleUnaryCall<_parley_v1_ListParticipantsRequest__Output, _parley_v1_ListParticipantsResponse>;
  
  MuteParticipant: grpc.handleUnaryCall<_parley_v1_MuteParticipantRequest__Output, _parley_v1_MuteParticipantResponse>;
  
  RemoveParticipant: grpc.handleUnaryCall<_parley_v1_RemoveParticipantRequest__Output, _parley_v1_RemoveParticipantResponse>;
  
  UpdateParticipant: grpc.handleUnaryCall<_parley_v1_UpdateParticipantRequest__Output, _parley_v1_UpdateParticipantResponse>;
  
}

export interface ChannelServiceDefinition extends grpc.ServiceDefinition {
  CloseChannel: MethodDefinition<_parley_v1_CloseChannelRequest, _parley_v1_CloseChannelResponse, _parley_v1_CloseChannelRequest__Output, _parley_v1_CloseChannelResponse__Output>
  ListChannels: MethodDefinition<_parley_v1_ListChannelsRequest, _parley_v1_ListChannelsResponse, _parley_v1_ListChannelsRequest__Output, _parley_v1_ListChannelsResponse__Output>
  ListParticipants: MethodDefinition<_parley_v1_ListParticipantsRequest, _parley_v1_ListParticipantsResponse, _parley_v1_ListParticipantsRequest__Output, _parley_v1_ListParticipantsResponse__Output>
  MuteParticipant: MethodDefinition<_parley_v1_MuteParticipantRequest, _parley_v1_MuteParticipantResponse, _parley_v1_MuteParticipantRequest__Output, _parley_v1_MuteParticipantResponse__Output>
  RemoveParticipant: MethodDefinition<_parley_v1_RemoveParticipantRequest, _parley_v1_RemoveParticipantResponse, _parley_v1_RemoveParticipantRequest__Output, _parley_v1_RemoveParticipantResponse__Output>
  UpdateParticipant: MethodDefinition<_parley_v1_UpdateParticipantRequest, _parley_v1_UpdateParticipantResponse, _parley_v1_UpdateParticipantRequest__Output, _parley_v1_UpdateParticipantResponse__Output>
}
