import { describe, expect, it } from 'vitest';
import { buildRedPayload, isRedParseError, parseRedPayload, RED_MAX_REDUNDANT_BLOCKS } from './redPayload.js';

const bytes = (...b: number[]) => Uint8Array.from(b);

describe('RFC 2198 RED payloads', () => {
	it('parses the wire layout RFC 2198 section 3 gives (redundant headers, primary header, blocks)', () => {
		// PT 111 redundant, offset 960, 3 bytes; primary PT 111, 2 bytes.
		const wire = bytes(0x80 | 111, 960 >> 6, ((960 & 0x3f) << 2) | 0, 3, 111, 1, 2, 3, 9, 8);
		const red = parseRedPayload(wire);
		if (isRedParseError(red)) throw new Error(red.error);
		expect(red.redundant).toHaveLength(1);
		expect(red.redundant[0]).toMatchObject({ payloadType: 111, timestampOffset: 960 });
		expect([...red.redundant[0]!.data]).toEqual([1, 2, 3]);
		expect(red.primary.payloadType).toBe(111);
		expect([...red.primary.data]).toEqual([9, 8]);
	});

	it('round-trips distance 0, 1 and 2, zero-length blocks and the widest fields', () => {
		const primary = { payloadType: 100, data: bytes(7, 7, 7) };
		for (const redundant of [
			[],
			[{ payloadType: 100, timestampOffset: 960, data: bytes(1) }],
			[
				{ payloadType: 100, timestampOffset: 1920, data: bytes(1, 2) },
				{ payloadType: 100, timestampOffset: 960, data: new Uint8Array(0) },
			],
			[{ payloadType: 127, timestampOffset: 16383, data: new Uint8Array(1023).fill(5) }],
		]) {
			const parsed = parseRedPayload(buildRedPayload(primary, redundant));
			if (isRedParseError(parsed)) throw new Error(parsed.error);
			expect(parsed.redundant.map((r) => ({ ...r, data: [...r.data] }))).toEqual(redundant.map((r) => ({ ...r, data: [...r.data] })));
			expect([...parsed.primary.data]).toEqual([7, 7, 7]);
		}
	});

	it('rejects truncated chains, blocks past the end and endless chains instead of reading past the buffer', () => {
		expect(parseRedPayload(new Uint8Array(0))).toEqual({ error: 'empty' });
		expect(parseRedPayload(bytes(0x80 | 111, 0, 0))).toEqual({ error: 'truncated header chain' });
		expect(parseRedPayload(bytes(0x80 | 111, 0, 4, 0))).toEqual({ error: 'truncated header chain' }); // no primary header
		expect(parseRedPayload(bytes(0x80 | 111, 0, 4, 10, 111, 1, 2))).toEqual({ error: 'blocks past the end' });
		const endless = new Uint8Array(4 * (RED_MAX_REDUNDANT_BLOCKS + 1) + 1);
		for (let i = 0; i < RED_MAX_REDUNDANT_BLOCKS + 1; i++) endless[i * 4] = 0x80 | 111;
		expect(parseRedPayload(endless)).toEqual({ error: 'too many blocks' });
	});

	it('refuses to build blocks RFC 2198 cannot describe', () => {
		const primary = { payloadType: 111, data: bytes(1) };
		expect(() => buildRedPayload(primary, [{ payloadType: 111, timestampOffset: 16384, data: bytes(1) }])).toThrow(RangeError);
		expect(() => buildRedPayload(primary, [{ payloadType: 111, timestampOffset: 960, data: new Uint8Array(1024) }])).toThrow(RangeError);
	});
});
