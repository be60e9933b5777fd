// Original file: protocol/proto/parley/v1/voice_messages.proto


export interface DeleteVoiceMessageResponse {
}

export interface DeleteVoiceMessageResponse__Output {
}
