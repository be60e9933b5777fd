// Original file: protocol/proto/parley/v1/voice_messages.proto


export interface VoiceMessageFilter {
  'ownerId'?: (string);
  'destination'?: (string);
  'voiceMessageId'?: (string);
  'statuses'?: (string)[];
}

export interface VoiceMessageFilter__Output {
  'ownerId': (string);
  'destination': (string);
  'voiceMessageId': (string);
  'statuses': (string)[];
}
