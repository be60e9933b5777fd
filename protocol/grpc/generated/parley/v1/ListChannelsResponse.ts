// Original file: protocol/proto/parley/v1/channels.proto

import type { ChannelInfo as _parley_v1_ChannelInfo, ChannelInfo__Output as _parley_v1_ChannelInfo__Output } from '../../parley/v1/ChannelInfo.js';
import type { PageResponse as _parley_v1_PageResponse, PageResponse__Output as _parley_v1_PageResponse__Output } from '../../parley/v1/PageResponse.js';

export interface ListChannelsResponse {
  'channels'?: (_parley_v1_ChannelInfo)[];
  'page'?: (_parley_v1_PageResponse | null);
}

export interface ListChannelsResponse__Output {
  'channels': (_parley_v1_ChannelInfo__Output)[];
  'page': (_parley_v1_PageResponse__Output | null);
}
