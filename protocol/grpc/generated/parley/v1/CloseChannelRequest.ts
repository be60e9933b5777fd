// Original file: protocol/proto/parley/v1/channels.proto


export interface CloseChannelRequest {
  'channel'?: (string);
  'reason'?: (string);
}

export interface CloseChannelRequest__Output {
  'channel': (string);
  'reason': (string);
}
