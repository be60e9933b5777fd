// Original file: protocol/proto/parley/v1/common.proto


export interface PageRequest {
  'pageSize'?: (number);
  'pageToken'?: (string);
}

export interface PageRequest__Output {
  'pageSize': (number);
  'pageToken': (string);
}
