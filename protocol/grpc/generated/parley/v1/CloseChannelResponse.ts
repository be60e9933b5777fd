// Original file: protocol/proto/parley/v1/channels.proto


export interface CloseChannelResponse {
  'participantsRemoved'?: (number);
}

export interface CloseChannelResponse__Output {
  'participantsRemoved': (number);
}
