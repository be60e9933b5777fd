// The transactional outbox: a SQL metadata store writes each lifecycle event in the same
// transaction as the change it describes, and a relay (server/voice/outbox) publishes the
// rows to their targets afterwards. So an event is never lost between the commit and the
// publish (a node killed there leaves the row for itself or another node), and never sent
// for a change that did not commit.
import type { VoiceMessageEvent } from '../voiceEvents.js';

/** Where outbox events go: the Redis Stream parley:voice-meta and the webhook. */
export const OUTBOX_TARGETS = ['stream', 'webhook'] as const;
export type OutboxTarget = (typeof OUTBOX_TARGETS)[number];

export interface OutboxEntry {
	/** Commit-ordered position in the outbox (unique, increasing per message). */
	position: number;
	event: VoiceMessageEvent;
	/** Delivery attempts made on the claimed target so far. */
	attempts: number;
}

export interface VoiceOutbox {
	/**
	 * Leases up to `limit` entries not yet done on `target` to `nodeId` for `leaseMs`: entries
	 * nobody holds, or whose lease ran out (their node died), and whose retry time has come.
	 * An entry is offered only once every earlier entry of the same message is done on that
	 * target, so each message's events go out in commit order. Oldest first.
	 * `reclaimOwn`: entries still leased to `nodeId` count as free too. Only for a caller that
	 * knows none of its earlier claims is still being sent (the relay, between rounds): after
	 * the database came back, what it sent but could not mark done goes out again at once
	 * (at least once) instead of waiting out its own lease.
	 */
	claim(target: OutboxTarget, nodeId: string, limit: number, leaseMs: number, options?: { reclaimOwn?: boolean }): Promise<OutboxEntry[]>;
	/** Done on `target` (delivered, or given up on for good); the lease ends. */
	markDone(target: OutboxTarget, positions: readonly number[]): Promise<void>;
	/** Not delivered yet: release the lease, count the attempt, offer it again at `retryAt`. */
	retryLater(target: OutboxTarget, position: number, retryAt: number): Promise<void>;
	/** Entries not yet done on `target` (a gauge, and what tests wait for). */
	pending(target: OutboxTarget): Promise<number>;
	/** Deletes entries done on every target whose change committed before `before` (ms). */
	prune(before: number): Promise<number>;
}
