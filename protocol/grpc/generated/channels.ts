import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { ChannelInfo as _parley_v1_ChannelInfo, ChannelInfo__Output as _parley_v1_ChannelInfo__Output } from './parley/v1/ChannelInfo.js';
import type { ChannelServiceClient as _parley_v1_ChannelServiceClient, ChannelServiceDefinition as _parley_v1_ChannelServiceDefinition } from './parley/v1/ChannelService.js';
import type { CloseChannelRequest as _parley_v1_CloseChannelRequest, CloseChannelRequest__Output as _parley_v1_CloseChannelRequest__Output } from './parley/v1/CloseChannelRequest.js';
import type { CloseChannelResponse as _parley_v1_CloseChannelResponse, CloseChannelResponse__Output as _parley_v1_CloseChannelResponse__Output } from './parley/v1/CloseChannelResponse.js';
import type { ListChannelsRequest as _parley_v1_ListChannelsRequest, ListChannelsRequest__Output as _parley_v1_ListChannelsRequest__Output } from './parley/v1/ListChannelsRequest.js';
import type { ListChannelsResponse as _parley_v1_ListChannelsResponse, ListChannelsResponse__Output as _parley_v1_ListChannelsResponse__Output } from './parley/v1/ListChannelsResponse.js';
import type { ListParticipantsRequest as _parley_v1_ListParticipantsRequest, ListParticipantsRequest__Output as _parley_v1_ListParticipantsRequest__Output } from './parley/v1/ListParticipantsRequest.js';
import type { ListParticipantsResponse as _parley_v1_ListParticipantsResponse, ListParticipantsResponse__Output as _parley_v1_ListParticipantsResponse__Output } from './parley/v1/ListParticipantsResponse.js';
import type { MuteParticipantRequest as _parley_v1_MuteParticipantRequest, MuteParticipantRequest__Output as _parley_v1_MuteParticipantRequest__Output } from './parley/v1/MuteParticipantRequest.js';
import type { MuteParticipantResponse as _parley_v1_MuteParticipantResponse, MuteParticipantResponse__Output as _parley_v1_MuteParticipantResponse__Output } from './parley/v1/MuteParticipantResponse.js';
import type { PageRequest as _parley_v1_PageRequest, PageRequest__Output as _parley_v1_PageRequest__Output } from './parley/v1/PageRequest.js';
import type { PageResponse as _parley_v1_PageResponse, PageResponse__Output as _parley_v1_PageResponse__Output } from './parley/v1/PageResponse.js';
import type { Participant as _parley_v1_Participant, Participant__Output as _parley_v1_Participant__Output } from './parley/v1/Participant.js';
import type { ParticipantGrants as _parley_v1_ParticipantGrants, ParticipantGrants__Output as _parley_v1_ParticipantGrants__Output } from './parley/v1/ParticipantGrants.js';
import type { ParticipantRef as _parley_v1_ParticipantRef, ParticipantRef__Output as _parley_v1_ParticipantRef__Output } from './parley/v1/ParticipantRef.js';
import type { RemoveParticipantRequest as _parley_v1_RemoveParticipantRequest, RemoveParticipantRequest__Output as _parley_v1_RemoveParticipantRequest__Output } from './parley/v1/RemoveParticipantRequest.js';
import type { RemoveParticipantResponse as _parley_v1_RemoveParticipantResponse, RemoveParticipantResponse__Output as _parley_v1_RemoveParticipantResponse__Output } from './parley/v1/RemoveParticipantResponse.js';
import type { UpdateParticipantRequest as _parley_v1_UpdateParticipantRequest, UpdateParticipantRequest__Output as _parley_v1_UpdateParticipantRequest__Output } from './parley/v1/UpdateParticipantRequest.js';
import type { UpdateParticipantResponse as _parley_v1_UpdateParticipantResponse, UpdateParticipantResponse__Output as _parley_v1_UpdateParticipantResponse__Output } from './parley/v1/UpdateParticipantResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  parley: {
    v1: {
      ChannelInfo: MessageTypeDefinition<_parley_v1_ChannelInfo, _parley_v1_ChannelInfo__Output>
      ChannelService: SubtypeConstructor<typeof grpc.Client, _parley_v1_ChannelServiceClient> & { service: _parley_v1_ChannelServiceDefinition }
      CloseChannelRequest: MessageTypeDefinition<_parley_v1_CloseChannelRequest, _parley_v1_CloseChannelRequest__Output>
      CloseChannelResponse: MessageTypeDefinition<_parley_v1_CloseChannelResponse, _parley_v1_CloseChannelResponse__Output>
      ListChannelsRequest: MessageTypeDefinition<_parley_v1_ListChannelsRequest, _parley_v1_ListChannelsRequest__Output>
      ListChannelsResponse: MessageTypeDefinition<_parley_v1_ListChannelsResponse, _parley_v1_ListChannelsResponse__Output>
      ListParticipantsRequest: MessageTypeDefinition<_parley_v1_ListParticipantsRequest, _parley_v1_ListParticipantsRequest__Output>
      ListParticipantsResponse: MessageTypeDefinition<_parley_v1_ListParticipantsResponse, _parley_v1_ListParticipantsResponse__Output>
      MuteParticipantRequest: MessageTypeDefinition<_parley_v1_MuteParticipantRequest, _parley_v1_MuteParticipantRequest__Output>
      MuteParticipantResponse: MessageTypeDefinition<_parley_v1_MuteParticipantResponse, _parley_v1_MuteParticipantResponse__Output>
      PageRequest: MessageTypeDefinition<_parley_v1_PageRequest, _parley_v1_PageRequest__Output>
      PageResponse: MessageTypeDefinition<_parley_v1_PageResponse, _parley_v1_PageResponse__Output>
      Participant: MessageTypeDefinition<_parley_v1_Participant, _parley_v1_Participant__Output>
      ParticipantGrants: MessageTypeDefinition<_parley_v1_ParticipantGrants, _parley_v1_ParticipantGrants__Output>
      ParticipantRef: MessageTypeDefinition<_parley_v1_ParticipantRef, _parley_v1_ParticipantRef__Output>
      RemoveParticipantRequest: MessageTypeDefinition<_parley_v1_RemoveParticipantRequest, _parley_v1_RemoveParticipantRequest__Output>
      RemoveParticipantResponse: MessageTypeDefinition<_parley_v1_RemoveParticipantResponse, _parley_v1_RemoveParticipantResponse__Output>
      UpdateParticipantRequest: MessageTypeDefinition<_parley_v1_UpdateParticipantRequest, _parley_v1_UpdateParticipantRequest__Output>
      UpdateParticipantResponse: MessageTypeDefinition<_parley_v1_UpdateParticipantResponse, _parley_v1_UpdateParticipantResponse__Output>
    }
  }
}

