import { describe, expect, it } from 'vitest';
import { ConnectionQuota } from './ConnectionQuota.js';

describe('ConnectionQuota', () => {
	it('refuses the user or address at its limit, and a removed connection (once) frees its place', () => {
		const quota = new ConnectionQuota<object>({ perUser: 2, perAddress: 3 });
		const [a, b, c] = [{}, {}, {}];
		quota.add(a, 'ada', '10.0.0.1');
		quota.add(b, 'ada', '10.0.0.1');
		expect(quota.refusal('ada', '10.0.0.2')?.code).toBe('E_TOO_MANY_USER_CONNECTIONS');
		expect(quota.refusal('bob', '10.0.0.1')).toBeUndefined();
		quota.add(c, 'bob', '10.0.0.1');
		expect(quota.refusal(undefined, '10.0.0.1')?.code).toBe('E_TOO_MANY_ADDRESS_CONNECTIONS');
		quota.remove(a);
		quota.remove(a); // a close seen twice changes nothing
		expect(quota.userCount('ada')).toBe(1);
		expect(quota.refusal('ada', '10.0.0.1')).toBeUndefined();
		quota.add(b, 'ada', '10.0.0.1'); // already counted
		expect(quota.userCount('ada')).toBe(1);
	});

	it('limits of 0 refuse nothing', () => {
		const quota = new ConnectionQuota<object>({ perUser: 0, perAddress: 0 });
		for (let i = 0; i < 100; i++) quota.add({}, 'ada', '10.0.0.1');
		expect(quota.refusal('ada', '10.0.0.1')).toBeUndefined();
	});
});
