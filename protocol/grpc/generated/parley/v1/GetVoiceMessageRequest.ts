// Original file: protocol/proto/parley/v1/voice_messages.proto


export interface GetVoiceMessageRequest {
  'id'?: (string);
}

export interface GetVoiceMessageRequest__Output {
  'id': (string);
}
