import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { PageRequest as _parley_v1_PageRequest, PageRequest__Output as _parley_v1_PageRequest__Output } from './parley/v1/PageRequest.js';
import type { PageResponse as _parley_v1_PageResponse, PageResponse__Output as _parley_v1_PageResponse__Output } from './parley/v1/PageResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  parley: {
    v1: {
      PageRequest: MessageTypeDefinition<_parley_v1_PageRequest, _parley_v1_PageRequest__Output>
      PageResponse: MessageTypeDefinition<_parley_v1_PageResponse, _parley_v1_PageResponse__Output>
    }
  }
}

