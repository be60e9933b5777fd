// Original file: protocol/proto/parley/v1/channels.proto


export interface ParticipantRef {
  'peerId'?: (string);
  'userId'?: (string);
  'target'?: "peerId"|"userId";
}

export interface ParticipantRef__Output {
  'peerId'?: (string);
  'userId'?: (string);
  'target'?: "peerId"|"userId";
}
