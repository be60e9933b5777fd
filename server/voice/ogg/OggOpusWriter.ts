// Ogg Opus files (RFC 7845) from Opus packets as they arrive over RTP, written in-process.
//
// The timeline comes from RTP timestamps, not from packet counts: where the sender was
// silent (DTX) or packets were lost before the server, the writer inserts 1-byte Opus
// packets (a code-0 TOC with an empty frame, which decoders conceal), so the file lasts as
// long as the speech did and granule positions stay exact. Pages are written as they fill,
// so a crash leaves a readable prefix that `recoverOggOpus` can close. `flush()` writes the
// page in progress early and tells how many bytes of whole pages the file holds: a recording
// checkpoint (RecordingCheckpointer) then carries everything received, cut at a page boundary.
//
// A gap is filled only up to `maxGapMs`: a timestamp that jumps further (a sender's bug, a
// forged packet) is taken as a new stream position, so one packet cannot add hours of filler.
import { randomInt } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { buildPage, lacing, MAX_SEGMENTS, PAGE_FLAG_BOS, PAGE_FLAG_EOS } from './OggPageWriter.js';

export const OPUS_SAMPLE_RATE = 48_000;

/** Samples (at 48 kHz) in one Opus packet, from its TOC byte (RFC 6716 section 3.1). */
export function opusPacketSamples(packet: Uint8Array): number {
	if (packet.length === 0) return 0;
	const toc = packet[0]!;
	const config = toc >> 3;
	let frameSamples: number;
	if (config < 12) frameSamples = [480, 960, 1920, 2880][config % 4]!; // SILK 10/20/40/60 ms
	else if (config < 16) frameSamples = [480, 960][config % 2]!; // hybrid 10/20 ms
	else frameSamples = [120, 240, 480, 960][config % 4]!; // CELT 2.5/5/10/20 ms
	const code = toc & 0x03;
	const frames = code === 0 ? 1 : code < 3 ? 2 : packet.length > 1 ? packet[1]! & 0x3f : 0;
	return frames * frameSamples;
}

/** A packet that decodes as `samples` of concealment: code-0 TOC of the same mode, no frame data. */
function fillerPacket(reference: Uint8Array): Uint8Array {
	return Uint8Array.of(reference[0]! & 0xfc);
}

export interface OggOpusWriterOptions {
	/** Channels announced in OpusHead (decoders downmix stereo packets for mono). */
	channels?: 1 | 2;
	/** Encoder look-ahead to skip at playback; RTP does not carry it, 312 is libopus's. */
	preSkip?: number;
	/** A page is written at the latest when it holds this much audio. */
	maxPageDurationMs?: number;
	/** Longest timestamp gap filled with concealment; a larger jump is filled only this far. */
	maxGapMs?: number;
	vendor?: string;
	tags?: Record<string, string>;
}

export interface OggOpusSummary {
	/** Playable duration (what decoders output), from the last granule position. */
	durationMs: number;
	packetsWritten: number;
	/** Concealment packets inserted for silences (DTX) and losses. */
	fillerPackets: number;
	/** Timestamp gaps longer than maxGapMs (filled only up to it). */
	timestampJumps: number;
	sizeBytes: number;
}

/** Where a page went and what it held, to write it again with another flag. */
interface WrittenPage {
	offset: number;
	sequence: number;
	granule: bigint;
	packets: Uint8Array[];
}

export class OggOpusWriter {
	readonly path: string;
	readonly #fd: number;
	readonly #serial = randomInt(0, 2 ** 32 - 1);
	readonly #preSkip: number;
	readonly #maxPageSamples: number;
	readonly #maxGapSamples: number;
	#sequence = 0;
	#pending: Uint8Array[] = [];
	#pendingSegments = 0;
	#pendingSamples = 0;
	/** Samples in all packets handed to pages so far (pending included), without pre-skip. */
	#samples = 0;
	#lastTimestamp: number | undefined;
	#lastPacket: Uint8Array | undefined;
	#packetsWritten = 0;
	#fillerPackets = 0;
	#timestampJumps = 0;
	#sizeBytes = 0;
	#closed = false;
	/** The last page holding audio, while nothing is pending after it (a flush() wrote it
	 * early): finalize() marks it end-of-stream in place rather than adding an empty page. */
	#lastAudioPage: WrittenPage | undefined;

	/** Creates the file (it must not exist) and writes the OpusHead and OpusTags pages. */
	constructor(path: string, options: OggOpusWriterOptions = {}) {
		this.path = path;
		this.#preSkip = options.preSkip ?? 312;
		this.#maxPageSamples = ((options.maxPageDurationMs ?? 1000) * OPUS_SAMPLE_RATE) / 1000;
		this.#maxGapSamples = ((options.maxGapMs ?? 5000) * OPUS_SAMPLE_RATE) / 1000;
		this.#fd = openSync(path, 'wx', 0o640);
		const head = Buffer.alloc(19);
		head.write('OpusHead', 0, 'ascii');
		head[8] = 1; // version
		head[9] = options.channels ?? 1;
		head.writeUInt16LE(this.#preSkip, 10);
		head.writeUInt32LE(OPUS_SAMPLE_RATE, 12); // original input rate (informational)
		head.writeInt16LE(0, 16); // output gain
		head[18] = 0; // channel mapping family 0: mono or stereo
		try {
			this.#writePage([head], 0n, PAGE_FLAG_BOS);
			this.#writePage([opusTags(options.vendor ?? 'Parley', options.tags ?? {})], 0n, 0);
		} catch (err) {
			closeSync(this.#fd);
			throw err;
		}
	}

	get packetsWritten(): number {
		return this.#packetsWritten;
	}

	/** Samples written so far (48 kHz, concealment included, without pre-skip). */
	get samples(): number {
		return this.#samples;
	}

	get timestampJumps(): number {
		return this.#timestampJumps;
	}

	get durationMs(): number {
		return (this.#samples * 1000) / OPUS_SAMPLE_RATE;
	}

	/** Bytes of whole pages in the file: every byte below this is final (pages are never
	 * rewritten, except that finalize() may set the EOS flag on the last one). */
	get flushedBytes(): number {
		return this.#sizeBytes;
	}

	/**
	 * Writes the packets pending for the page in progress as a page now (none pending: nothing
	 * written) and returns flushedBytes. Pages then hold less than maxPageDurationMs; the
	 * granule positions stay exact. A no-op once the writer is closed.
	 */
	flush(): number {
		if (!this.#closed && this.#pending.length > 0) this.#flushPage(0);
		return this.#sizeBytes;
	}

	/**
	 * Appends one Opus packet that carries RTP timestamp `rtpTimestamp` (48 kHz clock).
	 * Packets must come in order; a timestamp jump beyond the previous packet's end is
	 * filled with concealment packets so the timeline stays true, up to `maxGapMs` and to
	 * `maxFillerSamples` (the caller's budget: duration limit, wall clock).
	 */
	writePacket(packet: Uint8Array, rtpTimestamp: number, maxFillerSamples = Infinity): void {
		if (this.#closed) throw new Error('writer is closed');
		const samples = opusPacketSamples(packet);
		if (samples === 0) return;
		if (this.#lastTimestamp !== undefined && this.#lastPacket) {
			const expected = (this.#lastTimestamp + opusPacketSamples(this.#lastPacket)) >>> 0;
			const gap = (rtpTimestamp - expected) | 0; // signed: the RTP clock wraps at 2^32
			const frame = opusPacketSamples(fillerPacket(this.#lastPacket)) || 960;
			if (gap > this.#maxGapSamples) this.#timestampJumps++;
			const limit = Math.min(this.#maxGapSamples, Math.max(0, maxFillerSamples));
			const fillers = gap > 0 ? Math.min(Math.round(gap / frame), Math.floor(limit / frame)) : 0;
			for (let i = 0; i < fillers; i++) {
				this.#append(fillerPacket(this.#lastPacket), frame);
				this.#fillerPackets++;
			}
		}
		this.#append(packet, samples);
		this.#packetsWritten++;
		this.#lastTimestamp = rtpTimestamp >>> 0;
		this.#lastPacket = packet;
	}

	#append(packet: Uint8Array, samples: number): void {
		const segments = lacing(packet.length).length;
		if (this.#pending.length > 0 && (this.#pendingSegments + segments > MAX_SEGMENTS || this.#pendingSamples + samples > this.#maxPageSamples)) {
			this.#flushPage(0);
		}
		this.#pending.push(packet);
		this.#pendingSegments += segments;
		this.#pendingSamples += samples;
		this.#samples += samples;
	}

	#flushPage(flags: number): void {
		const offset = this.#sizeBytes;
		const sequence = this.#sequence;
		const granule = BigInt(this.#preSkip + this.#samples);
		this.#writePage(this.#pending, granule, flags);
		this.#lastAudioPage = { offset, packets: this.#pending, granule, sequence };
		this.#pending = [];
		this.#pendingSegments = 0;
		this.#pendingSamples = 0;
	}

	#writePage(packets: Uint8Array[], granule: bigint, flags: number): void {
		const page = buildPage(packets, { serial: this.#serial, sequence: this.#sequence++, granule, flags });
		let off = 0;
		while (off < page.length) off += writeSync(this.#fd, page, off);
		this.#sizeBytes += page.length;
	}

	/** Rewrites the last audio page at its offset with the EOS flag (same length: only the
	 * flags byte and the CRC change). */
	#markLastPageEnd(last: WrittenPage): void {
		const page = buildPage(last.packets, { serial: this.#serial, sequence: last.sequence, granule: last.granule, flags: PAGE_FLAG_EOS });
		let off = 0;
		while (off < page.length) off += writeSync(this.#fd, page, off, page.length - off, last.offset + off);
	}

	/** Writes the last page with the end-of-stream flag, syncs and closes the file. */
	finalize(): OggOpusSummary {
		if (this.#closed) throw new Error('writer is closed');
		this.#closed = true;
		try {
			// EOS goes on the page holding the last packet, so it has a real granule position:
			// the pending one, or, when flush() wrote it early, that page again in place.
			if (this.#pending.length > 0) this.#flushPage(PAGE_FLAG_EOS);
			else if (this.#lastAudioPage) this.#markLastPageEnd(this.#lastAudioPage);
			else this.#writePage([], BigInt(this.#preSkip + this.#samples), PAGE_FLAG_EOS);
			fsyncSync(this.#fd);
		} finally {
			// Also when a write failed (disk full): the descriptor must not leak.
			closeSync(this.#fd);
		}
		return { durationMs: this.durationMs, packetsWritten: this.#packetsWritten, fillerPackets: this.#fillerPackets, timestampJumps: this.#timestampJumps, sizeBytes: this.#sizeBytes };
	}

	/** Closes the file without finishing it (the caller deletes or recovers it). */
	abort(): void {
		if (this.#closed) return;
		this.#closed = true;
		closeSync(this.#fd);
	}
}

function opusTags(vendor: string, tags: Record<string, string>): Buffer {
	const entries = Object.entries(tags).map(([k, v]) => Buffer.from(`${k}=${v}`, 'utf8'));
	const vendorBytes = Buffer.from(vendor, 'utf8');
	const out = Buffer.alloc(8 + 4 + vendorBytes.length + 4 + entries.reduce((n, e) => n + 4 + e.length, 0));
	out.write('OpusTags', 0, 'ascii');
	out.writeUInt32LE(vendorBytes.length, 8);
	vendorBytes.copy(out, 12);
	let off = 12 + vendorBytes.length;
	out.writeUInt32LE(entries.length, off);
	off += 4;
	for (const e of entries) {
		out.writeUInt32LE(e.length, off);
		e.copy(out, off + 4);
		off += 4 + e.length;
	}
	return out;
}
