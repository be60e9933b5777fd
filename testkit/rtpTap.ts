// What a server forwards of one producer, seen from inside the router: a DirectTransport
// consumer with the codecs a listener would have (RED + Opus, or Opus alone) hands every RTP
// packet to the test, which keeps sequence number, timestamp and, for RED, the block layout
// (parsed with the RFC 2198 parser the server uses). From the RED packets a test can tell the
// publisher's redundancy distance and exactly which frames no copy of reached the server.
import type { types as ms } from 'mediasoup';
import { isRedParseError, parseRedPayload } from '../server/media/redPayload.js';
import { rtpPayload } from '../server/voice/recording/ProducerRecording.js';

export interface TappedPacket {
	/** Sequence number, unwrapped (keeps counting past 65535). */
	seq: number;
	timestamp: number;
	payloadType: number;
	/** RED packets: timestamp offsets of the redundant blocks, oldest first; [] for a RED packet without any. */
	redOffsets: number[] | null;
	/** Payload types inside the RED payload (redundant blocks, then the primary). */
	redBlockPayloadTypes: number[] | null;
	payloadBytes: number;
	/** First payload byte (an Opus TOC for plain Opus). */
	firstByte: number;
}

/** Which frames reached the server in any copy (RED packets only). */
export interface RedCoverage {
	/** Frames from the first to the last packet seen, one per `frameTicks`. */
	frames: number;
	/** Frames whose primary packet arrived. */
	primaries: number;
	/** Frames that only a later packet's redundant block brought. */
	fromRedundancy: number;
	/** Frames no copy of arrived. */
	missing: number;
	/** The longest run of consecutive missing frames. */
	longestMissingRun: number;
	/** Redundant blocks per packet: how many packets had 0, 1, 2... */
	distances: Record<number, number>;
}

interface RtpHeader {
	payloadType: number;
	seq: number;
	timestamp: number;
	payload: Uint8Array;
}

/** Parses an RTP packet's fixed header, CSRCs, extension and padding; null for anything malformed. */
export function parseRtp(packet: Uint8Array): RtpHeader | null {
	const bytes = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
	const payload = rtpPayload(bytes);
	if (!payload) return null;
	return { payloadType: bytes[1]! & 0x7f, seq: bytes.readUInt16BE(2), timestamp: bytes.readUInt32BE(4), payload };
}

export class RtpTap {
	readonly packets: TappedPacket[] = [];
	/** Packets that did not parse as RTP or as RED (there should be none). */
	malformed = 0;
	readonly #transport: ms.DirectTransport;
	readonly #consumer: ms.Consumer;
	readonly #redPayloadType: number | null;
	#lastSeq: number | null = null;

	private constructor(transport: ms.DirectTransport, consumer: ms.Consumer) {
		this.#transport = transport;
		this.#consumer = consumer;
		this.#redPayloadType = consumer.rtpParameters.codecs.find((c) => c.mimeType.toLowerCase() === 'audio/red')?.payloadType ?? null;
		consumer.on('rtp', (packet) => this.#onPacket(packet));
	}

	/** Consumes `producerId` on `router` as a listener with RED (`red`) or with Opus alone (`opus`). */
	static async open(router: ms.Router, producerId: string, codecs: 'red' | 'opus'): Promise<RtpTap> {
		const wanted = codecs === 'red' ? /^audio\/(red|opus)$/i : /^audio\/opus$/i;
		const rtpCapabilities: ms.RtpCapabilities = { codecs: (router.rtpCapabilities.codecs ?? []).filter((c) => wanted.test(c.mimeType)), headerExtensions: [] };
		const transport = await router.createDirectTransport();
		try {
			const consumer = await transport.consume({ producerId, rtpCapabilities });
			return new RtpTap(transport, consumer);
		} catch (err) {
			transport.close();
			throw err;
		}
	}

	/** The codecs the tap's consumer negotiated (mimeTypes, the forwarded one first). */
	get codecs(): string[] {
		return this.#consumer.rtpParameters.codecs.map((c) => c.mimeType);
	}

	#onPacket(packet: Buffer): void {
		const rtp = parseRtp(packet);
		if (!rtp) {
			this.malformed++;
			return;
		}
		let seq = rtp.seq;
		if (this.#lastSeq !== null) {
			// Unwrap: the candidate nearest the previous one.
			const base = this.#lastSeq - (this.#lastSeq & 0xffff);
			const candidates = [base - 0x10000 + rtp.seq, base + rtp.seq, base + 0x10000 + rtp.seq];
			seq = candidates.reduce((best, c) => (Math.abs(c - this.#lastSeq!) < Math.abs(best - this.#lastSeq!) ? c : best));
		}
		this.#lastSeq = Math.max(this.#lastSeq ?? seq, seq);
		let redOffsets: number[] | null = null;
		let redBlockPayloadTypes: number[] | null = null;
		if (rtp.payloadType === this.#redPayloadType) {
			const red = parseRedPayload(rtp.payload);
			if (isRedParseError(red)) {
				this.malformed++;
				return;
			}
			redOffsets = red.redundant.map((b) => b.timestampOffset);
			redBlockPayloadTypes = [...red.redundant.map((b) => b.payloadType), red.primary.payloadType];
		}
		this.packets.push({ seq, timestamp: rtp.timestamp, payloadType: rtp.payloadType, redOffsets, redBlockPayloadTypes, payloadBytes: rtp.payload.length, firstByte: rtp.payload[0] ?? 0 });
	}

	/** Forgets what was seen so far (e.g. before the loss starts). */
	reset(): void {
		this.packets.length = 0;
		this.malformed = 0;
	}

	/**
	 * Which frames reached the server, from the RED packets seen: a frame (one RTP timestamp,
	 * `frameTicks` apart) counts as arrived when its own packet or any later packet's redundant
	 * block carrying its timestamp arrived. Frames before the first and after the last packet
	 * seen are not counted. DTX pauses would count as missing: publish a steady tone.
	 */
	redCoverage(frameTicks = 960): RedCoverage {
		const red = this.packets.filter((p) => p.redOffsets !== null);
		const distances: Record<number, number> = {};
		const primaries = new Set<number>();
		const copies = new Set<number>();
		for (const p of red) {
			distances[p.redOffsets!.length] = (distances[p.redOffsets!.length] ?? 0) + 1;
			primaries.add(p.timestamp);
			for (const offset of p.redOffsets!) copies.add((p.timestamp - offset) >>> 0);
		}
		if (red.length === 0) return { frames: 0, primaries: 0, fromRedundancy: 0, missing: 0, longestMissingRun: 0, distances };
		const sorted = [...red].sort((a, b) => a.seq - b.seq);
		const first = sorted[0]!.timestamp;
		const frames = Math.round(((sorted.at(-1)!.timestamp - first) >>> 0) / frameTicks) + 1;
		let fromRedundancy = 0;
		let missing = 0;
		let run = 0;
		let longestMissingRun = 0;
		for (let i = 0; i < frames; i++) {
			const ts = (first + i * frameTicks) >>> 0;
			if (primaries.has(ts)) run = 0;
			else if (copies.has(ts)) {
				fromRedundancy++;
				run = 0;
			} else {
				missing++;
				longestMissingRun = Math.max(longestMissingRun, ++run);
			}
		}
		return { frames, primaries: frames - fromRedundancy - missing, fromRedundancy, missing, longestMissingRun, distances };
	}

	/**
	 * Frames present by RTP timestamp (any codec): for a plain Opus tap, what a listener without
	 * RED can play. Sequence numbers are not used, so this says nothing about their continuity.
	 */
	timestampCoverage(frameTicks = 960): { frames: number; present: number; seqSpan: number } {
		if (this.packets.length === 0) return { frames: 0, present: 0, seqSpan: 0 };
		const first = this.packets.reduce((a, p) => (p.seq < a.seq ? p : a)).timestamp;
		const offsets = new Set(this.packets.map((p) => Math.round(((p.timestamp - first) | 0) / frameTicks)));
		const seqs = this.packets.map((p) => p.seq);
		return { frames: Math.max(...offsets) - Math.min(...offsets) + 1, present: offsets.size, seqSpan: Math.max(...seqs) - Math.min(...seqs) + 1 };
	}

	close(): void {
		this.#transport.close();
	}
}
