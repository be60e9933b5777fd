import { describe, expect, it } from 'vitest';
import { KeyedMutex } from './KeyedMutex.js';

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('KeyedMutex', () => {
	it('runs tasks on one key one at a time, in order, and other keys in parallel', async () => {
		const mutex = new KeyedMutex();
		const events: string[] = [];
		const task = (name: string, ms: number) => async (): Promise<string> => {
			events.push(`${name}+`);
			await tick(ms);
			events.push(`${name}-`);
			return name;
		};
		const results = await Promise.all([mutex.run('a', task('a1', 20)), mutex.run('a', task('a2', 1)), mutex.run('b', task('b1', 5))]);
		expect(results).toEqual(['a1', 'a2', 'b1']);
		expect(events.indexOf('a2+')).toBeGreaterThan(events.indexOf('a1-'));
		expect(events.indexOf('b1+')).toBeLessThan(events.indexOf('a1-'));
		await tick(0);
		expect(mutex.size).toBe(0);
	});

	it('passes a failure to its caller and keeps the queue going', async () => {
		const mutex = new KeyedMutex();
		const failed = mutex.run('a', () => Promise.reject(new Error('boom')));
		const next = mutex.run('a', async () => 'ok');
		await expect(failed).rejects.toThrow('boom');
		await expect(next).resolves.toBe('ok');
		await tick(0);
		expect(mutex.size).toBe(0);
	});
});
