// Original file: protocol/proto/parley/v1/voice_messages.proto

import type { PageRequest as _parley_v1_PageRequest, PageRequest__Output as _parley_v1_PageRequest__Output } from '../../parley/v1/PageRequest.js';

export interface ListVoiceMessagesRequest {
  'ownerId'?: (string);
  'destination'?: (string);
  'page'?: (_parley_v1_PageRequest | null);
}

export interface ListVoiceMessagesRequest__Output {
  'ownerId': (string);
  'destination': (string);
  'page': (_parley_v1_PageRequest__Output | null);
}
