// A minimal typed event emitter for browser code: Node's 'events' is not available in the
// browser, and a map of event name to argument tuple lets the compiler check every emit and
// every listener.

/** Event name to listener arguments, e.g. `{ muteChanged: [muted: boolean] }`. */
export type EventMap<Events> = { [K in keyof Events]: unknown[] };

type Listener<Args extends unknown[]> = (...args: Args) => void;

export class TypedEmitter<Events extends EventMap<Events>> {
	readonly #listeners = new Map<keyof Events, Set<Listener<never[]>>>();

	/** Adds a listener; returns the function that removes it. */
	on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
		let set = this.#listeners.get(event);
		if (!set) {
			set = new Set();
			this.#listeners.set(event, set);
		}
		set.add(listener as unknown as Listener<never[]>);
		return () => this.off(event, listener);
	}

	once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
		const off = this.on(event, (...args) => {
			off();
			listener(...args);
		});
		return off;
	}

	off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
		const set = this.#listeners.get(event);
		set?.delete(listener as unknown as Listener<never[]>);
		if (set?.size === 0) this.#listeners.delete(event);
	}

	listenerCount(event: keyof Events): number {
		return this.#listeners.get(event)?.size ?? 0;
	}

	removeAllListeners(event?: keyof Events): void {
		if (event === undefined) this.#listeners.clear();
		else this.#listeners.delete(event);
	}

	/**
	 * Calls every listener. A throwing listener must not stop the others nor the emitter's
	 * own state change, so its error is rethrown asynchronously (it still reaches the
	 * console / the test runner, it is not swallowed).
	 */
	protected emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
		const set = this.#listeners.get(event);
		if (!set) return;
		for (const listener of [...set]) {
			try {
				(listener as unknown as Listener<Events[K]>)(...args);
			} catch (error) {
				queueMicrotask(() => {
					throw error;
				});
			}
		}
	}
}
