// Original file: protocol/proto/parley/v1/voice_messages.proto


export interface DeleteVoiceMessageRequest {
  'id'?: (string);
}

export interface DeleteVoiceMessageRequest__Output {
  'id': (string);
}
