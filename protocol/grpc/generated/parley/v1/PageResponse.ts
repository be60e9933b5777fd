// Original file: protocol/proto/parley/v1/common.proto


export interface PageResponse {
  'nextPageToken'?: (string);
}

export interface PageResponse__Output {
  'nextPageToken': (string);
}
