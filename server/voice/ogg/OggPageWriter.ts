// Ogg pages (RFC 3533), written by hand: no maintained npm package muxes already-encoded
// Opus packets into Ogg (the `ogg` native binding does not build on Node 20, prism-media
// only demuxes), and a page is a 27-byte header, a lacing table and a CRC.

/** CRC-32 with polynomial 0x04c11db7, no reflection, initial value 0 (Ogg's variant). */
const CRC_TABLE = (() => {
	const table = new Uint32Array(256);
	for (let i = 0; i < 256; i++) {
		let r = i << 24;
		for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
		table[i] = r >>> 0;
	}
	return table;
})();

export function oggCrc(data: Uint8Array): number {
	let crc = 0;
	for (const byte of data) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]!) >>> 0;
	return crc >>> 0;
}

/** The CRC a whole page should carry: computed with its own CRC field (bytes 22-25) as zero. */
export function oggPageCrc(page: Uint8Array): number {
	let crc = 0;
	for (let i = 0; i < page.length; i++) {
		const byte = i >= 22 && i < 26 ? 0 : page[i]!;
		crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]!) >>> 0;
	}
	return crc >>> 0;
}

export const PAGE_FLAG_CONTINUED = 0x01;
export const PAGE_FLAG_BOS = 0x02;
export const PAGE_FLAG_EOS = 0x04;

/** The most segments (lacing values) one page can hold. */
export const MAX_SEGMENTS = 255;

/** Lacing values of a packet: 255s then the remainder (a multiple of 255 ends with 0). */
export function lacing(packetLength: number): number[] {
	const values = new Array<number>(Math.floor(packetLength / 255)).fill(255);
	values.push(packetLength % 255);
	return values;
}

/**
 * Builds one page holding whole packets (Parley never splits a packet across pages: Opus
 * packets are far below a page's 64 KB). `granule` is the position after the last packet.
 */
export function buildPage(packets: Uint8Array[], options: { serial: number; sequence: number; granule: bigint; flags: number }): Buffer {
	const segments = packets.flatMap((p) => lacing(p.length));
	if (segments.length > MAX_SEGMENTS) throw new RangeError(`page would need ${segments.length} segments`);
	const bodyLength = packets.reduce((n, p) => n + p.length, 0);
	const page = Buffer.alloc(27 + segments.length + bodyLength);
	page.write('OggS', 0, 'ascii');
	page[4] = 0; // stream structure version
	page[5] = options.flags;
	page.writeBigInt64LE(options.granule, 6);
	page.writeUInt32LE(options.serial >>> 0, 14);
	page.writeUInt32LE(options.sequence >>> 0, 18);
	// CRC (offset 22) is computed over the page with this field zero.
	page[26] = segments.length;
	Buffer.from(segments).copy(page, 27);
	let off = 27 + segments.length;
	for (const p of packets) {
		page.set(p, off);
		off += p.length;
	}
	page.writeUInt32LE(oggCrc(page), 22);
	return page;
}

export interface ParsedPage {
	offset: number;
	length: number;
	flags: number;
	granule: bigint;
	serial: number;
	sequence: number;
	packets: Buffer[];
}

/**
 * Reads the valid pages at the start of `data`: stops at the first page that is cut short or
 * fails its CRC (what a crash mid-write leaves behind).
 */
export function readPages(data: Buffer): ParsedPage[] {
	const pages: ParsedPage[] = [];
	let off = 0;
	while (off + 27 <= data.length && data.toString('ascii', off, off + 4) === 'OggS') {
		const nseg = data[off + 26]!;
		if (off + 27 + nseg > data.length) break;
		const table = data.subarray(off + 27, off + 27 + nseg);
		const bodyLength = table.reduce((n, v) => n + v, 0);
		const length = 27 + nseg + bodyLength;
		if (off + length > data.length) break;
		if (oggPageCrc(data.subarray(off, off + length)) !== data.readUInt32LE(off + 22)) break;
		const packets: Buffer[] = [];
		let start = off + 27 + nseg;
		let size = 0;
		for (const v of table) {
			size += v;
			if (v < 255) {
				packets.push(data.subarray(start, start + size));
				start += size;
				size = 0;
			}
		}
		pages.push({
			offset: off,
			length,
			flags: data[off + 5]!,
			granule: data.readBigInt64LE(off + 6),
			serial: data.readUInt32LE(off + 14),
			sequence: data.readUInt32LE(off + 18),
			packets,
		});
		off += length;
	}
	return pages;
}
