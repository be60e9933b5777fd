// Puts a recorded stream's frames back in sequence order and repairs what was lost on the
// way in, before they are written. A recording has no latency budget, so a sequence hole is
// waited for (bounded) rather than written as a gap at once:
//
// - RED (RFC 2198): each packet may carry copies of the frames before it, by timestamp. A
//   copy fills a hole when it lies between the frames around the hole and overlaps neither
//   (nor another copy); a hole is closed as soon as every missing packet has its copy.
// - NACK: mediasoup asks the publisher for lost packets again (`media.opusNack`); the
//   retransmission arrives as a late packet with its own sequence number and takes its place.
//
// A hole is given up (its frames counted missing; the Ogg writer then conceals them) after
// `holdMs` of wall time since it was seen, or once `maxHeldPackets` wait behind it, or at
// flush. Only sequence holes are repaired: a timestamp jump without one is DTX silence, and
// copies never add a frame where no packet is missing, so RED cannot invent audio. A hole with
// no room on the RTP clock (a lost padding-only probe) is closed at once and loses nothing.
import { opusPacketSamples } from '../ogg/OggOpusWriter.js';

export interface RecordedPacket {
	/** 16-bit RTP sequence number. */
	seq: number;
	/** RTP timestamp (48 kHz). */
	timestamp: number;
	/** The packet's own Opus frame (RED: the primary block). */
	frame: Uint8Array;
	/** RED: copies of earlier frames, each with its own RTP timestamp. */
	copies?: readonly { timestamp: number; frame: Uint8Array }[];
}

/** Where a written frame came from. */
export type FrameSource = 'received' | 'red' | 'retransmission';

export interface RepairCounts {
	received: number;
	/** Frames handed to the writer, repaired ones included. */
	emitted: number;
	duplicates: number;
	/** Arrived after their hole had been given up. */
	late: number;
	/** Frames of sequence holes taken from RED copies. */
	fromRed: number;
	/** Packets that arrived behind later ones and filled their hole: NACK retransmissions (and
	 * reordered packets: without RTX the two look alike on the wire). */
	fromRetransmission: number;
	/** Holes given up with frames still missing, and those frames (truly missing). */
	gaps: number;
	missing: number;
	/** Packets newer than the last one before seal(): audio after the stop, not written. */
	afterSeal: number;
	/** Sequence holes with no room for a frame on the RTP clock (lost padding-only probes):
	 * closed at once, nothing missing. */
	holesWithoutAudio: number;
}

export interface RepairBounds {
	/** Longest a hole is waited for, from when it was seen (wall clock). */
	holdMs: number;
	/** Most packets held behind a hole: bounds memory, and the wait when packets come faster
	 * than real time. */
	maxHeldPackets: number;
	/** Most RED copies kept for holes (oldest dropped first). */
	maxCopies: number;
}

/** How many skipped ranges are remembered to tell late packets from duplicates. Ranges, not
 * numbers: a forged jump of 32k sequence numbers then costs one entry, not 32k. */
const REMEMBERED_SKIP_RANGES = 64;

interface Held {
	timestamp: number;
	frame: Uint8Array;
	/** Arrived behind a later packet (a retransmission). */
	late: boolean;
}

interface Copy {
	timestamp: number;
	frame: Uint8Array;
	samples: number;
}

/** Signed distance a - b on the 32-bit RTP clock. */
const tsDiff = (a: number, b: number) => (a - b) | 0;

export class RecordingRepairBuffer {
	readonly #bounds: RepairBounds;
	readonly #emit: (frame: Uint8Array, timestamp: number, source: FrameSource) => void;
	readonly #held = new Map<number, Held>();
	/** RED copies by timestamp, kept only while some hole may need them. */
	readonly #copies = new Map<number, Copy>();
	/** Skipped extended sequence numbers, as [from, to) ranges, oldest first. */
	readonly #skipped: [number, number][] = [];
	/** Extended sequence number (no 16-bit wrap) of the next packet to emit. */
	#next: number | undefined;
	#highest = -1;
	/** Where the last emitted frame ends on the RTP clock. */
	#emittedEnd: number | undefined;
	/** When the hole at #next was first seen (wall ms). */
	#holeSince: number | undefined;
	/** Set by seal(): the newest packet that may still be written. */
	#sealedAt: number | undefined;
	readonly counts: RepairCounts = { received: 0, emitted: 0, duplicates: 0, late: 0, fromRed: 0, fromRetransmission: 0, gaps: 0, missing: 0, afterSeal: 0, holesWithoutAudio: 0 };

	constructor(bounds: RepairBounds, emit: (frame: Uint8Array, timestamp: number, source: FrameSource) => void) {
		this.#bounds = bounds;
		this.#emit = emit;
	}

	/** Extends a 16-bit sequence number to the one closest to the highest seen. */
	#extend(seq: number): number {
		if (this.#highest < 0) return seq;
		const base = this.#highest - (this.#highest & 0xffff);
		let ext = base + seq;
		if (ext - this.#highest > 0x8000) ext -= 0x10000;
		else if (this.#highest - ext > 0x8000) ext += 0x10000;
		return ext;
	}

	/** Takes one packet; `nowMs` is the wall clock (performance.now()). */
	push(packet: RecordedPacket, nowMs: number): void {
		this.counts.received++;
		const ext = this.#extend(packet.seq & 0xffff);
		if (this.#sealedAt !== undefined && ext > this.#sealedAt) {
			this.counts.afterSeal++;
			return;
		}
		this.#next ??= ext;
		if (ext < this.#next) {
			// Already emitted (a second copy), or its hole was given up (late).
			if (this.#skipped.some(([from, to]) => ext >= from && ext < to)) this.counts.late++;
			else this.counts.duplicates++;
			return;
		}
		if (this.#held.has(ext)) {
			this.counts.duplicates++;
			return;
		}
		this.#held.set(ext, { timestamp: packet.timestamp >>> 0, frame: packet.frame, late: ext < this.#highest });
		this.#highest = Math.max(this.#highest, ext);
		// Copies matter only while a hole is open; without one they repeat frames we have.
		if (packet.copies && this.#held.size < this.#highest - this.#next + 1) {
			for (const c of packet.copies) this.#keepCopy(c.timestamp >>> 0, c.frame);
		}
		this.#drain(false, nowMs);
	}

	/** Gives up the holes that waited long enough (call when no packets come, e.g. before a checkpoint). */
	release(nowMs: number): void {
		this.#drain(false, nowMs);
	}

	/**
	 * End of the recording, in two steps: from here on only packets up to the newest one seen
	 * so far are taken (what fills the holes still open: late RED copies, retransmissions),
	 * newer ones are audio after the stop and are dropped. Then flush().
	 */
	seal(): void {
		this.#sealedAt = this.#highest;
	}

	/** Some hole is still waited for (packets are held behind it). */
	get holeOpen(): boolean {
		return this.#held.size > 0;
	}

	/** Emits everything still held, giving up every hole (end of recording). */
	flush(): void {
		this.#drain(true, 0);
	}

	#keepCopy(timestamp: number, frame: Uint8Array): void {
		const samples = opusPacketSamples(frame);
		if (samples === 0 || this.#copies.has(timestamp)) return;
		// Copies of frames already written are of no use.
		if (this.#emittedEnd !== undefined && tsDiff(timestamp, this.#emittedEnd) < 0) return;
		this.#copies.set(timestamp, { timestamp, frame, samples });
		if (this.#copies.size > this.#bounds.maxCopies) this.#copies.delete(this.#copies.keys().next().value!);
	}

	#drain(all: boolean, nowMs: number): void {
		while (this.#held.size > 0 && this.#next !== undefined) {
			const item = this.#held.get(this.#next);
			if (item !== undefined) {
				this.#held.delete(this.#next);
				this.#write(item.frame, item.timestamp, item.late ? 'retransmission' : 'received');
				this.#next++;
				this.#holeSince = undefined;
				continue;
			}
			// A hole: packets #next .. lowest-1 are missing.
			// (The lowest key, not a walk up from #next: a forged jump may skip 32k numbers.)
			let lowest = Infinity;
			for (const k of this.#held.keys()) if (k < lowest) lowest = k;
			const after = this.#held.get(lowest)!;
			const wanted = lowest - this.#next;
			const fills = this.#copiesBetween(after.timestamp, wanted);
			// Room left on the RTP clock between what is written (with the fills) and the packet
			// after the hole. None: the missing packets held no audio (lost padding-only probes,
			// which browsers send on the audio stream among the frames), so nothing is lost and
			// nothing is waited for. Some: at most that many frames are missing.
			// (The fills need not start at the hole's beginning: a burst longer than RED's distance
			// keeps the copies of its newest frames only.)
			const room = this.#emittedEnd === undefined ? undefined : tsDiff(after.timestamp, this.#emittedEnd) - fills.reduce((n, c) => n + c.samples, 0);
			const noRoom = room !== undefined && room <= 0;
			this.#holeSince ??= nowMs;
			const givenUp = all || noRoom || this.#held.size > this.#bounds.maxHeldPackets || nowMs - this.#holeSince >= this.#bounds.holdMs;
			if (fills.length < wanted && !givenUp) return;
			for (const c of fills) {
				this.#copies.delete(c.timestamp);
				this.#write(c.frame, c.timestamp, 'red');
			}
			if (fills.length < wanted) {
				const frameSamples = opusPacketSamples(after.frame) || 960;
				const lost = room === undefined ? wanted - fills.length : Math.min(wanted - fills.length, Math.max(0, Math.round(room / frameSamples)));
				if (lost > 0) {
					this.counts.gaps++;
					this.counts.missing += lost;
				} else {
					this.counts.holesWithoutAudio++;
				}
				this.#skipped.push([this.#next, lowest]);
				if (this.#skipped.length > REMEMBERED_SKIP_RANGES) this.#skipped.shift();
			}
			this.#next = lowest;
			this.#holeSince = undefined;
		}
	}

	/**
	 * Up to `wanted` copies that fit between the last frame written and the frame at `before`,
	 * in timestamp order, none overlapping another: they are the hole's frames. More than
	 * `wanted` can only come from a sender that lies; the earliest are taken.
	 */
	#copiesBetween(before: number, wanted: number): Copy[] {
		if (this.#copies.size === 0) return [];
		const from = this.#emittedEnd;
		const inside: Copy[] = [];
		for (const c of this.#copies.values()) {
			if (from !== undefined && tsDiff(c.timestamp, from) < 0) continue;
			if (tsDiff(before, c.timestamp + c.samples) < 0) continue;
			inside.push(c);
		}
		inside.sort((a, b) => tsDiff(a.timestamp, b.timestamp));
		const fills: Copy[] = [];
		let end = from;
		for (const c of inside) {
			if (fills.length === wanted) break;
			if (end !== undefined && tsDiff(c.timestamp, end) < 0) continue;
			fills.push(c);
			end = (c.timestamp + c.samples) >>> 0;
		}
		return fills;
	}

	#write(frame: Uint8Array, timestamp: number, source: FrameSource): void {
		this.#emit(frame, timestamp, source);
		this.counts.emitted++;
		if (source === 'red') this.counts.fromRed++;
		else if (source === 'retransmission') this.counts.fromRetransmission++;
		this.#emittedEnd = (timestamp + opusPacketSamples(frame)) >>> 0;
		// Copies now behind the timeline can never fill anything.
		if (this.#copies.size > 0 && this.counts.emitted % 16 === 0) {
			for (const [ts, c] of this.#copies) if (tsDiff(c.timestamp, this.#emittedEnd) < 0) this.#copies.delete(ts);
		}
	}
}
