// Native TLS (http.tls) on a real server process, as users run it: HTTPS and WSS on the
// configured certificate, plain HTTP refused on that port, SIGHUP swapping the certificate for
// new connections while a WebSocket opened before (and its transport) stays up, a broken file
// on reload keeping the served certificate, and startup errors with exit code 78. The other
// file checks (swapped files, one file alone, expiry warnings) are in tlsCertificate.test.ts.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { testConfig, testEnv } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { startRedis } from '../../test/helpers/redis.js';
import { logLine, startServerProcess, type ServerProcess } from '../../test/helpers/serverProcess.js';
import { waitUntil } from '../../test/helpers/wait.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { mintAccessToken } from '../auth/accessToken.js';
import { ParleyServer } from '../ParleyServer.js';

const SECRET = 'tls-process-test-secret-0123456789abcdef';

interface TestCert {
	certFile: string;
	keyFile: string;
	pem: string;
	fingerprint256: string;
}

/** A self-signed P-256 certificate for localhost and 127.0.0.1, valid one day. */
function makeCert(dir: string, name: string): TestCert {
	const certFile = path.join(dir, `${name}.crt`);
	const keyFile = path.join(dir, `${name}.key`);
	execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
	const pem = readFileSync(certFile, 'utf8');
	return { certFile, keyFile, pem, fingerprint256: new X509Certificate(pem).fingerprint256 };
}

interface HttpsResult {
	status: number;
	body: string;
	fingerprint256: string;
	/** The local port of the TCP connection: tells whether a keep-alive connection was reused. */
	localPort: number;
}

/** One HTTPS GET that trusts only `ca`, with the certificate the server presented. */
function httpsGet(port: number, urlPath: string, ca: string, agent?: https.Agent): Promise<HttpsResult> {
	return new Promise((resolve, reject) => {
		const req = https.get({ host: '127.0.0.1', port, path: urlPath, ca, agent: agent ?? false }, (res) => {
			const socket = res.socket as TLSSocket;
			const fingerprint256 = socket.getPeerCertificate().fingerprint256;
			const localPort = socket.localPort ?? 0;
			let body = '';
			res.setEncoding('utf8');
			res.on('data', (d: string) => (body += d));
			res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint256, localPort }));
		});
		req.on('error', reject);
	});
}

/** Log lines (JSON) of the process that match. */
function logEntries(s: ServerProcess, match: (entry: Record<string, unknown>) => boolean): Record<string, unknown>[] {
	return s
		.stdout()
		.split('\n')
		.filter((line) => line.startsWith('{'))
		.map((line) => JSON.parse(line) as Record<string, unknown>)
		.filter(match);
}

async function joinedClient(port: number, ca: string, userId: string): Promise<TestSignalingClient> {
	const token = await mintAccessToken({ userId, channels: ['room'], grants: { canPublish: true }, ttlS: 600 }, new TextEncoder().encode(SECRET));
	const { client } = await TestSignalingClient.connect(`wss://127.0.0.1:${port}/ws?token=${token}&v=${PROTOCOL_VERSION}`, { ca });
	const caps = await client.request('getRouterRtpCapabilities', {});
	if (!caps.ok) throw new Error(`getRouterRtpCapabilities: ${caps.error.code}`);
	const joined = await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
	if (!joined.ok) throw new Error(`join: ${joined.error.code}`);
	return client;
}

describe('native TLS (http.tls)', () => {
	let dir: string;
	let first: TestCert;
	let second: TestCert;
	/** The files the server is configured with; the tests replace their contents. */
	let liveCert: string;
	let liveKey: string;
	let server: ServerProcess;
	let port: number;
	/** Opened on the first certificate, kept open across the reloads. */
	let early: TestSignalingClient;
	let earlyTransportId: string;
	const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });

	beforeAll(async () => {
		dir = mkdtempSync(path.join(os.tmpdir(), 'parley-tls-'));
		first = makeCert(dir, 'first');
		second = makeCert(dir, 'second');
		liveCert = path.join(dir, 'fullchain.pem');
		liveKey = path.join(dir, 'privkey.pem');
		copyFileSync(first.certFile, liveCert);
		copyFileSync(first.keyFile, liveKey);
		server = startServerProcess(await testEnv({ PARLEY_LOG_LEVEL: 'info', PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_HTTP_TLS_CERT_FILE: liveCert, PARLEY_HTTP_TLS_KEY_FILE: liveKey }));
		const listening = new URL(String((await logLine(server, 'parley listening')).http));
		expect(listening.protocol).toBe('https:');
		port = Number(listening.port);
	});

	afterAll(() => {
		early?.close();
		keepAlive.destroy();
		if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
		rmSync(dir, { recursive: true, force: true });
	});

	it('serves /healthz, /readyz and /metrics over HTTPS with the configured certificate, and WSS signaling', async () => {
		const health = await httpsGet(port, '/healthz', first.pem, keepAlive);
		expect(health.status).toBe(200);
		expect(health.fingerprint256).toBe(first.fingerprint256);
		expect((await httpsGet(port, '/readyz', first.pem)).status).toBe(200);
		const metrics = await httpsGet(port, '/metrics', first.pem);
		expect(metrics.body).toContain(`fingerprint_sha256="${first.fingerprint256}"`);
		const expiry = Number(/^parley_tls_certificate_expiry_seconds (\S+)$/m.exec(metrics.body)?.[1]);
		expect(expiry).toBeGreaterThan(86_400 - 600);
		expect(expiry).toBeLessThanOrEqual(86_400);
		// The startup log names the certificate (never the key) and warns: it expires in a day.
		const served = logEntries(server, (e) => e.msg === 'serving TLS certificate')[0]?.tls as Record<string, unknown>;
		expect(served).toMatchObject({ subject: 'CN=localhost', fingerprint256: first.fingerprint256 });
		expect(server.stdout()).not.toContain('PRIVATE KEY');
		expect(logEntries(server, (e) => e.level === 'warn' && String(e.msg).startsWith('the TLS certificate expires in'))).toHaveLength(1);

		early = await joinedClient(port, first.pem, 'ada');
		const transport = await early.request('createTransport', { direction: 'send' });
		if (!transport.ok) throw new Error(`createTransport: ${transport.error.code}`);
		earlyTransportId = transport.data.transportId;
	});

	it('refuses plain HTTP on the TLS port', async () => {
		await expect(fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();
	});

	it('SIGHUP: new connections get the new certificate, the WebSocket and keep-alive connection opened before stay', async () => {
		const before = await httpsGet(port, '/healthz', first.pem, keepAlive);
		writeFileSync(liveCert, second.pem);
		copyFileSync(second.keyFile, liveKey);
		server.child.kill('SIGHUP');
		await waitUntil(() => logEntries(server, (e) => e.msg === 'TLS certificate reloaded').length === 1, 5000, 'reload log line');
		const reloaded = logEntries(server, (e) => e.msg === 'TLS certificate reloaded')[0]!;
		console.log(`TLS reload (check both files, build the SSLApp, bind, close the old listen socket): ${String(reloaded.durationMs)} ms`);
		const fresh = await httpsGet(port, '/healthz', second.pem);
		expect(fresh.status).toBe(200);
		expect(fresh.fingerprint256).toBe(second.fingerprint256);
		// The keep-alive connection made before the reload is reused and still has the first certificate.
		const reused = await httpsGet(port, '/healthz', first.pem, keepAlive);
		expect(reused).toMatchObject({ status: 200, fingerprint256: first.fingerprint256, localPort: before.localPort });
		// The WebSocket opened on the first certificate still answers, its transport is still there,
		// and a client on the new certificate finds its peer in the channel.
		const stats = await early.request('getTransportStats', { transportId: earlyTransportId });
		expect(stats.ok).toBe(true);
		const late = await joinedClient(port, second.pem, 'bob');
		await early.waitFor('peerJoined');
		late.close();
		const metrics = await httpsGet(port, '/metrics', second.pem);
		expect(metrics.body).toContain(`fingerprint_sha256="${second.fingerprint256}"`);
		expect(metrics.body).not.toContain(first.fingerprint256);
	});

	it('SIGHUP with a broken or mismatched key keeps serving the current certificate and logs the option', async () => {
		writeFileSync(liveKey, 'not a key\n');
		server.child.kill('SIGHUP');
		await waitUntil(() => logEntries(server, (e) => e.level === 'error' && String(e.msg).startsWith('TLS reload failed')).length === 1, 5000, 'reload error');
		copyFileSync(first.keyFile, liveKey); // the other certificate's key
		server.child.kill('SIGHUP');
		await waitUntil(() => logEntries(server, (e) => e.level === 'error' && String(e.msg).startsWith('TLS reload failed')).length === 2, 5000, 'second reload error');
		const [broken, mismatched] = logEntries(server, (e) => e.level === 'error' && String(e.msg).startsWith('TLS reload failed'));
		expect(broken!.options).toEqual(['http.tls.keyFile']);
		expect(String(broken!.msg)).toContain('option "http.tls.keyFile"');
		expect(String(broken!.msg)).toContain('is not a PEM private key');
		expect(mismatched!.options).toEqual(['http.tls.keyFile', 'http.tls.certFile']);
		expect(String(mismatched!.msg)).toContain('does not belong to the certificate');
		expect((mismatched!.served as Record<string, unknown>).fingerprint256).toBe(second.fingerprint256);
		expect(server.child.exitCode).toBeNull();
		expect(await httpsGet(port, '/healthz', second.pem)).toMatchObject({ status: 200, fingerprint256: second.fingerprint256 });
		expect((await early.request('getTransportStats', { transportId: earlyTransportId })).ok).toBe(true);
	});

	it('20 reloads under a stream of new connections: none that finished its TLS handshake fails', async () => {
		copyFileSync(second.keyFile, liveKey);
		const reloadsBefore = logEntries(server, (e) => e.msg === 'TLS certificate reloaded').length;
		let stop = false;
		let served = 0;
		let resetBeforeHandshake = 0;
		const failures: string[] = [];
		/** One connection, one GET /healthz; closed once the status line is in (a half-close
		 * after the request would make uWS drop it unanswered). */
		const attempt = (): Promise<void> =>
			new Promise((resolve) => {
				let handshaken = false;
				let reply = '';
				const socket = tlsConnect({ host: '127.0.0.1', port, ca: second.pem }, () => {
					handshaken = true;
					socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
				});
				socket.setEncoding('utf8');
				socket.on('data', (d: string) => {
					reply += d;
					if (reply.includes('\r\n')) socket.destroy();
				});
				socket.on('close', () => {
					if (reply.startsWith('HTTP/1.1 200')) served++;
					else if (handshaken) failures.push(`after the handshake: ${JSON.stringify(reply.slice(0, 40))}`);
					resolve();
				});
				socket.on('error', (err: NodeJS.ErrnoException) => {
					if (!handshaken && err.code === 'ECONNRESET') resetBeforeHandshake++;
					else if (!handshaken) failures.push(`before the handshake: ${err.code ?? err.message}`);
				});
			});
		const clients = Array.from({ length: 6 }, async () => {
			while (!stop) await attempt();
		});
		for (let i = 0; i < 20; i++) {
			server.child.kill('SIGHUP');
			await new Promise((r) => setTimeout(r, 100));
		}
		await waitUntil(() => logEntries(server, (e) => e.msg === 'TLS certificate reloaded').length === reloadsBefore + 20, 5000, '20 reloads');
		stop = true;
		await Promise.all(clients);
		let migrateReq = 'absent (kernel before 5.14)';
		try {
			migrateReq = readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim();
		} catch {
			// Older kernels reset those attempts with no way to hand them over.
		}
		console.log(`20 reloads, 6 clients connecting back to back: ${served} served, ${resetBeforeHandshake} attempts reset before their handshake (net.ipv4.tcp_migrate_req=${migrateReq}), ${failures.length} failed after it`);
		expect(failures).toEqual([]);
		// Connections kept coming through the reloads (a few hundred on an idle machine, fewer under load).
		expect(served).toBeGreaterThan(20);
		if (migrateReq === '1') expect(resetBeforeHandshake).toBe(0);
		// The WebSocket from the start outlived all of them (20 replaced apps hold their connections).
		expect((await early.request('getTransportStats', { transportId: earlyTransportId })).ok).toBe(true);
	});

	it('with Redis and no cluster.publicUrl, the node registers https:// and wss:// URLs for redirects', async () => {
		const redis = await startRedis();
		let node: ParleyServer | undefined;
		try {
			node = await ParleyServer.create(await testConfig({ PARLEY_CLUSTER_REDIS_URL: redis.url, PARLEY_HTTP_TLS_CERT_FILE: first.certFile, PARLEY_HTTP_TLS_KEY_FILE: first.keyFile }), testLogger());
			expect(node.cluster!.info).toMatchObject({ httpUrl: `https://127.0.0.1:${node.http.port}`, signalingUrl: `wss://127.0.0.1:${node.http.port}/ws` });
		} finally {
			await node?.shutdown('test end');
			await redis.stop();
		}
	});

	it('stops at startup with exit code 78 naming the option: missing file, not PEM, mismatched key', async () => {
		const notPem = path.join(dir, 'not-pem.crt');
		writeFileSync(notPem, 'hello\n');
		const cases: { env: Record<string, string>; stderr: string[] }[] = [
			{ env: { PARLEY_HTTP_TLS_CERT_FILE: path.join(dir, 'missing.crt'), PARLEY_HTTP_TLS_KEY_FILE: first.keyFile }, stderr: ['option "http.tls.certFile"', 'cannot read', 'missing.crt'] },
			{ env: { PARLEY_HTTP_TLS_CERT_FILE: notPem, PARLEY_HTTP_TLS_KEY_FILE: first.keyFile }, stderr: ['option "http.tls.certFile"', 'is not a PEM certificate'] },
			{ env: { PARLEY_HTTP_TLS_CERT_FILE: first.certFile, PARLEY_HTTP_TLS_KEY_FILE: second.keyFile }, stderr: ['option "http.tls.keyFile"', 'does not belong to the certificate'] },
		];
		const runs = await Promise.all(
			cases.map(async (c) => {
				const s = startServerProcess(await testEnv(c.env));
				return { c, code: await s.exited, stderr: s.stderr() };
			}),
		);
		for (const { c, code, stderr } of runs) {
			expect(code, stderr).toBe(78);
			for (const text of c.stderr) expect(stderr).toContain(text);
			// No PEM body (base64 DER starts with MII) in the message.
			expect(stderr).not.toContain('MII');
		}
	});
});
