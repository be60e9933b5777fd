// Room events on the voice webhook (voice.webhookUrl, the same secret and signature): the
// voice webhooks' queue and retry schedule (server/voice/VoiceWebhooks.ts), one lane per
// channel so a channel's events arrive in order. In memory: at-least-once while the node runs.
import type { ParleyConfig } from '../../config/schema.js';
import type { Logger } from '../telemetry/logger.js';
import { WebhookQueue, type WebhookOutcome } from '../voice/VoiceWebhooks.js';
import type { RoomEvent } from './roomEvents.js';

/** The queue for the room events voice.webhookRoomEvents selects; undefined when none go out. */
export function roomEventWebhooks(config: ParleyConfig, log: Logger, onOutcome?: (outcome: WebhookOutcome) => void): { enqueue(event: RoomEvent): void; close(deadline: AbortSignal): Promise<void> } | undefined {
	const v = config.voice;
	if (!v.webhookUrl || v.webhookRoomEvents === '') return undefined;
	const types = v.webhookRoomEvents === '*' ? undefined : new Set(v.webhookRoomEvents.split(',').map((t) => t.trim()));
	const queue = new WebhookQueue<RoomEvent>({
		url: v.webhookUrl,
		secret: v.webhookSecret,
		maxAttempts: v.webhookMaxAttempts,
		timeoutMs: v.webhookTimeoutMs,
		maxQueued: v.webhookQueue,
		log,
		laneOf: (e) => e.channel,
		...(onOutcome && { onOutcome }),
	});
	return {
		enqueue: (event) => {
			if (!types || types.has(event.event)) queue.enqueue(event);
		},
		close: (deadline) => queue.close(deadline),
	};
}
