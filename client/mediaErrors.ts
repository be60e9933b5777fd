// getUserMedia fails with DOMException names that differ across browsers and versions;
// callers (and users) need one stable code and a sentence that says what to do.
import { CLIENT_ERROR_CODES, ParleyError } from './ParleyError.js';

export type MicrophoneErrorCode =
	| 'E_MIC_PERMISSION_DENIED'
	| 'E_MIC_NOT_FOUND'
	| 'E_MIC_BUSY'
	| 'E_INSECURE_CONTEXT'
	| 'E_MIC_UNKNOWN';

/** DOMException names, current and legacy (Chrome < 53, old Firefox), to stable codes. */
const CODE_BY_ERROR_NAME: Readonly<Record<string, MicrophoneErrorCode>> = {
	NotAllowedError: 'E_MIC_PERMISSION_DENIED',
	SecurityError: 'E_MIC_PERMISSION_DENIED',
	PermissionDeniedError: 'E_MIC_PERMISSION_DENIED',
	NotFoundError: 'E_MIC_NOT_FOUND',
	OverconstrainedError: 'E_MIC_NOT_FOUND',
	DevicesNotFoundError: 'E_MIC_NOT_FOUND',
	ConstraintNotSatisfiedError: 'E_MIC_NOT_FOUND',
	NotReadableError: 'E_MIC_BUSY',
	AbortError: 'E_MIC_BUSY',
	TrackStartError: 'E_MIC_BUSY',
};

/** The stable code for anything getUserMedia threw (a DOMException or a look-alike). */
export function microphoneErrorCode(error: unknown): MicrophoneErrorCode {
	const name = typeof error === 'object' && error !== null && 'name' in error ? (error as { name: unknown }).name : undefined;
	return (typeof name === 'string' && Object.hasOwn(CODE_BY_ERROR_NAME, name) && CODE_BY_ERROR_NAME[name]) || 'E_MIC_UNKNOWN';
}

/** A ParleyError with the stable code and a clear message; the original stays as `cause`. */
export function microphoneError(error: unknown): ParleyError {
	const code = microphoneErrorCode(error);
	let message: string = CLIENT_ERROR_CODES[code];
	if (code === 'E_MIC_UNKNOWN' && error instanceof Error && error.message) message = `${message} (${error.message})`;
	return new ParleyError(code, message, { cause: error });
}

/** What microphoneSupportError needs to know about the page (plain objects in tests). */
export interface MicrophoneEnvironment {
	isSecureContext?: boolean;
	navigator?: { mediaDevices?: unknown };
}

/**
 * E_INSECURE_CONTEXT when the page cannot ask for the microphone at all: browsers hide
 * navigator.mediaDevices outside https:// and localhost. Null when it can.
 */
export function microphoneSupportError(environment: MicrophoneEnvironment): ParleyError | null {
	if (environment.isSecureContext === false || !environment.navigator?.mediaDevices) {
		return new ParleyError('E_INSECURE_CONTEXT');
	}
	return null;
}
