// The error vocabulary of every Parley interface: one table of stable codes, each with the
// sentence clients show when they have nothing better. WebSocket responses and HTTP replies
// both take their codes from here; nothing else declares a server error code.

/** Stable error codes with the sentence clients show when they have nothing better. */
export const ERROR_CODES = {
	E_BAD_REQUEST: 'The request is malformed or its data is invalid.',
	E_UNKNOWN_METHOD: 'No such method.',
	E_MESSAGE_TOO_LARGE: 'The message exceeds the size limit.',
	E_RATE_LIMIT: 'Too many requests; slow down.',
	E_AUTH: 'The access token is missing, invalid or expired.',
	E_PROTOCOL_VERSION: 'The client speaks a protocol version this server does not.',
	E_FORBIDDEN: 'The access token does not grant this.',
	E_NOT_JOINED: 'Join a channel first.',
	E_ALREADY_JOINED: 'Already in a channel; leave it first.',
	E_NOT_FOUND: 'No such transport, producer or consumer of yours.',
	E_UNSUPPORTED_MEDIA: 'Only Opus audio can be produced.',
	E_INVALID_STATE: 'The request does not fit the current state.',
	E_CHANNEL_FULL: 'The channel has reached its peer limit.',
	E_TOO_MANY_CHANNELS: 'This server has reached its channel limit.',
	E_TOO_MANY_TRANSPORTS: 'Transport limit per peer reached.',
	E_TOO_MANY_PRODUCERS: 'Producer limit per peer reached.',
	E_TOO_MANY_RECORDINGS: 'This server is recording as many voice messages as it can.',
	E_STORAGE_UNAVAILABLE: 'Voice messages cannot be stored right now (storage full or not writable).',
	E_SHUTTING_DOWN: 'The server is shutting down.',
	E_REPLACED: 'The same user joined this channel from another connection.',
	E_INTERNAL: 'Internal server error.',
	E_REDIRECT: 'This channel is served by another node; connect there (error.redirect) and join again.',
	E_CLUSTER_UNAVAILABLE: 'Cluster coordination (Redis) is unreachable; try again.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

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

export function protocolError(code: ErrorCode, message: string = ERROR_CODES[code]): ProtocolError {
	return { code, message };
}
