import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testLogger } from '../../test/helpers/logger.js';
import { HttpServer } from '../http/HttpServer.js';
import type { Logger } from '../telemetry/logger.js';
import { verifyAccessToken } from './accessToken.js';
import { isLoopbackHost, isProxyHeader, loopbackRefusal, registerDevTokenRoute, type DevTokenOptions } from './devTokenRoute.js';

const KEY = new TextEncoder().encode('dev-token-test-secret-long-enough!!!!');
const BODY = JSON.stringify({ displayName: 'Ada', channel: 'lobby' });

interface Answer {
	status: number;
	body: { token?: string; error?: { code: string; message: string } };
}

/** POST /dev/token with exactly these headers (node:http lets a test set Host, fetch does not). */
function post(port: number, headers: Record<string, string>): Promise<Answer> {
	return new Promise((resolve, reject) => {
		const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/dev/token', headers: { 'content-type': 'application/json', host: `127.0.0.1:${port}`, ...headers } }, (res) => {
			let text = '';
			res.on('data', (chunk: Buffer) => (text += chunk.toString()));
			res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer['body'] }));
		});
		req.on('error', reject);
		req.end(BODY);
	});
}

describe('POST /dev/token', () => {
	let server: HttpServer;
	let port: number;

	async function start(options: Partial<DevTokenOptions> = {}): Promise<void> {
		registerDevTokenRoute(server, { mode: 'loopback', ttlS: 600, signingKey: KEY, maxBodyBytes: 4096, ...options }, testLogger());
		port = await server.listen('127.0.0.1', 0);
	}

	beforeEach(() => {
		server = new HttpServer(testLogger());
	});
	afterEach(() => {
		server.close();
	});

	it('serves a plain loopback request a token the server accepts', async () => {
		await start();
		for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `demo.localhost:${port}`, `[::1]:${port}`]) {
			const res = await post(port, { host });
			expect(res.status, host).toBe(200);
			await expect(verifyAccessToken(res.body.token!, KEY)).resolves.toMatchObject({ channels: ['lobby'] });
		}
	});

	it('refuses proxied requests in loopback mode: every client of a proxy on this host looks local', async () => {
		await start();
		for (const headers of <Record<string, string>[]>[
			{ 'x-forwarded-for': '203.0.113.7' },
			{ 'x-forwarded-for': '127.0.0.1' },
			{ forwarded: 'for=203.0.113.7;proto=https' },
			{ 'x-forwarded-host': 'voice.example.org' },
			{ 'x-forwarded-proto': 'https' },
			{ 'x-real-ip': '203.0.113.7' },
			{ 'x-forwarded-port': '443' },
			{ via: '1.1 proxy.internal' },
			{ 'true-client-ip': '203.0.113.7' },
			// No list names it: only checking every header name the request carries catches it.
			{ 'x-forwarded-whatever': 'edge-7' },
		]) {
			const res = await post(port, headers);
			expect(res.status, JSON.stringify(headers)).toBe(403);
			expect(res.body.error).toMatchObject({ code: 'E_FORBIDDEN', message: expect.stringMatching(/proxy/) });
		}
	});

	it('refuses a Host that does not name this machine (DNS rebinding)', async () => {
		await start();
		for (const host of ['attacker.example', `attacker.example:${port}`, '127.0.0.1.attacker.example', 'localhost.attacker.example', '10.0.0.1', '[::2]']) {
			const res = await post(port, { host });
			expect(res.status, host).toBe(403);
			expect(res.body.error).toMatchObject({ code: 'E_FORBIDDEN', message: expect.stringMatching(/Host/) });
		}
	});

	it('with http.trustProxy refuses a forwarded non-loopback client', async () => {
		await start({ trustProxy: true });
		expect((await post(port, { 'x-forwarded-for': '203.0.113.7' })).status).toBe(403);
		expect((await post(port, {})).status).toBe(200);
	});

	it('serves proxied and foreign-Host requests in "any" mode, with the configured audience and issuer', async () => {
		const policy = { audience: 'parley', issuer: 'dev' };
		await start({ mode: 'any', policy });
		const res = await post(port, { host: 'voice.example.org', 'x-forwarded-for': '203.0.113.7' });
		expect(res.status).toBe(200);
		await expect(verifyAccessToken(res.body.token!, KEY, policy)).resolves.toBeDefined();
	});
});

describe('the startup warning', () => {
	function warnings(options: Partial<DevTokenOptions>): string[] {
		const lines: string[] = [];
		const log = { warn: (_fields: unknown, message: string) => lines.push(message) } as unknown as Logger;
		registerDevTokenRoute({ post: () => {} }, { mode: 'loopback', ttlS: 600, signingKey: KEY, maxBodyBytes: 4096, ...options }, log);
		return lines;
	}

	it('warns when dev tokens are on and http.host listens beyond loopback', () => {
		expect(warnings({ listenHost: '0.0.0.0' }).some((m) => /beyond loopback/.test(m))).toBe(true);
		expect(warnings({ mode: 'any', listenHost: '::' }).some((m) => /beyond loopback/.test(m))).toBe(true);
		for (const listenHost of ['127.0.0.1', '::1', 'localhost']) expect(warnings({ listenHost }).some((m) => /beyond loopback/.test(m)), listenHost).toBe(false);
		expect(warnings({ mode: 'off', listenHost: '0.0.0.0' })).toEqual([]);
	});
});

describe('the proxy-header check', () => {
	/** A direct loopback request with these headers, as a carrier that can list its header names. */
	const listing = (headers: Record<string, string>) => {
		const all = new Map(Object.entries({ host: '127.0.0.1:8080', 'user-agent': 'test', ...headers }).map(([k, v]) => [k.toLowerCase(), v]));
		return { remoteAddress: '127.0.0.1', header: (name: string) => all.get(name.toLowerCase()) ?? '', headerNames: () => all.keys() };
	};

	it('refuses any X-Forwarded-* header, also ones no list names, and Forwarded, Via, X-Real-IP', () => {
		for (const name of ['X-Forwarded-Port', 'X-Forwarded-Whatever', 'x-forwarded-for', 'X-FORWARDED-HOST', 'Forwarded', 'Via', 'X-Real-IP', 'CF-Connecting-IP']) {
			expect(loopbackRefusal(listing({ [name]: 'x' })), name).toMatch(new RegExp(`${name.toLowerCase()} header`));
		}
	});

	it('lets a direct request with ordinary headers through', () => {
		expect(loopbackRefusal(listing({ 'x-request-id': 'abc', accept: '*/*', 'x-forwarded': 'not a proxy header', 'content-type': 'application/json' }))).toBeUndefined();
		for (const name of ['x-forwardedfor', 'forwarded-for', 'vias', 'x-request-id']) expect(isProxyHeader(name), name).toBe(false);
	});
});

describe('isLoopbackHost', () => {
	it('knows the loopback names, with or without a port', () => {
		for (const h of ['localhost', 'LOCALHOST:8080', 'a.localhost', '127.0.0.1', '127.1.2.3:80', '[::1]', '[::1]:8080']) expect(isLoopbackHost(h), h).toBe(true);
		for (const h of ['', 'example.org', '127.0.0.1.nip.io', '127.0.0.256', '::1', '[::1', 'localhost:', 'localhost:80:80', 'local host']) expect(isLoopbackHost(h), h).toBe(false);
	});
});
