// Parley's server SDK for Node backends: tokens, the backend API clients, webhook receiving.
export { mintAccessToken, mintApiToken, type AccessTokenOptions, type ApiGrant, type ApiTokenOptions, type SigningSecret } from '../protocol/tokens.js';
export { API_OPERATIONS, type ApiOperation } from '../protocol/apiOperations.js';
export type { ErrorCode } from '../protocol/errors.js';
export { ApiConnection, ALL_OPERATIONS, type ApiConnectionOptions, type ApiKeyCredential, type CallOptions } from './ApiConnection.js';
export { ChannelClient } from './ChannelClient.js';
export { EventClient, type SubscribeEventsOptions } from './EventClient.js';
export { ParleyApi } from './ParleyApi.js';
export { ReconnectPolicy } from './ReconnectPolicy.js';
export type { ResumingStreamOptions } from './resumingStream.js';
export { SdkError } from './SdkError.js';
export { VoiceMessageClient, type SubscribeStatusOptions } from './VoiceMessageClient.js';
export { WEBHOOK_REJECTIONS, WebhookReceiver, WebhookVerificationError, type WebhookDelivery, type WebhookReceiverOptions, type WebhookRejection } from './WebhookReceiver.js';
