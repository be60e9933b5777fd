// When a broken stream is opened again: an explicit schedule with jitter, so the backends of
// a restarted node do not all come back at the same instant.
export class ReconnectPolicy {
	readonly delaysMs: readonly number[];
	/** Attempts after the schedule's end (at its last delay); Infinity: never give up. */
	readonly maxAttempts: number;

	constructor({ delaysMs = [100, 250, 500, 1000, 2000, 5000], maxAttempts = Infinity }: { delaysMs?: readonly number[]; maxAttempts?: number } = {}) {
		if (delaysMs.length === 0 || delaysMs.some((d) => !(d >= 0))) throw new TypeError('ReconnectPolicy: delaysMs needs at least one delay >= 0');
		this.delaysMs = delaysMs;
		this.maxAttempts = maxAttempts;
	}

	/** Delay before reconnect attempt `failures` + 1 (0: the first), jittered to [half, full]; undefined: give up. */
	delayMs(failures: number): number | undefined {
		if (failures >= this.maxAttempts) return undefined;
		const base = this.delaysMs[Math.min(failures, this.delaysMs.length - 1)]!;
		return Math.round(base / 2 + Math.random() * (base / 2));
	}
}
