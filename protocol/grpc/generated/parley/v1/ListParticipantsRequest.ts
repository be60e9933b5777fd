// Original file: protocol/proto/parley/v1/channels.proto


export interface ListParticipantsRequest {
  'channel'?: (string);
}

export interface ListParticipantsRequest__Output {
  'channel': (string);
}
