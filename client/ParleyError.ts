// The one error type the client library throws and emits. Server errors keep the server's
// stable code (ErrorCode); failures the client detects itself get a client code. Callers
// branch on `code`, never on the message.
import { errorMessage, isErrorCode, type ErrorCode, type RedirectTarget } from '../protocol/errors.js';

/** Codes the client raises itself, with the sentence shown when there is nothing better. */
export const CLIENT_ERROR_CODES = {
	E_TIMEOUT: 'The server did not answer in time.',
	E_NOT_CONNECTED: 'Not connected to the server.',
	E_CONNECTION_CLOSED: 'The connection to the server was lost.',
	E_BAD_MESSAGE: 'The server sent a message the client cannot read.',
	E_RECONNECT_FAILED: 'Lost the connection to the server and could not get it back.',
	E_MEDIA_FAILED: 'The audio connection to the server failed.',
	E_CHANNEL_CLOSING: 'The channel is closing on the server; rejoining.',
	E_UNSUPPORTED_BROWSER: 'This browser does not support the WebRTC features voice channels need.',
	E_MIC_PERMISSION_DENIED: "Microphone access was denied. Allow it in the browser's site settings, then try again.",
	E_MIC_NOT_FOUND: 'No microphone was found (or the selected one is not available).',
	E_MIC_BUSY: 'The microphone is in use by another application or could not be started.',
	E_MIC_ENDED: 'The microphone stopped (unplugged, or access was revoked).',
	E_INSECURE_CONTEXT: 'Microphone access needs a secure page (https:// or http://localhost).',
	E_MIC_UNKNOWN: 'The microphone could not be opened.',
	E_PLAYBACK_FAILED: 'Remote audio could not be played.',
	E_AUTOPLAY_BLOCKED: 'The browser blocked audio playback; click anywhere on the page to hear the channel.',
	E_NETWORK: 'Could not reach the server.',
	E_UPLOAD_FAILED: 'The voice message could not be uploaded.',
	E_ABORTED: 'The operation was cancelled.',
	E_TURN_REFUSED: 'The TURN server refused our credentials (wrong secret or expired); audio cannot be relayed.',
} as const;

export type ClientErrorCode = keyof typeof CLIENT_ERROR_CODES;
export type ParleyErrorCode = ErrorCode | ClientErrorCode;

export interface ParleyErrorOptions {
	cause?: unknown;
	/** The WebSocket close code, when the error comes from a closed connection. */
	closeCode?: number;
	/** The HTTP status, when the error is an HTTP answer (voice-message API, uploads). */
	httpStatus?: number;
	/** With E_REDIRECT: the node that serves the channel. */
	redirect?: RedirectTarget;
	/** With E_RATE_LIMIT: how long the server asked to wait before retrying. */
	retryAfterMs?: number;
}

export class ParleyError extends Error {
	override readonly name = 'ParleyError';
	readonly code: ParleyErrorCode;
	readonly closeCode: number | undefined;
	readonly httpStatus: number | undefined;
	readonly redirect: RedirectTarget | undefined;
	readonly retryAfterMs: number | undefined;

	constructor(code: ParleyErrorCode, message: string = defaultMessage(code), options: ParleyErrorOptions = {}) {
		super(message, options.cause === undefined ? undefined : { cause: options.cause });
		this.code = code;
		this.closeCode = options.closeCode;
		this.httpStatus = options.httpStatus;
		this.redirect = options.redirect;
		this.retryAfterMs = options.retryAfterMs;
	}
}

function isClientErrorCode(code: string): code is ClientErrorCode {
	return Object.hasOwn(CLIENT_ERROR_CODES, code);
}

/** Whether a code is one the client knows: the server's (ERROR_CODES) or its own. */
export function isParleyErrorCode(code: string): code is ParleyErrorCode {
	return isErrorCode(code) || isClientErrorCode(code);
}

export function defaultMessage(code: ParleyErrorCode): string {
	// A client code wins: E_TIMEOUT is also the server's (a slow HTTP body), but the client
	// raises it for its own request timeouts.
	return isClientErrorCode(code) ? CLIENT_ERROR_CODES[code] : errorMessage(code);
}

export function isParleyError(error: unknown, code?: ParleyErrorCode): error is ParleyError {
	return error instanceof ParleyError && (code === undefined || error.code === code);
}

/** Wraps anything thrown into a ParleyError, keeping ParleyErrors as they are. */
export function toParleyError(error: unknown, fallbackCode: ParleyErrorCode): ParleyError {
	if (error instanceof ParleyError) return error;
	const message = error instanceof Error && error.message ? error.message : defaultMessage(fallbackCode);
	return new ParleyError(fallbackCode, message, { cause: error });
}

/**
 * The connection (not the request) failed: the reconnect logic owns recovery, so callers
 * in the middle of an operation just stop.
 */
export function isConnectionLoss(error: unknown): boolean {
	return (
		error instanceof ParleyError &&
		(error.closeCode !== undefined || error.code === 'E_NOT_CONNECTED' || error.code === 'E_CONNECTION_CLOSED')
	);
}

/** Errors that trying again with the same token and code cannot fix. */
const FINAL_CODES: ReadonlySet<ParleyErrorCode> = new Set<ParleyErrorCode>([
	'E_AUTH',
	'E_PROTOCOL_VERSION',
	'E_REPLACED',
	'E_REMOVED',
	'E_FORBIDDEN',
	'E_BAD_REQUEST',
	'E_UNSUPPORTED_MEDIA',
	'E_UNSUPPORTED_BROWSER',
	'E_RECONNECT_FAILED',
]);

export function isFinalError(error: unknown): boolean {
	return error instanceof ParleyError && FINAL_CODES.has(error.code);
}
