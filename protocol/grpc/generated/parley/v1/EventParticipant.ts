// Original file: protocol/proto/parley/v1/events.proto


export interface EventParticipant {
  'peerId'?: (string);
  'userId'?: (string);
}

export interface EventParticipant__Output {
  'peerId': (string);
  'userId': (string);
}
