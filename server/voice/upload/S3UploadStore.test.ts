// S3UploadStore against a real S3 API (OpenStack Swift's s3api, SigV4 checked): two tus
// servers ("nodes") with their own work folders share one bucket, as nodes with no shared
// directory do.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from 'tus-js-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { testConfig } from '../../../test/helpers/config.js';
import { testLogger } from '../../../test/helpers/logger.js';
import { startSwift, type TestSwift } from '../../../testkit/services/swift.js';
import { mintAccessToken } from '../../auth/accessToken.js';
import { HttpServer } from '../../http/HttpServer.js';
import { createS3Location, type S3Location } from '../files/s3Client.js';
import { S3UploadStore } from './S3UploadStore.js';
import { TusUploadServer, type CompletedUpload, type TusUploadServerOptions } from './TusUploadServer.js';

const KEY = new TextEncoder().encode('s3-tus-test-secret-that-is-long-enough!');
const BASE_PATH = '/voice/uploads';
const BUCKET = 'parley-uploads';
/** Each test has a key prefix of its own (completed records stay until they expire). */
let PREFIX = '';
let runs = 0;
const CHUNK_BYTES = 64 * 1024;
const MIB = 1_048_576;

interface Received extends CompletedUpload {
	content: Buffer;
}

interface Node {
	http: HttpServer;
	tus: TusUploadServer;
	store: S3UploadStore;
	workDir: string;
	base: string;
	received: Received[];
}

let swift: TestSwift;
let location: S3Location;
let root: string;
let alice: string;
const nodes: Node[] = [];

async function s3Config(overrides: Record<string, string> = {}): Promise<Parameters<typeof createS3Location>[0]> {
	const config = await testConfig({
		PARLEY_STORAGE_BACKEND: 's3',
		PARLEY_STORAGE_S3_ENDPOINT: swift.endpoint,
		PARLEY_STORAGE_S3_BUCKET: BUCKET,
		PARLEY_STORAGE_S3_KEY_PREFIX: PREFIX || 'parley/',
		PARLEY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
		PARLEY_STORAGE_S3_ACCESS_KEY_ID: swift.accessKeyId,
		PARLEY_STORAGE_S3_SECRET_ACCESS_KEY: swift.secretAccessKey,
		...overrides,
	});
	return config.storage.s3;
}

beforeAll(async () => {
	swift = await startSwift();
	await swift.createBucket(BUCKET);
	root = mkdtempSync(path.join(tmpdir(), 'parley-s3-tus-'));
	alice = await mintAccessToken({ userId: 'alice', channels: ['lobby'], grants: { canRecord: true }, ttlS: 600 }, KEY);
}, 60_000);

beforeEach(async () => {
	PREFIX = `run-${++runs}/`;
	location = createS3Location(await s3Config());
});

afterEach(() => {
	for (const node of nodes.splice(0)) {
		node.tus.close();
		node.http.close();
	}
	location.client.destroy();
});

afterAll(async () => {
	await swift?.close();
	if (root) rmSync(root, { recursive: true, force: true });
});

async function start(overrides: Partial<TusUploadServerOptions> = {}, at: S3Location = location): Promise<Node> {
	const log = testLogger();
	const http = new HttpServer(log);
	const received: Received[] = [];
	const workDir = mkdtempSync(path.join(root, 'work-'));
	const store = new S3UploadStore({ location: at, workDir, log });
	const tus = new TusUploadServer(http, {
		basePath: BASE_PATH,
		store,
		maxSizeBytes: 16 * MIB,
		expiryMs: 60_000,
		maxChunkBytes: 8 * MIB,
		cleanupIntervalMs: 0,
		signingKey: KEY,
		async onComplete(upload) {
			received.push({ ...upload, content: await readFile(upload.path) });
		},
		log,
		...overrides,
	});
	const port = await http.listen('127.0.0.1', 0);
	const node = { http, tus, store, workDir, base: `http://127.0.0.1:${port}`, received };
	nodes.push(node);
	return node;
}

function sha256(data: Buffer): string {
	return createHash('sha256').update(data).digest('hex');
}

async function tus(node: Node, method: string, urlPath: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Response> {
	return fetch(`${node.base}${urlPath}`, {
		method,
		headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${alice}`, ...headers },
		body: body && new Uint8Array(body),
	});
}

async function create(node: Node, lengthBytes: number): Promise<string> {
	const res = await tus(node, 'POST', BASE_PATH, { 'Upload-Length': String(lengthBytes), 'Upload-Metadata': `destination ${Buffer.from('channel:lobby').toString('base64')}` });
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

/** Every key in the bucket (or under `prefix`), relative to the bucket. */
async function keys(prefix = ''): Promise<string[]> {
	const out: string[] = [];
	let token: string | undefined;
	do {
		const page = await location.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ...(token && { ContinuationToken: token }) }));
		for (const o of page.Contents ?? []) out.push(o.Key!);
		token = page.IsTruncated ? page.NextContinuationToken : undefined;
	} while (token);
	return out.sort();
}

async function multipartUploads(client: S3Client = location.client): Promise<number> {
	const out = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
	return out.Uploads?.length ?? 0;
}

function idOf(url: string): string {
	return url.split('/').pop()!;
}

describe('S3UploadStore', () => {
	it('an upload begun through node A in 64 KiB chunks resumes through node B (stock tus-js-client)', async () => {
		const a = await start();
		const b = await start();
		const file = randomBytes(5 * CHUNK_BYTES + 1000);
		const url = await new Promise<string>((resolve, reject) => {
			let chunks = 0;
			const upload = new Upload(file, {
				endpoint: `${a.base}${BASE_PATH}`,
				chunkSize: CHUNK_BYTES,
				headers: { Authorization: `Bearer ${alice}` },
				metadata: { destination: 'channel:lobby', filename: 'a.wav', filetype: 'audio/wav' },
				retryDelays: [],
				onChunkComplete: () => {
					if (++chunks === 2) upload.abort().then(() => resolve(upload.url!), reject);
				},
				onError: reject,
			});
			upload.start();
		});
		const uploadPath = new URL(url).pathname;
		const id = idOf(url);
		// The parts are objects, named by their offset; B reads the offset from them.
		expect(await keys(`${PREFIX}.uploads/${id}/`)).toEqual([`${PREFIX}.uploads/${id}/0000000000000000`, `${PREFIX}.uploads/${id}/0000000000065536`, `${PREFIX}.uploads/${id}/upload.json`]);
		expect(await offsetOf(b, uploadPath)).toBe(2 * CHUNK_BYTES);

		const sent: number[] = [];
		await new Promise<void>((resolve, reject) => {
			const upload = new Upload(file, {
				endpoint: `${b.base}${BASE_PATH}`,
				uploadUrl: `${b.base}${uploadPath}`,
				chunkSize: CHUNK_BYTES,
				headers: { Authorization: `Bearer ${alice}` },
				retryDelays: [],
				onChunkComplete: (size) => sent.push(size),
				onSuccess: () => resolve(),
				onError: reject,
			});
			upload.start();
		});
		expect(sent.reduce((x, y) => x + y, 0)).toBe(file.length - 2 * CHUNK_BYTES);
		expect(a.received).toHaveLength(0);
		expect(b.received).toHaveLength(1);
		expect(b.received[0]).toMatchObject({ uploadId: id, ownerId: 'alice', sizeBytes: file.length, sha256: sha256(file), fileName: 'a.wav' });
		expect(b.received[0]!.content.equals(file)).toBe(true);
		expect(b.received[0]!.path.startsWith(b.workDir)).toBe(true);
		// Handed over: the parts and the assembled file are gone, the record answers HEAD on
		// either node until it expires.
		expect(await keys(`${PREFIX}.uploads/${id}/`)).toEqual([`${PREFIX}.uploads/${id}/upload.json`]);
		expect(readdirSync(b.workDir)).toEqual([]);
		expect(await offsetOf(a, uploadPath)).toBe(file.length);
		// A repeated final PATCH is answered from the record, without a second onComplete.
		const again = await patch(a, uploadPath, file.length, Buffer.alloc(0));
		expect(again.status).toBe(204);
		expect(again.headers.get('upload-offset')).toBe(String(file.length));
		expect(a.received).toHaveLength(0);
		expect(await multipartUploads()).toBe(0);
	});

	it('what a node remembers of an upload follows what other nodes did with it', async () => {
		const a = await start();
		const b = await start();
		const data = randomBytes(400);
		const url = await create(a, data.length);
		expect((await patch(a, url, 0, data.subarray(0, 100))).status).toBe(204);
		expect(a.store.cachedCount).toBe(1);
		// B moves it on; A, which remembers offset 100, sees B's part in its next listing.
		expect((await patch(b, url, 100, data.subarray(100, 200))).status).toBe(204);
		expect(await offsetOf(a, url)).toBe(200);
		expect((await patch(a, url, 100, data.subarray(100, 200))).status).toBe(409);
		expect((await patch(a, url, 200, data.subarray(200, 300))).status).toBe(204);
		// B completes it: A sees the record changed (its ETag) and answers the full length.
		expect((await patch(b, url, 300, data.subarray(300))).status).toBe(204);
		expect(b.received[0]!.content.equals(data)).toBe(true);
		expect(await offsetOf(a, url)).toBe(data.length);
		expect(a.store.cachedCount).toBe(0);
		// Deleted through B: gone for A too.
		const other = await create(a, 10);
		expect((await patch(a, other, 0, randomBytes(5))).status).toBe(204);
		expect((await tus(b, 'DELETE', other)).status).toBe(204);
		expect((await tus(a, 'HEAD', other)).status).toBe(404);
		expect((await patch(a, other, 5, randomBytes(5))).status).toBe(404);
		expect(a.store.cachedCount).toBe(0);
		expect(a.received).toHaveLength(0);
	});

	it('stores a 5 MiB chunk and a small tail as two objects, no multipart upload', async () => {
		const node = await start();
		const file = randomBytes(5 * MIB + 1234);
		const url = await create(node, file.length);
		const id = idOf(url);
		expect((await patch(node, url, 0, file.subarray(0, 5 * MIB))).status).toBe(204);
		expect(await offsetOf(node, url)).toBe(5 * MIB);
		expect(await multipartUploads()).toBe(0);
		expect(await keys(`${PREFIX}.uploads/${id}/`)).toEqual([`${PREFIX}.uploads/${id}/0000000000000000`, `${PREFIX}.uploads/${id}/upload.json`]);
		const last = await patch(node, url, 5 * MIB, file.subarray(5 * MIB));
		expect(last.status).toBe(204);
		expect(last.headers.get('upload-offset')).toBe(String(file.length));
		expect(node.received[0]!.sha256).toBe(sha256(file));
		expect(node.received[0]!.content.equals(file)).toBe(true);
	});

	it('a chunk that fails its checksum is discarded: no object, offset unchanged', async () => {
		const node = await start();
		const data = randomBytes(100);
		const url = await create(node, data.length);
		const id = idOf(url);
		const bad = await patch(node, url, 0, data.subarray(0, 50), { 'Upload-Checksum': `sha256 ${createHash('sha256').update('other').digest('base64')}` });
		expect(bad.status).toBe(460);
		expect(await keys(`${PREFIX}.uploads/${id}/`)).toEqual([`${PREFIX}.uploads/${id}/upload.json`]);
		expect(await offsetOf(node, url)).toBe(0);
		const good = await patch(node, url, 0, data.subarray(0, 50), { 'Upload-Checksum': `sha1 ${createHash('sha1').update(data.subarray(0, 50)).digest('base64')}` });
		expect(good.status).toBe(204);
		expect((await patch(node, url, 10, data.subarray(10))).status).toBe(409);
		expect((await patch(node, url, 50, data.subarray(50))).status).toBe(204);
		expect(node.received[0]!.content.equals(data)).toBe(true);
	});

	it('the offset counts only contiguous parts: a stray object elsewhere does not move it', async () => {
		const node = await start();
		const data = randomBytes(300);
		const url = await create(node, data.length);
		const id = idOf(url);
		expect((await patch(node, url, 0, data.subarray(0, 100))).status).toBe(204);
		// Not at the current offset (a gap), and one that would pass Upload-Length.
		for (const [offset, size] of [
			[150, 10],
			[100, 500],
		] as const) {
			await location.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}.uploads/${id}/${String(offset).padStart(16, '0')}`, Body: randomBytes(size) }));
		}
		expect(await offsetOf(node, url)).toBe(100);
		// The next PATCH at 100 replaces the oversized object (same key) and the upload completes.
		expect((await patch(node, url, 100, data.subarray(100))).status).toBe(204);
		expect(node.received[0]!.content.equals(data)).toBe(true);
		// The stray part went with the others.
		expect(await keys(`${PREFIX}.uploads/${id}/`)).toEqual([`${PREFIX}.uploads/${id}/upload.json`]);
	});

	it('DELETE and expiry leave no objects behind, on any node', async () => {
		// Long enough that the steps before the first sweep fit in it on a busy machine (at
		// 1.5 s a CI run once saw the abandoned upload expire before that sweep).
		const expiryMs = 3000;
		const a = await start({ expiryMs });
		const b = await start({ expiryMs });
		const terminated = await create(a, 1000);
		expect((await patch(a, terminated, 0, randomBytes(400))).status).toBe(204);
		expect((await tus(b, 'DELETE', terminated)).status).toBe(204);
		expect(await keys(`${PREFIX}.uploads/${idOf(terminated)}/`)).toEqual([]);
		expect((await tus(a, 'HEAD', terminated)).status).toBe(404);

		const abandoned = await create(a, 1000);
		expect((await patch(a, abandoned, 0, randomBytes(300))).status).toBe(204);
		expect((await patch(a, abandoned, 300, randomBytes(300))).status).toBe(204);
		const lastActivityAt = Date.now();
		const finished = await create(a, 10);
		expect((await patch(a, finished, 0, randomBytes(10))).status).toBe(204);
		expect(await b.tus.cleanupExpired()).toBe(0);
		await new Promise((r) => setTimeout(r, Math.max(0, lastActivityAt + expiryMs + 100 - Date.now())));
		expect((await tus(a, 'HEAD', abandoned)).status).toBe(410);
		// B sweeps what A created: the shared state is the bucket.
		expect(await b.tus.cleanupExpired()).toBe(1);
		expect(await keys(`${PREFIX}.uploads/`)).toEqual([]);
		expect(await multipartUploads()).toBe(0);
		expect((await tus(a, 'HEAD', finished)).status).toBe(404);
	});

	it('a PATCH that raced a DELETE on another node leaves a prefix without record: the sweep removes it', async () => {
		const node = await start();
		const orphan = '0f0f0f0f-0000-4000-8000-000000000000';
		await location.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}.uploads/${orphan}/0000000000000000`, Body: randomBytes(10) }));
		// Younger than the expiry: kept (a creation may be under way); older: removed.
		expect(await node.store.removeStrays(60_000)).toBe(0);
		expect(await keys(`${PREFIX}.uploads/${orphan}/`)).toHaveLength(1);
		// Swift's Last-Modified has whole seconds, rounded up.
		await new Promise((r) => setTimeout(r, 1100));
		expect(await node.store.removeStrays(0)).toBe(1);
		expect(await keys(`${PREFIX}.uploads/`)).toEqual([]);
	});

	it('rejects hostile upload ids before any key is built, and writes nothing outside the upload prefix', async () => {
		const node = await start();
		const url = await create(node, 10);
		const id = idOf(url);
		const probes = ['..%2F..%2Fx', '%2e%2e', 'not-a-uuid', id.toUpperCase(), `${id}%2F0000000000000000`, `${id}%00`, `${id}%2Fupload.json`];
		for (const probe of probes) {
			const at = `${BASE_PATH}/${probe}`;
			expect((await tus(node, 'HEAD', at)).status, probe).toBe(404);
			expect((await patch(node, at, 0, Buffer.from('pwned'))).status, probe).toBe(404);
			expect((await tus(node, 'DELETE', at)).status, probe).toBe(404);
		}
		expect(await node.store.withUpload('../../etc', async (u) => u)).toBeUndefined();
		expect(() => node.store.partKey('../x', 0)).toThrow(TypeError);
		expect(await keys(PREFIX)).toEqual([`${PREFIX}.uploads/${id}/upload.json`]);
		// Nor anywhere else in the bucket: every key of every test is under <prefix>.uploads/.
		expect((await keys()).filter((k) => !/^run-\d+\/\.uploads\/[0-9a-f-]{36}\//.test(k))).toEqual([]);
		expect((await tus(node, 'DELETE', url)).status).toBe(204);
	});

	it('wrong credentials or a missing bucket answer 503 E_STORAGE_UNAVAILABLE with Retry-After', async () => {
		const wrongSecret = createS3Location(await s3Config({ PARLEY_STORAGE_S3_SECRET_ACCESS_KEY: 'not-the-secret' }));
		const noBucket = createS3Location(await s3Config({ PARLEY_STORAGE_S3_BUCKET: 'no-such-bucket' }));
		try {
			for (const at of [wrongSecret, noBucket]) {
				const node = await start({}, at);
				const res = await tus(node, 'POST', BASE_PATH, { 'Upload-Length': '10', 'Upload-Metadata': `destination ${Buffer.from('channel:lobby').toString('base64')}` });
				expect(res.status).toBe(503);
				expect(res.headers.get('retry-after')).toBeTruthy();
				expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_STORAGE_UNAVAILABLE');
			}
		} finally {
			wrongSecret.client.destroy();
			noBucket.client.destroy();
		}
	});
});
