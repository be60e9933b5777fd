// parley.v1.VoiceMessageService: read, list, delete voice messages and follow their statuses
// (protocol/proto/parley/v1/voice_messages.proto).
import type { DeleteVoiceMessageRequest } from '../protocol/grpc/generated/parley/v1/DeleteVoiceMessageRequest.js';
import type { DeleteVoiceMessageResponse__Output } from '../protocol/grpc/generated/parley/v1/DeleteVoiceMessageResponse.js';
import type { GetVoiceMessageRequest } from '../protocol/grpc/generated/parley/v1/GetVoiceMessageRequest.js';
import type { ListVoiceMessagesRequest } from '../protocol/grpc/generated/parley/v1/ListVoiceMessagesRequest.js';
import type { ListVoiceMessagesResponse__Output } from '../protocol/grpc/generated/parley/v1/ListVoiceMessagesResponse.js';
import type { SubscribeStatusRequest } from '../protocol/grpc/generated/parley/v1/SubscribeStatusRequest.js';
import type { VoiceMessage__Output } from '../protocol/grpc/generated/parley/v1/VoiceMessage.js';
import type { VoiceMessageServiceClient } from '../protocol/grpc/generated/parley/v1/VoiceMessageService.js';
import type { VoiceMessageStatusEvent__Output } from '../protocol/grpc/generated/parley/v1/VoiceMessageStatusEvent.js';
import type { ApiConnection, CallOptions } from './ApiConnection.js';
import { resumingStream, type ResumingStreamOptions } from './resumingStream.js';

export type SubscribeStatusOptions = ResumingStreamOptions;

export class VoiceMessageClient {
	static readonly SERVICE = 'parley.v1.VoiceMessageService';
	readonly #api: ApiConnection;
	readonly #client: VoiceMessageServiceClient;

	constructor(api: ApiConnection) {
		this.#api = api;
		this.#client = api.client<VoiceMessageServiceClient>(VoiceMessageClient.SERVICE);
	}

	/** One message (voiceMessages.read); NOT_FOUND for one the token may not see. */
	get(request: GetVoiceMessageRequest, options?: CallOptions): Promise<VoiceMessage__Output> {
		return this.#api.unary<VoiceMessage__Output>((md, o, cb) => this.#client.get(request, md, o, cb), options);
	}

	/** Messages by owner or by destination, newest first, in cursor pages (voiceMessages.read). */
	list(request: ListVoiceMessagesRequest, options?: CallOptions): Promise<ListVoiceMessagesResponse__Output> {
		return this.#api.unary<ListVoiceMessagesResponse__Output>((md, o, cb) => this.#client.list(request, md, o, cb), options);
	}

	/** Deletes the file and the record (voiceMessages.delete). */
	delete(request: DeleteVoiceMessageRequest, options?: CallOptions): Promise<DeleteVoiceMessageResponse__Output> {
		return this.#api.unary<DeleteVoiceMessageResponse__Output>((md, o, cb) => this.#client.delete(request, md, o, cb), options);
	}

	/**
	 * Status changes matching the filter, as an async iterator: those after afterEventId (empty:
	 * from now on), then live ones. When the stream breaks with UNAVAILABLE it resubscribes after
	 * the last event it yielded, so nothing is missed or repeated (before the first event, it
	 * resubscribes from the request's afterEventId, or from then on). Ends when the signal aborts or
	 * the loop breaks; other failures (OUT_OF_RANGE, PERMISSION_DENIED, ...) throw SdkError.
	 */
	subscribeStatus(request: SubscribeStatusRequest = {}, options: SubscribeStatusOptions = {}): AsyncGenerator<VoiceMessageStatusEvent__Output, void, undefined> {
		return resumingStream('SubscribeStatus', request.afterEventId ?? '', (afterEventId) => this.#api.serverStream<VoiceMessageStatusEvent__Output>((md) => this.#client.subscribeStatus({ ...request, afterEventId }, md), options), options);
	}
}
