// Original file: protocol/proto/parley/v1/channels.proto


export interface ChannelInfo {
  'name'?: (string);
  'peers'?: (number);
  'speakers'?: (number);
  'homeNodeId'?: (string);
}

export interface ChannelInfo__Output {
  'name': (string);
  'peers': (number);
  'speakers': (number);
  'homeNodeId': (string);
}
