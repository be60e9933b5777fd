import { describe, expect, it } from 'vitest';
import { microphoneError, microphoneErrorCode, microphoneSupportError } from './mediaErrors.js';
import { CLIENT_ERROR_CODES, ParleyError } from './ParleyError.js';

describe('microphoneErrorCode', () => {
	it.each([
		['NotAllowedError', 'E_MIC_PERMISSION_DENIED'],
		['SecurityError', 'E_MIC_PERMISSION_DENIED'],
		['PermissionDeniedError', 'E_MIC_PERMISSION_DENIED'],
		['NotFoundError', 'E_MIC_NOT_FOUND'],
		['OverconstrainedError', 'E_MIC_NOT_FOUND'],
		['DevicesNotFoundError', 'E_MIC_NOT_FOUND'],
		['NotReadableError', 'E_MIC_BUSY'],
		['AbortError', 'E_MIC_BUSY'],
		['TrackStartError', 'E_MIC_BUSY'],
		['TypeError', 'E_MIC_UNKNOWN'],
		['SomethingNewError', 'E_MIC_UNKNOWN'],
	])('maps %s to %s', (name, code) => {
		expect(microphoneErrorCode({ name })).toBe(code);
	});

	it('maps values without a usable name to E_MIC_UNKNOWN', () => {
		for (const value of [undefined, null, 'NotAllowedError', 42, {}, { name: 7 }, { name: 'toString' }, { name: '__proto__' }]) {
			expect(microphoneErrorCode(value)).toBe('E_MIC_UNKNOWN');
		}
	});
});

describe('microphoneError', () => {
	it('gives a ParleyError with the stable code, a clear message and the cause', () => {
		const original = { name: 'NotAllowedError', message: 'Permission denied' };
		const error = microphoneError(original);
		expect(error).toBeInstanceOf(ParleyError);
		expect(error.code).toBe('E_MIC_PERMISSION_DENIED');
		expect(error.message).toBe(CLIENT_ERROR_CODES.E_MIC_PERMISSION_DENIED);
		expect(error.cause).toBe(original);
	});

	it('keeps the browser message for unknown failures', () => {
		const error = microphoneError(Object.assign(new Error('weird driver failure'), { name: 'UnknownError' }));
		expect(error.code).toBe('E_MIC_UNKNOWN');
		expect(error.message).toContain('weird driver failure');
	});
});

describe('microphoneSupportError', () => {
	it('is E_INSECURE_CONTEXT on an insecure page', () => {
		expect(microphoneSupportError({ isSecureContext: false, navigator: { mediaDevices: {} } })?.code).toBe('E_INSECURE_CONTEXT');
	});

	it('is E_INSECURE_CONTEXT when navigator.mediaDevices is missing', () => {
		expect(microphoneSupportError({ isSecureContext: true, navigator: {} })?.code).toBe('E_INSECURE_CONTEXT');
		expect(microphoneSupportError({})?.code).toBe('E_INSECURE_CONTEXT');
	});

	it('is null on a secure page with mediaDevices', () => {
		expect(microphoneSupportError({ isSecureContext: true, navigator: { mediaDevices: {} } })).toBeNull();
	});
});
