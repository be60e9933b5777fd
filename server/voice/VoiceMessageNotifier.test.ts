// The notifier's own rules, with an in-memory bus (the real one, over Redis, is exercised by
// test/cluster/voiceMessages.process.test.ts): one delivery per node through the bus, only
// well-formed payloads, and this node's sessions still told when the bus is down.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { testLogger } from '../../test/helpers/logger.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { VOICE_MESSAGE_TOPIC, VoiceMessageNotifier, voiceNotificationSchema, type VoiceNotificationBus } from './VoiceMessageNotifier.js';
import { voiceMessageInfo, type VoiceMessage } from './voiceMessage.js';

/** Every field VoiceMessage can carry, so the client view has all of its optional fields. */
function fullMessage(): VoiceMessage {
	return {
		id: randomUUID(),
		ownerId: 'ada',
		destination: { kind: 'channel', channel: 'room' },
		source: 'upload',
		status: 'ready',
		failureReason: 'none',
		durationMs: 1000,
		sizeBytes: 4000,
		sha256: 'a'.repeat(64),
		codec: { codec: 'opus', sampleRate: 48000, channels: 1 },
		waveform: Array.from({ length: 100 }, (_, i) => i % 32),
		originalName: 'a.wav',
		originalType: 'audio/wav',
		originalSizeBytes: 9000,
		originalSha256: 'b'.repeat(64),
		detectedFormat: 'wav',
		nodeId: 'n1',
		createdAt: 1,
		updatedAt: 2,
	};
}

class MemoryBus implements VoiceNotificationBus {
	readonly listeners = new Map<string, ((message: unknown, from: string) => void)[]>();
	down = false;
	async publish(topic: string, message: unknown): Promise<void> {
		if (this.down) throw new Error('unavailable');
		// Through JSON, as over Redis.
		for (const l of this.listeners.get(topic) ?? []) l(JSON.parse(JSON.stringify(message)), 'n1');
	}
	async subscribe(topic: string, listener: (message: unknown, from: string) => void): Promise<() => Promise<void>> {
		this.listeners.set(topic, [...(this.listeners.get(topic) ?? []), listener]);
		return async () => {
			this.listeners.set(topic, (this.listeners.get(topic) ?? []).filter((l) => l !== listener));
		};
	}
}

describe('VoiceMessageNotifier', () => {
	it('passes every field of the client view unchanged (a new field must be added to the schema)', () => {
		const info = voiceMessageInfo(fullMessage());
		expect(voiceNotificationSchema.parse({ message: info, reason: 'x' })).toEqual({ message: info, reason: 'x' });
	});

	it('delivers locally without a bus, once per node through it, and locally again when it is down', async () => {
		const delivered: [string, VoiceMessageInfo, string | undefined][] = [];
		const bus = new MemoryBus();
		const nodes = ['a', 'b'].map((name) => new VoiceMessageNotifier((info, reason) => delivered.push([name, info, reason]), testLogger()));
		const info = voiceMessageInfo(fullMessage());

		nodes[0]!.notify(info, 'stopped');
		expect(delivered).toEqual([['a', info, 'stopped']]);

		await Promise.all(nodes.map((n) => n.attach(bus)));
		delivered.length = 0;
		nodes[0]!.notify(info);
		await new Promise((r) => setImmediate(r));
		expect(delivered.map(([n]) => n).sort()).toEqual(['a', 'b']);
		expect(delivered[0]![1]).toEqual(info);

		bus.down = true;
		delivered.length = 0;
		nodes[1]!.notify(info);
		await new Promise((r) => setImmediate(r));
		expect(delivered).toEqual([['b', info, undefined]]);

		await Promise.all(nodes.map((n) => n.detach()));
		expect(bus.listeners.get(VOICE_MESSAGE_TOPIC)).toEqual([]);
	});

	it('ignores malformed payloads from the bus and drops unknown fields', async () => {
		const delivered: VoiceMessageInfo[] = [];
		const bus = new MemoryBus();
		const notifier = new VoiceMessageNotifier((info) => delivered.push(info), testLogger());
		await notifier.attach(bus);
		const good = voiceMessageInfo(fullMessage());
		for (const bad of [
			null,
			'x',
			{ message: { ...good, id: '../../etc' } },
			{ message: { ...good, destination: { kind: 'channel', channel: '' } } },
			{ message: { ...good, status: 'hacked' } },
			{ message: { ...good, waveform: [99] } },
			{ message: good, reason: 'r'.repeat(1000) },
		]) {
			await bus.publish(VOICE_MESSAGE_TOPIC, bad);
		}
		expect(delivered).toEqual([]);
		await bus.publish(VOICE_MESSAGE_TOPIC, { message: { ...good, secret: 'x' } });
		expect(delivered).toEqual([good]);
		await notifier.detach();
	});
});
