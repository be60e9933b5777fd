// The recovery policy with a stand-in service (the recovery itself runs against real stores
// in test/cluster/voiceRecovery.test.ts and after a SIGKILL in test/cluster/nodeDeath).
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { testLogger } from '../../test/helpers/logger.js';
import { VoiceRecovery } from './VoiceRecovery.js';

type RecoverCall = { isGone: (nodeId: string) => boolean | Promise<boolean>; ownAndUnowned: boolean };

function fakeService(failures = 0) {
	const calls: RecoverCall[] = [];
	let left = failures;
	return {
		calls,
		recoverUnfinished: vi.fn(async (isGone: RecoverCall['isGone'] = () => true, opts: { ownAndUnowned?: boolean } = {}) => {
			calls.push({ isGone, ownAndUnowned: opts.ownAndUnowned ?? true });
			if (left-- > 0) throw new Error('Redis is away');
			return { finalized: 0, failed: 0, skipped: 0 };
		}),
	};
}

describe('VoiceRecovery', () => {
	beforeEach(() => vi.useFakeTimers());
	afterEach(() => vi.useRealTimers());

	it('retries start-up recovery of a shared store with doubling delays until it succeeds', async () => {
		const service = fakeService(2);
		const recovery = new VoiceRecovery({ service, lostNodeGraceMs: 6000, log: testLogger() });
		recovery.startShared(async () => false);
		await vi.advanceTimersByTimeAsync(0);
		expect(service.calls).toHaveLength(1);
		await vi.advanceTimersByTimeAsync(499);
		expect(service.calls).toHaveLength(1);
		await vi.advanceTimersByTimeAsync(1);
		expect(service.calls).toHaveLength(2);
		await vi.advanceTimersByTimeAsync(1000);
		expect(service.calls).toHaveLength(3);
		await vi.advanceTimersByTimeAsync(60_000);
		expect(service.calls).toHaveLength(3);
		recovery.close();
	});

	it('counts a node without a registry entry as gone', async () => {
		const service = fakeService();
		const recovery = new VoiceRecovery({ service, lostNodeGraceMs: 6000, log: testLogger() });
		recovery.startShared(async (nodeId) => nodeId === 'alive');
		await vi.advanceTimersByTimeAsync(0);
		expect(await service.calls[0]!.isGone('alive')).toBe(false);
		expect(await service.calls[0]!.isGone('dead')).toBe(true);
		recovery.close();
	});

	it('takes over a lost node after the grace period, only if it is still unregistered then', async () => {
		const service = fakeService();
		const registered = new Set<string>();
		const nodes = new EventEmitter();
		const recovery = new VoiceRecovery({ service, lostNodeGraceMs: 6000, log: testLogger() });
		recovery.startShared(async (nodeId) => registered.has(nodeId));
		recovery.watch(nodes);
		await vi.advanceTimersByTimeAsync(0);
		nodes.emit('nodeLost', 'node-b');
		await vi.advanceTimersByTimeAsync(5999);
		expect(service.calls).toHaveLength(1);
		await vi.advanceTimersByTimeAsync(1);
		expect(service.calls).toHaveLength(2);
		const takeOver = service.calls[1]!;
		expect(takeOver.ownAndUnowned).toBe(false);
		expect(await takeOver.isGone('node-b')).toBe(true);
		// Only the lost node's messages, and not once it is back.
		expect(await takeOver.isGone('node-c')).toBe(false);
		registered.add('node-b');
		expect(await takeOver.isGone('node-b')).toBe(false);
		recovery.close();
	});

	it('after close() neither retries nor takes over', async () => {
		const service = fakeService(5);
		const nodes = new EventEmitter();
		const recovery = new VoiceRecovery({ service, lostNodeGraceMs: 6000, log: testLogger() });
		recovery.startShared(async () => false);
		recovery.watch(nodes);
		await vi.advanceTimersByTimeAsync(0);
		nodes.emit('nodeLost', 'node-b');
		recovery.close();
		nodes.emit('nodeLost', 'node-c');
		await vi.advanceTimersByTimeAsync(120_000);
		expect(service.calls).toHaveLength(1);
		expect(nodes.listenerCount('nodeLost')).toBe(0);
	});
});
