// Parley's browser library: the public API.
export { ParleyClient } from './ParleyClient.js';
export type {
	ConnectionState,
	JoinResult,
	ParleyClientEvents,
	PeerQuality,
	ParleyClientOptions,
	PublishMicrophoneOptions,
	PublishTrackOptions,
	UploadVoiceMessageOptions,
	VoiceRecording,
} from './ParleyClient.js';
export type { AudioLevel, PeerScore, TransportStats } from './ChannelSession.js';
export type { ConnectionPath } from './connectionPath.js';
export { listMicrophones, openMicrophone } from './microphone.js';
export type { OpenMicrophoneOptions } from './microphone.js';
export { MAX_PEER_VOLUME } from './RemoteAudio.js';
export type { PeerPlayback } from './RemoteAudio.js';
export { BackoffReconnectPolicy, DEFAULT_RECONNECT_DELAYS_MS } from './ReconnectPolicy.js';
export type { BackoffReconnectPolicyOptions, ReconnectPolicy } from './ReconnectPolicy.js';
export { CLIENT_ERROR_CODES, isParleyError, isParleyErrorCode, ParleyError } from './ParleyError.js';
export type { ClientErrorCode, ParleyErrorCode } from './ParleyError.js';
export { microphoneError, microphoneErrorCode, microphoneSupportError } from './mediaErrors.js';
export type { MicrophoneErrorCode } from './mediaErrors.js';
export { SignalingConnection } from './SignalingConnection.js';
export type { SignalingClose, SignalingConnectionOptions, Welcome } from './SignalingConnection.js';
export { TypedEmitter } from './TypedEmitter.js';
export { httpBaseUrl, VoiceMessageApi } from './VoiceMessageApi.js';
export type { ListVoiceMessagesOptions, VoiceMessageApiOptions, VoiceMessageListTarget, VoiceMessagePage } from './VoiceMessageApi.js';
export {
	DEFAULT_UPLOAD_CHUNK_BYTES,
	DEFAULT_UPLOAD_RETRY,
	isRetryableUploadStatus,
	uploadRetryDelays,
	VoiceMessageUploader,
} from './VoiceMessageUploader.js';
export type {
	UploadProgress,
	VoiceMessageUploaderOptions,
	VoiceMessageUploadOptions,
	VoiceMessageUploadResult,
} from './VoiceMessageUploader.js';
export type { Grants, PeerInfo } from '../protocol/messages.js';
export type { ErrorCode } from '../protocol/errors.js';
export type { VoiceMessageDestination, VoiceMessageInfo } from '../protocol/schemas.js';
export { ERROR_CODES } from '../protocol/errors.js';
export { PROTOCOL_VERSION } from '../protocol/messages.js';
export { CHANNEL_NAME_PATTERN } from '../protocol/patterns.js';
