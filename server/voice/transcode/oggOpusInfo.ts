// Reads an Ogg Opus file's header and exact playback length without decoding it (RFC 7845):
// length = last page's granule position - the stream's starting granule - the pre-skip, at
// 48 kHz (what opusinfo and decoders play). ffprobe does not subtract the pre-skip (it
// reports ~6.5 ms too much for libopus files), and a copied upload could declare any
// pre-skip or start offset, so the stored duration comes from here.
import { open } from 'node:fs/promises';
import { opusPacketSamples } from '../ogg/OggOpusWriter.js';
import { oggPageCrc } from '../ogg/OggPageWriter.js';

// Shared with the Ogg writer (one CRC, one TOC parser); re-exported for this module's tests.
export { oggPageCrc, opusPacketSamples };

export interface OggOpusInfo {
	channels: number;
	/** Samples at 48 kHz the decoder drops at the start (encoder delay). */
	preSkip: number;
	/** The sample rate of the audio before encoding (informational; Opus decodes at 48 kHz). */
	inputSampleRate: number;
	durationMs: number;
	sizeBytes: number;
}

/** An Ogg page is at most 27 header bytes + 255 lacing values + 255 * 255 payload bytes. */
const MAX_PAGE_BYTES = 27 + 255 + 255 * 255;

interface Page {
	headerType: number;
	granule: bigint;
	serial: number;
	bytes: number;
	payload: Buffer;
}

/** The page starting at `at`, if a whole, CRC-valid one is there. */
function parsePage(buffer: Buffer, at: number): Page | undefined {
	if (at + 27 > buffer.length || buffer.toString('latin1', at, at + 4) !== 'OggS' || buffer[at + 4] !== 0) return undefined;
	const segments = buffer[at + 26] ?? 0;
	const headerBytes = 27 + segments;
	if (at + headerBytes > buffer.length) return undefined;
	let payloadBytes = 0;
	for (let i = 0; i < segments; i++) payloadBytes += buffer[at + 27 + i] ?? 0;
	const bytes = headerBytes + payloadBytes;
	if (at + bytes > buffer.length) return undefined;
	const page = buffer.subarray(at, at + bytes);
	if (oggPageCrc(page) !== page.readUInt32LE(22)) return undefined;
	return {
		headerType: page[5] ?? 0,
		granule: page.readBigInt64LE(6),
		serial: page.readUInt32LE(14),
		bytes,
		payload: page.subarray(headerBytes),
	};
}

/** Packets that end on a page (lacing values below 255 close a packet). A packet continued
 * from the previous page is not counted: the page holds only its end. */
function completedPackets(page: Page, pageBuffer: Buffer): Buffer[] {
	const packets: Buffer[] = [];
	const segments = pageBuffer[26] ?? 0;
	let at = 27 + segments;
	let start = at;
	const continued = (page.headerType & 0x01) !== 0;
	for (let i = 0; i < segments; i++) {
		const lacing = pageBuffer[27 + i] ?? 0;
		at += lacing;
		if (lacing < 255) {
			if (!(continued && packets.length === 0 && start === 27 + segments)) packets.push(pageBuffer.subarray(start, at));
			start = at;
		}
	}
	return packets;
}

/** Pages read from the start before giving up on finding the first audio page (OpusTags
 * with a large picture can span many pages, never thousands). */
const MAX_HEADER_PAGES = 1024;

/** Header and exact length of a single-stream Ogg Opus file. Throws when the file is not one
 * (first page not a CRC-valid OpusHead, or no valid page ending the file). */
export async function readOggOpusInfo(filePath: string): Promise<OggOpusInfo> {
	const file = await open(filePath, 'r');
	try {
		const { size } = await file.stat();
		const readPage = async (offset: number): Promise<{ page: Page; buffer: Buffer } | undefined> => {
			const buffer = Buffer.alloc(Math.min(MAX_PAGE_BYTES, Math.max(0, size - offset)));
			const { bytesRead } = await file.read(buffer, 0, buffer.length, offset);
			const page = parsePage(buffer.subarray(0, bytesRead), 0);
			return page === undefined ? undefined : { page, buffer: buffer.subarray(0, page.bytes) };
		};

		const first = (await readPage(0))?.page;
		if (first === undefined || (first.headerType & 0x02) === 0) throw new Error('the first Ogg page is missing or damaged');
		const head = first.payload;
		if (head.length < 19 || head.toString('latin1', 0, 8) !== 'OpusHead' || head[8] !== 1) throw new Error('no OpusHead version 1');
		const preSkip = head.readUInt16LE(10);

		// The first audio page starts fresh after the page where OpusTags ends (RFC 7845
		// section 3). Its granule minus its samples is where the stream starts: usually 0,
		// but an encoder fed timestamps that do not start at 0 (ffmpeg from WebM) offsets it.
		let offset = first.bytes;
		let tagsEnded = false;
		let startGranule = 0n;
		for (let pages = 0; pages < MAX_HEADER_PAGES && offset < size; pages++) {
			const read = await readPage(offset);
			if (read === undefined) throw new Error('a damaged Ogg page before the audio');
			offset += read.page.bytes;
			if (read.page.serial !== first.serial) continue;
			if (!tagsEnded) {
				// Any lacing value under 255 ends a packet: OpusTags (perhaps continued) ends here.
				tagsEnded = read.buffer.subarray(27, 27 + (read.buffer[26] ?? 0)).some((lacing) => lacing < 255);
				continue;
			}
			const samples = completedPackets(read.page, read.buffer).reduce((sum, packet) => sum + opusPacketSamples(packet), 0);
			// On a last page the granule also trims the end, so it may be below the samples.
			const isLast = (read.page.headerType & 0x04) !== 0;
			if (!isLast && read.page.granule > BigInt(samples)) startGranule = read.page.granule - BigInt(samples);
			break;
		}

		// The last page must end exactly at the end of the file: search back from the end.
		const tailBytes = Math.min(size, MAX_PAGE_BYTES);
		const tail = Buffer.alloc(tailBytes);
		await file.read(tail, 0, tailBytes, size - tailBytes);
		let last: Page | undefined;
		for (let at = tail.lastIndexOf('OggS'); at >= 0; at = at > 0 ? tail.lastIndexOf('OggS', at - 1) : -1) {
			const page = parsePage(tail, at);
			if (page !== undefined && at + page.bytes === tailBytes && page.serial === first.serial && page.granule >= 0n) {
				last = page;
				break;
			}
		}
		if (last === undefined) throw new Error('no valid Ogg page ends the file');

		return {
			channels: head[9] ?? 0,
			preSkip,
			inputSampleRate: head.readUInt32LE(12),
			durationMs: Math.max(0, Number(last.granule - startGranule - BigInt(preSkip)) / 48),
			sizeBytes: size,
		};
	} finally {
		await file.close();
	}
}
