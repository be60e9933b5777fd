// Original file: protocol/proto/parley/v1/channels.proto

import type { ParticipantGrants as _parley_v1_ParticipantGrants, ParticipantGrants__Output as _parley_v1_ParticipantGrants__Output } from '../../parley/v1/ParticipantGrants.js';

export interface Participant {
  'peerId'?: (string);
  'userId'?: (string);
  'displayName'?: (string);
  'nodeId'?: (string);
  'grants'?: (_parley_v1_ParticipantGrants | null);
  'speaking'?: (boolean);
  'mutedByModerator'?: (boolean);
}

export interface Participant__Output {
  'peerId': (string);
  'userId': (string);
  'displayName': (string);
  'nodeId': (string);
  'grants': (_parley_v1_ParticipantGrants__Output | null);
  'speaking': (boolean);
  'mutedByModerator': (boolean);
}
