// S3VoiceStorage and the S3 storage audit against a real S3 API (OpenStack Swift's s3api,
// SigV4 checked): commit (one PUT, multipart), streamed and ranged reads, presigned
// downloads, checkpoint assembly (a gap, an offset that does not continue), hostile keys,
// refusals and a stopped server as StorageUnavailableError / ConfigError, and no multipart
// upload left behind.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../../test/helpers/config.js';
import { testLogger } from '../../../test/helpers/logger.js';
import { startSwift, type TestSwift } from '../../../testkit/services/swift.js';
import { freePort } from '../../../testkit/ports.js';
import { ConfigError } from '../../config/loadConfig.js';
import { SqliteVoiceMessageStore } from '../store/SqliteVoiceMessageStore.js';
import type { VoiceMessage } from '../voiceMessage.js';
import { StorageUnavailableError } from './s3Errors.js';
import { createS3Location } from './s3Client.js';
import { S3ObjectSource, S3VoiceStorage } from './S3VoiceStorage.js';
import { DAMAGED_REASON, MISSING_REASON, StorageAudit } from './StorageAudit.js';
import { storageFailure } from './storageDirectory.js';
import { InvalidStorageKeyError, LocalVoiceStorage, storageKeyPath, type StorageKey } from './VoiceStorage.js';

const BUCKET = 'parley-voice';
const PREFIX = 'parley/';
const MIB = 1_048_576;

let swift: TestSwift;
let root: string;
let raw: S3Client;
const opened: S3VoiceStorage[] = [];

async function s3Options(overrides: Record<string, string> = {}): Promise<Parameters<typeof createS3Location>[0]> {
	const config = await testConfig({
		PARLEY_STORAGE_BACKEND: 's3',
		PARLEY_STORAGE_S3_ENDPOINT: swift.endpoint,
		PARLEY_STORAGE_S3_BUCKET: BUCKET,
		PARLEY_STORAGE_S3_KEY_PREFIX: PREFIX,
		PARLEY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
		PARLEY_STORAGE_S3_ACCESS_KEY_ID: swift.accessKeyId,
		PARLEY_STORAGE_S3_SECRET_ACCESS_KEY: swift.secretAccessKey,
		...overrides,
	});
	return config.storage.s3;
}

async function storageWith(overrides: Record<string, string> = {}, extra: { presignedDownloadTtlS?: number; partSizeBytes?: number; prefix?: string } = {}): Promise<S3VoiceStorage> {
	const s3 = await s3Options({ ...overrides, ...(extra.prefix && { PARLEY_STORAGE_S3_KEY_PREFIX: extra.prefix }) });
	const storage = new S3VoiceStorage({ location: createS3Location(s3), dir: mkdtempSync(path.join(root, 'node-')), log: testLogger(), ...extra });
	opened.push(storage);
	return storage;
}

function keyOf(ownerId = 'ada', createdAt = Date.UTC(2026, 11, 7)): StorageKey {
	return { ownerId, id: randomUUID(), createdAt };
}

function sha256(data: Buffer): string {
	return createHash('sha256').update(data).digest('hex');
}

async function writeWork(storage: S3VoiceStorage, key: StorageKey, bytes: Buffer): Promise<string> {
	const file = await storage.workPath(key);
	writeFileSync(file, bytes);
	return file;
}

async function readAll(source: S3ObjectSource | { read: S3ObjectSource['read'] }, start: number, length: number, chunk = 64 * 1024): Promise<Buffer> {
	const parts: Buffer[] = [];
	let at = start;
	while (at < start + length) {
		const buf = Buffer.alloc(Math.min(chunk, start + length - at));
		const { bytesRead } = await source.read(buf, 0, buf.length, at);
		if (bytesRead === 0) break;
		parts.push(buf.subarray(0, bytesRead));
		at += bytesRead;
	}
	return Buffer.concat(parts);
}

async function multipartUploads(): Promise<number> {
	const res = await raw.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
	return res.Uploads?.length ?? 0;
}

async function keysUnder(prefix: string): Promise<string[]> {
	const res = await raw.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
	return (res.Contents ?? []).map((o) => o.Key!).sort();
}

beforeAll(async () => {
	root = mkdtempSync(path.join(tmpdir(), 'parley-s3-voice-'));
	swift = await startSwift();
	await swift.createBucket(BUCKET);
	raw = swift.client();
}, 60_000);

afterAll(async () => {
	for (const s of opened) s.client.destroy();
	raw?.destroy();
	await swift?.close();
	if (root) rmSync(root, { recursive: true, force: true });
});

describe('keys', () => {
	it('are <prefix><owner>/<yyyymm>/<id>.ogg on S3 and the same path on disk, and hostile ids are refused before anything is built', async () => {
		const storage = await storageWith();
		const key = keyOf('ada', Date.UTC(2026, 0, 31, 23, 59));
		expect(storage.objectKey(key)).toBe(`parley/ada/202601/${key.id}.ogg`);
		expect(storage.workFile(key)).toBe(path.join(storage.workRoot, 'ada', '202601', `${key.id}.ogg`));
		expect(new LocalVoiceStorage('/srv/voice').pathOf(key)).toBe(`/srv/voice/ada/202601/${key.id}.ogg`);
		const hostile: StorageKey[] = [
			{ ...key, ownerId: '../eve' },
			{ ...key, ownerId: '.recordings' },
			{ ...key, ownerId: '.uploads' },
			{ ...key, ownerId: 'a/b' },
			{ ...key, ownerId: '' },
			{ ...key, ownerId: 'ada\u0000' },
			{ ...key, id: '../../etc/passwd' },
			{ ...key, id: `${key.id}/../x` },
			{ ...key, id: key.id.toUpperCase() },
			{ ...key, createdAt: Number.NaN },
			{ ...key, createdAt: Date.UTC(10_000, 0) },
			{ ...key, ownerId: 42 as unknown as string },
		];
		for (const k of hostile) {
			expect(() => storageKeyPath(k), JSON.stringify(k)).toThrow(InvalidStorageKeyError);
			expect(() => storage.objectKey(k)).toThrow(InvalidStorageKeyError);
			await expect(storage.workPath(k)).rejects.toThrow(InvalidStorageKeyError);
			await expect(storage.putCheckpoint(k, 0, 0, Buffer.from('x'))).rejects.toThrow(InvalidStorageKeyError);
			await expect(storage.fetchToWorkPath(k)).rejects.toThrow(InvalidStorageKeyError);
			await expect(storage.remove(k)).rejects.toThrow(InvalidStorageKeyError);
		}
		expect(await keysUnder('')).not.toContainEqual(expect.stringContaining('..'));
	});
});

describe('files', () => {
	it('commits a small file with one PUT (audio/ogg), then reads it back streamed and by ranges, opening one GET per sequential read', async () => {
		const storage = await storageWith();
		const key = keyOf();
		const bytes = randomBytes(300_000);
		const work = await writeWork(storage, key, bytes);
		await storage.commit(key);
		expect(existsSync(work)).toBe(false);
		const head = await raw.send(new HeadObjectCommand({ Bucket: BUCKET, Key: storage.objectKey(key) }));
		expect(head.ContentType).toBe('audio/ogg; codecs=opus');
		expect(head.ContentLength).toBe(bytes.length);
		expect(await storage.size(key)).toBe(bytes.length);

		const file = (await storage.openRead(key))!;
		expect(file.size).toBe(bytes.length);
		const source = file.handle as S3ObjectSource;
		expect(source.opens).toBe(0); // HEAD only until the first read
		expect(sha256(await readAll(source, 0, bytes.length))).toBe(sha256(bytes));
		expect(source.opens).toBe(1);
		// A seek reopens at the new position.
		expect((await readAll(source, 1000, 5000)).equals(bytes.subarray(1000, 6000))).toBe(true);
		expect(source.opens).toBe(2);
		expect((await readAll(source, 6000, 10)).equals(bytes.subarray(6000, 6010))).toBe(true);
		expect(source.opens).toBe(2);
		await source.close();
		await expect(source.read(Buffer.alloc(1), 0, 1, 0)).rejects.toThrow(/closed/);

		expect(await storage.openRead(keyOf())).toBeUndefined();
		expect(await storage.size(keyOf())).toBeUndefined();
	});

	it('commits a big file as a multipart upload and leaves no multipart upload behind; fetchToWorkPath downloads it again', async () => {
		const storage = await storageWith({}, { partSizeBytes: 5 * MIB });
		const key = keyOf('bob');
		const bytes = randomBytes(11 * MIB + 123);
		await writeWork(storage, key, bytes);
		await storage.commit(key);
		expect(await storage.size(key)).toBe(bytes.length);
		expect(await multipartUploads()).toBe(0);

		const other = await storageWith(); // another node: nothing local
		const fetched = await other.fetchToWorkPath(key);
		expect(fetched).toBe(other.workFile(key));
		expect(sha256(readFileSync(fetched!))).toBe(sha256(bytes));
		// Local copies win (no download).
		writeFileSync(fetched!, 'local');
		expect(readFileSync((await other.fetchToWorkPath(key))!, 'utf8')).toBe('local');
		expect(await other.fetchToWorkPath(keyOf())).toBeUndefined();
	});

	it('presigns a GET with the Ogg content type; the link gives the bytes (and ranges), a tampered one is refused', async () => {
		const storage = await storageWith({}, { presignedDownloadTtlS: 60 });
		const key = keyOf();
		const bytes = randomBytes(40_000);
		await writeWork(storage, key, bytes);
		await storage.commit(key);
		const url = (await storage.downloadUrl(key))!;
		expect(url).toMatch(/X-Amz-Signature=/);
		const res = await fetch(url);
		expect(res.status).toBe(200);
		expect(res.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
		expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
		const ranged = await fetch(url, { headers: { range: 'bytes=10-19' } });
		expect(ranged.status).toBe(206);
		expect(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(10, 20))).toBe(true);
		const tampered = url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
		expect((await fetch(tampered)).status).toBe(403);
		expect(await (await storageWith()).downloadUrl(key)).toBeUndefined();
	});

	it('remove deletes the object, the checkpoints and the work file', async () => {
		const storage = await storageWith();
		const key = keyOf();
		await writeWork(storage, key, Buffer.from('abc'));
		await storage.commit(key);
		await storage.putCheckpoint(key, 0, 0, Buffer.from('ab'));
		const work = await writeWork(storage, key, Buffer.from('abc'));
		await storage.remove(key);
		expect(await storage.size(key)).toBeUndefined();
		expect(await keysUnder(storage.checkpointPrefix(key))).toEqual([]);
		expect(existsSync(work)).toBe(false);
		await storage.remove(key); // nothing there is fine
	});
});

describe('checkpoints', () => {
	it('are assembled in index order on a node that has no work file; commit removes them', async () => {
		const writer = await storageWith();
		const key = keyOf();
		const file = randomBytes(50_000);
		const cuts = [0, 7000, 7001, 30_000, 50_000];
		// Stored out of order: assembly sorts by index, not by listing or arrival.
		for (const i of [2, 0, 3, 1]) await writer.putCheckpoint(key, i, cuts[i]!, file.subarray(cuts[i], cuts[i + 1]));
		const head = await raw.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${writer.checkpointPrefix(key)}00000002` }));
		expect(head.Metadata?.offset).toBe('7001');

		const finisher = await storageWith();
		const assembled = (await finisher.fetchToWorkPath(key))!;
		expect(sha256(readFileSync(assembled))).toBe(sha256(file));
		await finisher.commit(key);
		expect(await keysUnder(writer.checkpointPrefix(key))).toEqual([]);
		expect(await finisher.size(key)).toBe(file.length);
	});

	it('stop at the first gap, and at a checkpoint whose offset does not continue the bytes before it; none: undefined', async () => {
		const storage = await storageWith();
		const gap = keyOf();
		const bytes = randomBytes(3000);
		await storage.putCheckpoint(gap, 0, 0, bytes.subarray(0, 1000));
		await storage.putCheckpoint(gap, 1, 1000, bytes.subarray(1000, 2000));
		await storage.putCheckpoint(gap, 3, 3000, Buffer.from('after the gap'));
		expect(readFileSync((await storage.fetchToWorkPath(gap))!).equals(bytes.subarray(0, 2000))).toBe(true);

		const skewed = keyOf();
		await storage.putCheckpoint(skewed, 0, 0, bytes.subarray(0, 1000));
		await storage.putCheckpoint(skewed, 1, 900, bytes.subarray(900, 2000)); // overlaps: not a continuation
		expect(readFileSync((await storage.fetchToWorkPath(skewed))!).equals(bytes.subarray(0, 1000))).toBe(true);

		const noFirst = keyOf();
		await storage.putCheckpoint(noFirst, 1, 1000, bytes.subarray(1000, 2000));
		expect(await storage.fetchToWorkPath(noFirst)).toBeUndefined();
		expect(await storage.fetchToWorkPath(keyOf())).toBeUndefined();
		// Nothing half-written stays in the work folder.
		expect(existsSync(storage.workFile(noFirst))).toBe(false);
		await expect(storage.putCheckpoint(gap, -1, 0, Buffer.from('x'))).rejects.toThrow(RangeError);
	});
});

describe('failures', () => {
	it('refusals are StorageUnavailableError (unavailable to the API) and, at startup, ConfigErrors naming the option', async () => {
		const wrongSecret = await storageWith({ PARLEY_STORAGE_S3_SECRET_ACCESS_KEY: 'not-the-secret' });
		const err = await wrongSecret.checkWritable().catch((e: unknown) => e);
		expect(err).toBeInstanceOf(StorageUnavailableError);
		expect(err).toMatchObject({ kind: 'refused', s3Code: 'SignatureDoesNotMatch', code: 'ES3UNAVAILABLE' });
		expect(storageFailure(err)).toBe('unavailable');
		await expect(wrongSecret.openRead(keyOf())).rejects.toThrow(StorageUnavailableError);
		await expect(wrongSecret.verifyConfig()).rejects.toSatisfy((e: unknown) => e instanceof ConfigError && e.options[0] === 'storage.s3.secretAccessKey');

		// AWS answers InvalidAccessKeyId (-> storage.s3.accessKeyId first); Swift's s3api cannot
		// tell an unknown key from a wrong secret and says SignatureDoesNotMatch: both are named.
		const wrongKey = await storageWith({ PARLEY_STORAGE_S3_ACCESS_KEY_ID: 'test:nobody' });
		await expect(wrongKey.verifyConfig()).rejects.toSatisfy((e: unknown) => e instanceof ConfigError && e.options.includes('storage.s3.accessKeyId'));

		const noBucket = await storageWith({ PARLEY_STORAGE_S3_BUCKET: 'no-such-bucket' });
		await expect(noBucket.verifyConfig()).rejects.toSatisfy((e: unknown) => e instanceof ConfigError && e.options[0] === 'storage.s3.bucket' && /no-such-bucket/.test(e.message));
		await expect(noBucket.commit(await (async () => { const k = keyOf(); await writeWork(noBucket, k, Buffer.from('x')); return k; })())).rejects.toMatchObject({ kind: 'refused', s3Code: 'NoSuchBucket' });

		await expect((await storageWith()).verifyConfig()).resolves.toBeUndefined();
	});

	it('an endpoint nobody answers is unreachable (not a ConfigError at startup); a commit fails quickly and keeps its work file', async () => {
		// A closed port stands for a stopped server here (test/scale/s3Storage.test.ts stops
		// Swift itself and checks what comes after).
		const storage = await storageWith({ PARLEY_STORAGE_S3_ENDPOINT: `http://127.0.0.1:${await freePort()}` }, { partSizeBytes: 5 * MIB });
		const key = keyOf();
		const work = await writeWork(storage, key, randomBytes(6 * MIB));
		const started = performance.now();
		const err = await storage.commit(key).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(StorageUnavailableError);
		expect(err).toMatchObject({ kind: 'unreachable', s3Code: 'ECONNREFUSED' });
		expect(performance.now() - started).toBeLessThan(5000);
		expect(existsSync(work)).toBe(true);
		await expect(storage.checkWritable()).rejects.toThrow(StorageUnavailableError);
		expect(await storage.verifyConfig()).toBeInstanceOf(StorageUnavailableError);
		expect(storageFailure(await storage.size(key).catch((e: unknown) => e))).toBe('unavailable');
		expect(storageFailure(await storage.fetchToWorkPath(keyOf()).catch((e: unknown) => e))).toBe('unavailable');
	});
});

describe('credentials', () => {
	/** Runs `body` with these environment variables set (undefined: unset), then puts them back. */
	async function withEnv<T>(vars: Record<string, string | undefined>, body: () => Promise<T>): Promise<T> {
		const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
		const apply = (values: Record<string, string | undefined>) => {
			for (const [k, v] of Object.entries(values)) {
				if (v === undefined) delete process.env[k];
				else process.env[k] = v;
			}
		};
		apply(vars);
		try {
			return await body();
		} finally {
			apply(saved);
		}
	}
	const noConfigKeys = { PARLEY_STORAGE_S3_ACCESS_KEY_ID: '', PARLEY_STORAGE_S3_SECRET_ACCESS_KEY: '' };
	const chain = { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined, AWS_SHARED_CREDENTIALS_FILE: undefined, AWS_CONFIG_FILE: undefined };

	it('with no keys in the config, come from the standard AWS chain: the environment, then a profile', async () => {
		// The environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
		await withEnv({ ...chain, AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey }, async () => {
			const storage = await storageWith(noConfigKeys);
			await expect(storage.verifyConfig()).resolves.toBeUndefined();
			const key = keyOf();
			await writeWork(storage, key, Buffer.from('from the environment'));
			await storage.commit(key);
			expect(await storage.size(key)).toBe(20);
		});
		await withEnv({ ...chain, AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: 'not-the-secret' }, async () => {
			const storage = await storageWith(noConfigKeys);
			await expect(storage.checkWritable()).rejects.toMatchObject({ kind: 'refused', s3Code: 'SignatureDoesNotMatch' });
		});
		// A named profile in a shared credentials file (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE).
		const dir = mkdtempSync(path.join(root, 'aws-'));
		const credentials = path.join(dir, 'credentials');
		writeFileSync(credentials, `[default]\naws_access_key_id = test:nobody\naws_secret_access_key = wrong\n\n[parley]\naws_access_key_id = ${swift.accessKeyId}\naws_secret_access_key = ${swift.secretAccessKey}\n`);
		await withEnv({ ...chain, AWS_PROFILE: 'parley', AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_CONFIG_FILE: path.join(dir, 'config') }, async () => {
			const storage = await storageWith(noConfigKeys);
			await expect(storage.verifyConfig()).resolves.toBeUndefined();
		});
		// Keys in the config win over the chain.
		await withEnv({ ...chain, AWS_ACCESS_KEY_ID: 'test:nobody', AWS_SECRET_ACCESS_KEY: 'wrong' }, async () => {
			await expect((await storageWith()).verifyConfig()).resolves.toBeUndefined();
		});
	});
});

describe('storage audit on S3', () => {
	it('fails ready messages whose object is gone or resized, quarantines orphans under .orphans/, removes stale checkpoints and work files, keeps the spool', async () => {
		const prefix = `audit-${randomBytes(3).toString('hex')}/`;
		const storage = await storageWith({}, { prefix });
		const store = new SqliteVoiceMessageStore(path.join(root, `audit-${randomUUID()}.db`), { nodeId: 'n1' });
		try {
			const now = Date.now();
			const record = (ownerId: string, sizeBytes: number, status: VoiceMessage['status'] = 'ready'): VoiceMessage => ({
				id: randomUUID(),
				ownerId,
				destination: { kind: 'channel', channel: 'room' },
				source: 'recording',
				status,
				sizeBytes,
				createdAt: now,
				updatedAt: now,
			});
			const body = randomBytes(1000);
			const kept = record('ada', 1000);
			const gone = record('ada', 1000);
			const resized = record('bob', 1000);
			const spooled = record('ada', 1000, 'processing');
			const finished = record('eve', 1000);
			for (const m of [kept, gone, resized, spooled, finished]) await store.insert(m);
			for (const m of [kept, resized, finished]) {
				await writeWork(storage, m, m === resized ? body.subarray(0, 999) : body);
				await storage.commit(m);
			}
			await storage.putCheckpoint(finished, 0, 0, body); // a stale checkpoint of a ready message
			await storage.putCheckpoint(spooled, 0, 0, body); // a processing message's: kept
			const spoolFile = await writeWork(storage, spooled, body);
			const leftoverWork = await writeWork(storage, finished, body);
			const old = new Date(now - 60_000);
			utimesSync(spoolFile, old, old);
			utimesSync(leftoverWork, old, old);
			const orphanKey = `${prefix}zed/202612/${randomUUID()}.ogg`;
			await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: orphanKey, Body: body }));
			const foreign = `${prefix}.uploads/${randomUUID()}/00000000`; // the upload store's: not ours to judge
			await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: foreign, Body: body }));
			// Written "before this process started".
			await new Promise((r) => setTimeout(r, 1100));

			const report = await StorageAudit.run({ store, storage, uploadsDir: path.join(root, 'no-uploads'), shared: false, hashAll: false, startedAtMs: Date.now(), log: testLogger() });
			expect(report).toMatchObject({ readyChecked: 4, missing: 1, damaged: 1, markedFailed: 2, files: 4, orphans: 1, quarantined: 1, repaired: true, errors: 0 });
			expect(report.tempRemoved).toBe(2); // the stale checkpoint, the leftover work file
			expect((await store.get(gone.id))?.failureReason).toBe(MISSING_REASON);
			expect((await store.get(resized.id))?.failureReason).toBe(DAMAGED_REASON);
			expect((await store.get(kept.id))?.status).toBe('ready');
			const keys = await keysUnder(prefix);
			expect(keys).not.toContain(orphanKey);
			expect(keys).toContain(`${prefix}.orphans/${orphanKey.slice(prefix.length)}`);
			const moved = await raw.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${prefix}.orphans/${orphanKey.slice(prefix.length)}` }));
			expect(Buffer.from(await moved.Body!.transformToByteArray()).equals(body)).toBe(true);
			expect(keys).toContain(foreign);
			expect(keys).toContain(`${storage.checkpointPrefix(spooled)}00000000`);
			expect(keys).not.toContain(`${storage.checkpointPrefix(finished)}00000000`);
			expect(existsSync(spoolFile)).toBe(true);
			expect(existsSync(leftoverWork)).toBe(false);

			// Shared (a cluster): reported, nothing changed.
			const another = `${prefix}zed/202612/${randomUUID()}.ogg`;
			await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: another, Body: body }));
			const shared = await StorageAudit.run({ store, storage, uploadsDir: path.join(root, 'no-uploads'), shared: true, hashAll: false, startedAtMs: Date.now() + 5000, log: testLogger() });
			expect(shared).toMatchObject({ orphans: 1, quarantined: 0, repaired: false });
			expect(await keysUnder(prefix)).toContain(another);
		} finally {
			await store.close();
		}
	});

	it('changes nothing when most of what it checks looks lost (the wrong bucket prefix or database)', async () => {
		const prefix = `valve-${randomBytes(3).toString('hex')}/`;
		const storage = await storageWith({}, { prefix });
		const store = new SqliteVoiceMessageStore(path.join(root, `valve-${randomUUID()}.db`), { nodeId: 'n1' });
		try {
			await Promise.all(
				Array.from({ length: 25 }, async () => {
					await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}ada/202612/${randomUUID()}.ogg`, Body: 'x' }));
					await store.insert({ id: randomUUID(), ownerId: 'ada', destination: { kind: 'channel', channel: 'room' }, source: 'upload', status: 'ready', sizeBytes: 1, createdAt: Date.now(), updatedAt: Date.now() });
				}),
			);
			const report = await StorageAudit.run({ store, storage, uploadsDir: path.join(root, 'no-uploads'), shared: false, hashAll: false, startedAtMs: Date.now(), log: testLogger() });
			expect(report).toMatchObject({ readyChecked: 25, missing: 25, markedFailed: 0, orphans: 25, quarantined: 0, repaired: false });
			expect((await store.listByStatus('ready')).length).toBe(25);
			expect((await keysUnder(prefix)).length).toBe(25);
		} finally {
			await store.close();
		}
	});
});

it('leaves no multipart upload open after all of the above', async () => {
	expect(await multipartUploads()).toBe(0);
});
