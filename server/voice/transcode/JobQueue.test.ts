import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobQueue } from './JobQueue.js';

class QueueError extends Error {}

function makeQueue(overrides: Partial<{ maxConcurrent: number; maxQueued: number; timeoutMs: number }> = {}): JobQueue {
	return new JobQueue({
		maxConcurrent: 1,
		maxQueued: 1,
		timeoutMs: 10_000,
		...overrides,
		errors: { busy: () => new QueueError('busy'), closed: () => new QueueError('closed'), timeout: () => new QueueError('timeout') },
	});
}

/** A job that finishes when told to, or rejects with the abort reason. */
function controllableJob(): { job: (signal: AbortSignal) => Promise<string>; finish: () => void; started: () => boolean } {
	let finish = (): void => {};
	let started = false;
	return {
		job: (signal) =>
			new Promise<string>((resolve, reject) => {
				started = true;
				finish = () => resolve('done');
				signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
			}),
		finish: () => finish(),
		started: () => started,
	};
}

describe('JobQueue', () => {
	let queue: JobQueue;
	beforeEach(() => {
		queue = makeQueue();
	});
	afterEach(() => queue.close());

	it('runs up to maxConcurrent, queues up to maxQueued, refuses the rest at once', async () => {
		const a = controllableJob();
		const b = controllableJob();
		const pa = queue.run(a.job);
		const pb = queue.run(b.job);
		await expect(queue.run(async () => 'c')).rejects.toThrow('busy');
		expect([queue.running, queue.queued]).toEqual([1, 1]);
		expect([a.started(), b.started()]).toEqual([true, false]);
		a.finish();
		await expect(pa).resolves.toBe('done');
		expect([queue.running, queue.queued, b.started()]).toEqual([1, 0, true]);
		b.finish();
		await expect(pb).resolves.toBe('done');
		expect([queue.running, queue.queued]).toEqual([0, 0]);
	});

	it('aborts a job at its deadline, counted from when it starts running', async () => {
		queue.close();
		queue = makeQueue({ timeoutMs: 50 });
		const first = controllableJob();
		const pFirst = queue.run(first.job);
		const pSecond = queue.run(controllableJob().job);
		await new Promise((resolve) => setTimeout(resolve, 30));
		first.finish();
		await expect(pFirst).resolves.toBe('done');
		const started = Date.now();
		await expect(pSecond).rejects.toThrow('timeout');
		expect(Date.now() - started).toBeGreaterThanOrEqual(40);
		expect([queue.running, queue.queued]).toEqual([0, 0]);
	});

	it('frees the slot when a job fails', async () => {
		await expect(queue.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
		await expect(queue.run(async () => 'next')).resolves.toBe('next');
	});

	it('close rejects waiting jobs, aborts running ones and refuses new ones', async () => {
		const pRunning = queue.run(controllableJob().job);
		const pWaiting = queue.run(controllableJob().job);
		queue.close();
		await expect(pWaiting).rejects.toThrow('closed');
		await expect(pRunning).rejects.toThrow('closed');
		await expect(queue.run(async () => 'late')).rejects.toThrow('closed');
		expect([queue.running, queue.queued]).toEqual([0, 0]);
	});

	it('rejects bad options with TypeError', () => {
		expect(() => makeQueue({ maxConcurrent: 0 })).toThrow(TypeError);
		expect(() => makeQueue({ maxQueued: -1 })).toThrow(TypeError);
		expect(() => makeQueue({ timeoutMs: 1.5 })).toThrow(TypeError);
	});
});
