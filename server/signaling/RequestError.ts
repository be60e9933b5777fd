// A request that cannot be served, with the protocol's stable code. Thrown inside the
// server (handlers, channels); turned into an error response at the WebSocket boundary.
import { ERROR_CODES, type ErrorCode, type ProtocolError } from './protocol.js';

export class RequestError extends Error {
	override readonly name = 'RequestError';
	readonly code: ErrorCode;
	constructor(code: ErrorCode, message: string = ERROR_CODES[code]) {
		super(message);
		this.code = code;
	}

	toProtocol(): ProtocolError {
		return { code: this.code, message: this.message };
	}
}
