import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Upload } from 'tus-js-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test/helpers/logger.js';
import { HttpServer } from '../../http/HttpServer.js';
import { mintAccessToken } from '../../auth/accessToken.js';
import { TusUploadServer, type CompletedUpload, type TusUploadServerOptions } from './TusUploadServer.js';

type UploadOptions = ConstructorParameters<typeof Upload>[1];

const KEY = new TextEncoder().encode('tus-test-secret-that-is-long-enough!!');
const BASE_PATH = '/voice/uploads';
const MAX_SIZE_BYTES = 1_048_576;
const CHUNK_BYTES = 64 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What onComplete saw, with the file's bytes read while it was still there. */
interface Received extends CompletedUpload {
	content: Buffer;
}

interface Node {
	http: HttpServer;
	tus: TusUploadServer;
	base: string;
	received: Received[];
}

interface Context {
	/** Parent of the upload dir: nothing may appear here but the upload dir itself. */
	root: string;
	dir: string;
	nodes: Node[];
	alice: string;
}

let ctx: Context;

beforeEach(async () => {
	const root = mkdtempSync(path.join(tmpdir(), 'parley-tus-'));
	ctx = { root, dir: path.join(root, 'uploads'), nodes: [], alice: await token('alice') };
});

afterEach(() => {
	for (const node of ctx.nodes) stop(node);
	rmSync(ctx.root, { recursive: true, force: true });
});

function token(userId: string, grants: { canRecord?: boolean } = { canRecord: true }): Promise<string> {
	return mintAccessToken({ userId, channels: ['lobby', 'team-*'], grants, ttlS: 600 }, KEY);
}

async function start(overrides: Partial<TusUploadServerOptions> = {}): Promise<Node> {
	const log = testLogger();
	const http = new HttpServer(log);
	const received: Received[] = [];
	const tus = new TusUploadServer(http, {
		basePath: BASE_PATH,
		dir: ctx.dir,
		maxSizeBytes: MAX_SIZE_BYTES,
		expiryMs: 60_000,
		maxChunkBytes: 2 * 1_048_576,
		signingKey: KEY,
		async onComplete(upload) {
			received.push({ ...upload, content: await readFile(upload.path) });
		},
		log,
		...overrides,
	});
	const port = await http.listen('127.0.0.1', 0);
	const node = { http, tus, base: `http://127.0.0.1:${port}`, received };
	ctx.nodes.push(node);
	return node;
}

function stop(node: Node): void {
	node.tus.close();
	node.http.close();
}

function sha256(data: Buffer): string {
	return createHash('sha256').update(data).digest('hex');
}

function uploadOptions(node: Node, overrides: UploadOptions = {}): UploadOptions {
	return {
		endpoint: `${node.base}${BASE_PATH}`,
		chunkSize: CHUNK_BYTES,
		headers: { Authorization: `Bearer ${ctx.alice}` },
		metadata: { destination: 'channel:lobby', filename: 'a.ogg', filetype: 'audio/ogg' },
		retryDelays: [0, 100, 300],
		...overrides,
	};
}

/** Runs a tus-js-client upload to the end; resolves with its URL. */
function uploadAll(file: Buffer, options: UploadOptions): Promise<string> {
	return new Promise((resolve, reject) => {
		const upload = new Upload(file, {
			...options,
			onSuccess: () => resolve(upload.url ?? ''),
			onError: reject,
		});
		upload.start();
	});
}

/** One tus request with the version header and alice's token unless told otherwise. */
async function tus(node: Node, method: string, urlPath: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Response> {
	return fetch(`${node.base}${urlPath}`, {
		method,
		headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${ctx.alice}`, ...headers },
		// A copy on a plain ArrayBuffer: the DOM typings' BodyInit takes neither Buffer nor shared memory.
		body: body && new Uint8Array(body),
	});
}

function metadata(pairs: Record<string, string>): string {
	return Object.entries(pairs)
		.map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
		.join(',');
}

/** Creates an upload with fetch; returns its path (`/voice/uploads/<id>`). */
async function create(node: Node, lengthBytes: number, headers: Record<string, string> = {}): Promise<string> {
	const res = await tus(node, 'POST', BASE_PATH, { 'Upload-Length': String(lengthBytes), 'Upload-Metadata': metadata({ destination: 'channel:lobby' }), ...headers });
	expect(res.status).toBe(201);
	return res.headers.get('location')!;
}

function patch(node: Node, urlPath: string, offset: number, chunk: Buffer, headers: Record<string, string> = {}): Promise<Response> {
	return tus(node, 'PATCH', urlPath, { 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(offset), ...headers }, chunk);
}

async function offsetOf(node: Node, urlPath: string): Promise<number> {
	const res = await tus(node, 'HEAD', urlPath);
	expect(res.status).toBe(200);
	return Number(res.headers.get('upload-offset'));
}

/** A request exactly as written (fetch would normalize `../`). */
function rawRequest(node: Node, head: string): Promise<string> {
	const { port } = new URL(node.base);
	return new Promise((resolve, reject) => {
		const socket = net.connect(Number(port), '127.0.0.1', () => socket.end(head));
		let text = '';
		socket.on('data', (d) => {
			text += d.toString();
		});
		socket.on('end', () => resolve(text));
		socket.on('error', reject);
	});
}

describe('TusUploadServer with tus-js-client', () => {
	it('uploads a 300 KB file in 64 KB chunks; onComplete gets its size, sha256 and bytes', async () => {
		const node = await start();
		const file = randomBytes(300 * 1024);
		const chunks: number[] = [];
		const url = await uploadAll(file, { ...uploadOptions(node), onChunkComplete: (size) => chunks.push(size) });

		expect(chunks).toHaveLength(5);
		expect(node.received).toHaveLength(1);
		const [done] = node.received;
		expect(done).toMatchObject({
			ownerId: 'alice',
			destination: { kind: 'channel', channel: 'lobby' },
			fileName: 'a.ogg',
			fileType: 'audio/ogg',
			sizeBytes: file.length,
			sha256: sha256(file),
		});
		expect(url).toBe(`${node.base}${BASE_PATH}/${done!.uploadId}`);
		expect(path.isAbsolute(done!.path)).toBe(true);
		expect(done!.content.equals(file)).toBe(true);
		// Handed over: the bytes are gone, the record answers HEAD until it expires.
		expect(readdirSync(ctx.dir)).toEqual([`${done!.uploadId}.json`]);
		expect(await offsetOf(node, new URL(url).pathname)).toBe(file.length);
		expect(node.tus.cachedUploads).toBe(0);
	});

	it('resumes after a server restart from the durable offset', async () => {
		const first = await start();
		const file = randomBytes(300 * 1024);
		// Stop the client after two chunks, then the server.
		const url = await new Promise<string>((resolve, reject) => {
			let chunks = 0;
			const upload = new Upload(file, {
				...uploadOptions(first),
				onChunkComplete: () => {
					if (++chunks === 2) upload.abort().then(() => resolve(upload.url ?? ''), reject);
				},
				onError: reject,
			});
			upload.start();
		});
		stop(first);
		expect(first.received).toHaveLength(0);

		const second = await start();
		const uploadPath = new URL(url).pathname;
		expect(await offsetOf(second, uploadPath)).toBe(2 * CHUNK_BYTES);
		const sent: number[] = [];
		await uploadAll(file, { ...uploadOptions(second), uploadUrl: `${second.base}${uploadPath}`, onChunkComplete: (size) => sent.push(size) });

		// Only the rest was sent, and the running hash was rebuilt from the file on disk.
		expect(sent.reduce((a, b) => a + b, 0)).toBe(file.length - 2 * CHUNK_BYTES);
		expect(second.received).toHaveLength(1);
		expect(second.received[0]!.sha256).toBe(sha256(file));
		expect(second.received[0]!.content.equals(file)).toBe(true);
	});

	it('keeps a full upload when onComplete fails, and completes it on the retry', async () => {
		let failures = 1;
		const calls: CompletedUpload[] = [];
		const accepted: Buffer[] = [];
		const node = await start({
			async onComplete(upload) {
				calls.push(upload);
				if (failures-- > 0) throw new Error('database unavailable');
				accepted.push(await readFile(upload.path));
			},
		});
		const file = randomBytes(100 * 1024);
		await uploadAll(file, uploadOptions(node));
		// The final PATCH got 500; tus-js-client retried with HEAD, which finished the upload.
		expect(calls).toHaveLength(2);
		expect(calls[0]!.uploadId).toBe(calls[1]!.uploadId);
		expect(accepted).toHaveLength(1);
		expect(accepted[0]!.equals(file)).toBe(true);
		expect(readdirSync(ctx.dir)).toEqual([`${calls[0]!.uploadId}.json`]);
	});
});

describe('TusUploadServer protocol', () => {
	it('OPTIONS advertises version, extensions, max size and checksum algorithms without auth', async () => {
		const node = await start();
		const res = await fetch(`${node.base}${BASE_PATH}`, { method: 'OPTIONS' });
		expect(res.status).toBe(204);
		expect(res.headers.get('tus-version')).toBe('1.0.0');
		expect(res.headers.get('tus-extension')).toBe('creation,termination,checksum,expiration');
		expect(res.headers.get('tus-max-size')).toBe(String(MAX_SIZE_BYTES));
		expect(res.headers.get('tus-checksum-algorithm')).toBe('sha1,sha256');
	});

	it('POST answers 201 with Location, Upload-Expires and the CORS-exposed headers', async () => {
		const node = await start();
		const before = Date.now();
		const res = await tus(node, 'POST', BASE_PATH, { 'Upload-Length': '10', 'Upload-Metadata': metadata({ destination: 'user:bob', filename: 'x.ogg' }) });
		expect(res.status).toBe(201);
		expect(res.headers.get('tus-resumable')).toBe('1.0.0');
		const location = res.headers.get('location')!;
		expect(location.startsWith(`${BASE_PATH}/`)).toBe(true);
		expect(location.slice(BASE_PATH.length + 1)).toMatch(UUID);
		const expires = Date.parse(res.headers.get('upload-expires')!);
		expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 60_000 - 1000);
		const exposed = res.headers.get('access-control-expose-headers')!.split(/,\s*/);
		expect(exposed).toEqual(expect.arrayContaining(['Upload-Offset', 'Location', 'Upload-Length', 'Tus-Version', 'Tus-Resumable', 'Tus-Max-Size', 'Tus-Extension', 'Upload-Expires', 'Upload-Metadata']));

		const head = await tus(node, 'HEAD', location);
		expect(head.status).toBe(200);
		expect(head.headers.get('upload-offset')).toBe('0');
		expect(head.headers.get('upload-length')).toBe('10');
		expect(head.headers.get('upload-metadata')).toBe(metadata({ destination: 'user:bob', filename: 'x.ogg' }));
		expect(head.headers.get('cache-control')).toBe('no-store');
		expect(head.headers.get('upload-expires')).toBe(res.headers.get('upload-expires'));
	});

	it('PATCH at the wrong offset is 409', async () => {
		const node = await start();
		const url = await create(node, 20);
		expect((await patch(node, url, 5, Buffer.alloc(5))).status).toBe(409);
		const ok = await patch(node, url, 0, Buffer.alloc(5));
		expect(ok.status).toBe(204);
		expect(ok.headers.get('upload-offset')).toBe('5');
		expect(ok.headers.get('upload-expires')).toBeTruthy();
		// A retried chunk at its old offset is a conflict too; the client HEADs and resumes.
		expect((await patch(node, url, 0, Buffer.alloc(5))).status).toBe(409);
		expect(await offsetOf(node, url)).toBe(5);
	});

	it('checks sha1 and sha256 checksums: a mismatch is 460 and the chunk is dropped', async () => {
		const node = await start();
		const data = randomBytes(30);
		const url = await create(node, data.length);
		const digest = (algorithm: string, bytes: Buffer): string => `${algorithm} ${createHash(algorithm).update(bytes).digest('base64')}`;

		const bad = await patch(node, url, 0, data.subarray(0, 10), { 'Upload-Checksum': digest('sha256', Buffer.from('other')) });
		expect(bad.status).toBe(460);
		expect(await offsetOf(node, url)).toBe(0);
		expect((await patch(node, url, 0, data.subarray(0, 10), { 'Upload-Checksum': digest('md5', data.subarray(0, 10)) })).status).toBe(400);
		expect((await patch(node, url, 0, data.subarray(0, 10), { 'Upload-Checksum': 'sha1 not-base64!' })).status).toBe(400);

		expect((await patch(node, url, 0, data.subarray(0, 10), { 'Upload-Checksum': digest('sha1', data.subarray(0, 10)) })).status).toBe(204);
		expect((await patch(node, url, 10, data.subarray(10, 20), { 'Upload-Checksum': digest('sha256', data.subarray(10, 20)) })).status).toBe(204);
		expect((await patch(node, url, 20, data.subarray(20), { 'Upload-Checksum': digest('sha1', Buffer.from('x')) })).status).toBe(460);
		expect((await patch(node, url, 20, data.subarray(20))).status).toBe(204);
		expect(node.received[0]!.content.equals(data)).toBe(true);
	});

	it('refuses lengths past the limits with 413 and writes nothing beyond Upload-Length', async () => {
		const node = await start();
		const tooLarge = await tus(node, 'POST', BASE_PATH, { 'Upload-Length': String(MAX_SIZE_BYTES + 1), 'Upload-Metadata': metadata({ destination: 'channel:lobby' }) });
		expect(tooLarge.status).toBe(413);
		expect(tooLarge.headers.get('tus-max-size')).toBe(String(MAX_SIZE_BYTES));

		const url = await create(node, 10);
		expect((await patch(node, url, 0, Buffer.alloc(11))).status).toBe(413);
		expect(await offsetOf(node, url)).toBe(0);
		expect((await patch(node, url, 0, Buffer.alloc(6))).status).toBe(204);
		expect((await patch(node, url, 6, Buffer.alloc(5))).status).toBe(413);
		expect(await offsetOf(node, url)).toBe(6);
		// A chunk over maxChunkBytes is refused before it is read.
		const huge = await patch(node, url, 6, Buffer.alloc(2 * 1_048_576 + 1));
		expect(huge.status).toBe(413);
		expect(huge.headers.get('tus-resumable')).toBe('1.0.0');
	});

	it('requires Tus-Resumable 1.0.0 (412 with Tus-Version)', async () => {
		const node = await start();
		const url = await create(node, 10);
		const versions: Record<string, string>[] = [{}, { 'Tus-Resumable': '0.2.2' }];
		for (const headers of versions) {
			const res = await fetch(`${node.base}${url}`, { method: 'HEAD', headers: { Authorization: `Bearer ${ctx.alice}`, ...headers } });
			expect(res.status).toBe(412);
			expect(res.headers.get('tus-version')).toBe('1.0.0');
		}
		const post = await fetch(`${node.base}${BASE_PATH}`, { method: 'POST', headers: { Authorization: `Bearer ${ctx.alice}`, 'Upload-Length': '5' } });
		expect(post.status).toBe(412);
	});

	it('a PATCH whose client goes away mid-body writes nothing', async () => {
		const node = await start();
		const url = await create(node, 1000);
		const { port } = new URL(node.base);
		const socket = net.connect(Number(port), '127.0.0.1');
		await new Promise((resolve) => socket.once('connect', resolve));
		socket.write(
			`PATCH ${url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer ${ctx.alice}\r\n` +
				'Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 1000\r\n\r\n',
		);
		socket.write(Buffer.alloc(500, 1));
		await new Promise((r) => setTimeout(r, 50));
		socket.destroy();
		await new Promise((r) => setTimeout(r, 50));
		expect(await offsetOf(node, url)).toBe(0);
		expect((await patch(node, url, 0, Buffer.alloc(1000))).status).toBe(204);
	});

	it('PATCH needs Content-Type application/offset+octet-stream (415)', async () => {
		const node = await start();
		const url = await create(node, 10);
		expect((await patch(node, url, 0, Buffer.alloc(5), { 'Content-Type': 'application/octet-stream' })).status).toBe(415);
		expect(await offsetOf(node, url)).toBe(0);
	});

	it('answers 400 to missing, negative or garbage lengths and offsets, and to bad metadata', async () => {
		const node = await start();
		const post = (headers: Record<string, string>): Promise<Response> =>
			tus(node, 'POST', BASE_PATH, { 'Upload-Metadata': metadata({ destination: 'channel:lobby' }), ...headers });
		for (const length of ['-1', 'abc', '1.5', '1e3', '0x10', '', '0', '99999999999999999999']) {
			expect((await post({ 'Upload-Length': length })).status, `Upload-Length ${JSON.stringify(length)}`).toBe(400);
		}
		expect((await post({ 'Upload-Defer-Length': '1' })).status).toBe(400);
		const url = await create(node, 10);
		for (const offset of ['-1', 'x', '1.0']) {
			expect((await patch(node, url, 0, Buffer.alloc(1), { 'Upload-Offset': offset })).status).toBe(400);
		}
		const bad = (meta: string): Promise<Response> => tus(node, 'POST', BASE_PATH, { 'Upload-Length': '5', 'Upload-Metadata': meta });
		expect((await bad('')).status).toBe(400); // no destination
		expect((await bad(metadata({ destination: 'room:lobby' }))).status).toBe(400);
		expect((await bad(metadata({ destination: 'user:../../etc' }))).status).toBe(400);
		expect((await bad(metadata({ destination: 'channel:lobby', filename: 'x'.repeat(256) }))).status).toBe(400);
		expect((await bad(`${metadata({ destination: 'channel:lobby' })},destination ${Buffer.from('user:bob').toString('base64')}`)).status).toBe(400);
		expect((await bad('destination not@base64')).status).toBe(400);
	});

	it('404s ids that are not our UUIDs, and nothing is written outside the upload dir', async () => {
		const node = await start();
		const url = await create(node, 10);
		const id = url.slice(BASE_PATH.length + 1);
		const probes = ['..%2F..%2Fetc', '..%2F..%2Fetc%2Fpasswd', '%2e%2e', 'not-a-uuid', id.toUpperCase(), `${id}.json`, `${id}%00`];
		for (const probe of probes) {
			const at = `${BASE_PATH}/${probe}`;
			expect((await tus(node, 'HEAD', at)).status, probe).toBe(404);
			expect((await patch(node, at, 0, Buffer.from('pwned'))).status, probe).toBe(404);
			expect((await tus(node, 'DELETE', at)).status, probe).toBe(404);
		}
		for (const target of [`${BASE_PATH}/../x`, `${BASE_PATH}/../../etc/passwd`, `${BASE_PATH}/%2e%2e/%2e%2e/x`]) {
			const reply = await rawRequest(
				node,
				`PATCH ${target} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer ${ctx.alice}\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 5\r\nConnection: close\r\n\r\npwned`,
			);
			expect(reply.startsWith('HTTP/1.1 404'), target).toBe(true);
		}
		expect(readdirSync(ctx.root)).toEqual(['uploads']);
		expect(readdirSync(ctx.dir).sort()).toEqual([`${id}.json`, `${id}.part`]);
		expect(await offsetOf(node, url)).toBe(0);
	});

	it("treats another user's upload as missing (404), and enforces tokens and grants", async () => {
		const node = await start();
		const url = await create(node, 10);
		const bob = await token('bob');
		for (const method of ['HEAD', 'DELETE']) expect((await tus(node, method, url, { Authorization: `Bearer ${bob}` })).status).toBe(404);
		expect((await patch(node, url, 0, Buffer.alloc(2), { Authorization: `Bearer ${bob}` })).status).toBe(404);
		expect(await offsetOf(node, url)).toBe(0);

		const listener = await token('carol', { canRecord: false });
		const forbidden = await tus(node, 'POST', BASE_PATH, { Authorization: `Bearer ${listener}`, 'Upload-Length': '5', 'Upload-Metadata': metadata({ destination: 'channel:lobby' }) });
		expect(forbidden.status).toBe(403);
		expect(((await forbidden.json()) as { error: { code: string } }).error.code).toBe('E_FORBIDDEN');
		const elsewhere = await tus(node, 'POST', BASE_PATH, { 'Upload-Length': '5', 'Upload-Metadata': metadata({ destination: 'channel:secret' }) });
		expect(elsewhere.status).toBe(403);

		const expired = await mintAccessToken({ userId: 'alice', channels: ['lobby'], grants: { canRecord: true }, ttlS: -60 }, KEY);
		for (const authorization of [undefined, 'Bearer garbage', `Bearer ${expired}`, ctx.alice]) {
			const headers: Record<string, string> = { 'Tus-Resumable': '1.0.0', 'Upload-Length': '5', 'Upload-Metadata': metadata({ destination: 'channel:lobby' }) };
			if (authorization) headers.Authorization = authorization;
			const res = await fetch(`${node.base}${BASE_PATH}`, { method: 'POST', headers });
			expect(res.status).toBe(401);
			expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_AUTH');
			expect((await fetch(`${node.base}${url}`, { method: 'HEAD', headers })).status).toBe(401);
		}
	});

	it('DELETE answers 204 and removes the files; HEAD is then 404', async () => {
		const node = await start();
		const url = await create(node, 10);
		expect((await patch(node, url, 0, Buffer.alloc(4))).status).toBe(204);
		expect((await tus(node, 'DELETE', url)).status).toBe(204);
		expect((await tus(node, 'HEAD', url)).status).toBe(404);
		expect((await patch(node, url, 4, Buffer.alloc(4))).status).toBe(404);
		expect(readdirSync(ctx.dir)).toEqual([]);
		expect(node.tus.cachedUploads).toBe(0);
	});

	it('expired uploads answer 410 and cleanupExpired() removes them', async () => {
		// 1.5 s: the four requests before the first cleanup must fit well inside it on a busy machine.
		const node = await start({ expiryMs: 1500, cleanupIntervalMs: 0 });
		const url = await create(node, 10);
		expect((await patch(node, url, 0, Buffer.alloc(4))).status).toBe(204);
		const done = await create(node, 2);
		expect((await patch(node, done, 0, Buffer.alloc(2))).status).toBe(204);
		expect(await node.tus.cleanupExpired()).toBe(0);
		await new Promise((r) => setTimeout(r, 1550));

		expect((await tus(node, 'HEAD', url)).status).toBe(410);
		expect((await patch(node, url, 4, Buffer.alloc(4))).status).toBe(410);
		// A completed upload never expires into 410; its record is simply dropped.
		expect(await offsetOf(node, done)).toBe(2);
		expect(await node.tus.cleanupExpired()).toBe(1);
		expect((await tus(node, 'HEAD', url)).status).toBe(404);
		expect((await tus(node, 'HEAD', done)).status).toBe(404);
		expect(readdirSync(ctx.dir)).toEqual([]);
		expect(node.tus.cachedUploads).toBe(0);
	});

	it('serializes concurrent PATCHes at one offset: one succeeds, the other is 409', async () => {
		const size = 2 * 1_048_576;
		const node = await start({ maxSizeBytes: size });
		const url = await create(node, size);
		const a = Buffer.alloc(1_048_576, 0xaa);
		const b = Buffer.alloc(1_048_576, 0xbb);
		const statuses = await Promise.all([patch(node, url, 0, a), patch(node, url, 0, b)]).then((r) => r.map((x) => x.status));
		expect(statuses.sort()).toEqual([204, 409]);
		expect(await offsetOf(node, url)).toBe(1_048_576);

		const rest = randomBytes(1_048_576);
		expect((await patch(node, url, 1_048_576, rest)).status).toBe(204);
		const content = node.received[0]!.content;
		const winner = content[0] === 0xaa ? a : b;
		expect(content.equals(Buffer.concat([winner, rest]))).toBe(true);
		expect(node.received[0]!.sha256).toBe(sha256(content));
	});
});
