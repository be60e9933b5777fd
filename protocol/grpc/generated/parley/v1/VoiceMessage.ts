// Original file: protocol/proto/parley/v1/voice_messages.proto

import type { Long } from '@grpc/proto-loader';

export interface VoiceMessage {
  'id'?: (string);
  'ownerId'?: (string);
  'destination'?: (string);
  'source'?: (string);
  'status'?: (string);
  'createdAtMs'?: (number | string | Long);
  'durationMs'?: (number);
  'sizeBytes'?: (number | string | Long);
  'failureReason'?: (string);
  'originalSha256'?: (string);
}

export interface VoiceMessage__Output {
  'id': (string);
  'ownerId': (string);
  'destination': (string);
  'source': (string);
  'status': (string);
  'createdAtMs': (string);
  'durationMs': (number);
  'sizeBytes': (string);
  'failureReason': (string);
  'originalSha256': (string);
}
