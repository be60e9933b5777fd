// Original file: protocol/proto/parley/v1/voice_messages.proto

import type { VoiceMessage as _parley_v1_VoiceMessage, VoiceMessage__Output as _parley_v1_VoiceMessage__Output } from '../../parley/v1/VoiceMessage.js';
import type { PageResponse as _parley_v1_PageResponse, PageResponse__Output as _parley_v1_PageResponse__Output } from '../../parley/v1/PageResponse.js';

export interface ListVoiceMessagesResponse {
  'messages'?: (_parley_v1_VoiceMessage)[];
  'page'?: (_parley_v1_PageResponse | null);
}

export interface ListVoiceMessagesResponse__Output {
  'messages': (_parley_v1_VoiceMessage__Output)[];
  'page': (_parley_v1_PageResponse__Output | null);
}
