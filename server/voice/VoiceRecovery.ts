// Finishing voice messages that a crash left unfinished: this node's own at startup, and,
// in a cluster, those of a node that was lost. The policy lives here; the work itself is
// VoiceMessageService.recoverUnfinished (a compare-and-set on nodeId lets one node win each
// message, so every node may try).
import type { Logger } from '../telemetry/logger.js';
import type { VoiceMessageService } from './VoiceMessageService.js';

/** Whether a node still has an entry in the cluster's node registry. */
export type IsRegistered = (nodeId: string) => Promise<boolean>;

/** Tells when a node left the registry (server/cluster/NodeRegistry). */
export interface NodeLostEvents {
	on(event: 'nodeLost', listener: (nodeId: string) => void): unknown;
	off(event: 'nodeLost', listener: (nodeId: string) => void): unknown;
}

export interface VoiceRecoveryOptions {
	service: Pick<VoiceMessageService, 'recoverUnfinished'>;
	/** How long a lost node must stay gone before its messages are taken over: two of its
	 * TTLs, since an entry can vanish for a moment when Redis restarts. */
	lostNodeGraceMs: number;
	log: Logger;
	/** First and longest retry delay of startup recovery against a shared store. */
	retryMinMs?: number;
	retryMaxMs?: number;
}

export class VoiceRecovery {
	readonly #o: Required<VoiceRecoveryOptions>;
	readonly #timers = new Set<NodeJS.Timeout>();
	#isRegistered: IsRegistered | undefined;
	#lostNodes: NodeLostEvents | undefined;
	#closed = false;
	readonly #onNodeLost = (nodeId: string): void => this.#takeOver(nodeId);

	constructor(options: VoiceRecoveryOptions) {
		this.#o = { retryMinMs: 500, retryMaxMs: 10_000, ...options };
	}

	/** One node alone: every unfinished message is its own. Resolves when done. */
	async recoverLocal(): Promise<void> {
		await this.#o.service.recoverUnfinished();
	}

	/**
	 * A shared store: this node's unfinished messages, those with no node, and those of nodes
	 * with no registry entry (dead: nodes get a new id on every start). Redis may be away at
	 * startup, so this runs in the background and retries with backoff until it answers or
	 * close().
	 */
	startShared(isRegistered: IsRegistered): void {
		this.#isRegistered = isRegistered;
		this.#recoverShared(async (nodeId) => !(await isRegistered(nodeId)), 0);
	}

	/** From now on a node lost from the registry has its messages taken over (after the grace). */
	watch(lostNodes: NodeLostEvents): void {
		this.#lostNodes = lostNodes;
		lostNodes.on('nodeLost', this.#onNodeLost);
	}

	/** Stops retrying and taking over; work already running finishes on its own. */
	close(): void {
		this.#closed = true;
		this.#lostNodes?.off('nodeLost', this.#onNodeLost);
		for (const timer of this.#timers) clearTimeout(timer);
		this.#timers.clear();
	}

	#later(delayMs: number, run: () => void): void {
		const timer = setTimeout(() => {
			this.#timers.delete(timer);
			if (!this.#closed) run();
		}, delayMs);
		this.#timers.add(timer);
	}

	#recoverShared(isGone: (nodeId: string) => Promise<boolean>, attempt: number): void {
		if (this.#closed) return;
		this.#o.service.recoverUnfinished(isGone).then(
			() => undefined, // it logs what it recovered
			(err: unknown) => {
				const delayMs = Math.min(this.#o.retryMaxMs, this.#o.retryMinMs * 2 ** attempt);
				this.#o.log.warn({ err, retryInMs: delayMs }, 'recovering unfinished voice messages failed; retrying');
				this.#later(delayMs, () => this.#recoverShared(isGone, attempt + 1));
			},
		);
	}

	#takeOver(lostNodeId: string): void {
		const isRegistered = this.#isRegistered;
		if (!isRegistered || this.#closed) return;
		this.#later(this.#o.lostNodeGraceMs, () => {
			const stillGone = async (nodeId: string) => nodeId === lostNodeId && !(await isRegistered(nodeId));
			this.#o.service.recoverUnfinished(stillGone, { ownAndUnowned: false }).then(
				(r) => r.finalized + r.failed > 0 && this.#o.log.info({ lostNodeId, ...r }, 'took over the unfinished voice messages of a lost node'),
				(err: unknown) => this.#o.log.warn({ err, lostNodeId }, 'taking over the voice messages of a lost node failed'),
			);
		});
	}
}
