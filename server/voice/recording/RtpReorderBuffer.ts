// Puts RTP packets back in sequence order before they are written: a short window
// (a few packets) absorbs reordering on the way in; duplicates are dropped, and every
// sequence gap that leaves the window is counted.

export interface ReorderCounts {
	received: number;
	emitted: number;
	duplicates: number;
	/** Arrived after their slot had left the window. */
	late: number;
	/** Gaps in the emitted sequence and the packets they miss. */
	gaps: number;
	missing: number;
}

/** How many skipped ranges are remembered to tell late packets from duplicates. Ranges, not
 * numbers: a forged jump of 32k sequence numbers then costs one entry, not 32k. */
const REMEMBERED_SKIP_RANGES = 64;

export class RtpReorderBuffer<T> {
	readonly #capacity: number;
	readonly #emit: (item: T, extendedSeq: number) => void;
	readonly #pending = new Map<number, T>();
	/** Skipped extended sequence numbers, as [from, to) ranges, oldest first. */
	readonly #skipped: [number, number][] = [];
	/** Extended sequence number (no 16-bit wrap) of the next packet to emit. */
	#next: number | undefined;
	#highest = -1;
	readonly counts: ReorderCounts = { received: 0, emitted: 0, duplicates: 0, late: 0, gaps: 0, missing: 0 };

	constructor(capacity: number, emit: (item: T, extendedSeq: number) => void) {
		this.#capacity = capacity;
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

	push(seq: number, item: T): void {
		this.counts.received++;
		const ext = this.#extend(seq & 0xffff);
		this.#next ??= ext;
		if (ext < this.#next) {
			// Already emitted (a retransmission), or skipped over as missing (late).
			if (this.#skipped.some(([from, to]) => ext >= from && ext < to)) this.counts.late++;
			else this.counts.duplicates++;
			return;
		}
		if (this.#pending.has(ext)) {
			this.counts.duplicates++;
			return;
		}
		this.#pending.set(ext, item);
		this.#highest = Math.max(this.#highest, ext);
		this.#drain(false);
	}

	/** Emits everything still held (end of recording). */
	flush(): void {
		this.#drain(true);
	}

	#drain(all: boolean): void {
		while (this.#pending.size > 0 && this.#next !== undefined) {
			const item = this.#pending.get(this.#next);
			if (item !== undefined) {
				this.#pending.delete(this.#next);
				this.#emit(item, this.#next);
				this.counts.emitted++;
				this.#next++;
				continue;
			}
			if (!all && this.#pending.size <= this.#capacity) return;
			// The window is full (or we are flushing): give up on the missing packets.
			const lowest = Math.min(...this.#pending.keys());
			this.counts.gaps++;
			this.counts.missing += lowest - this.#next;
			this.#skipped.push([this.#next, lowest]);
			if (this.#skipped.length > REMEMBERED_SKIP_RANGES) this.#skipped.shift();
			this.#next = lowest;
		}
	}
}
