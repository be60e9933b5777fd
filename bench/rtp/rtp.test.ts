import { describe, expect, it } from 'vitest';
import { buildNack, buildRtp, isRtcp, parseNacks, parseRtp } from './rtp.js';

describe('RTP', () => {
	it('round-trips header fields and payload', () => {
		const p = buildRtp({ payloadType: 111, sequenceNumber: 65535, timestamp: 0xfffffff0, ssrc: 0xdeadbeef, marker: true }, Uint8Array.of(1, 2, 3));
		expect(parseRtp(p)).toMatchObject({ payloadType: 111, marker: true, sequenceNumber: 65535, timestamp: 0xfffffff0, ssrc: 0xdeadbeef });
		expect([...parseRtp(p)!.payload]).toEqual([1, 2, 3]);
		expect(isRtcp(p)).toBe(false);
	});

	it('skips a header extension to find the payload', () => {
		const base = buildRtp({ payloadType: 100, sequenceNumber: 1, timestamp: 2, ssrc: 3 }, Uint8Array.of(9, 8));
		// One-byte-header extension block (0xBEDE) of one 32-bit word.
		const ext = Buffer.from([0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]);
		const withExt = Buffer.concat([base.subarray(0, 12), ext, base.subarray(12)]);
		withExt[0] = withExt[0]! | 0x10;
		expect([...parseRtp(withExt)!.payload]).toEqual([9, 8]);
	});
});

describe('generic NACK', () => {
	it('packs sequence numbers into PID + bitmask items and reads them back', () => {
		const seqs = [100, 101, 116, 117, 300, 65535, 0];
		const nack = buildNack(1, 0xabcdef01, seqs);
		expect(isRtcp(nack)).toBe(true);
		const [parsed] = parseNacks(nack);
		expect(parsed!.mediaSsrc).toBe(0xabcdef01);
		expect(parsed!.sequenceNumbers.sort((a, b) => a - b)).toEqual([...seqs].sort((a, b) => a - b));
	});
});
