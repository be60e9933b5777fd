// Token bucket: `burst` requests at once, refilled at `ratePerSecond`. One per connection.
export class TokenBucket {
	readonly #ratePerMs: number;
	readonly #capacity: number;
	#tokens: number;
	#updatedAt: number;

	constructor(ratePerSecond: number, burst: number, now: number = performance.now()) {
		this.#ratePerMs = ratePerSecond / 1000;
		this.#capacity = burst;
		this.#tokens = burst;
		this.#updatedAt = now;
	}

	/** Takes one token; false when the bucket is empty (the request must be refused). */
	take(now: number = performance.now()): boolean {
		this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#updatedAt) * this.#ratePerMs);
		this.#updatedAt = now;
		if (this.#tokens < 1) return false;
		this.#tokens -= 1;
		return true;
	}
}
