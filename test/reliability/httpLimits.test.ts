// Plain HTTP under load and slow clients (uWebSockets.js has no HTTP connection cap): at most
// http.maxConcurrentRequests requests are in flight, one more gets 503 + Retry-After at once
// and its connection is closed, health/readiness/metrics and WebSockets keep working; a body
// that does not arrive within http.bodyTimeoutMs gets 408 and its connection is closed, also
// one sent just fast enough for uWebSockets.js's own 16 KB/s floor. Counts return to zero.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { sleep, startHarness, waitUntil, type Harness } from './helpers/harness.js';
import { createUploadId, patchUpload, type TusTarget } from './helpers/tus.js';

const MAX_IN_FLIGHT = 8;
const BODY_TIMEOUT_MS = 3000;

interface RawReply {
	status: number;
	head: string;
	body: string;
}

/** A raw HTTP/1.1 exchange on its own socket: what a slow or hostile client does. */
class RawRequest {
	readonly socket: net.Socket;
	readonly opened = performance.now();
	closedAfterMs: number | undefined;
	#data = '';
	readonly closed: Promise<void>;

	constructor(port: number, head: string) {
		this.socket = net.connect(port, '127.0.0.1', () => this.socket.write(head));
		this.socket.on('data', (d: Buffer) => (this.#data += d.toString('latin1')));
		this.socket.on('error', () => undefined);
		this.closed = new Promise((resolve) =>
			this.socket.on('close', () => {
				this.closedAfterMs = performance.now() - this.opened;
				resolve();
			}),
		);
	}

	/** The first response on this connection, once its head and body are in. */
	reply(): RawReply | undefined {
		const end = this.#data.indexOf('\r\n\r\n');
		if (end < 0) return undefined;
		const head = this.#data.slice(0, end);
		const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
		const body = this.#data.slice(end + 4);
		if (body.length < length) return undefined;
		return { status: Number(head.split(' ')[1]), head, body: body.slice(0, length) };
	}

	async waitReply(timeoutMs: number): Promise<RawReply> {
		await waitUntil(() => this.reply() !== undefined, timeoutMs, 'an HTTP reply', 10);
		return this.reply()!;
	}
}

/** A POST whose body is announced but never sent: it stays in flight until the body timeout. */
function stalledPost(port: number): RawRequest {
	return new RawRequest(port, 'POST /dev/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
}

describe('plain HTTP limits', () => {
	let h: Harness;
	beforeAll(async () => {
		h = await startHarness({ PARLEY_HTTP_MAX_CONCURRENT_REQUESTS: String(MAX_IN_FLIGHT), PARLEY_HTTP_BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS) });
	});
	afterAll(async () => {
		await h?.close();
	});

	it('answers 503 with Retry-After past maxConcurrentRequests, keeps health, metrics and WebSockets, and serves again once requests finish', async () => {
		const port = h.server.http.port;
		const before = h.server.http.requestStats;
		const holders = Array.from({ length: MAX_IN_FLIGHT }, () => stalledPost(port));
		await waitUntil(() => h.server.http.requestStats.inFlight === MAX_IN_FLIGHT, 2000, 'the holders to be in flight');

		const EXTRA = 12;
		const started = performance.now();
		const extra = await Promise.all(Array.from({ length: EXTRA }, () => fetch(`${h.base}/voice/messages?channel=room`)));
		const refusedMs = performance.now() - started;
		expect(extra.map((r) => r.status)).toEqual(Array<number>(EXTRA).fill(503));
		expect(extra[0]!.headers.get('retry-after')).toBe('1');
		expect(extra[0]!.headers.get('connection')).toBe('close');
		expect(await extra[0]!.json()).toMatchObject({ error: { code: 'E_BUSY', message: expect.stringMatching(/as many requests/) as unknown as string } });
		// A body-carrying request is refused before its body is read.
		const tus: TusTarget = { base: h.base, token: await h.token() };
		expect((await patchUpload(tus, '00000000-0000-4000-8000-000000000000', 0, Buffer.alloc(1 << 20))).status).toBe(503);
		expect(h.server.http.requestStats.rejectedBusy - before.rejectedBusy).toBe(EXTRA + 1);

		// What a busy node must still do.
		expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
		expect((await fetch(`${h.base}/readyz`)).status).toBe(200);
		expect((await fetch(`${h.base}/metrics`)).status).toBe(200);
		const ws = await TestSignalingClient.connect(h.wsUrl(await h.token()));
		ws.client.close();
		expect(h.server.http.requestStats.inFlight).toBe(MAX_IN_FLIGHT);
		console.log(`http cap: ${EXTRA} requests past ${MAX_IN_FLIGHT} in flight refused 503 within ${Math.round(refusedMs)} ms`);

		// Clients that go away give their slot back.
		for (const r of holders) r.socket.destroy();
		await waitUntil(() => h.server.http.requestStats.inFlight === 0, 2000, 'in-flight requests back to 0');
		const again = await fetch(`${h.base}/voice/messages?channel=room`, { headers: { authorization: `Bearer ${tus.token}` } });
		expect(again.status).toBe(200);
		expect(h.server.http.requestStats.inFlight).toBe(0);
	});

	it('cuts request bodies that do not arrive within bodyTimeoutMs with 408, also ones fast enough for uWebSockets.js, and keeps serving', async () => {
		const port = h.server.http.port;
		const tus: TusTarget = { base: h.base, token: await h.token() };
		const id = await createUploadId(tus, 8 * 1024 * 1024);
		const before = h.server.http.requestStats;
		const patchHead = (length: number) =>
			`PATCH /voice/uploads/${id} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tus.token}\r\nTus-Resumable: 1.0.0\r\n` +
			`Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: ${length}\r\n\r\n`;
		// A trickle (1 byte every 500 ms), and a body at 32 KB/s: above the 16 KB/s uWebSockets.js
		// asks for, so only the body timeout ends it (8 MiB would take over 4 minutes).
		const trickle = new RawRequest(port, patchHead(1000));
		const trickleTimer = setInterval(() => trickle.socket.write('a'), 500);
		const steady = new RawRequest(port, patchHead(8 * 1024 * 1024));
		const steadyTimer = setInterval(() => steady.socket.write(Buffer.alloc(8 * 1024)), 250);
		const slow = [trickle, steady];
		try {
			// Meanwhile a normal upload chunk goes through.
			await sleep(500);
			const other = await createUploadId(tus, 64 * 1024);
			expect((await patchUpload(tus, other, 0, Buffer.alloc(64 * 1024, 1))).status).toBe(204);
			const replies = await Promise.all(slow.map((r) => r.waitReply(BODY_TIMEOUT_MS + 5000)));
			await Promise.all(slow.map((r) => waitUntil(() => r.closedAfterMs !== undefined, 2000, 'the connection to close')));
			for (const reply of replies) {
				expect(reply.status).toBe(408);
				expect(reply.head).toMatch(/connection: close/i);
				expect(JSON.parse(reply.body)).toMatchObject({ error: { code: 'E_TIMEOUT' } });
			}
			const closedMs = slow.map((r) => Math.round(r.closedAfterMs!));
			console.log(`http body timeout ${BODY_TIMEOUT_MS} ms: trickle closed after ${closedMs[0]} ms, 32 KB/s body after ${closedMs[1]} ms`);
			for (const ms of closedMs) {
				expect(ms).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - 50);
				expect(ms).toBeLessThan(BODY_TIMEOUT_MS + 3000);
			}
		} finally {
			clearInterval(trickleTimer);
			clearInterval(steadyTimer);
			for (const r of slow) r.socket.destroy();
		}
		expect(h.server.http.requestStats.bodyTimeouts - before.bodyTimeouts).toBe(2);
		// Nothing of the cut bodies was stored: the upload is still at offset 0.
		const head = await fetch(`${h.base}/voice/uploads/${id}`, { method: 'HEAD', headers: { authorization: `Bearer ${tus.token}`, 'tus-resumable': '1.0.0' } });
		expect(head.headers.get('upload-offset')).toBe('0');
		expect(h.server.http.requestStats.inFlight).toBe(0);
	}, 20_000);

	it('cuts many slow bodies at once and stays within the cap meanwhile', async () => {
		const port = h.server.http.port;
		const before = h.server.http.requestStats;
		const SLOW = 40;
		const slow = Array.from({ length: SLOW }, () => stalledPost(port));
		await sleep(500);
		// MAX_IN_FLIGHT of them hold a slot; the others were refused at once.
		expect(h.server.http.requestStats.inFlight).toBe(MAX_IN_FLIGHT);
		const refused = slow.filter((r) => r.reply()?.status === 503).length;
		expect(refused).toBe(SLOW - MAX_IN_FLIGHT);
		await Promise.all(slow.map((r) => r.closed));
		const timedOut = slow.filter((r) => r.reply()?.status === 408);
		expect(timedOut.length).toBe(MAX_IN_FLIGHT);
		expect(h.server.http.requestStats.bodyTimeouts - before.bodyTimeouts).toBe(MAX_IN_FLIGHT);
		expect(h.server.http.requestStats.inFlight).toBe(0);
		expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
	}, 20_000);
});
