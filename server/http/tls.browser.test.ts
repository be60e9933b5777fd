// Why native TLS exists: a browser gives a page the microphone only in a secure context, and a
// page from another machine is one only over HTTPS. Chromium reaches the server by a host name
// (mapped to loopback, since loopback addresses count as secure even over plain HTTP): over
// https:// the demo page is a secure context, getUserMedia gives a microphone track and a wss://
// signaling socket gets its welcome; the same host name over plain http:// gets no microphone.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../protocol/messages.js';
import { launchChromium } from '../../testkit/browsers/chromium.js';
import { testEnv } from '../../test/helpers/config.js';
import { logLine, startServerProcess, type ServerProcess } from '../../test/helpers/serverProcess.js';
import { mintAccessToken } from '../auth/accessToken.js';

const SECRET = 'tls-browser-test-secret-0123456789abcdef';
const HOST = 'parley.test';

describe('the demo page over native HTTPS in Chromium', () => {
	let dir: string;
	let server: ServerProcess;
	let port: number;
	let plain: http.Server;
	let browser: Browser;

	beforeAll(async () => {
		dir = mkdtempSync(path.join(os.tmpdir(), 'parley-tls-browser-'));
		const certFile = path.join(dir, 'cert.pem');
		const keyFile = path.join(dir, 'key.pem');
		execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST}`, '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
		server = startServerProcess(await testEnv({ PARLEY_LOG_LEVEL: 'info', PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_HTTP_TLS_CERT_FILE: certFile, PARLEY_HTTP_TLS_KEY_FILE: keyFile }));
		// The contrast: a plain HTTP page on the same host name.
		plain = http.createServer((_req, res) => res.end('<!doctype html><title>plain</title>'));
		await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
		port = Number(new URL(String((await logLine(server, 'parley listening')).http)).port);
		// The self-signed certificate is not trusted by this profile; the host name maps to loopback.
		browser = await launchChromium({ extraArgs: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`] });
	});

	afterAll(async () => {
		await browser?.close();
		plain?.close();
		if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
		rmSync(dir, { recursive: true, force: true });
	});

	it('https://: a secure context with a microphone and a wss:// welcome; http:// on the same name: no microphone', async () => {
		const context = await browser.newContext({ ignoreHTTPSErrors: true });
		const page = await context.newPage();
		const errors: string[] = [];
		page.on('pageerror', (err) => errors.push(err.message));
		const response = await page.goto(`https://${HOST}:${port}/`);
		expect(response?.status()).toBe(200);
		const token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canPublish: true }, ttlS: 600 }, new TextEncoder().encode(SECRET));
		const secure = await page.evaluate(async (wsUrl) => {
			const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
			const tracks = stream.getAudioTracks().map((t) => t.readyState);
			stream.getTracks().forEach((t) => t.stop());
			const firstMessage = await new Promise<string>((resolve, reject) => {
				const ws = new WebSocket(wsUrl);
				ws.onmessage = (e) => {
					resolve(String(e.data));
					ws.close();
				};
				ws.onerror = () => reject(new Error('wss failed'));
			});
			return { isSecureContext: window.isSecureContext, protocol: location.protocol, tracks, firstMessage };
		}, `wss://${HOST}:${port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
		expect(secure).toMatchObject({ isSecureContext: true, protocol: 'https:', tracks: ['live'] });
		expect(JSON.parse(secure.firstMessage)).toMatchObject({ method: 'welcome' });

		await page.goto(`http://${HOST}:${(plain.address() as AddressInfo).port}/`);
		const insecure = await page.evaluate(() => ({ isSecureContext: window.isSecureContext, hasMediaDevices: navigator.mediaDevices !== undefined }));
		expect(insecure).toEqual({ isSecureContext: false, hasMediaDevices: false });
		expect(errors).toEqual([]);
		await context.close();
	});
});
