// The table itself; client/ParleyError.test.ts checks that the sources name no code outside
// it and the client's own table (protocol/ tests may not import the client).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { withErrorTable } from './errorDocs.js';
import { ERROR_CODES, errorMessage, httpStatusOf, isErrorCode } from './errors.js';
import { RequestError } from './RequestError.js';

describe('ERROR_CODES', () => {
	it('gives every code a sentence and a 4xx or 5xx status', () => {
		for (const [code, e] of Object.entries(ERROR_CODES)) {
			expect(e.message.trim(), code).not.toBe('');
			expect(e.when.trim(), code).not.toBe('');
			expect(Number.isInteger(e.httpStatus) && e.httpStatus >= 400 && e.httpStatus <= 599, `${code}: ${e.httpStatus}`).toBe(true);
		}
	});

	it('has the statuses tus and HTTP clients rely on', () => {
		expect(httpStatusOf('E_AUTH')).toBe(401);
		expect(httpStatusOf('E_RATE_LIMIT')).toBe(429);
		expect(httpStatusOf('E_VERSION')).toBe(412);
		expect(httpStatusOf('E_CHECKSUM_MISMATCH')).toBe(460);
		expect(httpStatusOf('E_STORAGE_FULL')).toBe(507);
		expect(errorMessage('E_NOT_READY')).toBe('The voice message is not ready yet.');
	});

	it('knows its own codes and nothing else', () => {
		expect(isErrorCode('E_GONE')).toBe(true);
		expect(isErrorCode('E_MIC_BUSY')).toBe(false);
		expect(isErrorCode('toString')).toBe(false);
	});

	it('server/signaling/README.md lists the current codes (run `npm run docs:errors`)', () => {
		const readme = readFileSync('server/signaling/README.md', 'utf8');
		expect(readme).toBe(withErrorTable(readme));
	});
});

describe('RequestError', () => {
	it('defaults to the code\'s sentence and keeps HTTP headers out of the protocol error', () => {
		const err = new RequestError('E_VERSION', undefined, {}, { 'Tus-Version': '1.0.0' });
		expect(err.message).toBe(ERROR_CODES.E_VERSION.message);
		expect(err.headers).toEqual({ 'Tus-Version': '1.0.0' });
		expect(err.toProtocol()).toEqual({ code: 'E_VERSION', message: ERROR_CODES.E_VERSION.message });
	});

	it('carries its details into the protocol error', () => {
		const err = new RequestError('E_RATE_LIMIT', 'slow down', { retryAfterMs: 250 });
		expect(err.toProtocol()).toEqual({ code: 'E_RATE_LIMIT', message: 'slow down', retryAfterMs: 250 });
	});
});
