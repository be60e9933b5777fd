// A request that cannot be served, with the protocol's stable code. Thrown inside the
// server (handlers, channels); turned into an error response at the WebSocket boundary.
import { ERROR_CODES, type ErrorCode, type ProtocolError, type RedirectTarget } from './protocol.js';

export class RequestError extends Error {
	override readonly name = 'RequestError';
	readonly code: ErrorCode;
	/** Where to go instead (E_REDIRECT). */
	readonly redirect: RedirectTarget | undefined;
	constructor(code: ErrorCode, message: string = ERROR_CODES[code], redirect?: RedirectTarget) {
		super(message);
		this.code = code;
		this.redirect = redirect;
	}

	toProtocol(): ProtocolError {
		return { code: this.code, message: this.message, ...(this.redirect && { redirect: this.redirect }) };
	}
}
