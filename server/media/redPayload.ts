// RFC 2198 redundant audio ("RED") payloads, as browsers send Opus with redundancy: the
// packet's payload is a chain of block headers followed by the blocks, oldest first, the
// primary (this packet's own frame) last. Each redundant header is 4 bytes
//   F=1 | block PT (7) | timestamp offset (14) | block length (10)
// and the primary's header is 1 byte: F=0 | block PT (7).
// Written here (no library parses RED in TypeScript); used by the recorder to recover frames
// lost upstream and by the bench to send and receive RED like a browser.

/** One redundant block: the frame whose RTP timestamp is the packet's minus `timestampOffset`. */
export interface RedundantBlock {
	payloadType: number;
	/** RTP timestamp units before the packet's timestamp (1..16383). */
	timestampOffset: number;
	data: Uint8Array;
}

export interface PrimaryBlock {
	payloadType: number;
	data: Uint8Array;
}

export interface RedPayload {
	/** Oldest first, as on the wire. */
	redundant: RedundantBlock[];
	primary: PrimaryBlock;
}

/** RFC 2198's field widths. */
export const RED_MAX_TIMESTAMP_OFFSET = (1 << 14) - 1;
export const RED_MAX_BLOCK_LENGTH = (1 << 10) - 1;
/** More redundant blocks than any sender uses (Chrome sends up to 2 or 3): bounds the work an
 * untrusted packet can cause. */
export const RED_MAX_REDUNDANT_BLOCKS = 32;

export type RedParseError = 'empty' | 'truncated header chain' | 'too many blocks' | 'blocks past the end';

/**
 * Parses a RED payload. Untrusted input: every header and length is checked against the
 * payload's size; returns the reason instead of throwing. Blocks are views into `payload`.
 */
export function parseRedPayload(payload: Uint8Array): RedPayload | { error: RedParseError } {
	if (payload.length === 0) return { error: 'empty' };
	const headers: { payloadType: number; timestampOffset: number; length: number }[] = [];
	let off = 0;
	for (;;) {
		if (off >= payload.length) return { error: 'truncated header chain' };
		const b0 = payload[off]!;
		if ((b0 & 0x80) === 0) {
			off += 1;
			break; // the primary's 1-byte header ends the chain
		}
		if (off + 4 > payload.length) return { error: 'truncated header chain' };
		if (headers.length === RED_MAX_REDUNDANT_BLOCKS) return { error: 'too many blocks' };
		const b1 = payload[off + 1]!;
		const b2 = payload[off + 2]!;
		const b3 = payload[off + 3]!;
		headers.push({ payloadType: b0 & 0x7f, timestampOffset: (b1 << 6) | (b2 >> 2), length: ((b2 & 0x03) << 8) | b3 });
		off += 4;
	}
	const primaryPayloadType = payload[off - 1]! & 0x7f;
	const redundant: RedundantBlock[] = [];
	for (const h of headers) {
		if (off + h.length > payload.length) return { error: 'blocks past the end' };
		redundant.push({ payloadType: h.payloadType, timestampOffset: h.timestampOffset, data: payload.subarray(off, off + h.length) });
		off += h.length;
	}
	return { redundant, primary: { payloadType: primaryPayloadType, data: payload.subarray(off) } };
}

export function isRedParseError(r: RedPayload | { error: RedParseError }): r is { error: RedParseError } {
	return 'error' in r;
}

/** Builds a RED payload; throws RangeError when a block does not fit RFC 2198's fields. */
export function buildRedPayload(primary: PrimaryBlock, redundant: readonly RedundantBlock[] = []): Uint8Array {
	let size = 1 + primary.data.length;
	for (const r of redundant) {
		if (r.timestampOffset < 0 || r.timestampOffset > RED_MAX_TIMESTAMP_OFFSET) throw new RangeError(`RED timestamp offset ${r.timestampOffset} does not fit 14 bits`);
		if (r.data.length > RED_MAX_BLOCK_LENGTH) throw new RangeError(`RED block of ${r.data.length} bytes does not fit 10 bits`);
		size += 4 + r.data.length;
	}
	const out = new Uint8Array(size);
	let off = 0;
	for (const r of redundant) {
		out[off++] = 0x80 | (r.payloadType & 0x7f);
		out[off++] = r.timestampOffset >> 6;
		out[off++] = ((r.timestampOffset & 0x3f) << 2) | (r.data.length >> 8);
		out[off++] = r.data.length & 0xff;
	}
	out[off++] = primary.payloadType & 0x7f;
	for (const r of redundant) {
		out.set(r.data, off);
		off += r.data.length;
	}
	out.set(primary.data, off);
	return out;
}
