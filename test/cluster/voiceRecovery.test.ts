// Recovery of unfinished voice messages once the metadata store is shared (Redis): a node
// touches only what it was writing, what no node owns, and what a dead node left; two nodes
// recovering at once finish each message exactly once (compare-and-set on its nodeId), and a
// node reacting to another node's loss never touches its own running work.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisVoiceMessageStore } from '../../server/voice/store/RedisVoiceMessageStore.js';
import { OggOpusWriter } from '../../server/voice/ogg/OggOpusWriter.js';
import type { VoiceMessageEvent } from '../../server/voice/voiceEvents.js';
import { VoiceMessageService } from '../../server/voice/VoiceMessageService.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { LocalVoiceStorage } from '../../server/voice/files/VoiceStorage.js';
import { encodeTone } from '../helpers/audio.js';
import { testLogger } from '../helpers/logger.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

describe('recovering unfinished voice messages with a shared store', () => {
	let redis: TestRedis;
	const connections: Redis[] = [];
	const connect = () => {
		const c = new Redis(redis.url, { maxRetriesPerRequest: 1 });
		connections.push(c);
		return c;
	};

	beforeAll(async () => {
		redis = await startRedis();
	});
	afterAll(async () => {
		for (const c of connections) c.disconnect();
		await redis.stop();
	});

	function node(nodeId: string, storage: LocalVoiceStorage, events: VoiceMessageEvent[]) {
		const store = new RedisVoiceMessageStore(connect(), { nodeId, onEvent: (e) => events.push(e) });
		const service = new VoiceMessageService({ store, storage, tools: undefined, notify: () => undefined, maxDurationMs: 60_000, maxConcurrentRecordings: 10, nodeId, log: testLogger() });
		return { store, service };
	}

	it('finishes a dead node’s and an unowned recording once between two nodes, and leaves a live node’s alone', async () => {
		const storage = new LocalVoiceStorage(mkdtempSync(path.join(os.tmpdir(), 'parley-shared-')));
		const events: VoiceMessageEvent[] = [];
		const n1 = node('n1', storage, events);
		const n2 = node('n2', storage, events);
		const now = Date.now();
		const recording = (nodeId: string | undefined): VoiceMessage => ({
			id: randomUUID(),
			ownerId: 'ada',
			destination: { kind: 'channel', channel: 'room' },
			source: 'recording',
			status: 'recording',
			...(nodeId && { nodeId }),
			createdAt: now,
			updatedAt: now,
		});
		const live = recording('live-node');
		const dead = recording('dead-node');
		const unowned = recording(undefined);
		for (const m of [live, dead, unowned]) await n1.store.insert(m);
		// The dead node had written 2 s of audio when it died (the writer never finalized).
		const writer = new OggOpusWriter(await storage.workPath(dead));
		encodeTone(440, 100).forEach((f, i) => writer.writePacket(f, i * 960));
		writer.abort();
		events.length = 0;

		const isGone = (nodeId: string) => nodeId === 'dead-node';
		const [r1, r2] = await Promise.all([n1.service.recoverUnfinished(isGone), n2.service.recoverUnfinished(isGone)]);
		await Promise.all([n1.service.drainProcessing(), n2.service.drainProcessing()]);

		// Each message was finished by exactly one node.
		expect(r1.finalized + r2.finalized).toBe(1);
		expect(r1.failed + r2.failed).toBe(1);
		const finished = (id: string) => events.filter((e) => e.voiceMessageId === id).map((e) => e.status);
		expect(finished(dead.id)).toEqual(['processing', 'ready']);
		expect(finished(unowned.id)).toEqual(['failed']);
		expect(finished(live.id)).toEqual([]);
		const after = await n1.store.get(dead.id);
		expect(after).toMatchObject({ status: 'ready', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown as string });
		expect(after!.durationMs).toBeGreaterThanOrEqual(1000);
		expect(after!.durationMs).toBeLessThanOrEqual(2000);
		expect(['n1', 'n2']).toContain(after!.nodeId);
		expect(await n1.store.get(live.id)).toMatchObject({ status: 'recording', nodeId: 'live-node' });

		// When a node is lost, the others take over its work but never their own running work.
		const own = recording('n1');
		const lost = recording('live-node');
		await n1.store.insert(own);
		await n1.store.insert(lost);
		const lostOnly = (nodeId: string) => nodeId === 'live-node';
		await n1.service.recoverUnfinished(lostOnly, { ownAndUnowned: false });
		await n1.service.drainProcessing();
		expect(await n1.store.get(own.id)).toMatchObject({ status: 'recording', nodeId: 'n1' });
		expect(await n1.store.get(lost.id)).toMatchObject({ status: 'failed', nodeId: 'n1' });
		expect(await n1.store.get(live.id)).toMatchObject({ status: 'failed', nodeId: 'n1' });
	});
});
