// A server stream that resumes after the last event it yielded when the connection breaks:
// SubscribeStatus and SubscribeEvents both take an after_event_id, so a client that reconnects
// with the id of the last event it got misses nothing and sees nothing twice.
import { setTimeout as delay } from 'node:timers/promises';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ReconnectPolicy } from './ReconnectPolicy.js';
import { SdkError } from './SdkError.js';

export interface ResumingStreamOptions {
	signal?: AbortSignal | undefined;
	/** Resubscribe after the last event received when the stream breaks (UNAVAILABLE: a node
	 * restart, a lost connection). Default true; false: the iterator throws the SdkError. */
	reconnect?: boolean;
	/** Delays between resubscriptions (default: ReconnectPolicy's). */
	reconnectPolicy?: ReconnectPolicy;
}

/**
 * Yields what `open(afterEventId)` streams; on UNAVAILABLE (or a stream the server ended without
 * an error) opens it again after the last event yielded (before the first one: after
 * `afterEventId`). Ends when the signal aborts or the loop breaks; other failures throw.
 */
export async function* resumingStream<T extends { eventId: string }>(
	name: string,
	afterEventId: string,
	open: (afterEventId: string) => AsyncIterable<T>,
	options: ResumingStreamOptions,
): AsyncGenerator<T, void, undefined> {
	const policy = options.reconnectPolicy ?? new ReconnectPolicy();
	let after = afterEventId;
	let failures = 0;
	for (;;) {
		try {
			for await (const event of open(after)) {
				after = event.eventId;
				failures = 0;
				yield event;
			}
			if (options.signal?.aborted) return;
			// The server ended the stream without a status error: resubscribe as after UNAVAILABLE.
		} catch (err) {
			if (!(options.reconnect ?? true) || !(err instanceof SdkError) || err.grpcStatus !== GrpcStatus.UNAVAILABLE) throw err;
		}
		if (options.reconnect === false) return;
		const waitMs = policy.delayMs(failures++);
		if (waitMs === undefined) throw new SdkError(`${name}: gave up after ${failures} reconnect attempts`, GrpcStatus.UNAVAILABLE);
		try {
			await delay(waitMs, undefined, { signal: options.signal });
		} catch {
			return; // aborted while waiting
		}
	}
}
