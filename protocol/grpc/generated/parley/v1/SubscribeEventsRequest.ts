// Original file: protocol/proto/parley/v1/events.proto

import type { EventFilter as _parley_v1_EventFilter, EventFilter__Output as _parley_v1_EventFilter__Output } from '../../parley/v1/EventFilter.js';

export interface SubscribeEventsRequest {
  'filter'?: (_parley_v1_EventFilter | null);
  'afterEventId'?: (string);
}

export interface SubscribeEventsRequest__Output {
  'filter': (_parley_v1_EventFilter__Output | null);
  'afterEventId': (string);
}
