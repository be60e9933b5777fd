// Event-loop stalls of this process, stamped in time. Parley runs in the bench process in the
// capacity ramp, so its JavaScript work (stats replies, observers, GC) delays the sampled
// listeners' receive stamps and its own worker requests alike; lining stalls up with latency
// tells the two apart. perf_hooks.monitorEventLoopDelay gives a histogram without times, so
// this is a timer of its own: every TICK_MS it stamps performance.now(), and a gap longer
// than TICK_MS is a stall of (gap - TICK_MS) ending at that stamp.

const TICK_MS = 5;

export interface EventLoopStall {
	/** performance.now() when the loop got to the timer again. */
	atMs: number;
	delayMs: number;
}

export class EventLoopProbe {
	#timer: NodeJS.Timeout | undefined;
	#last = 0;
	readonly #stalls: EventLoopStall[] = [];
	/** Stalls shorter than this are timer jitter, not kept. */
	readonly #minDelayMs: number;

	constructor(minDelayMs = 1) {
		this.#minDelayMs = minDelayMs;
	}

	start(): void {
		this.#last = performance.now();
		this.#timer = setInterval(() => {
			const now = performance.now();
			const delayMs = now - this.#last - TICK_MS;
			if (delayMs >= this.#minDelayMs) this.#stalls.push({ atMs: now, delayMs });
			this.#last = now;
		}, TICK_MS);
		this.#timer.unref();
	}

	stop(): EventLoopStall[] {
		clearInterval(this.#timer);
		this.#timer = undefined;
		return this.#stalls;
	}
}

/** The longest stall overlapping [fromMs, toMs) (a stall covers [atMs - delayMs, atMs)), 0 if none. */
export function maxStallIn(stalls: EventLoopStall[], fromMs: number, toMs: number): number {
	let max = 0;
	for (const s of stalls) if (s.atMs > fromMs && s.atMs - s.delayMs < toMs) max = Math.max(max, s.delayMs);
	return max;
}
