// A request that cannot be served, with the protocol's stable code. Thrown inside the
// server (handlers, channels, HTTP routes); turned into an error response at the WebSocket
// boundary (toProtocol) or into an HTTP reply (server/http httpErrorReply, status from the
// code's entry in ERROR_CODES).
import { errorMessage, type ErrorCode, type ProtocolError } from './errors.js';

/** What some errors carry beyond code and message (see ProtocolError). */
export type RequestErrorDetails = Pick<ProtocolError, 'redirect' | 'retryAfterMs'>;

export class RequestError extends Error {
	override readonly name = 'RequestError';
	readonly code: ErrorCode;
	/** E_REDIRECT: where to go instead; E_RATE_LIMIT: when to retry. */
	readonly details: RequestErrorDetails;
	/** Headers an HTTP reply with this error needs (tus's Tus-Version, Retry-After,
	 * WWW-Authenticate); never part of the error body. */
	readonly headers: Readonly<Record<string, string>> | undefined;

	constructor(code: ErrorCode, message: string = errorMessage(code), details: RequestErrorDetails = {}, headers?: Record<string, string>) {
		super(message);
		this.code = code;
		this.details = details;
		this.headers = headers;
	}

	toProtocol(): ProtocolError {
		return { code: this.code, message: this.message, ...this.details };
	}
}
