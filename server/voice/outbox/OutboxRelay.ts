// The outbox relay: publishes what a SQL store's transactional outbox holds (VoiceOutbox) to
// the Redis Stream parley:voice-meta and to the webhook. Every node runs one.
//
// Per target, a loop: claim a few entries (a lease of metadata.outboxLeaseMs on each, in the
// database), make one attempt on each, then mark it done or set its next retry time. It runs
// at once when this node commits (wake(), given to the store's onEvent), else every
// metadata.outboxPollMs, which is also how entries committed on other nodes, retries that
// came due and the leases of a dead node are picked up: a node killed between its commit and
// the publish (or in the middle of one) leaves its rows in the table, and whichever node
// claims them after the lease ends publishes them.
//
// Guarantees, and what they cost:
// - At least once. An entry is marked done only after the target took it, so a node killed
//   after the XADD or POST and before markDone publishes it again (the same eventId, the same
//   body). Consumers deduplicate on eventId.
// - In commit order per message: claim offers an entry only once the earlier ones of its
//   message are done on that target, and a claim holds at most one per message; one message's
//   entries are never in flight together. Different messages go in parallel, up to the sink's
//   concurrency.
// - No entry is sent by two nodes at once: each claim is at most `concurrency` entries, one
//   attempt each, and an attempt is cut off before the lease ends (a sink's attempt timeout
//   must be below leaseMs; createOutboxRelay caps it at half), so a lease never runs out
//   while its holder is still sending.
// - A target this node does not have (no Redis, no webhook URL) is marked done in bulk, so the
//   table does not grow for it. Run every node with the same targets: a node without Redis
//   would otherwise mark stream entries done that a node with Redis should have published.
// - Retries (and the give-up after voice.webhookMaxAttempts) are counted in the table, so they
//   survive restarts; the stream retries until Redis takes the entry (it never gives up).
// - Entries done on every target are pruned after an hour (every few minutes, by every node).
// - close(deadline): stops claiming, lets attempts in flight finish until the deadline, then
//   cuts them off; what is left stays in the table for the next start or another node.
import type { Logger } from '../../telemetry/logger.js';
import { OUTBOX_TARGETS, type OutboxEntry, type OutboxTarget, type VoiceOutbox } from '../store/VoiceOutbox.js';
import type { OutboxSink, SinkResult } from './outboxSinks.js';

export interface OutboxRelayOptions {
	outbox: VoiceOutbox;
	/** Holds the leases (cluster.nodeId). */
	nodeId: string;
	/** metadata.outboxPollMs: how often to look when not woken. */
	pollMs: number;
	/** metadata.outboxLeaseMs. */
	leaseMs: number;
	/** A sink per configured target; a target without one is marked done in bulk. */
	sinks: Partial<Record<OutboxTarget, OutboxSink>>;
	log: Logger;
	/** How often done entries are pruned (default 5 minutes). */
	pruneEveryMs?: number;
	/** How long done entries are kept (default an hour: enough to look into a delivery). */
	keepDoneMs?: number;
	/** Entries marked done per round for a target this node does not have (default 500). */
	skipBatch?: number;
}

interface Loop {
	target: OutboxTarget;
	/** A wake() came since the last claim began: claim again before sleeping. */
	woken: boolean;
	/** Ends the current sleep. */
	interrupt: (() => void) | undefined;
	done: Promise<void>;
}

const DEFAULT_PRUNE_EVERY_MS = 5 * 60_000;
const DEFAULT_KEEP_DONE_MS = 60 * 60_000;

export class OutboxRelay {
	readonly #o: OutboxRelayOptions & { pruneEveryMs: number; keepDoneMs: number; skipBatch: number };
	readonly #loops = new Map<OutboxTarget, Loop>();
	/** `<target>:<position>` being sent now: this node never sends one entry twice at once,
	 * even if it claims it again itself. */
	readonly #inFlight = new Set<string>();
	/** Cuts off attempts in flight when the shutdown deadline passes. */
	readonly #abort = new AbortController();
	#pruneTimer: NodeJS.Timeout | undefined;
	#started = false;
	#closing: Promise<void> | undefined;
	#lastError = new Map<OutboxTarget, string>();
	#delivered = 0;

	constructor(options: OutboxRelayOptions) {
		if (!(options.pollMs > 0) || !(options.leaseMs > 0)) throw new TypeError('pollMs and leaseMs must be positive');
		for (const [target, sink] of Object.entries(options.sinks) as [OutboxTarget, OutboxSink | undefined][]) {
			// An attempt that outlives its lease could be taken and sent by another node meanwhile.
			if (sink && sink.attemptTimeoutMs >= options.leaseMs) {
				throw new TypeError(`outbox: one ${target} attempt may take ${sink.attemptTimeoutMs} ms, which must stay below metadata.outboxLeaseMs (${options.leaseMs} ms)`);
			}
		}
		this.#o = { pruneEveryMs: DEFAULT_PRUNE_EVERY_MS, keepDoneMs: DEFAULT_KEEP_DONE_MS, skipBatch: 500, ...options };
	}

	/** Entries this relay has taken to a target (delivered or given up) since start. */
	get completed(): number {
		return this.#delivered;
	}

	/** Attempts in flight now. */
	get inFlight(): number {
		return this.#inFlight.size;
	}

	start(): void {
		if (this.#started || this.#closing) return;
		this.#started = true;
		for (const target of OUTBOX_TARGETS) {
			const loop: Loop = { target, woken: true, interrupt: undefined, done: Promise.resolve() };
			this.#loops.set(target, loop);
			loop.done = this.#run(loop);
		}
		this.#pruneTimer = setInterval(() => void this.#prune(), this.#o.pruneEveryMs);
		this.#pruneTimer.unref();
	}

	/** Something was committed (this node's store calls it): look now instead of at the next poll. */
	wake(): void {
		for (const loop of this.#loops.values()) {
			loop.woken = true;
			loop.interrupt?.();
		}
	}

	/** Entries not yet done, per target (the parley_voice_outbox_pending gauge). */
	async pending(): Promise<Record<OutboxTarget, number>> {
		const counts = await Promise.all(OUTBOX_TARGETS.map((t) => this.#o.outbox.pending(t)));
		return Object.fromEntries(OUTBOX_TARGETS.map((t, i) => [t, counts[i]!])) as Record<OutboxTarget, number>;
	}

	/** Stops claiming; attempts in flight get until `deadline`, then are cut off (their entries
	 * stay leased and go out from the table later). Safe to call more than once. */
	close(deadline: AbortSignal): Promise<void> {
		this.#closing ??= this.#close(deadline);
		return this.#closing;
	}

	async #close(deadline: AbortSignal): Promise<void> {
		clearInterval(this.#pruneTimer);
		for (const loop of this.#loops.values()) loop.interrupt?.();
		const loops = Promise.all([...this.#loops.values()].map((l) => l.done));
		let onAbort: (() => void) | undefined;
		const cutOff = new Promise<'deadline'>((resolve) => {
			onAbort = () => resolve('deadline');
			if (deadline.aborted) resolve('deadline');
			else deadline.addEventListener('abort', onAbort, { once: true });
		});
		const first = await Promise.race([loops.then(() => 'done' as const), cutOff]);
		deadline.removeEventListener('abort', onAbort!);
		if (first === 'deadline') {
			this.#o.log.warn({ inFlight: this.#inFlight.size }, 'outbox: shutdown deadline; attempts in flight cut off (their events stay in the outbox)');
			this.#abort.abort();
			await loops;
		}
	}

	async #run(loop: Loop): Promise<void> {
		const sink = this.#o.sinks[loop.target];
		while (!this.#closing) {
			loop.woken = false;
			let progressed: boolean;
			try {
				progressed = sink ? await this.#round(loop.target, sink) : await this.#skip(loop.target);
				if (this.#lastError.has(loop.target)) this.#o.log.info({ target: loop.target }, 'outbox: reading the outbox again');
				this.#lastError.delete(loop.target);
			} catch (err) {
				// The database is away (or refusing): nothing is lost, the rows wait. Log changes only.
				const message = (err as Error).message;
				if (this.#lastError.get(loop.target) !== message) this.#o.log.warn({ err, target: loop.target }, 'outbox: claiming or recording failed; trying again at the next poll');
				this.#lastError.set(loop.target, message);
				progressed = false;
			}
			if (!progressed && !loop.woken && !this.#closing) await this.#sleep(loop);
		}
	}

	#sleep(loop: Loop): Promise<void> {
		return new Promise<void>((resolve) => {
			const timer = setTimeout(done, this.#o.pollMs);
			function done() {
				clearTimeout(timer);
				loop.interrupt = undefined;
				resolve();
			}
			loop.interrupt = done;
		});
	}

	/** One claim and its attempts; true when something was claimed (more may be waiting:
	 * the next entries of those messages only become claimable now). */
	async #round(target: OutboxTarget, sink: OutboxSink): Promise<boolean> {
		// Between rounds nothing of this node is being sent on `target` (a round waits for all of
		// its lanes), so its own leases are free: what a failed round left leased (sent, but the
		// database went away before it was marked done) goes out again at once, not after leaseMs.
		const entries = await this.#o.outbox.claim(target, this.#o.nodeId, sink.concurrency, this.#o.leaseMs, { reclaimOwn: true });
		if (entries.length === 0) return false;
		// Lanes per message, in position order. claim offers one entry per message at a time, so
		// a lane is one entry; a longer one is sent in order, stopping at its first retry (the
		// rest come back when their lease ends).
		const lanes = new Map<string, OutboxEntry[]>();
		for (const entry of [...entries].sort((a, b) => a.position - b.position)) {
			const lane = lanes.get(entry.event.voiceMessageId);
			if (lane) lane.push(entry);
			else lanes.set(entry.event.voiceMessageId, [entry]);
		}
		// Every lane runs to its end before the error (if any) is reported, so no attempt is
		// left unrecorded behind a failed sibling.
		const settled = await Promise.allSettled([...lanes.values()].map((lane) => this.#runLane(target, sink, lane)));
		const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
		if (failed) throw failed.reason;
		return true;
	}

	async #runLane(target: OutboxTarget, sink: OutboxSink, lane: OutboxEntry[]): Promise<void> {
		for (const entry of lane) {
			const key = `${target}:${entry.position}`;
			if (this.#inFlight.has(key) || this.#abort.signal.aborted) return;
			this.#inFlight.add(key);
			let result: SinkResult;
			try {
				result = await sink.deliver(entry, this.#abort.signal);
				if (result.kind === 'done') {
					await this.#o.outbox.markDone(target, [entry.position]);
					this.#delivered++;
				} else if (result.kind === 'retry') {
					await this.#o.outbox.retryLater(target, entry.position, Date.now() + result.delayMs);
				}
			} finally {
				this.#inFlight.delete(key);
			}
			if (result.kind !== 'done') return;
		}
	}

	/** A target this node does not have: its entries are marked done without sending. */
	async #skip(target: OutboxTarget): Promise<boolean> {
		const entries = await this.#o.outbox.claim(target, this.#o.nodeId, this.#o.skipBatch, this.#o.leaseMs, { reclaimOwn: true });
		if (entries.length === 0) return false;
		await this.#o.outbox.markDone(
			target,
			entries.map((e) => e.position),
		);
		return true;
	}

	async #prune(): Promise<void> {
		try {
			const removed = await this.#o.outbox.prune(Date.now() - this.#o.keepDoneMs);
			if (removed > 0) this.#o.log.debug({ removed }, 'outbox: pruned entries done on every target');
		} catch (err) {
			this.#o.log.warn({ err }, 'outbox: pruning failed; trying again later');
		}
	}
}
