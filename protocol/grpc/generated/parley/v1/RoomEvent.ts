// Original file: protocol/proto/parley/v1/events.proto

import type { EventParticipant as _parley_v1_EventParticipant, EventParticipant__Output as _parley_v1_EventParticipant__Output } from '../../parley/v1/EventParticipant.js';
import type { Long } from '@grpc/proto-loader';

export interface RoomEvent {
  'eventId'?: (string);
  'event'?: (string);
  'atMs'?: (number | string | Long);
  'nodeId'?: (string);
  'channel'?: (string);
  'participant'?: (_parley_v1_EventParticipant | null);
  'details'?: ({[key: string]: string});
}

export interface RoomEvent__Output {
  'eventId': (string);
  'event': (string);
  'atMs': (string);
  'nodeId': (string);
  'channel': (string);
  'participant': (_parley_v1_EventParticipant__Output | null);
  'details': ({[key: string]: string});
}
