// Original file: protocol/proto/parley/v1/voice_messages.proto

import type { VoiceMessageFilter as _parley_v1_VoiceMessageFilter, VoiceMessageFilter__Output as _parley_v1_VoiceMessageFilter__Output } from '../../parley/v1/VoiceMessageFilter.js';

export interface SubscribeStatusRequest {
  'filter'?: (_parley_v1_VoiceMessageFilter | null);
  'afterEventId'?: (string);
}

export interface SubscribeStatusRequest__Output {
  'filter': (_parley_v1_VoiceMessageFilter__Output | null);
  'afterEventId': (string);
}
