// Original file: protocol/proto/parley/v1/events.proto


export interface EventFilter {
  'channels'?: (string)[];
  'types'?: (string)[];
}

export interface EventFilter__Output {
  'channels': (string)[];
  'types': (string)[];
}
