// The voice-message HTTP API client: base URL, error mapping, answer checks.
import { describe, expect, it } from 'vitest';
import { destinationText, httpBaseUrl, httpError, VoiceMessageApi } from './VoiceMessageApi.js';

describe('httpBaseUrl', () => {
	it('maps ws -> http and wss -> https on the same host and port', () => {
		expect(httpBaseUrl('ws://localhost:8080/ws')).toBe('http://localhost:8080');
		expect(httpBaseUrl('wss://parley.example/ws?x=1')).toBe('https://parley.example');
		expect(httpBaseUrl('https://parley.example/ws')).toBe('https://parley.example');
		expect(() => httpBaseUrl('ftp://parley.example/')).toThrow(TypeError);
	});
});

describe('httpError', () => {
	it("keeps the server's code and sentence when it knows the code", () => {
		expect(httpError(409, JSON.stringify({ error: { code: 'E_NOT_READY', message: 'The voice message is processing.' } }))).toMatchObject({
			code: 'E_NOT_READY',
			httpStatus: 409,
			message: 'The voice message is processing.',
		});
	});

	it('maps by status for codes outside the protocol and for non-JSON bodies', () => {
		expect(httpError(410, JSON.stringify({ error: { code: 'E_FROM_A_NEWER_SERVER', message: 'The upload expired.' } }))).toMatchObject({ code: 'E_NOT_FOUND', message: 'The upload expired.' });
		expect(httpError(410, JSON.stringify({ error: { code: 'E_GONE', message: 'The upload expired.' } }))).toMatchObject({ code: 'E_GONE', httpStatus: 410 });
		expect(httpError(502, '<html>Bad Gateway</html>')).toMatchObject({ code: 'E_INTERNAL', httpStatus: 502, message: 'The server answered HTTP 502.' });
		expect(httpError(401, '')).toMatchObject({ code: 'E_AUTH' });
	});
});

describe('VoiceMessageApi', () => {
	it('refuses an answer that is not a list of voice messages', async () => {
		const api = new VoiceMessageApi({
			baseUrl: 'http://parley.test',
			token: async () => 'jwt',
			fetch: (async () => new Response(JSON.stringify({ messages: [{ id: 1 }] }), { status: 200 })) as unknown as typeof fetch,
		});
		await expect(api.list({ channel: 'lobby' })).rejects.toMatchObject({ code: 'E_BAD_MESSAGE' });
		await expect(api.list({ channel: 'lobby' }, { limit: 0 })).rejects.toThrow(TypeError);
		await expect(api.list({ user: '' })).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
	});

	it('asks for a signed audio link with the token as a header and refuses a malformed answer', async () => {
		const answers = [
			{ url: '/voice/messages/m-1/audio?user=ada&exp=1800000300&sig=abc', expiresAt: 1_800_000_300 },
			{ url: 'https://elsewhere.example/steal', expiresAt: 1 },
			{ url: '//elsewhere.example/steal', expiresAt: 1 },
			{ url: '/voice/messages/m-1/audio' },
		];
		const seen: [string, RequestInit | undefined][] = [];
		const api = new VoiceMessageApi({
			baseUrl: 'https://parley.test',
			token: async () => 'jwt',
			fetch: (async (url: string, init?: RequestInit) => {
				seen.push([url, init]);
				return new Response(JSON.stringify(answers.shift()), { status: 200 });
			}) as unknown as typeof fetch,
		});
		await expect(api.audioUrl('m-1')).resolves.toEqual({ url: 'https://parley.test/voice/messages/m-1/audio?user=ada&exp=1800000300&sig=abc', expiresAt: 1_800_000_300 });
		expect(seen[0]).toEqual(['https://parley.test/voice/messages/m-1/audio-url', expect.objectContaining({ method: 'POST', headers: expect.objectContaining({ authorization: 'Bearer jwt' }) })]);
		// Only a path on our own server, with its expiry, is a link we hand to an <audio> element.
		await expect(api.audioUrl({ id: 'm-1' })).rejects.toMatchObject({ code: 'E_BAD_MESSAGE' });
		await expect(api.audioUrl('m-1')).rejects.toMatchObject({ code: 'E_BAD_MESSAGE' });
		await expect(api.audioUrl('m-1')).rejects.toMatchObject({ code: 'E_BAD_MESSAGE' });
	});

	it('reports an unreachable server as E_NETWORK', async () => {
		const api = new VoiceMessageApi({
			baseUrl: 'http://parley.test',
			token: async () => 'jwt',
			fetch: (async () => {
				throw new TypeError('Failed to fetch');
			}) as unknown as typeof fetch,
		});
		await expect(api.get('m-1')).rejects.toMatchObject({ code: 'E_NETWORK' });
	});

	it('writes destinations the way tus metadata carries them', () => {
		expect(destinationText({ kind: 'channel', channel: 'lobby' })).toBe('channel:lobby');
		expect(destinationText({ kind: 'user', userId: 'grace' })).toBe('user:grace');
	});
});
