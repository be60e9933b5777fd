import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../protocol/errors.js';
import { CLIENT_ERROR_CODES, defaultMessage, isParleyErrorCode } from './ParleyError.js';

const SCANNED_ROOTS = ['protocol', 'server', 'client', 'bench'];
const CODE_LITERAL = /'(E_[A-Z0-9_]+)'/g;

/** The non-test TypeScript sources under a folder (built output and dependencies aside). */
function sources(dir: string): string[] {
	return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
		const full = path.join(dir, entry.name);
		if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'dist' ? [] : sources(full);
		return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
	});
}

describe('error codes', () => {
	it('the sources name no code outside ERROR_CODES and CLIENT_ERROR_CODES', () => {
		const strays: string[] = [];
		let seen = 0;
		for (const file of SCANNED_ROOTS.flatMap(sources)) {
			for (const [, code] of readFileSync(file, 'utf8').matchAll(CODE_LITERAL)) {
				seen++;
				if (!isParleyErrorCode(code!)) strays.push(`${file}: ${code}`);
			}
		}
		expect(strays).toEqual([]);
		// The scan itself works: the sources name codes in hundreds of places.
		expect(seen).toBeGreaterThan(100);
	});

	it('knows the server codes and its own, and nothing else', () => {
		expect(isParleyErrorCode('E_NOT_READY')).toBe(true);
		expect(isParleyErrorCode('E_MIC_BUSY')).toBe(true);
		expect(isParleyErrorCode('E_NOPE')).toBe(false);
		expect(isParleyErrorCode('hasOwnProperty')).toBe(false);
	});

	it('declares only what the server does not send, except E_TIMEOUT (its own request timeouts)', () => {
		const shared = Object.keys(CLIENT_ERROR_CODES).filter((code) => Object.hasOwn(ERROR_CODES, code));
		expect(shared).toEqual(['E_TIMEOUT']);
		expect(defaultMessage('E_TIMEOUT')).toBe(CLIENT_ERROR_CODES.E_TIMEOUT);
		expect(defaultMessage('E_NOT_READY')).toBe(ERROR_CODES.E_NOT_READY.message);
	});
});
