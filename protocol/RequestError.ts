// A request that cannot be served, with the protocol's stable code. Thrown inside the
// server (handlers, channels); turned into an error response at the WebSocket boundary.
import { ERROR_CODES, type ErrorCode, type ProtocolError } from './errors.js';

/** What some errors carry beyond code and message (see ProtocolError). */
export type RequestErrorDetails = Pick<ProtocolError, 'redirect' | 'retryAfterMs'>;

export class RequestError extends Error {
	override readonly name = 'RequestError';
	readonly code: ErrorCode;
	/** E_REDIRECT: where to go instead; E_RATE_LIMIT: when to retry. */
	readonly details: RequestErrorDetails;
	constructor(code: ErrorCode, message: string = ERROR_CODES[code], details: RequestErrorDetails = {}) {
		super(message);
		this.code = code;
		this.details = details;
	}

	toProtocol(): ProtocolError {
		return { code: this.code, message: this.message, ...this.details };
	}
}
