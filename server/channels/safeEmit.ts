// Emitting an event in the middle of a state change (a peer removed, a channel closing)
// must not let one listener decide whether the change completes. Node's emit() stops at
// the first listener that throws and rethrows to the emitter; safeEmit() (after mediasoup's
// EnhancedEventEmitter.safeEmit) calls every listener, logs what one throws, and returns.
import { EventEmitter } from 'node:events';
import type { Logger } from '../telemetry/logger.js';

type Listener = (...args: unknown[]) => unknown;

/** Calls each listener of `event` in order; a listener that throws (or whose promise
 * rejects) is logged and the others still run. Returns whether there were listeners. */
export function safeEmit<T extends Record<keyof T, unknown[]>, K extends keyof T & string>(
	emitter: EventEmitter<T>,
	log: Pick<Logger, 'error'>,
	event: K,
	...args: T[K]
): boolean {
	// Untyped rawListeners: the typed one cannot name an event of a generic event map.
	// `once` wrappers remove themselves when called, as with emit(); the array is a copy,
	// so listeners added or removed meanwhile do not change this round (as with emit()).
	const listeners = EventEmitter.prototype.rawListeners.call(emitter, event) as Listener[];
	for (const listener of listeners) {
		try {
			const result = listener.apply(emitter, args);
			if (result instanceof Promise) result.catch((err: unknown) => log.error({ err, event }, 'event listener failed'));
		} catch (err) {
			log.error({ err, event }, 'event listener threw');
		}
	}
	return listeners.length > 0;
}
