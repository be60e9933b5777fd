// One-at-a-time execution per key: work on one upload runs in arrival order, never
// interleaved, while different uploads proceed in parallel.

export class KeyedMutex {
	/** The tail of each key's queue; removed when the queue drains, so idle keys cost nothing. */
	readonly #tails = new Map<string, Promise<void>>();

	/** Runs `task` once every earlier task for `key` has settled; resolves or rejects with it. */
	run<T>(key: string, task: () => Promise<T>): Promise<T> {
		const previous = this.#tails.get(key) ?? Promise.resolve();
		const result = previous.then(task);
		// The queue continues whether the task succeeded or failed; its error goes to the caller.
		const tail = result.then(
			() => undefined,
			() => undefined,
		);
		this.#tails.set(key, tail);
		void tail.then(() => {
			if (this.#tails.get(key) === tail) this.#tails.delete(key);
		});
		return result;
	}

	/** Keys with queued or running work (tests check it returns to zero). */
	get size(): number {
		return this.#tails.size;
	}
}
