// Original file: protocol/proto/parley/v1/channels.proto


export interface ParticipantGrants {
  'canPublish'?: (boolean);
  'canSubscribe'?: (boolean);
  'canRecord'?: (boolean);
}

export interface ParticipantGrants__Output {
  'canPublish': (boolean);
  'canSubscribe': (boolean);
  'canRecord': (boolean);
}
