// The relay as a node runs it, from its config: a stream sink when the node has Redis, a
// webhook sink when voice.webhookUrl is set (each missing target is marked done in bulk).
import type { Redis } from 'ioredis';
import type { ParleyConfig } from '../../../config/schema.js';
import type { Logger } from '../../telemetry/logger.js';
import type { VoiceOutbox } from '../store/VoiceOutbox.js';
import { checkWebhookEndpoint, type WebhookOutcome } from '../VoiceWebhooks.js';
import { OutboxRelay } from './OutboxRelay.js';
import { StreamSink, WebhookSink } from './outboxSinks.js';

export interface OutboxRelayDeps {
	outbox: VoiceOutbox;
	nodeId: string;
	redis: Redis | undefined;
	log: Logger;
	onWebhookOutcome?: (outcome: WebhookOutcome) => void;
}

export function createOutboxRelay(config: Pick<ParleyConfig, 'metadata' | 'voice' | 'cluster'>, deps: OutboxRelayDeps): OutboxRelay {
	const { outboxLeaseMs: leaseMs, outboxPollMs: pollMs } = config.metadata;
	// An attempt must end well inside its lease (see OutboxRelay): cap it at half.
	const maxAttemptMs = Math.floor(leaseMs / 2);
	const v = config.voice;
	let webhook: WebhookSink | undefined;
	if (v.webhookUrl) {
		checkWebhookEndpoint({ url: v.webhookUrl, secret: v.webhookSecret });
		if (v.webhookTimeoutMs > maxAttemptMs) {
			deps.log.warn({ webhookTimeoutMs: v.webhookTimeoutMs, outboxLeaseMs: leaseMs, usedMs: maxAttemptMs }, 'voice.webhookTimeoutMs is longer than half of metadata.outboxLeaseMs: webhook attempts are cut off at half the lease');
		}
		webhook = new WebhookSink({
			endpoint: { url: v.webhookUrl, secret: v.webhookSecret, timeoutMs: Math.min(v.webhookTimeoutMs, maxAttemptMs) },
			maxAttempts: v.webhookMaxAttempts,
			log: deps.log,
			...(deps.onWebhookOutcome && { onOutcome: deps.onWebhookOutcome }),
		});
	}
	const stream = deps.redis
		? new StreamSink({ redis: deps.redis, maxLen: config.cluster.eventStreamMaxLen, timeoutMs: Math.min(2000, maxAttemptMs), log: deps.log })
		: undefined;
	return new OutboxRelay({
		outbox: deps.outbox,
		nodeId: deps.nodeId,
		pollMs,
		leaseMs,
		// Done entries are the status subscriptions' event log: kept for its retention.
		keepDoneMs: config.metadata.eventRetentionS * 1000,
		sinks: { ...(stream && { stream }), ...(webhook && { webhook }) },
		log: deps.log,
	});
}
