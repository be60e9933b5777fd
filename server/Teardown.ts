// The one close order of a node. create() pushes each resource as it acquires it; a failed
// start and shutdown() both close them in reverse, so the order is written once, where the
// resources are made. (Node 20 has no AsyncDisposableStack.)
import type { Logger } from './telemetry/logger.js';

/** Closes one resource; `deadline` aborts when the shutdown deadline passes. */
export type Closer = (deadline: AbortSignal) => unknown;

export class Teardown {
	readonly #log: Logger;
	readonly #stack: { name: string; close: Closer }[] = [];
	#closing: Promise<void> | undefined;

	constructor(log: Logger) {
		this.#log = log;
	}

	/** Names of what is held, oldest first. */
	get names(): string[] {
		return this.#stack.map((entry) => entry.name);
	}

	push(name: string, close: Closer): void {
		if (this.#closing) throw new Error(`Teardown: "${name}" acquired after closing began`);
		this.#stack.push({ name, close });
	}

	/** Closes everything, newest first; a closer that fails is logged and the rest still run.
	 * Safe to call more than once (later calls wait for the first). */
	closeAll(deadline: AbortSignal): Promise<void> {
		this.#closing ??= this.#closeAll(deadline);
		return this.#closing;
	}

	async #closeAll(deadline: AbortSignal): Promise<void> {
		while (this.#stack.length > 0) {
			const { name, close } = this.#stack.pop()!;
			try {
				await close(deadline);
			} catch (err) {
				this.#log.error({ err, resource: name }, 'closing failed');
			}
		}
	}
}
