// Reading an Opus packet's TOC (RFC 6716 section 3.1) far enough to tell whether it carries
// in-band FEC (LBRR) data for the previous frame, the way libopus 1.5's opus_packet_has_lbrr
// does: the LBRR flag is among the first range-coded bits of the first SILK frame, and the
// range coder's first binary symbols of probability 1/2 are the top bits of the first byte.

export type OpusMode = 'silk' | 'hybrid' | 'celt';

export function opusMode(packet: Uint8Array): OpusMode {
	const config = packet[0]! >> 3;
	return config < 12 ? 'silk' : config < 16 ? 'hybrid' : 'celt';
}

/** Samples per Opus frame at 48 kHz. */
export function samplesPerFrame(packet: Uint8Array): number {
	const config = packet[0]! >> 3;
	if (config < 12) return [480, 960, 1920, 2880][config & 3]!;
	if (config < 16) return config & 1 ? 960 : 480;
	return [120, 240, 480, 960][config & 3]!;
}

/** Offset and length of the first frame's data, or undefined for a malformed packet. */
function firstFrame(packet: Uint8Array): { offset: number; length: number } | undefined {
	const len = packet.length;
	if (len < 1) return undefined;
	const code = packet[0]! & 3;
	if (code === 0) return { offset: 1, length: len - 1 };
	if (code === 1) return (len - 1) % 2 === 0 ? { offset: 1, length: (len - 1) / 2 } : undefined;
	if (code === 2) {
		if (len < 2) return undefined;
		const b = packet[1]!;
		if (b < 252) return { offset: 2, length: b };
		if (len < 3) return undefined;
		return { offset: 3, length: b + 4 * packet[2]! };
	}
	// Code 3: frame count byte, optional padding length, optional VBR lengths.
	if (len < 2) return undefined;
	const count = packet[1]! & 0x3f;
	const vbr = (packet[1]! & 0x80) !== 0;
	let off = 2;
	let padding = 0;
	if (packet[1]! & 0x40) {
		for (;;) {
			if (off >= len) return undefined;
			const p = packet[off++]!;
			padding += p === 255 ? 254 : p;
			if (p !== 255) break;
		}
	}
	if (count < 1) return undefined;
	if (vbr) {
		if (off >= len) return undefined;
		const b = packet[off]!;
		const first = b < 252 ? b : b + 4 * (packet[off + 1] ?? 0);
		// Skip the count - 1 length fields.
		for (let i = 0; i < count - 1; i++) {
			if (off >= len) return undefined;
			off += packet[off]! < 252 ? 1 : 2;
		}
		return { offset: off, length: first };
	}
	return { offset: off, length: Math.floor((len - off - padding) / count) };
}

/** True when the packet carries LBRR (in-band FEC) data that can rebuild the previous frame. */
export function hasLbrr(packet: Uint8Array): boolean {
	if (packet.length < 2 || opusMode(packet) === 'celt') return false;
	const frame = firstFrame(packet);
	if (!frame || frame.length <= 0 || frame.offset >= packet.length) return false;
	const duration = samplesPerFrame(packet);
	const silkFrames = duration > 960 ? duration / 960 : 1;
	const first = packet[frame.offset]!;
	let lbrr = (first >> (7 - silkFrames)) & 1;
	if (packet[0]! & 0x04) lbrr |= (first >> (6 - 2 * silkFrames)) & 1;
	return lbrr === 1;
}
