// The backend API client: one connection (address, API key, deadlines) and a typed client per
// service. A new service is one more XxxClient file over
// ApiConnection and one more field here.
import { ApiConnection, type ApiConnectionOptions } from './ApiConnection.js';
import { ChannelClient } from './ChannelClient.js';
import { EventClient } from './EventClient.js';
import { VoiceMessageClient } from './VoiceMessageClient.js';

export class ParleyApi {
	readonly #connection: ApiConnection;
	readonly channels: ChannelClient;
	readonly voiceMessages: VoiceMessageClient;
	readonly events: EventClient;

	constructor(options: ApiConnectionOptions) {
		this.#connection = new ApiConnection(options);
		this.channels = new ChannelClient(this.#connection);
		this.voiceMessages = new VoiceMessageClient(this.#connection);
		this.events = new EventClient(this.#connection);
	}

	/** Closes every service client's channel; open calls fail with CANCELLED. */
	close(): void {
		this.#connection.close();
	}
}
