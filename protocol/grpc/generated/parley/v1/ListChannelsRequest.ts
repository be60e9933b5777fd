// Original file: protocol/proto/parley/v1/channels.proto

import type { PageRequest as _parley_v1_PageRequest, PageRequest__Output as _parley_v1_PageRequest__Output } from '../../parley/v1/PageRequest.js';

export interface ListChannelsRequest {
  'page'?: (_parley_v1_PageRequest | null);
}

export interface ListChannelsRequest__Output {
  'page': (_parley_v1_PageRequest__Output | null);
}
