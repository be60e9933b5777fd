// The node that dies: opens the SQL store, runs the outbox relay against targets that never
// answer (a webhook receiver that hangs, a "Redis" that accepts and stays silent), so every
// event it commits is claimed and in flight or waiting, never published. It prints each
// event once its commit is acknowledged, then "done", and waits to be SIGKILLed
// (test/scale/outboxKill.process.test.ts).
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../server/config/loadConfig.js';
import { connectRedis } from '../../server/redis/redisConnection.js';
import { createOutboxRelay } from '../../server/voice/outbox/createOutboxRelay.js';
import { SqlVoiceMessageStore } from '../../server/voice/store/SqlVoiceMessageStore.js';
import type { VoiceMessageEvent } from '../../server/voice/voiceEvents.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { testLogger } from '../helpers/logger.js';

const env = process.env as Record<string, string>;
const print = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
const config = await loadConfig({ env });
const log = testLogger();
let relay: ReturnType<typeof createOutboxRelay> | undefined;
const store = await SqlVoiceMessageStore.open(config.metadata.url, {
	nodeId: 'node-dead',
	onEvent: (event: VoiceMessageEvent) => {
		// After the commit: this is the acknowledgement the test counts.
		print({ committed: event });
		relay?.wake();
	},
});
const redis = connectRedis(env.OUTBOX_CHILD_REDIS_URL!, log);
relay = createOutboxRelay(config, { outbox: store, nodeId: 'node-dead', redis, log });
relay.start();

const messages = Number(env.OUTBOX_CHILD_MESSAGES ?? '5');
await Promise.all(
	Array.from({ length: messages }, async (_, i) => {
		const id = randomUUID();
		const now = Date.now();
		const m: VoiceMessage = { id, ownerId: 'ada', destination: { kind: 'user', userId: 'bob' }, source: 'upload', status: 'processing', createdAt: now, updatedAt: now };
		await store.insert(m);
		await store.update(id, { status: 'ready', sizeBytes: 100 });
		if (i % 2 === 0) await store.delete(id);
	}),
);
print({ done: true });
// Stays up, its relay trying (and failing) to publish, until the test kills it.
setInterval(() => undefined, 1000);
