// A Parley node with storage.backend s3 against a real S3 API (OpenStack Swift's s3api, SigV4
// checked), through its HTTP API: a finished upload is committed to the bucket and downloaded
// back (200, 206 Range, 304), a node with presigned downloads answers 302 to a link that gives
// the bytes; a wrong secret or a missing bucket stops the start with exit 78 naming the
// option; with Swift stopped /readyz names storage and the API answers 503
// E_STORAGE_UNAVAILABLE with Retry-After, an upload finished meanwhile stays processing in the
// node's work folder (also across a node restart) and becomes ready once Swift is back, with
// the sha256 of the original; no multipart upload is left behind.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { ConfigError } from '../../server/config/loadConfig.js';
import type { S3VoiceStorage } from '../../server/voice/files/S3VoiceStorage.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { startSwift, type TestSwift } from '../../testkit/services/swift.js';
import { testConfig, testEnv } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { startServerProcess } from '../helpers/serverProcess.js';
import { waitUntil } from '../helpers/wait.js';
import { finishUpload, sha256 } from './helpers/voiceUploads.js';

const SECRET = 's3-storage-test-secret-0123456789-abcdef';
const KEY = new TextEncoder().encode(SECRET);
const BUCKET = 'parley-node';

let swift: TestSwift;
let raw: S3Client;
let root: string;
const servers: ParleyServer[] = [];


/** The env of a node on Swift; `dir` keeps storage.dir and the database across restarts. */
function s3Env(dir: string, overrides: Record<string, string> = {}): Record<string, string> {
	return {
		PARLEY_AUTH_JWT_SECRET: SECRET,
		...swift.nodeEnv(BUCKET, 'voice/'),
		PARLEY_STORAGE_DIR: path.join(dir, 'work'),
		PARLEY_VOICE_DATABASE_PATH: path.join(dir, 'parley.db'),
		// Readiness answers from a fresh check each time (the tests flip Swift on and off).
		PARLEY_READINESS_CACHE_MS: '0',
		...overrides,
	};
}

async function startNode(dir: string, overrides: Record<string, string> = {}): Promise<{ server: ParleyServer; base: string; storage: S3VoiceStorage }> {
	const server = await ParleyServer.create(await testConfig(s3Env(dir, overrides)), testLogger());
	servers.push(server);
	return { server, base: `http://127.0.0.1:${server.http.port}`, storage: server.storage as S3VoiceStorage };
}

async function stopNode(server: ParleyServer): Promise<void> {
	await server.shutdown('test');
	servers.splice(servers.indexOf(server), 1);
}

async function statusOf(server: ParleyServer, id: string): Promise<VoiceMessage | undefined> {
	return server.voiceStore.get(id);
}

beforeAll(async () => {
	root = mkdtempSync(path.join(tmpdir(), 'parley-s3-node-'));
	swift = await startSwift();
	await swift.createBucket(BUCKET);
	raw = swift.client();
}, 60_000);

afterAll(async () => {
	for (const s of [...servers]) await s.shutdown('test end');
	raw?.destroy();
	await swift?.close();
	if (root) rmSync(root, { recursive: true, force: true });
});

describe('a node with storage.backend s3', () => {
	it('commits a finished upload to the bucket and serves it back: 200, 206 for a Range, 304 for its ETag; the work file is gone', async () => {
		const dir = mkdtempSync(path.join(root, 'a-'));
		const { server, base, storage } = await startNode(dir);
		const ada = await mintAccessToken({ userId: 'ada', channels: ['room'], ttlS: 600 }, KEY);
		const { id, bytes } = await finishUpload(server, dir);
		await waitUntil(async () => (await statusOf(server, id))?.status === 'ready', 15_000, 'the upload ready');
		const m = (await statusOf(server, id))!;
		const object = await raw.send(new GetObjectCommand({ Bucket: BUCKET, Key: storage.objectKey(m) }));
		const stored = Buffer.from(await object.Body!.transformToByteArray());
		expect(sha256(stored)).toBe(m.sha256);
		expect(stored.length).toBe(m.sizeBytes);
		expect(bytes.length).toBeGreaterThan(0);
		expect(object.ContentType).toBe('audio/ogg; codecs=opus');
		expect(existsSync(storage.workFile(m))).toBe(false);

		const auth = { authorization: `Bearer ${ada}` };
		const whole = await fetch(`${base}/voice/messages/${id}/audio`, { headers: auth });
		expect(whole.status).toBe(200);
		expect(whole.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
		expect(whole.headers.get('content-length')).toBe(String(stored.length));
		expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(m.sha256);
		const etag = whole.headers.get('etag')!;

		const part = await fetch(`${base}/voice/messages/${id}/audio`, { headers: { ...auth, range: 'bytes=100-1099' } });
		expect(part.status).toBe(206);
		expect(part.headers.get('content-range')).toBe(`bytes 100-1099/${stored.length}`);
		expect(Buffer.from(await part.arrayBuffer()).equals(stored.subarray(100, 1100))).toBe(true);
		const tail = await fetch(`${base}/voice/messages/${id}/audio`, { headers: { ...auth, range: 'bytes=-10' } });
		expect(tail.status).toBe(206);
		expect(Buffer.from(await tail.arrayBuffer()).equals(stored.subarray(stored.length - 10))).toBe(true);

		const cached = await fetch(`${base}/voice/messages/${id}/audio`, { headers: { ...auth, 'if-none-match': etag } });
		expect(cached.status).toBe(304);
		// Ownership is checked as on disk: another user's token gets 404.
		const eve = await mintAccessToken({ userId: 'eve', channels: ['elsewhere'], ttlS: 600 }, KEY);
		expect((await fetch(`${base}/voice/messages/${id}/audio`, { headers: { authorization: `Bearer ${eve}` } })).status).toBe(404);

		// Deleting removes the object.
		expect((await fetch(`${base}/voice/messages/${id}`, { method: 'DELETE', headers: auth })).status).toBe(204);
		expect(await storage.size(m)).toBeUndefined();
		await stopNode(server);
	});

	it('with presigned downloads answers 302 to a short-lived link (after the same checks) that gives the bytes', async () => {
		const dir = mkdtempSync(path.join(root, 'p-'));
		const { server, base } = await startNode(dir, { PARLEY_STORAGE_S3_PRESIGNED_DOWNLOAD_TTL_S: '60' });
		const ada = await mintAccessToken({ userId: 'ada', channels: ['room'], ttlS: 600 }, KEY);
		const { id } = await finishUpload(server, dir);
		await waitUntil(async () => (await statusOf(server, id))?.status === 'ready', 15_000, 'the upload ready');
		const m = (await statusOf(server, id))!;
		const res = await fetch(`${base}/voice/messages/${id}/audio`, { headers: { authorization: `Bearer ${ada}` }, redirect: 'manual' });
		expect(res.status).toBe(302);
		expect(res.headers.get('cache-control')).toBe('no-store');
		const location = res.headers.get('location')!;
		expect(location.startsWith(`${swift.endpoint}/${BUCKET}/voice/ada/`)).toBe(true);
		expect(location).toMatch(/X-Amz-Expires=60/);
		const direct = await fetch(location);
		expect(direct.status).toBe(200);
		expect(direct.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
		expect(sha256(Buffer.from(await direct.arrayBuffer()))).toBe(m.sha256);
		// Not ready or not yours: no link.
		const eve = await mintAccessToken({ userId: 'eve', channels: ['elsewhere'], ttlS: 600 }, KEY);
		expect((await fetch(`${base}/voice/messages/${id}/audio`, { headers: { authorization: `Bearer ${eve}` }, redirect: 'manual' })).status).toBe(404);
		await stopNode(server);
	});

	it('refuses to start with a wrong secret or a missing bucket, naming the option (npm start exits 78)', async () => {
		const dir = mkdtempSync(path.join(root, 'c-'));
		const noBucket = await ParleyServer.create(await testConfig(s3Env(dir, { PARLEY_STORAGE_S3_BUCKET: 'no-such-bucket' })), testLogger()).catch((e: unknown) => e);
		expect(noBucket).toBeInstanceOf(ConfigError);
		expect((noBucket as ConfigError).options).toEqual(['storage.s3.bucket']);

		const child = startServerProcess(await testEnv(s3Env(dir, { PARLEY_STORAGE_S3_SECRET_ACCESS_KEY: 'not-the-secret', PARLEY_LOG_LEVEL: 'error' })));
		expect(await child.exited).toBe(78);
		expect(child.stderr()).toMatch(/^parley: storage\.s3\.secretAccessKey: .*SignatureDoesNotMatch/m);
	});

	it('with Swift stopped: /readyz names storage, the API answers 503 E_STORAGE_UNAVAILABLE with Retry-After, a finished upload waits in the work folder (also across a restart) and is ready once Swift is back', async () => {
		const dir = mkdtempSync(path.join(root, 'o-'));
		let { server, base, storage } = await startNode(dir);
		const ada = await mintAccessToken({ userId: 'ada', channels: ['room'], ttlS: 600 }, KEY);
		const before = await finishUpload(server, dir);
		await waitUntil(async () => (await statusOf(server, before.id))?.status === 'ready', 15_000, 'the first upload ready');
		expect((await fetch(`${base}/readyz`)).status).toBe(200);

		await swift.stop();
		let spooled: { id: string; bytes: Buffer };
		/** The converted file as it waited in the work folder: what must reach S3. */
		let original: Buffer;
		try {
			const ready = await fetch(`${base}/readyz`);
			expect(ready.status).toBe(503);
			expect(JSON.stringify(await ready.json())).toMatch(/storage/);
			const audio = await fetch(`${base}/voice/messages/${before.id}/audio`, { headers: { authorization: `Bearer ${ada}` } });
			expect(audio.status).toBe(503);
			expect(audio.headers.get('retry-after')).toMatch(/^\d+$/);
			expect(((await audio.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'E_STORAGE_UNAVAILABLE' });

			spooled = await finishUpload(server, dir);
			const m = (await statusOf(server, spooled.id))!;
			// Converted (its duration is stored when it is spooled), then kept.
			await waitUntil(async () => (await statusOf(server, spooled.id))?.durationMs !== undefined, 10_000, 'the converted upload spooled');
			expect(existsSync(storage.workFile(m))).toBe(true);
			original = readFileSync(storage.workFile(m));
			await new Promise((r) => setTimeout(r, 1200)); // a retry or two
			expect((await statusOf(server, spooled.id))?.status).toBe('processing');
			expect(readFileSync(storage.workFile(m)).equals(original)).toBe(true);

			// The node restarts while Swift is still away: it starts (not ready) and keeps the file.
			await stopNode(server);
			({ server, base, storage } = await startNode(dir));
			expect((await fetch(`${base}/readyz`)).status).toBe(503);
			expect((await statusOf(server, spooled.id))?.status).toBe('processing');
			expect(existsSync(storage.workFile(m))).toBe(true);
		} finally {
			await swift.start();
		}
		await waitUntil(async () => (await statusOf(server, spooled.id))?.status === 'ready', 40_000, 'the spooled upload ready after Swift is back');
		const m = (await statusOf(server, spooled.id))!;
		expect(m.sha256).toBe(sha256(original!));
		expect(existsSync(storage.workFile(m))).toBe(false);
		const audio = await fetch(`${base}/voice/messages/${spooled.id}/audio`, { headers: { authorization: `Bearer ${ada}` } });
		expect(audio.status).toBe(200);
		expect(sha256(Buffer.from(await audio.arrayBuffer()))).toBe(sha256(original!));
		await waitUntil(async () => (await fetch(`${base}/readyz`)).status === 200, 10_000, '/readyz 200 again');
		await stopNode(server);
	});

	it('leaves no multipart upload open', async () => {
		const res = await raw.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
		expect(res.Uploads ?? []).toEqual([]);
	});
});
