// A node whose WebSocket admission is asynchronous (the per-address connection limit lives in
// Redis) must keep every socket it welcomes. uWebSockets.js (this release, and upstream until
// uNetworking/uWebSockets#1929) shuts down a socket upgraded later inside res.cork() when the
// upgrade reallocated it in place and the bytes where the HTTP response kept its state say
// "Connection: close": rarely by chance (the cluster soak's dropped socket), every time when
// the client or a proxy sends that header. Parley upgrades synchronously and checks the token
// after the upgrade; these tests send raw upgrade requests so the header is ours to choose.
import net from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { CLOSE_CODES, PROTOCOL_VERSION } from '../../protocol/messages.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const SECRET = 'async-upgrade-test-secret-0123456789abcdef';
const KEY = new TextEncoder().encode(SECRET);

/** One client-to-server text frame (masked with a zero key: the payload stays readable). */
function textFrame(text: string): Buffer {
	const payload = Buffer.from(text);
	const header = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
	return Buffer.concat([header, Buffer.alloc(4), payload]);
}

interface ServerFrames {
	texts: string[];
	closeCode: number | undefined;
}

/** Parses what the server sent after its 101 (unmasked frames, no fragmentation). */
function parseFrames(bytes: Buffer): ServerFrames {
	const out: ServerFrames = { texts: [], closeCode: undefined };
	let at = bytes.indexOf('\r\n\r\n') + 4;
	while (at + 2 <= bytes.length) {
		const opcode = bytes[at]! & 0x0f;
		let len = bytes[at + 1]! & 0x7f;
		let start = at + 2;
		if (len === 126) {
			len = bytes.readUInt16BE(at + 2);
			start = at + 4;
		} else if (len === 127) {
			len = Number(bytes.readBigUInt64BE(at + 2));
			start = at + 10;
		}
		if (start + len > bytes.length) break;
		const payload = bytes.subarray(start, start + len);
		if (opcode === 1) out.texts.push(payload.toString());
		if (opcode === 8) out.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
		at = start + len;
	}
	return out;
}

/**
 * Opens /ws with a raw upgrade request (`connection` is the Connection header), sends `early`
 * frames as soon as the 101 arrives (a client may: the welcome is Parley's, not the
 * handshake's), waits for the welcome, then sends one request and waits for its answer.
 * Resolves with everything the server sent and whether it closed the TCP connection.
 */
function rawSession(port: number, token: string, connection: string, early: string[] = []): Promise<ServerFrames & { tcpClosed: boolean }> {
	return new Promise((resolve, reject) => {
		const socket = net.connect(port, '127.0.0.1');
		let bytes = Buffer.alloc(0);
		let asked = false;
		let settled = false;
		const finish = (tcpClosed: boolean) => {
			if (settled) return;
			settled = true;
			clearTimeout(timer);
			socket.destroy();
			resolve({ ...parseFrames(bytes), tcpClosed });
		};
		const timer = setTimeout(() => finish(false), 3000);
		socket.on('connect', () => {
			const request =
				`GET /ws?token=${encodeURIComponent(token)}&v=${PROTOCOL_VERSION} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
				`Connection: ${connection}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
			socket.write(request);
		});
		let upgraded = false;
		socket.on('data', (chunk) => {
			bytes = Buffer.concat([bytes, chunk]);
			if (!upgraded && bytes.includes('\r\n\r\n')) {
				upgraded = true;
				if (early.length > 0) socket.write(Buffer.concat(early.map(textFrame)));
			}
			const frames = parseFrames(bytes);
			if (frames.closeCode !== undefined) return finish(false);
			if (!asked && frames.texts.some((t) => t.includes('"welcome"'))) {
				asked = true;
				socket.write(textFrame(JSON.stringify({ id: 9001, method: 'getRouterRtpCapabilities', data: {} })));
			}
			if (frames.texts.some((t) => t.includes('"id":9001'))) finish(false);
		});
		socket.on('end', () => finish(true));
		socket.on('close', () => finish(true));
		socket.on('error', (err) => (settled ? undefined : reject(err)));
	});
}

describe('WebSocket admission checked in Redis (asynchronous)', () => {
	let redis: TestRedis;
	let node: ParleyServer;
	let token: string;

	beforeAll(async () => {
		redis = await startRedis();
		node = await ParleyServer.create(
			await testConfig({
				PARLEY_AUTH_JWT_SECRET: SECRET,
				PARLEY_CLUSTER_REDIS_URL: redis.url,
				// A per-address connection limit makes every admission a Redis round trip.
				PARLEY_SIGNALING_IP_CONNECTIONS_PER_MINUTE: '60000',
				PARLEY_SIGNALING_IP_CONNECTION_BURST: '10000',
			}),
			testLogger(),
		);
		token = await mintAccessToken({ userId: 'upgrader', channels: ['room'], grants: { canPublish: true, canSubscribe: true, canRecord: false }, ttlS: 600 }, KEY);
	}, 60_000);

	afterAll(async () => {
		await node?.shutdown('test end');
		await redis?.stop();
	});

	it('keeps every welcomed socket open, with "Connection: close" on the upgrade and without', async () => {
		for (const connection of ['close', 'Upgrade', 'keep-alive, Upgrade']) {
			for (let i = 0; i < 20; i++) {
				const s = await rawSession(node.http.port, token, connection);
				expect(s.texts.some((t) => t.includes('"welcome"')), `${connection} #${i}: welcome`).toBe(true);
				expect(s.tcpClosed, `${connection} #${i}: closed by the server after the welcome`).toBe(false);
				expect(s.texts.find((t) => t.includes('"id":9001')), `${connection} #${i}: answer`).toMatch(/"ok":true/);
			}
		}
	});

	/** Holds the node's admission (its Redis take) for a moment, so frames sent right after the
	 * 101 surely arrive before the welcome; the limiter falls back to its own bucket after 500 ms. */
	async function stallRedis(ms: number): Promise<void> {
		const admin = new Redis(redis.url);
		await admin.client('PAUSE', ms, 'WRITE');
		await admin.quit();
	}

	it('answers requests sent before the welcome, after it, in order', async () => {
		const early = [1, 2, 3].map((id) => JSON.stringify({ id, method: 'getRouterRtpCapabilities', data: {} }));
		await stallRedis(300);
		const s = await rawSession(node.http.port, token, 'Upgrade', early);
		const kinds = s.texts.map((t) => (t.includes('"welcome"') ? 'welcome' : String((JSON.parse(t) as { id?: number }).id)));
		expect(kinds.slice(0, 4)).toEqual(['welcome', '1', '2', '3']);
		expect(s.texts.filter((t) => /"id":[123],"ok":true/.test(t))).toHaveLength(3);
	});

	it('closes with 4429 a client that sends more than 16 frames or 2x maxMessageBytes before its welcome, and still refuses a bad token with 4401', async () => {
		const flood = Array.from({ length: 17 }, (_, id) => JSON.stringify({ id, method: 'getRouterRtpCapabilities', data: {} }));
		await stallRedis(300);
		const s = await rawSession(node.http.port, token, 'Upgrade', flood);
		expect(s.closeCode).toBe(CLOSE_CODES.OVERLOADED);
		expect(s.texts.some((t) => t.includes('"welcome"'))).toBe(false);
		// Few but large: more than 2x signaling.maxMessageBytes (16 KiB) held before the welcome.
		const big = JSON.stringify({ id: 1, method: 'getRouterRtpCapabilities', data: {}, pad: 'x'.repeat(12_000) });
		await stallRedis(300);
		expect((await rawSession(node.http.port, token, 'Upgrade', [big, big, big])).closeCode).toBe(CLOSE_CODES.OVERLOADED);
		const bad = await rawSession(node.http.port, `${token}x`, 'Upgrade');
		expect(bad.closeCode).toBe(CLOSE_CODES.AUTH);
		// The node serves the next client as usual.
		expect((await rawSession(node.http.port, token, 'close')).texts.find((t) => t.includes('"id":9001'))).toMatch(/"ok":true/);
	});
});
