// Status subscriptions: each subscriber reads the durable event log (VoiceEventLog) from its
// own position, so what it gets is the log's order, with nothing missed or repeated when it
// resumes from the position of the last event it got.
//
// Pull, not push: a subscriber reads its next batch only when its consumer asks for it, so a
// slow consumer falls behind in the log (up to metadata.eventRetentionS) instead of filling
// this process's memory; the transport decides what to do with a consumer that stops reading.
//
// When to read again: at once when this node commits an event (notify(), from the store's
// onEvent), and for other nodes' commits when the log's head moves. One watcher reads the head
// every pollMs while anyone is subscribed and is idle otherwise, so idle subscribers cost one
// query per poll in all, not one each.
//
// Shared reads: subscribers at the same position share one unfiltered read of the log and
// filter it in memory (both logs filter in memory anyway). A commit wakes every subscriber at
// once and most are at the head, so 1,000 subscribers cost one read per commit, not 1,000:
// one read each kept the event loop busy for seconds on SQLite (a synchronous driver). A read
// is shared while in flight and until the next commit (notify()), never after: a batch read
// before a commit may miss it, and one read after is needed to see it.
import { matchesFilter, type LoggedVoiceEvent, type VoiceEventBatch, type VoiceEventFilter, type VoiceEventLog } from './store/VoiceEventLog.js';
import type { Logger } from '../telemetry/logger.js';

export interface VoiceStatusFeedOptions {
	log: VoiceEventLog;
	/** How often the head is read for other nodes' events (metadata.outboxPollMs). */
	pollMs: number;
	/** Log entries looked at per read (matching or not). */
	scanLimit?: number;
	logger?: Logger;
}

export interface SubscribeOptions {
	/** The position of the last event the subscriber got; absent: only events from now on. */
	after?: string | undefined;
	filter: VoiceEventFilter;
	/** A further check per event (what the caller's grants let it see). */
	visible?: (event: LoggedVoiceEvent) => boolean;
	/** Ends the subscription (the iterator returns). */
	signal: AbortSignal;
}

const DEFAULT_SCAN_LIMIT = 200;
/** Distinct positions whose reads are kept between two commits (subscribers far behind each
 * have their own); past it the oldest are dropped, which only costs a read again. */
const MAX_SHARED_READS = 1024;

export class VoiceStatusFeed {
	readonly #o: VoiceStatusFeedOptions & { scanLimit: number };
	/** Woken when there may be something new to read. */
	readonly #waiting = new Set<() => void>();
	#subscribers = 0;
	#headTimer: NodeJS.Timeout | undefined;
	#lastHead: string | undefined;
	#closed = false;
	/** Reads by position, shared by the subscribers there, cleared on every commit. */
	readonly #reads = new Map<string, Promise<VoiceEventBatch>>();

	constructor(options: VoiceStatusFeedOptions) {
		if (!(options.pollMs > 0)) throw new TypeError('pollMs must be positive');
		this.#o = { scanLimit: DEFAULT_SCAN_LIMIT, ...options };
	}

	/** Subscriptions open now. */
	get subscribers(): number {
		return this.#subscribers;
	}

	/** Something was committed (an event of this node): every subscriber reads again. */
	notify(): void {
		this.#reads.clear();
		const waiting = [...this.#waiting];
		this.#waiting.clear();
		for (const wake of waiting) wake();
	}

	/**
	 * The events after `after` that match, in log order, then the new ones as they commit,
	 * until `signal` aborts or close(). Rejects with EventLogOutOfRangeError /
	 * InvalidEventPositionError for a position the log cannot resume from, and with the
	 * store's error while the log cannot be read.
	 */
	async *subscribe(options: SubscribeOptions): AsyncGenerator<LoggedVoiceEvent, void, undefined> {
		const { filter, signal, visible } = options;
		if (this.#closed) return;
		this.#subscribers++;
		this.#watchHead();
		try {
			let cursor = options.after ?? (await this.#o.log.headPosition());
			while (!signal.aborted && !this.#closed) {
				// Registered before the read, so a commit during the read wakes the next wait.
				let woken = false;
				const wake = () => {
					woken = true;
				};
				this.#waiting.add(wake);
				const batch = await this.#read(cursor);
				for (const e of batch.events) {
					if (signal.aborted || this.#closed) return;
					if (matchesFilter(e.event, filter) && (!visible || visible(e))) yield e;
				}
				const moved = batch.readThrough !== cursor;
				cursor = batch.readThrough;
				if (moved) {
					this.#waiting.delete(wake);
					// Maybe more behind this batch. SQLite answers synchronously underneath, so a long
					// stretch of non-matching events would otherwise never give the event loop a turn.
					if (batch.events.length === 0) await new Promise((r) => setImmediate(r));
					continue;
				}
				if (!woken) await this.#sleep(wake, signal);
				this.#waiting.delete(wake);
			}
		} finally {
			this.#subscribers--;
			if (this.#subscribers === 0) this.#stopWatchingHead();
		}
	}

	/** The log after `cursor`, unfiltered: one read for every subscriber at that position. */
	#read(cursor: string): Promise<VoiceEventBatch> {
		let read = this.#reads.get(cursor);
		if (!read) {
			read = this.#o.log.readEvents(cursor, {}, this.#o.scanLimit);
			const shared = read;
			// A failed read is not shared beyond the subscribers already waiting on it.
			shared.catch(() => {
				if (this.#reads.get(cursor) === shared) this.#reads.delete(cursor);
			});
			if (this.#reads.size >= MAX_SHARED_READS) this.#reads.delete(this.#reads.keys().next().value!);
			this.#reads.set(cursor, shared);
		}
		return read;
	}

	/** Ends every subscription (at their next step) and stops the head watcher. */
	close(): void {
		this.#closed = true;
		this.#stopWatchingHead();
		this.notify();
	}

	#sleep(registered: () => void, signal: AbortSignal): Promise<void> {
		return new Promise<void>((resolve) => {
			const done = () => {
				this.#waiting.delete(registered);
				this.#waiting.delete(done);
				signal.removeEventListener('abort', done);
				resolve();
			};
			this.#waiting.delete(registered);
			this.#waiting.add(done);
			signal.addEventListener('abort', done, { once: true });
		});
	}

	#watchHead(): void {
		if (this.#headTimer || this.#closed) return;
		this.#headTimer = setInterval(() => void this.#checkHead(), this.#o.pollMs);
		this.#headTimer.unref();
	}

	#stopWatchingHead(): void {
		clearInterval(this.#headTimer);
		this.#headTimer = undefined;
		this.#lastHead = undefined;
	}

	#checking = false;
	async #checkHead(): Promise<void> {
		if (this.#checking) return;
		this.#checking = true;
		try {
			const head = await this.#o.log.headPosition();
			if (head !== this.#lastHead) {
				this.#lastHead = head;
				this.notify();
			}
		} catch (err) {
			// The subscribers' own reads report the outage; this only logs it.
			this.#o.logger?.warn({ err }, 'voice status feed: the event log head could not be read');
		} finally {
			this.#checking = false;
		}
	}
}
