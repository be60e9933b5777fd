// Original file: protocol/proto/parley/v1/voice_messages.proto

import type { VoiceMessage as _parley_v1_VoiceMessage, VoiceMessage__Output as _parley_v1_VoiceMessage__Output } from '../../parley/v1/VoiceMessage.js';
import type { Long } from '@grpc/proto-loader';

export interface VoiceMessageStatusEvent {
  'eventId'?: (string);
  'deliveryId'?: (string);
  'event'?: (string);
  'sequence'?: (number);
  'atMs'?: (number | string | Long);
  'message'?: (_parley_v1_VoiceMessage | null);
}

export interface VoiceMessageStatusEvent__Output {
  'eventId': (string);
  'deliveryId': (string);
  'event': (string);
  'sequence': (number);
  'atMs': (string);
  'message': (_parley_v1_VoiceMessage__Output | null);
}
