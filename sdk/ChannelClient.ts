// parley.v1.ChannelService: channels and the participants in them (protocol/proto/parley/v1/channels.proto).
import type { ChannelServiceClient } from '../protocol/grpc/generated/parley/v1/ChannelService.js';
import type { CloseChannelRequest } from '../protocol/grpc/generated/parley/v1/CloseChannelRequest.js';
import type { CloseChannelResponse__Output } from '../protocol/grpc/generated/parley/v1/CloseChannelResponse.js';
import type { ListChannelsRequest } from '../protocol/grpc/generated/parley/v1/ListChannelsRequest.js';
import type { ListChannelsResponse__Output } from '../protocol/grpc/generated/parley/v1/ListChannelsResponse.js';
import type { ListParticipantsRequest } from '../protocol/grpc/generated/parley/v1/ListParticipantsRequest.js';
import type { ListParticipantsResponse__Output } from '../protocol/grpc/generated/parley/v1/ListParticipantsResponse.js';
import type { MuteParticipantRequest } from '../protocol/grpc/generated/parley/v1/MuteParticipantRequest.js';
import type { MuteParticipantResponse__Output } from '../protocol/grpc/generated/parley/v1/MuteParticipantResponse.js';
import type { RemoveParticipantRequest } from '../protocol/grpc/generated/parley/v1/RemoveParticipantRequest.js';
import type { RemoveParticipantResponse__Output } from '../protocol/grpc/generated/parley/v1/RemoveParticipantResponse.js';
import type { UpdateParticipantRequest } from '../protocol/grpc/generated/parley/v1/UpdateParticipantRequest.js';
import type { UpdateParticipantResponse__Output } from '../protocol/grpc/generated/parley/v1/UpdateParticipantResponse.js';
import type { ApiConnection, CallOptions } from './ApiConnection.js';

export class ChannelClient {
	static readonly SERVICE = 'parley.v1.ChannelService';
	readonly #api: ApiConnection;
	readonly #client: ChannelServiceClient;

	constructor(api: ApiConnection) {
		this.#api = api;
		this.#client = api.client<ChannelServiceClient>(ChannelClient.SERVICE);
	}

	/** Channels with participants on this node or the cluster (channels.list). */
	listChannels(request: ListChannelsRequest = {}, options?: CallOptions): Promise<ListChannelsResponse__Output> {
		return this.#api.unary<ListChannelsResponse__Output>((md, o, cb) => this.#client.listChannels(request, md, o, cb), options);
	}

	/** Who is in a channel (channels.list); NOT_FOUND for a channel nobody is in. */
	listParticipants(request: ListParticipantsRequest, options?: CallOptions): Promise<ListParticipantsResponse__Output> {
		return this.#api.unary<ListParticipantsResponse__Output>((md, o, cb) => this.#client.listParticipants(request, md, o, cb), options);
	}

	/** Mutes (or unmutes) a participant on the server: they cannot resume until unmuted (participants.mute). */
	muteParticipant(request: MuteParticipantRequest, options?: CallOptions): Promise<MuteParticipantResponse__Output> {
		return this.#api.unary<MuteParticipantResponse__Output>((md, o, cb) => this.#client.muteParticipant(request, md, o, cb), options);
	}

	/** Removes a participant: their connection closes with 4403 E_REMOVED (participants.remove). */
	removeParticipant(request: RemoveParticipantRequest, options?: CallOptions): Promise<RemoveParticipantResponse__Output> {
		return this.#api.unary<RemoveParticipantResponse__Output>((md, o, cb) => this.#client.removeParticipant(request, md, o, cb), options);
	}

	/** Changes a participant's grants in place (participants.update). */
	updateParticipant(request: UpdateParticipantRequest, options?: CallOptions): Promise<UpdateParticipantResponse__Output> {
		return this.#api.unary<UpdateParticipantResponse__Output>((md, o, cb) => this.#client.updateParticipant(request, md, o, cb), options);
	}

	/** Removes everyone from a channel (channels.close). */
	closeChannel(request: CloseChannelRequest, options?: CallOptions): Promise<CloseChannelResponse__Output> {
		return this.#api.unary<CloseChannelResponse__Output>((md, o, cb) => this.#client.closeChannel(request, md, o, cb), options);
	}
}
