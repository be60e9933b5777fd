import { describe, expect, it } from 'vitest';
import { testLogger } from '../test/helpers/logger.js';
import { Teardown } from './Teardown.js';

const never = new AbortController().signal;

describe('Teardown', () => {
	it('closes what was pushed in reverse order', async () => {
		const closed: string[] = [];
		const teardown = new Teardown(testLogger());
		for (const name of ['tracing', 'workers', 'redis', 'http']) teardown.push(name, () => void closed.push(name));
		await teardown.closeAll(never);
		expect(closed).toEqual(['http', 'redis', 'workers', 'tracing']);
		expect(teardown.names).toEqual([]);
	});

	it('goes on past a closer that fails', async () => {
		const closed: string[] = [];
		const teardown = new Teardown(testLogger());
		teardown.push('a', () => void closed.push('a'));
		teardown.push('b', () => Promise.reject(new Error('b broke')));
		teardown.push('c', () => void closed.push('c'));
		await teardown.closeAll(never);
		expect(closed).toEqual(['c', 'a']);
	});

	it('waits for each closer before the next, and passes the deadline', async () => {
		const events: string[] = [];
		const teardown = new Teardown(testLogger());
		const deadline = AbortSignal.timeout(10_000);
		let seen: AbortSignal | undefined;
		teardown.push('first', (d) => {
			seen = d;
			events.push('first');
		});
		teardown.push('slow', async () => {
			await new Promise((resolve) => setTimeout(resolve, 50));
			events.push('slow done');
		});
		await teardown.closeAll(deadline);
		expect(events).toEqual(['slow done', 'first']);
		expect(seen).toBe(deadline);
	});

	it('closes once when called twice, and refuses pushes after closing began', async () => {
		let count = 0;
		const teardown = new Teardown(testLogger());
		teardown.push('x', () => void count++);
		await Promise.all([teardown.closeAll(never), teardown.closeAll(never)]);
		expect(count).toBe(1);
		expect(() => teardown.push('late', () => undefined)).toThrow(/after closing began/);
	});
});
