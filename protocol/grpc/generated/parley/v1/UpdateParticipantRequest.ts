// Original file: protocol/proto/parley/v1/channels.proto

import type { ParticipantRef as _parley_v1_ParticipantRef, ParticipantRef__Output as _parley_v1_ParticipantRef__Output } from '../../parley/v1/ParticipantRef.js';

export interface UpdateParticipantRequest {
  'channel'?: (string);
  'participant'?: (_parley_v1_ParticipantRef | null);
  'canPublish'?: (boolean);
  'canSubscribe'?: (boolean);
  'canRecord'?: (boolean);
  '_canPublish'?: "canPublish";
  '_canSubscribe'?: "canSubscribe";
  '_canRecord'?: "canRecord";
}

export interface UpdateParticipantRequest__Output {
  'channel': (string);
  'participant': (_parley_v1_ParticipantRef__Output | null);
  'canPublish'?: (boolean);
  'canSubscribe'?: (boolean);
  'canRecord'?: (boolean);
  '_canPublish'?: "canPublish";
  '_canSubscribe'?: "canSubscribe";
  '_canRecord'?: "canRecord";
}
