// Who hears about a voice message's new status. One node: its own sessions (the sender, the
// addressed user, the peers in the addressed channel), as before. A cluster: those people may
// be connected to any node, so the notification is broadcast on the cluster bus (topic
// `voiceMessage`) and every node, this one included, delivers it to its own sessions. While
// the bus is unreachable (Redis down) this node still tells its own sessions.
import { z } from 'zod';
import { voiceMessageInfoSchema, type VoiceMessageInfo } from '../../protocol/schemas.js';
import type { Logger } from '../telemetry/logger.js';

export const VOICE_MESSAGE_TOPIC = 'voiceMessage';

/** The part of the cluster bus this needs (server/cluster/ClusterBus.ts). */
export interface VoiceNotificationBus {
	publish(topic: string, message: unknown): Promise<void>;
	subscribe(topic: string, listener: (message: unknown, fromNodeId: string) => void): Promise<() => Promise<void>>;
}

export type DeliverVoiceMessage = (info: VoiceMessageInfo, reason?: string) => void;

/** Bus payloads are untrusted (anyone with Redis access can publish): only well-formed
 * notifications reach clients, and unknown fields are dropped (the protocol's schema). */
export const voiceNotificationSchema = z.object({
	message: voiceMessageInfoSchema,
	reason: z.string().max(200).optional(),
});

export class VoiceMessageNotifier {
	readonly #deliverLocal: DeliverVoiceMessage;
	readonly #log: Logger;
	#bus: VoiceNotificationBus | undefined;
	#unsubscribe: (() => Promise<void>) | undefined;

	constructor(deliverLocal: DeliverVoiceMessage, log: Logger) {
		this.#deliverLocal = deliverLocal;
		this.#log = log;
	}

	/** From now on notifications go through the bus (the cluster started). */
	async attach(bus: VoiceNotificationBus): Promise<void> {
		this.#unsubscribe = await bus.subscribe(VOICE_MESSAGE_TOPIC, (payload, fromNodeId) => {
			const parsed = voiceNotificationSchema.safeParse(payload);
			if (!parsed.success) {
				this.#log.warn({ fromNodeId, issues: parsed.error.issues.slice(0, 3) }, 'ignoring a malformed voiceMessage notification from the bus');
				return;
			}
			this.#deliverLocal(parsed.data.message, parsed.data.reason);
		});
		this.#bus = bus;
	}

	/** Back to this node only (shutdown). */
	async detach(): Promise<void> {
		this.#bus = undefined;
		const unsubscribe = this.#unsubscribe;
		this.#unsubscribe = undefined;
		await unsubscribe?.();
	}

	notify(info: VoiceMessageInfo, reason?: string): void {
		const bus = this.#bus;
		if (!bus) {
			this.#deliverLocal(info, reason);
			return;
		}
		bus.publish(VOICE_MESSAGE_TOPIC, { message: info, ...(reason && { reason }) }).catch((err: unknown) => {
			// Not published: nobody (this node included) got it from the bus; tell ours at least.
			this.#log.warn({ err, voiceMessageId: info.id }, 'voiceMessage notification not broadcast (cluster bus unavailable): delivered on this node only');
			this.#deliverLocal(info, reason);
		});
	}
}
