// Original file: protocol/proto/parley/v1/channels.proto

import type { ParticipantRef as _parley_v1_ParticipantRef, ParticipantRef__Output as _parley_v1_ParticipantRef__Output } from '../../parley/v1/ParticipantRef.js';

export interface RemoveParticipantRequest {
  'channel'?: (string);
  'participant'?: (_parley_v1_ParticipantRef | null);
  'reason'?: (string);
}

export interface RemoveParticipantRequest__Output {
  'channel': (string);
  'participant': (_parley_v1_ParticipantRef__Output | null);
  'reason': (string);
}
