// Token bucket: `burst` requests at once, refilled at `ratePerSecond`. Shared by the server
// (one per connection: refuse what is over the limit) and the browser client (pace its own
// requests under the limit the server announces, rather than fail and retry them).

export interface TokenBucketOptions {
	ratePerSecond: number;
	burst: number;
	/** Monotonic clock in ms; injected by tests. */
	nowMs?: () => number;
}

/** Throws TypeError for a rate and burst no bucket can have. */
export function assertBucketRule({ ratePerSecond, burst }: { ratePerSecond: number; burst: number }): void {
	if (!(ratePerSecond > 0) || !Number.isFinite(ratePerSecond)) throw new TypeError('ratePerSecond must be a finite number > 0');
	if (!(burst >= 1) || !Number.isFinite(burst)) throw new TypeError('burst must be a finite number >= 1');
}

export class TokenBucket {
	readonly #ratePerMs: number;
	readonly #burst: number;
	readonly #nowMs: () => number;
	#tokens: number;
	#updatedAtMs: number;

	constructor({ ratePerSecond, burst, nowMs = () => performance.now() }: TokenBucketOptions) {
		assertBucketRule({ ratePerSecond, burst });
		this.#ratePerMs = ratePerSecond / 1000;
		this.#burst = burst;
		this.#nowMs = nowMs;
		this.#tokens = burst;
		this.#updatedAtMs = nowMs();
	}

	#refill(): void {
		const now = this.#nowMs();
		this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#updatedAtMs) * this.#ratePerMs);
		this.#updatedAtMs = now;
	}

	/** Takes a token if one is there; false means the request is over the limit. */
	tryTake(): boolean {
		this.#refill();
		if (this.#tokens < 1) return false;
		this.#tokens -= 1;
		return true;
	}

	/**
	 * Takes one token and returns how long to wait before using it (0: now). Tokens taken
	 * ahead of time leave the bucket in debt, so callers are served in call order.
	 */
	reserve(): number {
		this.#refill();
		this.#tokens -= 1;
		return this.#tokens >= 0 ? 0 : Math.ceil(-this.#tokens / this.#ratePerMs);
	}
}
