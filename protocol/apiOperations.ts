// What an API token may be granted: the operations of the backend API (gRPC, parley.v1),
// declared once for every service and the token builder. A token lists the operations it
// allows (or "*" for all) and the channels they apply to.
export const API_OPERATIONS = [
	'channels.list',
	'channels.close',
	'participants.mute',
	'participants.remove',
	'participants.update',
	'voiceMessages.read',
	'voiceMessages.delete',
	'events.subscribe',
] as const;

export type ApiOperation = (typeof API_OPERATIONS)[number];

export function isApiOperation(value: string): value is ApiOperation {
	return (API_OPERATIONS as readonly string[]).includes(value);
}

/** Trailer of a failed call naming Parley's error code (protocol/errors.ts), e.g. E_NOT_FOUND. */
export const PARLEY_ERROR_CODE_TRAILER = 'parley-error-code';
/** Trailer of a RESOURCE_EXHAUSTED call over the rate limit: milliseconds until a retry may succeed
 * (the same as the google.rpc.RetryInfo in grpc-status-details-bin). */
export const RETRY_AFTER_MS_TRAILER = 'retry-after-ms';
