// RTP and the bits of RTCP the bench needs (RFC 3550, RFC 4585 generic NACK), on Buffers.
// Parsing skips CSRCs and header extensions: mediasoup adds extensions (mid, abs-send-time,
// ...) to what it forwards, so the payload does not start at byte 12.

export const RTP_HEADER_BYTES = 12;

export interface RtpHeaderFields {
	payloadType: number;
	sequenceNumber: number;
	timestamp: number;
	ssrc: number;
	marker?: boolean;
}

export interface ParsedRtp extends Required<RtpHeaderFields> {
	payload: Buffer;
}

export function buildRtp(h: RtpHeaderFields, payload: Uint8Array): Buffer {
	const packet = Buffer.allocUnsafe(RTP_HEADER_BYTES + payload.length);
	packet[0] = 0x80;
	packet[1] = (h.marker ? 0x80 : 0) | (h.payloadType & 0x7f);
	packet.writeUInt16BE(h.sequenceNumber & 0xffff, 2);
	packet.writeUInt32BE(h.timestamp >>> 0, 4);
	packet.writeUInt32BE(h.ssrc >>> 0, 8);
	packet.set(payload, RTP_HEADER_BYTES);
	return packet;
}

/** RTCP packet types share the second byte's range 192-223 with nothing in RTP (RFC 5761). */
export function isRtcp(packet: Buffer): boolean {
	if (packet.length < 4) return false;
	const pt = packet[1]!;
	return pt >= 192 && pt <= 223;
}

/** The RTP header fields and payload, or undefined when this is not a well-formed RTP packet. */
export function parseRtp(packet: Buffer): ParsedRtp | undefined {
	if (packet.length < RTP_HEADER_BYTES || packet[0]! >> 6 !== 2 || isRtcp(packet)) return undefined;
	const csrcCount = packet[0]! & 0x0f;
	let offset = RTP_HEADER_BYTES + 4 * csrcCount;
	if (packet[0]! & 0x10) {
		if (offset + 4 > packet.length) return undefined;
		offset += 4 + 4 * packet.readUInt16BE(offset + 2);
	}
	let end = packet.length;
	if (packet[0]! & 0x20) end -= packet[packet.length - 1]!;
	if (offset > end) return undefined;
	return {
		payloadType: packet[1]! & 0x7f,
		marker: (packet[1]! & 0x80) !== 0,
		sequenceNumber: packet.readUInt16BE(2),
		timestamp: packet.readUInt32BE(4),
		ssrc: packet.readUInt32BE(8),
		payload: packet.subarray(offset, end),
	};
}

/** Header-only reads for the hot path (capacity sampling): no payload slicing. */
export function rtpSsrc(packet: Buffer): number {
	return packet.readUInt32BE(8);
}
export function rtpTimestamp(packet: Buffer): number {
	return packet.readUInt32BE(4);
}
export function rtpSequence(packet: Buffer): number {
	return packet.readUInt16BE(2);
}

/** A generic NACK (RTPFB, FMT 1) asking `mediaSsrc`'s sender to resend `sequenceNumbers`. */
export function buildNack(senderSsrc: number, mediaSsrc: number, sequenceNumbers: number[]): Buffer {
	const sorted = [...new Set(sequenceNumbers.map((s) => s & 0xffff))].sort((a, b) => a - b);
	const items: [number, number][] = [];
	for (const seq of sorted) {
		const last = items[items.length - 1];
		const delta = last ? (seq - last[0]) & 0xffff : 0;
		if (last && delta >= 1 && delta <= 16) last[1] |= 1 << (delta - 1);
		else items.push([seq, 0]);
	}
	const packet = Buffer.alloc(12 + 4 * items.length);
	packet[0] = 0x80 | 1; // V=2, FMT=1
	packet[1] = 205; // RTPFB
	packet.writeUInt16BE(packet.length / 4 - 1, 2);
	packet.writeUInt32BE(senderSsrc >>> 0, 4);
	packet.writeUInt32BE(mediaSsrc >>> 0, 8);
	items.forEach(([pid, blp], i) => {
		packet.writeUInt16BE(pid, 12 + 4 * i);
		packet.writeUInt16BE(blp, 14 + 4 * i);
	});
	return packet;
}

/** Every generic NACK in a (compound) RTCP packet: the media SSRC and the sequence numbers asked for. */
export function parseNacks(packet: Buffer): { mediaSsrc: number; sequenceNumbers: number[] }[] {
	const nacks: { mediaSsrc: number; sequenceNumbers: number[] }[] = [];
	let off = 0;
	while (off + 4 <= packet.length) {
		const fmt = packet[off]! & 0x1f;
		const pt = packet[off + 1]!;
		const len = (packet.readUInt16BE(off + 2) + 1) * 4;
		if (off + len > packet.length) break;
		if (pt === 205 && fmt === 1 && len >= 12) {
			const sequenceNumbers: number[] = [];
			for (let i = off + 12; i + 4 <= off + len; i += 4) {
				const pid = packet.readUInt16BE(i);
				const blp = packet.readUInt16BE(i + 2);
				sequenceNumbers.push(pid);
				for (let b = 0; b < 16; b++) if (blp & (1 << b)) sequenceNumbers.push((pid + b + 1) & 0xffff);
			}
			nacks.push({ mediaSsrc: packet.readUInt32BE(off + 8), sequenceNumbers });
		}
		off += len;
	}
	return nacks;
}
