import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { AccessTokenError, DEFAULT_MAX_TOKEN_LIFETIME_S, mintAccessToken, verifyAccessToken } from './accessToken.js';

const KEY = new TextEncoder().encode('access-token-test-secret-long-enough!!');
const now = () => Math.floor(Date.now() / 1000);
const YEAR_S = 365 * 86_400;

/** A token signed with the right key, with whatever claims a careless or hostile issuer puts in. */
function signed(payload: Record<string, unknown>): Promise<string> {
	return new SignJWT({ channels: ['lobby'], ...payload }).setProtectedHeader({ alg: 'HS256' }).sign(KEY);
}

async function refusal(token: string, policy?: Parameters<typeof verifyAccessToken>[2]): Promise<string> {
	const err = await verifyAccessToken(token, KEY, policy).then(
		() => undefined,
		(e: unknown) => e,
	);
	expect(err).toBeInstanceOf(AccessTokenError);
	return (err as Error).message;
}

describe('verifyAccessToken', () => {
	it('accepts a normal minted token', async () => {
		const token = await mintAccessToken({ userId: 'alice@example.org', displayName: 'Alice Ünal 🎙', channels: ['lobby'], ttlS: 3600 }, KEY);
		await expect(verifyAccessToken(token, KEY)).resolves.toMatchObject({ userId: 'alice@example.org', displayName: 'Alice Ünal 🎙' });
	});

	it('refuses a token living longer than the limit, from iat or from now without iat', async () => {
		expect(await refusal(await signed({ sub: 'alice', iat: now(), exp: now() + 100 * YEAR_S }))).toMatch(/lifetime .* exceeds the 604800 s allowed/);
		expect(await refusal(await signed({ sub: 'alice', exp: now() + 100 * YEAR_S }))).toMatch(/lifetime/);
		// An iat in the future does not stretch the limit.
		expect(await refusal(await signed({ sub: 'alice', iat: now() + YEAR_S, exp: now() + YEAR_S + 60 }))).toMatch(/lifetime/);
		// Issued long ago and about to expire: the whole lifetime counts.
		expect(await refusal(await signed({ sub: 'alice', iat: now() - YEAR_S, exp: now() + 60 }))).toMatch(/lifetime/);
		await expect(verifyAccessToken(await signed({ sub: 'alice', iat: now(), exp: now() + DEFAULT_MAX_TOKEN_LIFETIME_S }), KEY)).resolves.toBeDefined();
		// The policy sets the limit.
		expect(await refusal(await signed({ sub: 'alice', iat: now(), exp: now() + 3601 }), { maxLifetimeS: 3600 })).toMatch(/exceeds the 3600 s/);
	});

	it('checks audience and issuer when the policy names them, and not otherwise', async () => {
		const policy = { audience: 'parley', issuer: 'https://id.example.org' };
		const good = await mintAccessToken({ userId: 'alice', channels: ['lobby'], ttlS: 600, ...policy }, KEY);
		await expect(verifyAccessToken(good, KEY, policy)).resolves.toMatchObject({ userId: 'alice' });
		expect(await refusal(await mintAccessToken({ userId: 'alice', channels: ['lobby'], ttlS: 600 }, KEY), policy)).toMatch(/claim "(aud|iss)" invalid: missing/);
		expect(await refusal(await mintAccessToken({ userId: 'alice', channels: ['lobby'], ttlS: 600, issuer: policy.issuer }, KEY), policy)).toMatch(/claim "aud" invalid: missing/);
		expect(await refusal(await mintAccessToken({ userId: 'alice', channels: ['lobby'], ttlS: 600, ...policy, audience: 'other' }, KEY), policy)).toMatch(/"aud"/);
		expect(await refusal(await mintAccessToken({ userId: 'alice', channels: ['lobby'], ttlS: 600, ...policy, issuer: 'https://evil.example' }, KEY), policy)).toMatch(/"iss"/);
		await expect(verifyAccessToken(good, KEY, { audience: '', issuer: '' })).resolves.toBeDefined();
	});

	it('refuses a subject outside the user-id alphabet and unsafe display names', async () => {
		for (const sub of ['evil/../x', '../etc', '.hidden', 'a b', 'x'.repeat(129), '']) {
			expect(await refusal(await signed({ sub, exp: now() + 600 })), sub).toMatch(/claim "sub" invalid/);
		}
		for (const name of ['Eve\nINFO forged log line', 'Eve\u0000', 'Eve\u202egnp.exe', 'x'.repeat(65), '']) {
			expect(await refusal(await signed({ sub: 'eve', name, exp: now() + 600 })), JSON.stringify(name)).toMatch(/claim "name" invalid/);
		}
	});

	it('will not mint a token for a subject it would refuse', async () => {
		await expect(mintAccessToken({ userId: 'evil/../x', channels: ['lobby'], ttlS: 60 }, KEY)).rejects.toThrow();
	});
});
