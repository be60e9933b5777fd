// What kind of audio file an upload is, from its first bytes only. The client's file name
// and Content-Type are claims; the bytes are what ffmpeg will parse, so they decide which
// demuxer we allow (AudioTranscoder forces it with `-f`) and whether Ogg Opus can be kept.
import { open } from 'node:fs/promises';

export type AudioFormat =
	| 'ogg-opus'
	| 'ogg-other'
	| 'amr-nb'
	| 'amr-wb'
	| 'mp4'
	| 'mp3'
	| 'wav'
	| 'webm'
	| 'flac'
	| 'aac-adts'
	| 'unknown';

/** How many leading bytes detectAudioFormat wants: enough for an Ogg first page, a WAV
 * header with a few chunks, and two MPEG frames. */
export const AUDIO_HEAD_BYTES = 4096;

/** The ffmpeg demuxer for each format. Forcing it means a file that claims one format by
 * its magic bytes is never parsed by another (ffmpeg would otherwise probe ~300 demuxers). */
export const FFMPEG_DEMUXER: Record<Exclude<AudioFormat, 'unknown'>, string> = {
	'ogg-opus': 'ogg',
	'ogg-other': 'ogg',
	'amr-nb': 'amr',
	'amr-wb': 'amr',
	mp4: 'mov',
	mp3: 'mp3',
	wav: 'wav',
	webm: 'matroska',
	flac: 'flac',
	'aac-adts': 'aac',
};

function ascii(head: Buffer, offset: number, text: string): boolean {
	return head.length >= offset + text.length && head.toString('latin1', offset, offset + text.length) === text;
}

/** Classifies audio by magic bytes. Pass at least AUDIO_HEAD_BYTES when the file has them;
 * shorter heads still work, some checks (Ogg's OpusHead, a second MPEG frame) are then skipped
 * or answered conservatively. */
export function detectAudioFormat(head: Buffer): AudioFormat {
	const id3Bytes = id3v2TagBytes(head);
	if (id3Bytes > 0) {
		// An ID3v2 tag usually precedes MP3, but taggers put it in front of FLAC and ADTS too.
		return head.length > id3Bytes ? formatAfterId3(head.subarray(id3Bytes)) : 'mp3';
	}
	if (ascii(head, 0, 'OggS')) return isOpusFirstPage(head) ? 'ogg-opus' : 'ogg-other';
	if (ascii(head, 0, '#!AMR-WB\n')) return 'amr-wb';
	if (ascii(head, 0, '#!AMR\n')) return 'amr-nb';
	if (isIsoBmff(head)) return 'mp4';
	if ((ascii(head, 0, 'RIFF') || ascii(head, 0, 'RF64')) && ascii(head, 8, 'WAVE')) return 'wav';
	if (head.length >= 4 && head.readUInt32BE(0) === 0x1a45dfa3) return 'webm';
	if (ascii(head, 0, 'fLaC')) return 'flac';
	if (isAdtsStart(head)) return 'aac-adts';
	if (isMpegAudioStart(head)) return 'mp3';
	return 'unknown';
}

/** What follows an ID3v2 tag: FLAC or ADTS when recognisable, otherwise MP3 (ID3 is MP3's
 * convention, and MP3 streams may have junk before the first frame that ffmpeg resyncs past). */
export function formatAfterId3(afterTag: Buffer): AudioFormat {
	if (ascii(afterTag, 0, 'fLaC')) return 'flac';
	if (isAdtsStart(afterTag)) return 'aac-adts';
	return 'mp3';
}

/** Length of a leading ID3v2 tag (header, body and footer), or 0 when there is none. */
export function id3v2TagBytes(head: Buffer): number {
	if (!ascii(head, 0, 'ID3') || head.length < 10) return 0;
	const major = head[3] ?? 0;
	if (major < 2 || major > 4 || head[4] === 0xff) return 0;
	let size = 0;
	for (let i = 6; i < 10; i++) {
		const b = head[i] ?? 0xff;
		if (b & 0x80) return 0; // sizes are "syncsafe": 7 bits per byte
		size = (size << 7) | b;
	}
	const hasFooter = ((head[5] ?? 0) & 0x10) !== 0;
	return 10 + size + (hasFooter ? 10 : 0);
}

/** Reads the head of a file (looking past a long ID3 tag, e.g. one with cover art) and
 * classifies it. The head is returned for header checks that need more than the format. */
export async function detectFileFormat(path: string): Promise<{ format: AudioFormat; head: Buffer }> {
	const file = await open(path, 'r');
	try {
		const buffer = Buffer.alloc(AUDIO_HEAD_BYTES);
		const { bytesRead } = await file.read(buffer, 0, AUDIO_HEAD_BYTES, 0);
		const head = buffer.subarray(0, bytesRead);
		const tagBytes = id3v2TagBytes(head);
		if (tagBytes > bytesRead) {
			const after = Buffer.alloc(64);
			const more = await file.read(after, 0, after.length, tagBytes);
			return { format: more.bytesRead > 0 ? formatAfterId3(after.subarray(0, more.bytesRead)) : 'mp3', head };
		}
		return { format: detectAudioFormat(head), head };
	} finally {
		await file.close();
	}
}

// ---- Ogg ------------------------------------------------------------------------------

/** The first Ogg page's first packet starts with "OpusHead" (RFC 7845 section 3). */
function isOpusFirstPage(head: Buffer): boolean {
	if (head.length < 27 || head[4] !== 0) return false;
	const segments = head[26] ?? 0;
	return ascii(head, 27 + segments, 'OpusHead');
}

// ---- ISO base media (MP4, M4A, 3GP) ---------------------------------------------------

/** Brand prefixes of audio-capable ISO files. Other ftyp files (HEIC/AVIF images, JPEG 2000)
 * share the box layout but are not something to hand to the audio pipeline. */
const MP4_BRAND = /^(iso[m0-9]|mp4[12]|mp71|M4[ABPV] |3g[p2e s]|qt  |dash|avc1|f4[av] |MSNV|mmp4|kddi)/;

function isIsoBmff(head: Buffer): boolean {
	if (head.length < 16 || !ascii(head, 4, 'ftyp')) return false;
	const boxSize = head.readUInt32BE(0);
	if (boxSize < 16 || boxSize > 4096) return false;
	// Major brand at 8, minor version at 12, compatible brands from 16 to the end of the box.
	const brands = [head.toString('latin1', 8, 12)];
	for (let at = 16; at + 4 <= Math.min(boxSize, head.length); at += 4) brands.push(head.toString('latin1', at, at + 4));
	return brands.some((brand) => MP4_BRAND.test(brand));
}

// ---- ADTS (raw AAC) -------------------------------------------------------------------

/** 12-bit sync 0xFFF with layer 00 (0xFFF1 / 0xFFF9 without CRC, 0xFFF0 / 0xFFF8 with). */
function isAdtsHeader(head: Buffer, at: number): boolean {
	if (head.length < at + 7) return false;
	const b1 = head[at + 1] ?? 0;
	if (head[at] !== 0xff || (b1 & 0xf6) !== 0xf0) return false;
	const sampleRateIndex = ((head[at + 2] ?? 0) >> 2) & 0x0f;
	return sampleRateIndex < 13;
}

function adtsFrameBytes(head: Buffer, at: number): number {
	return (((head[at + 3] ?? 0) & 0x03) << 11) | ((head[at + 4] ?? 0) << 3) | ((head[at + 5] ?? 0) >> 5);
}

function isAdtsStart(head: Buffer): boolean {
	if (!isAdtsHeader(head, 0)) return false;
	const frameBytes = adtsFrameBytes(head, 0);
	if (frameBytes < 7) return false;
	// One 12-bit sync is a 1-in-4096 accident in random bytes: confirm with the next frame
	// when it is within the head.
	return head.length < frameBytes + 7 || isAdtsHeader(head, frameBytes);
}

// ---- MPEG audio (MP3) -----------------------------------------------------------------

/** kbit/s by [row][bitrate index]; rows: MPEG-1 layer I, II, III, MPEG-2/2.5 layer I, II+III. */
const MPEG_BITRATES_KBPS = [
	[0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
	[0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
	[0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
	[0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
	[0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
] as const;
/** Hz by [version bits][sample rate index]; version bits 01 are reserved. */
const MPEG_SAMPLE_RATES: Record<number, readonly number[]> = {
	0: [11025, 12000, 8000], // MPEG-2.5
	2: [22050, 24000, 16000], // MPEG-2
	3: [44100, 48000, 32000], // MPEG-1
};

interface MpegFrameHeader {
	version: number;
	layer: number;
	/** 0 for free-format streams, whose frame length cannot be computed from the header. */
	frameBytes: number;
}

/** An MPEG audio frame header (11-bit sync 0xFFE, then version, layer, bitrate, rate). */
function parseMpegHeader(head: Buffer, at: number): MpegFrameHeader | undefined {
	if (head.length < at + 4 || head[at] !== 0xff) return undefined;
	const b1 = head[at + 1] ?? 0;
	const b2 = head[at + 2] ?? 0;
	if ((b1 & 0xe0) !== 0xe0) return undefined;
	const version = (b1 >> 3) & 0x03;
	const layerBits = (b1 >> 1) & 0x03; // 3 = layer I, 2 = II, 1 = III, 0 = reserved (ADTS)
	const bitrateIndex = b2 >> 4;
	const rateIndex = (b2 >> 2) & 0x03;
	const rates = MPEG_SAMPLE_RATES[version];
	if (rates === undefined || layerBits === 0 || bitrateIndex === 0x0f || rateIndex === 3) return undefined;
	const layer = 4 - layerBits;
	const sampleRate = rates[rateIndex] ?? 0;
	const row = version === 3 ? layer - 1 : layer === 1 ? 3 : 4;
	const bitrate = (MPEG_BITRATES_KBPS[row]?.[bitrateIndex] ?? 0) * 1000;
	const padding = (b2 >> 1) & 0x01;
	let frameBytes = 0;
	if (bitrate > 0) {
		if (layer === 1) frameBytes = (Math.floor((12 * bitrate) / sampleRate) + padding) * 4;
		else if (layer === 3 && version !== 3) frameBytes = Math.floor((72 * bitrate) / sampleRate) + padding;
		else frameBytes = Math.floor((144 * bitrate) / sampleRate) + padding;
	}
	return { version, layer, frameBytes };
}

function isMpegAudioStart(head: Buffer): boolean {
	const first = parseMpegHeader(head, 0);
	if (first === undefined) return false;
	// As with ADTS: a plausible header is a 1-in-thousands accident, two in a row are not.
	if (first.frameBytes === 0 || head.length < first.frameBytes + 4) return true;
	const next = parseMpegHeader(head, first.frameBytes);
	return next !== undefined && next.version === first.version && next.layer === first.layer;
}
