// Raw RTP/RTCP packets for plain-transport tests (RFC 3550).
export function rtpPacket(seq: number, timestamp: number, ssrc: number, payloadType: number, payload: Uint8Array): Buffer {
	const header = Buffer.alloc(12);
	header[0] = 0x80;
	header[1] = payloadType & 0x7f;
	header.writeUInt16BE(seq & 0xffff, 2);
	header.writeUInt32BE(timestamp >>> 0, 4);
	header.writeUInt32BE(ssrc >>> 0, 8);
	return Buffer.concat([header, payload]);
}

export function isRtcp(packet: Buffer): boolean {
	const pt = packet[1]!;
	return pt >= 192 && pt <= 223;
}

export interface ReportBlock {
	ssrc: number;
	/** Fraction lost as the 8-bit fixed-point value (256 = 100%). */
	fractionLost: number;
	highestSeq: number;
}

/** A Receiver Report with one report block. */
export function receiverReport(senderSsrc: number, block: ReportBlock): Buffer {
	const p = Buffer.alloc(32);
	p[0] = 0x81; // V=2, RC=1
	p[1] = 201; // RR
	p.writeUInt16BE(7, 2); // length in 32-bit words minus one
	p.writeUInt32BE(senderSsrc >>> 0, 4);
	p.writeUInt32BE(block.ssrc >>> 0, 8);
	p[12] = block.fractionLost;
	p.writeUIntBE(Math.round((block.fractionLost / 256) * block.highestSeq) & 0xffffff, 13, 3);
	p.writeUInt32BE(block.highestSeq >>> 0, 16);
	return p;
}

/** Report blocks of every SR/RR in a (compound) RTCP packet. */
export function reportBlocks(packet: Buffer): ReportBlock[] {
	const blocks: ReportBlock[] = [];
	let off = 0;
	while (off + 4 <= packet.length) {
		const count = packet[off]! & 0x1f;
		const pt = packet[off + 1]!;
		const len = (packet.readUInt16BE(off + 2) + 1) * 4;
		const first = pt === 200 ? off + 28 : pt === 201 ? off + 8 : -1;
		if (first >= 0) {
			for (let i = 0; i < count && first + 24 * (i + 1) <= off + len; i++) {
				const b = first + 24 * i;
				blocks.push({ ssrc: packet.readUInt32BE(b), fractionLost: packet[b + 4]!, highestSeq: packet.readUInt32BE(b + 8) });
			}
		}
		off += len;
	}
	return blocks;
}
