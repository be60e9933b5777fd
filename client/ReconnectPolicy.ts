// When to try again after losing the connection, as one small object instead of timeouts
// scattered through the client (LiveKit's ReconnectPolicy). The first retry is immediate
// (most drops are a blip), then the delay grows so a restarting server is not stampeded,
// and jitter spreads the clients of one server over time.

export interface ReconnectPolicy {
	/**
	 * Delay before retry number `attempt` (0 for the first retry after a loss), or null to
	 * give up.
	 */
	nextDelayMs(attempt: number): number | null;
}

export const DEFAULT_RECONNECT_DELAYS_MS: readonly number[] = [0, 300, 1000, 2000, 4000, 8000];

export interface BackoffReconnectPolicyOptions {
	/** Explicit schedule for the first retries; later ones double the last entry. */
	delaysMs?: readonly number[];
	/** Cap on the scheduled delay (before jitter). */
	maxDelayMs?: number;
	/** Retries before giving up (Infinity: never). */
	maxAttempts?: number;
	/** Each delay is scaled by a random factor in [1 - ratio, 1 + ratio]. */
	jitterRatio?: number;
	/** Uniform random source in [0, 1); injected by tests. */
	random?: () => number;
}

export class BackoffReconnectPolicy implements ReconnectPolicy {
	readonly #delaysMs: readonly number[];
	readonly #maxDelayMs: number;
	readonly #maxAttempts: number;
	readonly #jitterRatio: number;
	readonly #random: () => number;

	constructor({
		delaysMs = DEFAULT_RECONNECT_DELAYS_MS,
		maxDelayMs = 10_000,
		maxAttempts = 12,
		jitterRatio = 0.3,
		random = Math.random,
	}: BackoffReconnectPolicyOptions = {}) {
		if (delaysMs.length === 0 || !delaysMs.every((d) => Number.isFinite(d) && d >= 0)) {
			throw new TypeError('delaysMs must be a non-empty list of finite delays >= 0');
		}
		if (!(maxDelayMs >= 0) || !Number.isFinite(maxDelayMs)) throw new TypeError('maxDelayMs must be a finite number >= 0');
		if (!(maxAttempts >= 0) || !(Number.isInteger(maxAttempts) || maxAttempts === Infinity)) {
			throw new TypeError('maxAttempts must be an integer >= 0 or Infinity');
		}
		if (!(jitterRatio >= 0 && jitterRatio < 1)) throw new TypeError('jitterRatio must be in [0, 1)');
		this.#delaysMs = [...delaysMs];
		this.#maxDelayMs = maxDelayMs;
		this.#maxAttempts = maxAttempts;
		this.#jitterRatio = jitterRatio;
		this.#random = random;
	}

	nextDelayMs(attempt: number): number | null {
		if (!Number.isInteger(attempt) || attempt < 0) throw new TypeError('attempt must be an integer >= 0');
		if (attempt >= this.#maxAttempts) return null;
		const baseMs = Math.min(this.#scheduledMs(attempt), this.#maxDelayMs);
		// An immediate retry stays immediate: jitter only matters once clients wait.
		if (baseMs === 0) return 0;
		const factor = 1 + this.#jitterRatio * (2 * this.#random() - 1);
		return Math.max(0, Math.round(baseMs * factor));
	}

	#scheduledMs(attempt: number): number {
		const scheduled = this.#delaysMs[attempt];
		if (scheduled !== undefined) return scheduled;
		const lastMs = this.#delaysMs[this.#delaysMs.length - 1] ?? 0;
		// Past the schedule: exponential growth from the last entry (Infinity is fine, it is capped).
		return lastMs * 2 ** (attempt - this.#delaysMs.length + 1);
	}
}
