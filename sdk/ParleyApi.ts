// The backend API client: one connection (address, API key, deadlines) and a typed client per
// service. A new service (parley.v1.EventService, ...) is one more XxxClient file over
// ApiConnection and one more field here.
import { ApiConnection, type ApiConnectionOptions } from './ApiConnection.js';
import { ChannelClient } from './ChannelClient.js';
import { VoiceMessageClient } from './VoiceMessageClient.js';

export class ParleyApi {
	readonly #connection: ApiConnection;
	readonly channels: ChannelClient;
	readonly voiceMessages: VoiceMessageClient;

	constructor(options: ApiConnectionOptions) {
		this.#connection = new ApiConnection(options);
		this.channels = new ChannelClient(this.#connection);
		this.voiceMessages = new VoiceMessageClient(this.#connection);
	}

	/** Closes every service client's channel; open calls fail with CANCELLED. */
	close(): void {
		this.#connection.close();
	}
}
