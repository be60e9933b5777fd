import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { DeleteVoiceMessageRequest as _parley_v1_DeleteVoiceMessageRequest, DeleteVoiceMessageRequest__Output as _parley_v1_DeleteVoiceMessageRequest__Output } from './parley/v1/DeleteVoiceMessageRequest.js';
import type { DeleteVoiceMessageResponse as _parley_v1_DeleteVoiceMessageResponse, DeleteVoiceMessageResponse__Output as _parley_v1_DeleteVoiceMessageResponse__Output } from './parley/v1/DeleteVoiceMessageResponse.js';
import type { GetVoiceMessageRequest as _parley_v1_GetVoiceMessageRequest, GetVoiceMessageRequest__Output as _parley_v1_GetVoiceMessageRequest__Output } from './parley/v1/GetVoiceMessageRequest.js';
import type { ListVoiceMessagesRequest as _parley_v1_ListVoiceMessagesRequest, ListVoiceMessagesRequest__Output as _parley_v1_ListVoiceMessagesRequest__Output } from './parley/v1/ListVoiceMessagesRequest.js';
import type { ListVoiceMessagesResponse as _parley_v1_ListVoiceMessagesResponse, ListVoiceMessagesResponse__Output as _parley_v1_ListVoiceMessagesResponse__Output } from './parley/v1/ListVoiceMessagesResponse.js';
import type { PageRequest as _parley_v1_PageRequest, PageRequest__Output as _parley_v1_PageRequest__Output } from './parley/v1/PageRequest.js';
import type { PageResponse as _parley_v1_PageResponse, PageResponse__Output as _parley_v1_PageResponse__Output } from './parley/v1/PageResponse.js';
import type { SubscribeStatusRequest as _parley_v1_SubscribeStatusRequest, SubscribeStatusRequest__Output as _parley_v1_SubscribeStatusRequest__Output } from './parley/v1/SubscribeStatusRequest.js';
import type { VoiceMessage as _parley_v1_VoiceMessage, VoiceMessage__Output as _parley_v1_VoiceMessage__Output } from './parley/v1/VoiceMessage.js';
import type { VoiceMessageFilter as _parley_v1_VoiceMessageFilter, VoiceMessageFilter__Output as _parley_v1_VoiceMessageFilter__Output } from './parley/v1/VoiceMessageFilter.js';
import type { VoiceMessageServiceClient as _parley_v1_VoiceMessageServiceClient, VoiceMessageServiceDefinition as _parley_v1_VoiceMessageServiceDefinition } from './parley/v1/VoiceMessageService.js';
import type { VoiceMessageStatusEvent as _parley_v1_VoiceMessageStatusEvent, VoiceMessageStatusEvent__Output as _parley_v1_VoiceMessageStatusEvent__Output } from './parley/v1/VoiceMessageStatusEvent.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  parley: {
    v1: {
      DeleteVoiceMessageRequest: MessageTypeDefinition<_parley_v1_DeleteVoiceMessageRequest, _parley_v1_DeleteVoiceMessageRequest__Output>
      DeleteVoiceMessageResponse: MessageTypeDefinition<_parley_v1_DeleteVoiceMessageResponse, _parley_v1_DeleteVoiceMessageResponse__Output>
      GetVoiceMessageRequest: MessageTypeDefinition<_parley_v1_GetVoiceMessageRequest, _parley_v1_GetVoiceMessageRequest__Output>
      ListVoiceMessagesRequest: MessageTypeDefinition<_parley_v1_ListVoiceMessagesRequest, _parley_v1_ListVoiceMessagesRequest__Output>
      ListVoiceMessagesResponse: MessageTypeDefinition<_parley_v1_ListVoiceMessagesResponse, _parley_v1_ListVoiceMessagesResponse__Output>
      PageRequest: MessageTypeDefinition<_parley_v1_PageRequest, _parley_v1_PageRequest__Output>
      PageResponse: MessageTypeDefinition<_parley_v1_PageResponse, _parley_v1_PageResponse__Output>
      SubscribeStatusRequest: MessageTypeDefinition<_parley_v1_SubscribeStatusRequest, _parley_v1_SubscribeStatusRequest__Output>
      VoiceMessage: MessageTypeDefinition<_parley_v1_VoiceMessage, _parley_v1_VoiceMessage__Output>
      VoiceMessageFilter: MessageTypeDefinition<_parley_v1_VoiceMessageFilter, _parley_v1_VoiceMessageFilter__Output>
      VoiceMessageService: SubtypeConstructor<typeof grpc.Client, _parley_v1_VoiceMessageServiceClient> & { service: _parley_v1_VoiceMessageServiceDefinition }
      VoiceMessageStatusEvent: MessageTypeDefinition<_parley_v1_VoiceMessageStatusEvent, _parley_v1_VoiceMessageStatusEvent__Output>
    }
  }
}

