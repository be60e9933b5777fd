// Downloads to clients that do not read (memory exhaustion through slow readers): audio is
// streamed as the client takes it, so a connection that never reads holds one 64 KiB chunk,
// not the whole message, and keeps its http.maxConcurrentRequests slot until the last byte
// is taken or it goes away (one more request gets 503 meanwhile). A reader that takes no
// chunk within the slow-reader timeout is dropped; a normal client gets every byte.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpServer } from '../../server/http/HttpServer.js';
import { LocalVoiceStorage } from '../../server/voice/files/VoiceStorage.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { testLogger } from '../helpers/logger.js';
import { sleep, startHarness, waitUntil, type Harness } from './helpers/harness.js';

const MiB = 1024 * 1024;
const FILE_BYTES = 16 * MiB;
const READERS = 40;

/** A GET on its own socket whose reply is never read (the socket is paused from the start). */
class StalledReader {
	readonly socket: net.Socket;
	readonly opened = performance.now();
	closedAfterMs: number | undefined;
	readonly closed: Promise<void>;

	constructor(port: number, target: string, headers: Record<string, string> = {}) {
		const head = [`GET ${target} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
		this.socket = net.connect(port, '127.0.0.1', () => this.socket.write(head));
		this.socket.pause();
		this.socket.on('error', () => undefined);
		this.closed = new Promise((resolve) =>
			this.socket.on('close', () => {
				this.closedAfterMs = performance.now() - this.opened;
				resolve();
			}),
		);
	}

	/** Reads everything that arrives from now on; resolves with the body once `length` bytes are in. */
	async drain(length: number): Promise<Buffer> {
		const chunks: Buffer[] = [];
		let size = 0;
		let headLength: number | undefined;
		return new Promise((resolve, reject) => {
			this.socket.on('data', (d: Buffer) => {
				chunks.push(d);
				size += d.length;
				headLength ??= headEnd(Buffer.concat(chunks));
				if (headLength !== undefined && size - headLength >= length) resolve(Buffer.concat(chunks).subarray(headLength, headLength + length));
			});
			this.socket.on('close', () => reject(new Error(`closed after ${size} bytes`)));
			this.socket.resume();
		});
	}
}

function headEnd(data: Buffer): number | undefined {
	const end = data.indexOf('\r\n\r\n');
	return end < 0 ? undefined : end + 4;
}

const rssMiB = (): number => process.memoryUsage().rss / MiB;

describe('audio downloads to slow readers, real server', () => {
	let h: Harness;
	let token: string;
	let audio: Buffer;
	let target: string;
	beforeAll(async () => {
		h = await startHarness({ PARLEY_HTTP_MAX_CONCURRENT_REQUESTS: String(READERS) });
		token = await h.token({ userId: 'ada' });
		// A long ready message: the bytes need not decode, the route sends them as stored.
		const storage = new LocalVoiceStorage(h.server.storageDir);
		const now = Date.now();
		const m: VoiceMessage = { id: randomUUID(), ownerId: 'ada', destination: { kind: 'channel', channel: 'room' }, source: 'recording', status: 'ready', createdAt: now, updatedAt: now, durationMs: 3_600_000 };
		audio = randomBytes(FILE_BYTES);
		await writeFile(await storage.workPath(m), audio);
		m.sizeBytes = FILE_BYTES;
		await h.server.voiceStore.insert(m);
		target = `/voice/messages/${m.id}/audio`;
	});
	afterAll(async () => {
		await h?.close();
	});

	it('holds about one chunk per connection that never reads, keeps their slots, and drops none of the bytes', async () => {
		const auth = { authorization: `Bearer ${token}` };
		// Warm the route up so the baseline includes its code and first allocations.
		const probe = await fetch(`${h.base}${target}`, { headers: { ...auth, range: 'bytes=0-99' } });
		expect(Buffer.from(await probe.arrayBuffer()).equals(audio.subarray(0, 100))).toBe(true);
		await sleep(200);
		const before = rssMiB();

		const readers = Array.from({ length: READERS }, () => new StalledReader(h.server.http.port, target, auth));
		try {
			await waitUntil(() => h.server.http.requestStats.inFlight === READERS, 5000, 'every stalled download to hold its slot');
			// Let each stream run into backpressure.
			await sleep(1000);
			const grownMiB = rssMiB() - before;
			console.log(`slow readers: ${READERS} connections not reading a ${FILE_BYTES / MiB} MiB message: RSS ${Math.round(before)} -> ${Math.round(before + grownMiB)} MiB (+${grownMiB.toFixed(1)} MiB)`);
			expect(grownMiB).toBeLessThan(64);
			expect(h.server.http.requestStats.streaming).toBe(READERS);

			// The stalled downloads are still in flight: one more request is refused.
			const busy = await fetch(`${h.base}${target}`, { headers: auth });
			expect(busy.status).toBe(503);
			expect(await busy.json()).toMatchObject({ error: { code: 'E_BUSY' } });
		} finally {
			for (const r of readers) r.socket.destroy();
		}
		// Clients that go away give their slot (and their file) back.
		await waitUntil(() => h.server.http.requestStats.inFlight === 0 && h.server.http.requestStats.streaming === 0, 5000, 'the streams to end');

		const full = await fetch(`${h.base}${target}`, { headers: auth });
		expect(full.status).toBe(200);
		expect(full.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
		expect(full.headers.get('accept-ranges')).toBe('bytes');
		expect(Number(full.headers.get('content-length'))).toBe(FILE_BYTES);
		expect(Buffer.from(await full.arrayBuffer()).equals(audio)).toBe(true);
		// A range across chunk boundaries.
		const part = await fetch(`${h.base}${target}`, { headers: { ...auth, range: 'bytes=65530-300000' } });
		expect(part.status).toBe(206);
		expect(part.headers.get('content-range')).toBe(`bytes 65530-300000/${FILE_BYTES}`);
		expect(Buffer.from(await part.arrayBuffer()).equals(audio.subarray(65530, 300001))).toBe(true);
		expect(h.server.http.requestStats.inFlight).toBe(0);
	}, 30_000);
});

describe('streamed replies, HttpServer alone', () => {
	const TIMEOUT_MS = 1000;
	let http: HttpServer;
	let bytes: Buffer;
	beforeAll(async () => {
		const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-stream-')), 'big.bin');
		bytes = randomBytes(FILE_BYTES);
		writeFileSync(file, bytes);
		http = new HttpServer(testLogger(), { maxConcurrentRequests: 4, slowReaderTimeoutMs: TIMEOUT_MS });
		http.route('get', '/big', async () => ({ status: 200, contentType: 'application/octet-stream', headers: { etag: '"big"' }, file: { handle: await open(file, 'r'), start: 0, length: FILE_BYTES } }));
		await http.listen('127.0.0.1', 0);
	});
	afterAll(() => {
		http?.close();
	});

	it('closes the connection of a reader that takes nothing within the timeout, and frees its slot', async () => {
		const before = http.requestStats;
		const reader = new StalledReader(http.port, '/big');
		await waitUntil(() => http.requestStats.slowReaders > before.slowReaders, TIMEOUT_MS + 2000, 'the reader to be dropped', 10);
		const droppedMs = performance.now() - reader.opened;
		console.log(`slow readers: a reader that never reads was dropped after ${Math.round(droppedMs)} ms (timeout ${TIMEOUT_MS} ms)`);
		expect(droppedMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
		expect(http.requestStats).toMatchObject({ inFlight: 0, streaming: 0, slowReaders: before.slowReaders + 1 });
		// A paused socket sees the close only once it reads what arrived before it.
		await expect(reader.drain(FILE_BYTES)).rejects.toThrow(/closed after \d+ bytes/);
		expect(reader.closedAfterMs).toBeDefined();
	});

	it('resumes a reader that pauses for less than the timeout, every byte in order', async () => {
		const reader = new StalledReader(http.port, '/big');
		await sleep(TIMEOUT_MS / 2);
		expect(http.requestStats.streaming).toBe(1);
		const body = await reader.drain(FILE_BYTES);
		expect(body.equals(bytes)).toBe(true);
		reader.socket.destroy();
		await waitUntil(() => http.requestStats.inFlight === 0 && http.requestStats.streaming === 0, 2000, 'the stream to end');
		expect(http.requestStats.slowReaders).toBe(1);
	});
});
