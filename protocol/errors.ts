// The error vocabulary of every Parley interface: one table of stable codes, each with the
// sentence clients show when they have nothing better and the HTTP status it is sent with.
// WebSocket responses and HTTP replies both take their codes from here; nothing else
// declares a server error code (protocol/errors.test.ts checks the sources for strays).

export interface ErrorCodeInfo {
	/** The sentence clients show when they have nothing better. */
	message: string;
	/** The status of an HTTP reply with this code (4xx or 5xx). */
	httpStatus: number;
	/** When the server sends it (server/signaling/README.md is generated from this). */
	when: string;
}

/** Stable error codes: default sentence, HTTP status, and when each is sent. */
export const ERROR_CODES = {
	E_BAD_REQUEST: {
		message: 'The request is malformed or its data is invalid.',
		httpStatus: 400,
		when: "not JSON, binary frame, not a request envelope, data failing the method's schema or nested deeper than 12 levels; HTTP: an invalid query, body or tus header",
	},
	E_UNKNOWN_METHOD: { message: 'No such method.', httpStatus: 400, when: 'no such method' },
	E_MESSAGE_TOO_LARGE: { message: 'The message exceeds the size limit.', httpStatus: 413, when: 'frame over `signaling.maxMessageBytes` (16 KiB)' },
	E_RATE_LIMIT: {
		message: 'Too many requests; slow down.',
		httpStatus: 429,
		when: 'over a request limit (see [Rate limits](#rate-limits)); `error.retryAfterMs` says when to retry (user and address limits); HTTP: with `Retry-After`',
	},
	E_AUTH: {
		message: 'The access token is missing, invalid or expired.',
		httpStatus: 401,
		when: 'token refused (close 4401); HTTP: no token or a refused one (voice API, uploads, `/metrics` behind its bearer token)',
	},
	E_PROTOCOL_VERSION: { message: 'The client speaks a protocol version this server does not.', httpStatus: 400, when: 'version mismatch (close 4400)' },
	E_FORBIDDEN: {
		message: 'The access token does not grant this.',
		httpStatus: 403,
		when: 'channel not in the token, or grant missing; HTTP: the same, or `/dev/token` from a non-loopback client',
	},
	E_METRICS_NOT_PUBLIC: {
		message: 'Metrics are not served here.',
		httpStatus: 404,
		when: 'HTTP: anonymous `GET /metrics` on the public listener while `metrics.public` is off and `metrics.bearerToken` is empty (the default; scrape `metrics.port` or set a token)',
	},
	E_AUDIO_URL_INVALID: {
		message: 'The audio link is not valid.',
		httpStatus: 403,
		when: 'HTTP: `GET /voice/messages/:id/audio` with a signature that does not match its message, user and expiry (tampered, or issued for another message or user)',
	},
	E_AUDIO_URL_EXPIRED: {
		message: 'The audio link has expired; ask for a new one.',
		httpStatus: 403,
		when: 'HTTP: `GET /voice/messages/:id/audio` with a correctly signed link past its `exp` (`auth.audioUrlTtlS`); `POST /voice/messages/:id/audio-url` gives a fresh one',
	},
	E_NOT_JOINED: { message: 'Join a channel first.', httpStatus: 409, when: 'method needs a joined channel' },
	E_ALREADY_JOINED: { message: 'Already in a channel; leave it first.', httpStatus: 409, when: '`join` twice without `leave`' },
	E_NOT_FOUND: {
		message: 'No such transport, producer or consumer of yours.',
		httpStatus: 404,
		when: 'transport/producer/consumer id that is not yours; HTTP: no such route, or a voice message or upload that does not exist or is not yours',
	},
	E_UNSUPPORTED_MEDIA: { message: 'Only Opus audio can be produced.', httpStatus: 415, when: 'produce of anything but Opus audio' },
	E_INVALID_STATE: {
		message: 'The request does not fit the current state.',
		httpStatus: 409,
		when: 'e.g. produce on a receive transport, second receive transport, connect twice',
	},
	E_CHANNEL_FULL: { message: 'The channel has reached its peer limit.', httpStatus: 409, when: '`channels.maxPeers` reached' },
	E_TOO_MANY_CHANNELS: { message: 'This server has reached its channel limit.', httpStatus: 503, when: '`channels.maxChannels` reached on this node' },
	E_TOO_MANY_TRANSPORTS: { message: 'Transport limit per peer reached.', httpStatus: 409, when: '`channels.maxTransportsPerPeer` reached' },
	E_TOO_MANY_PRODUCERS: { message: 'Producer limit per peer reached.', httpStatus: 409, when: '`channels.maxProducersPerPeer` reached' },
	E_TOO_MANY_RECORDINGS: {
		message: 'This server is recording as many voice messages as it can.',
		httpStatus: 503,
		when: '`startRecording` while `voice.maxConcurrentRecordings` recordings run on this node',
	},
	E_TOO_MANY_USER_CONNECTIONS: {
		message: 'Your user has as many connections open as it may; close one first.',
		httpStatus: 429,
		when: 'a WebSocket while the user holds `signaling.maxConnectionsPerUser` on this node (close 4429)',
	},
	E_TOO_MANY_ADDRESS_CONNECTIONS: {
		message: 'Your address has as many connections open as it may; close one first.',
		httpStatus: 429,
		when: 'a WebSocket while its client address holds `signaling.maxConnectionsPerAddress` on this node (close 4429, before the token is checked)',
	},
	E_TOO_MANY_USER_CHANNELS: {
		message: 'You have opened as many channels as you may; join an open one or wait for yours to close.',
		httpStatus: 429,
		when: '`join` that would open a channel while the user has `channels.maxChannelsPerUser` channels they opened still open on this node',
	},
	E_TOO_MANY_USER_RECORDINGS: {
		message: 'You are recording as many voice messages at once as you may; stop one first.',
		httpStatus: 429,
		when: '`startRecording` while the user runs `voice.maxRecordingsPerUser` recordings on this node',
	},
	E_TOO_MANY_PENDING_UPLOADS: {
		message: 'You have as many unfinished uploads as you may; finish or delete one first.',
		httpStatus: 429,
		when: 'tus: POST while the user holds `voice.maxPendingUploadsPerUser` unfinished uploads (`Retry-After` and `retryAfterMs`: until the oldest expires)',
	},
	E_STORED_BYTES_QUOTA: {
		message: 'Your voice messages use all the storage you may use; delete some first.',
		httpStatus: 413,
		when: '`startRecording`, or tus: POST whose `Upload-Length` does not fit, while the user stores `voice.maxStoredBytesPerUser` (unfinished uploads count with their `Upload-Length`)',
	},
	E_STORED_MESSAGES_QUOTA: {
		message: 'You store as many voice messages as you may; delete some first.',
		httpStatus: 409,
		when: '`startRecording`, or tus: POST, while the user stores `voice.maxStoredMessagesPerUser` messages (unfinished uploads included)',
	},
	E_STORAGE_UNAVAILABLE: {
		message: 'Voice messages cannot be stored right now (storage full or not writable).',
		httpStatus: 503,
		when: '`startRecording` while voice-message storage is full or not writable; HTTP: the voice API while the store or the disk cannot be reached, an upload while the disk is not writable (`Retry-After`)',
	},
	E_SHUTTING_DOWN: { message: 'The server is shutting down.', httpStatus: 503, when: 'node draining' },
	E_EVENT_OUT_OF_RANGE: {
		message: 'The event log no longer keeps events that old.',
		httpStatus: 410,
		when: 'backend API SubscribeStatus resuming after an event older than the log keeps (metadata.eventRetentionS; the Redis stream\'s cap): the message names the oldest event id to resume from',
	},
	E_REMOVED: {
		message: 'A moderator removed you from the channel.',
		httpStatus: 403,
		when: 'removed by the backend API (RemoveParticipant, CloseChannel does not use it) (close 4403; do not reconnect on your own)',
	},
	E_MUTED_BY_MODERATOR: {
		message: 'A moderator muted you; you cannot unmute yourself.',
		httpStatus: 403,
		when: '`resumeProducer` while a moderator has muted you (the backend API\'s MuteParticipant)',
	},
	E_REPLACED: { message: 'The same user joined this channel from another connection.', httpStatus: 409, when: 'superseded by a newer connection of the same user (close 4409)' },
	E_INTERNAL: {
		message: 'Internal server error.',
		httpStatus: 500,
		when: 'unexpected failure (logged with the request), or a request over `signaling.requestTimeoutMs`; HTTP: also an upload stored but not finished (retry HEAD or the final PATCH)',
	},
	E_REDIRECT: {
		message: 'This channel is served by another node; connect there (error.redirect) and join again.',
		httpStatus: 421,
		when: "`join` for a channel served by another node (cluster): `error.redirect = {nodeId, url}`; connect to `url` (the node's signaling URL) with the same token and join there (the browser client does it by itself, at most 3 hops)",
	},
	E_CLUSTER_UNAVAILABLE: {
		message: 'Cluster coordination (Redis) is unreachable; try again.',
		httpStatus: 503,
		when: '`join` that needs cluster coordination while Redis is unreachable (a channel not already open on this node), or that would bridge the channel to a home node that does not answer or refuses: try again',
	},
	E_NODE_UNAVAILABLE: {
		message: 'The node serving this channel does not answer; try again.',
		httpStatus: 503,
		when: 'backend API call for a channel served by another node of the cluster whose process is gone (off the cluster bus, or no answer within `cluster.requestTimeoutMs`); the message names the channel and the node. Once its home claim expires (`cluster.nodeTtlMs`) the channel is NOT_FOUND until someone joins it again',
	},
	// HTTP only: tus uploads (the statuses tus 1.0.0 prescribes) and the listener itself.
	E_GONE: { message: 'The upload expired.', httpStatus: 410, when: 'tus: HEAD or PATCH of an unfinished upload past its `Upload-Expires`' },
	E_CONFLICT: {
		message: "The Upload-Offset does not match the upload's offset; HEAD it to resume.",
		httpStatus: 409,
		when: "tus: a PATCH whose `Upload-Offset` is not the upload's offset",
	},
	E_TOO_LARGE: {
		message: 'The request or upload exceeds the size limit.',
		httpStatus: 413,
		when: 'a body over the route\'s limit; tus: `Upload-Length` over `voice.maxUploadBytes`, or a chunk past the `Upload-Length`',
	},
	E_UNSUPPORTED_MEDIA_TYPE: {
		message: 'The request body has the wrong Content-Type.',
		httpStatus: 415,
		when: 'tus: a PATCH whose `Content-Type` is not `application/offset+octet-stream`',
	},
	E_VERSION: { message: 'The request speaks a tus version this server does not.', httpStatus: 412, when: 'tus: `Tus-Resumable` is not `1.0.0`' },
	E_CHECKSUM_MISMATCH: {
		message: 'The chunk does not match its checksum; it was discarded.',
		httpStatus: 460,
		when: 'tus: a PATCH body that does not match its `Upload-Checksum` (the status the checksum extension prescribes)',
	},
	E_STORAGE_FULL: {
		message: 'The upload cannot be stored now: the disk is full. Retry later from the current offset.',
		httpStatus: 507,
		when: 'tus: an upload while the voice-message disk is full',
	},
	E_BUSY: {
		message: 'This server is handling as many requests as it can; retry in a moment.',
		httpStatus: 503,
		when: '`http.maxConcurrentRequests` requests in flight (with `Retry-After`; the connection is closed)',
	},
	E_TIMEOUT: {
		message: 'The request body did not arrive in time.',
		httpStatus: 408,
		when: 'a request body slower than `http.bodyTimeoutMs` (the connection is closed)',
	},
	E_NOT_READY: { message: 'The voice message is not ready yet.', httpStatus: 409, when: 'the audio of a voice message that is not `ready` (recording, uploading, processing or failed)' },
	E_NOT_BUILT: { message: 'The demo app is not built: run `npm run build:client`.', httpStatus: 503, when: '`GET /` while the demo app (client/dist) is not built' },
} as const satisfies Record<`E_${string}`, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether a code received from elsewhere (an HTTP body, a close reason) is a server code. */
export function isErrorCode(code: string): code is ErrorCode {
	return Object.hasOwn(ERROR_CODES, code);
}

/** The sentence clients show for a code when there is nothing better. */
export function errorMessage(code: ErrorCode): string {
	return ERROR_CODES[code].message;
}

/** The status of an HTTP reply with this code. */
export function httpStatusOf(code: ErrorCode): number {
	return ERROR_CODES[code].httpStatus;
}

export interface ProtocolError {
	code: ErrorCode;
	message: string;
	/** With E_REDIRECT: the node that serves the channel and its signaling URL (ws(s)://.../ws). */
	redirect?: RedirectTarget;
	/** With E_RATE_LIMIT from a user or address limit: how long to wait before retrying. */
	retryAfterMs?: number;
}

export interface RedirectTarget {
	nodeId: string;
	url: string;
}

export function protocolError(code: ErrorCode, message: string = errorMessage(code)): ProtocolError {
	return { code, message };
}
