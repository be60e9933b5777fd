// Drives publishers at 20 ms per frame, each on its own phase (publisher i at i/N of the
// period) like independent microphones, so the server sees a steady flow instead of every
// publisher's packet in the same millisecond. Paced against the clock: timer lateness does
// not accumulate.
import { FRAME_MS } from '../audio/speech.js';

export interface PacedSender {
	sendNext(): void;
}

/** Further behind than this, a publisher skips ahead instead of sending a burst. */
const MAX_CATCH_UP_MS = 3 * FRAME_MS;

export class FramePacer {
	readonly #senders: PacedSender[];
	readonly #due: Float64Array;
	#timer: NodeJS.Timeout | undefined;
	#running = false;
	/** Frames not sent because the event loop fell too far behind. */
	skipped = 0;

	constructor(senders: PacedSender[]) {
		this.#senders = senders;
		this.#due = new Float64Array(senders.length);
	}

	get running(): boolean {
		return this.#running;
	}

	start(): void {
		if (this.#running) return;
		this.#running = true;
		const now = performance.now();
		const n = this.#senders.length;
		for (let i = 0; i < n; i++) this.#due[i] = now + (i * FRAME_MS) / n;
		this.#tick();
	}

	/** Stops sending; `start()` resumes on a fresh schedule. */
	stop(): void {
		this.#running = false;
		clearTimeout(this.#timer);
		this.#timer = undefined;
	}

	#tick = (): void => {
		if (!this.#running) return;
		const now = performance.now();
		let next = Infinity;
		for (let i = 0; i < this.#senders.length; i++) {
			let due = this.#due[i]!;
			if (due <= now) {
				this.#senders[i]!.sendNext();
				due += FRAME_MS;
				if (now - due > MAX_CATCH_UP_MS) {
					const behind = Math.floor((now - due) / FRAME_MS);
					this.skipped += behind;
					due += behind * FRAME_MS;
				}
				this.#due[i] = due;
			}
			if (due < next) next = due;
		}
		this.#timer = setTimeout(this.#tick, Math.max(0, next - performance.now()));
	};
}
