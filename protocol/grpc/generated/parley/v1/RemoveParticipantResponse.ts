// Original file: protocol/proto/parley/v1/channels.proto


export interface RemoveParticipantResponse {
}

export interface RemoveParticipantResponse__Output {
}
