import { describe, expect, it } from 'vitest';
import { RequestError } from '../../protocol/RequestError.js';
import { mintAccessToken } from './accessToken.js';
import { authenticate, tokenFromRequest, UPLOAD_TOKEN, VOICE_API_TOKEN, WEBSOCKET_TOKEN, type TokenCarrier } from './httpAuth.js';

const KEY = new TextEncoder().encode('http-auth-test-secret-long-enough!!');

function request(authorization: string, query = ''): TokenCarrier {
	return { query, header: (name) => (name === 'authorization' ? authorization : '') };
}

describe('tokenFromRequest', () => {
	it('reads the Bearer header first, then the query parameter where the route accepts one', () => {
		expect(tokenFromRequest({ query: 'token=xyz' }, WEBSOCKET_TOKEN)).toBe('xyz');
		expect(tokenFromRequest(request('Bearer abc', 'access_token=xyz'), VOICE_API_TOKEN)).toBe('abc');
	});

	it('takes no token from the query of the voice API: tokens stay out of URLs (signed audio links instead)', () => {
		expect(tokenFromRequest(request('', 'access_token=xyz'), VOICE_API_TOKEN)).toBeUndefined();
		expect(tokenFromRequest(request('Basic abc', 'access_token=xyz'), VOICE_API_TOKEN)).toBeUndefined();
	});

	it('keeps each route to its own forms', () => {
		expect(tokenFromRequest(request('', 'access_token=xyz'), UPLOAD_TOKEN)).toBeUndefined();
		expect(tokenFromRequest(request('Bearer abc'), UPLOAD_TOKEN)).toBe('abc');
		expect(tokenFromRequest({ query: 'v=1&token=xyz' }, WEBSOCKET_TOKEN)).toBe('xyz');
		expect(tokenFromRequest(request('Bearer abc', 'access_token=xyz'), WEBSOCKET_TOKEN)).toBeUndefined();
	});

	it('treats an empty token as none', () => {
		expect(tokenFromRequest(request('Bearer   ', 'access_token=xyz'), VOICE_API_TOKEN)).toBeUndefined();
		expect(tokenFromRequest({ query: 'token=' }, WEBSOCKET_TOKEN)).toBeUndefined();
	});
});

describe('authenticate', () => {
	it('returns the claims of a valid token', async () => {
		const token = await mintAccessToken({ userId: 'alice', channels: ['lobby'], ttlS: 60 }, KEY);
		await expect(authenticate(request(`Bearer ${token}`), KEY, UPLOAD_TOKEN)).resolves.toMatchObject({ userId: 'alice', channels: ['lobby'] });
	});

	it("throws E_AUTH with the route's sentence when there is no token, and the reason when it is refused", async () => {
		const missing = await authenticate(request(''), KEY, VOICE_API_TOKEN).catch((e: unknown) => e);
		expect(missing).toBeInstanceOf(RequestError);
		expect(missing).toMatchObject({ code: 'E_AUTH', message: VOICE_API_TOKEN.missingMessage });
		const expired = await mintAccessToken({ userId: 'alice', channels: ['lobby'], ttlS: -60 }, KEY);
		await expect(authenticate({ query: `token=${expired}` }, KEY, WEBSOCKET_TOKEN)).rejects.toMatchObject({
			code: 'E_AUTH',
			message: 'Access token refused: token expired.',
		});
	});
});
