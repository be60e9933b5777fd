import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checksumMatches, isOffsetOctetStream, parseNonNegativeInteger, parseUploadChecksum, parseUploadMetadata } from './tusProtocol.js';

describe('tus header parsing', () => {
	it('reads offsets and lengths as plain decimal safe integers only', () => {
		expect(parseNonNegativeInteger('0')).toBe(0);
		expect(parseNonNegativeInteger('307200')).toBe(307_200);
		for (const bad of ['', '-1', '+1', '1.0', '1e3', '0x1f', ' 1', '1 ', '9007199254740993', '99999999999999999']) {
			expect(parseNonNegativeInteger(bad), bad).toBeUndefined();
		}
	});

	it('decodes Upload-Metadata pairs, with or without values and padding', () => {
		const b64 = (s: string): string => Buffer.from(s).toString('base64');
		const parsed = parseUploadMetadata(`destination ${b64('channel:lobby')},filename ${b64('bü.ogg').replace(/=+$/, '')}, is_confidential`);
		expect(parsed && Object.fromEntries(parsed)).toEqual({ destination: 'channel:lobby', filename: 'bü.ogg', is_confidential: '' });
		expect(parseUploadMetadata('')?.size).toBe(0);
		for (const bad of ['a b c', 'a !!!!', 'a YQ==,a YQ==', 'a,', 'k\u00e9y YQ==', 'a Y']) expect(parseUploadMetadata(bad), bad).toBeUndefined();
	});

	it('parses Upload-Checksum for sha1 and sha256 and rejects the rest', () => {
		const data = Buffer.from('voice');
		for (const algorithm of ['sha1', 'sha256'] as const) {
			const parsed = parseUploadChecksum(`${algorithm} ${createHash(algorithm).update(data).digest('base64')}`);
			expect(parsed.ok).toBe(true);
			if (parsed.ok) {
				expect(checksumMatches(parsed, data)).toBe(true);
				expect(checksumMatches(parsed, Buffer.from('other'))).toBe(false);
			}
		}
		expect(parseUploadChecksum(`md5 ${createHash('md5').update(data).digest('base64')}`)).toMatchObject({ ok: false, reason: 'unsupported' });
		expect(parseUploadChecksum('sha1 AAAA')).toMatchObject({ ok: false, reason: 'malformed' });
		expect(parseUploadChecksum('sha256')).toMatchObject({ ok: false, reason: 'malformed' });
	});

	it('accepts the offset media type in any case, with parameters', () => {
		expect(isOffsetOctetStream('application/offset+octet-stream')).toBe(true);
		expect(isOffsetOctetStream('Application/Offset+Octet-Stream; charset=binary')).toBe(true);
		expect(isOffsetOctetStream('application/octet-stream')).toBe(false);
		expect(isOffsetOctetStream('')).toBe(false);
	});
});
