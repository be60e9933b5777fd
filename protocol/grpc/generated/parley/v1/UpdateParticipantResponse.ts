// Original file: protocol/proto/parley/v1/channels.proto

import type { Participant as _parley_v1_Participant, Participant__Output as _parley_v1_Participant__Output } from '../../parley/v1/Participant.js';

export interface UpdateParticipantResponse {
  'participant'?: (_parley_v1_Participant | null);
}

export interface UpdateParticipantResponse__Output {
  'participant': (_parley_v1_Participant__Output | null);
}
