// auth.audience, auth.issuer and auth.maxTokenLifetimeS as a node applies them: on the
// WebSocket, the voice API and tus uploads alike (the checks themselves: server/auth).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { PROTOCOL_VERSION } from '../../protocol/messages.js';
import { mintAccessToken, signingKey } from '../../server/auth/accessToken.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';

const SECRET = 'token-policy-secret-0123456789abcdef';
const key = signingKey(SECRET);

/** The close code of a WebSocket opened with `token`, or 'welcome' when the server greets it. */
function wsOutcome(port: number, token: string): Promise<number | 'welcome'> {
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${encodeURIComponent(token)}&v=${PROTOCOL_VERSION}`);
		ws.on('message', (raw) => {
			if ((JSON.parse(String(raw)) as { method?: string }).method === 'welcome') {
				ws.close();
				resolve('welcome');
			}
		});
		ws.on('close', (code) => resolve(code));
		ws.on('error', reject);
	});
}

describe('token policy on every route', () => {
	let server: ParleyServer;
	let port: number;
	beforeAll(async () => {
		server = await ParleyServer.create(
			await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_AUTH_AUDIENCE: 'parley-test', PARLEY_AUTH_ISSUER: 'https://issuer.example', PARLEY_AUTH_MAX_TOKEN_LIFETIME_S: '3600' }),
			testLogger(),
		);
		port = server.http.port;
	});
	afterAll(async () => {
		await server?.shutdown('test');
	});

	const mint = (o: { audience?: string; issuer?: string; ttlS?: number }) =>
		mintAccessToken({ userId: 'alice', channels: ['lobby'], grants: { canRecord: true }, ttlS: o.ttlS ?? 600, ...o }, key);

	async function outcomes(token: string): Promise<{ ws: number | 'welcome'; api: number; upload: number }> {
		const api = await fetch(`http://127.0.0.1:${port}/voice/messages?user=alice`, { headers: { Authorization: `Bearer ${token}` } });
		const upload = await fetch(`http://127.0.0.1:${port}/voice/uploads`, {
			method: 'POST',
			headers: { Authorization: `Bearer ${token}`, 'Tus-Resumable': '1.0.0', 'Upload-Length': '10', 'Upload-Metadata': `destination ${Buffer.from('user:alice').toString('base64')}` },
		});
		return { ws: await wsOutcome(port, token), api: api.status, upload: upload.status };
	}

	it('accepts a token with the configured audience and issuer within the lifetime', async () => {
		expect(await outcomes(await mint({ audience: 'parley-test', issuer: 'https://issuer.example' }))).toEqual({ ws: 'welcome', api: 200, upload: 201 });
	});

	it('refuses a token without the audience, with another issuer, or living longer than allowed', async () => {
		const refused = { ws: 4401, api: 401, upload: 401 };
		expect(await outcomes(await mint({ issuer: 'https://issuer.example' }))).toEqual(refused);
		expect(await outcomes(await mint({ audience: 'parley-test', issuer: 'https://evil.example' }))).toEqual(refused);
		expect(await outcomes(await mint({ audience: 'parley-test', issuer: 'https://issuer.example', ttlS: 7200 }))).toEqual(refused);
	});
});
