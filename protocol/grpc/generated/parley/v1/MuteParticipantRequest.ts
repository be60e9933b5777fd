// Original file: protocol/proto/parley/v1/channels.proto

import type { ParticipantRef as _parley_v1_ParticipantRef, ParticipantRef__Output as _parley_v1_ParticipantRef__Output } from '../../parley/v1/ParticipantRef.js';

export interface MuteParticipantRequest {
  'channel'?: (string);
  'participant'?: (_parley_v1_ParticipantRef | null);
  'muted'?: (boolean);
}

export interface MuteParticipantRequest__Output {
  'channel': (string);
  'participant': (_parley_v1_ParticipantRef__Output | null);
  'muted': (boolean);
}
