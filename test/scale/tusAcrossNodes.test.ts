// A tus upload across two nodes that share no directory: both on one Swift s3api bucket
// (storage.backend s3) and one PostgreSQL (metadata.url), behind a small proxy standing in
// for a load balancer. Stock tus-js-client sends the first chunks through node A; the
// upload is cut off, the proxy is switched to node B, and the client resumes at the same
// URL: B answers the durable offset from the bucket, assembles the file, and the message
// becomes ready, readable through both nodes. Then Swift stops mid-upload (PATCH 503 with
// Retry-After) and comes back (the resume completes, sha256 equal).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { startPostgres, type TestPostgres } from '../../testkit/services/postgres.js';
import { startSwift, type TestSwift } from '../../testkit/services/swift.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';

const SECRET = 'tus-across-nodes-secret-0123456789-abcdef';
const BUCKET = 'parley-scale';
const CHUNK_BYTES = 64 * 1024;

/** Forwards every request to `target` (changed by the test), as a load balancer would. */
class SwitchingProxy {
	target: number;
	readonly #server: http.Server;
	readonly seen: { method: string; port: number }[] = [];

	private constructor(server: http.Server, target: number) {
		this.#server = server;
		this.target = target;
	}

	static async start(target: number): Promise<SwitchingProxy> {
		let proxy: SwitchingProxy | undefined;
		const server = http.createServer((req, res) => {
			const port = proxy!.target;
			proxy!.seen.push({ method: req.method ?? '', port });
			const upstream = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
				res.writeHead(answer.statusCode ?? 502, answer.headers);
				answer.pipe(res);
			});
			upstream.on('error', () => {
				if (!res.headersSent) res.writeHead(502);
				res.end();
			});
			req.pipe(upstream);
		});
		proxy = new SwitchingProxy(server, target);
		await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
		return proxy;
	}

	get port(): number {
		return (this.#server.address() as { port: number }).port;
	}

	close(): Promise<void> {
		this.#server.closeAllConnections();
		return new Promise((resolve) => this.#server.close(() => resolve()));
	}
}

function sha256(data: Buffer): string {
	return createHash('sha256').update(data).digest('hex');
}

describe('tus uploads across nodes on S3 + SQL, no shared directory', () => {
	let swift: TestSwift;
	let pg: TestPostgres;
	let a: ParleyServer;
	let b: ParleyServer;
	let proxy: SwitchingProxy;
	let s3: S3Client;
	let token: string;
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-tus-nodes-'));
	let wav: Buffer;

	async function node(nodeId: string): Promise<ParleyServer> {
		const config = await testConfig({
			PARLEY_AUTH_JWT_SECRET: SECRET,
			PARLEY_CLUSTER_NODE_ID: nodeId,
			PARLEY_STORAGE_BACKEND: 's3',
			PARLEY_STORAGE_S3_ENDPOINT: swift.endpoint,
			PARLEY_STORAGE_S3_BUCKET: BUCKET,
			PARLEY_STORAGE_S3_KEY_PREFIX: 'parley/',
			PARLEY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
			PARLEY_STORAGE_S3_ACCESS_KEY_ID: swift.accessKeyId,
			PARLEY_STORAGE_S3_SECRET_ACCESS_KEY: swift.secretAccessKey,
			PARLEY_METADATA_URL: pg.url,
			PARLEY_VOICE_MAX_UPLOAD_BYTES: String(4 * 1024 * 1024),
		});
		return ParleyServer.create(config, testLogger());
	}

	function uploadOptions(overrides: ConstructorParameters<typeof Upload>[1] = {}): ConstructorParameters<typeof Upload>[1] {
		return {
			endpoint: `http://127.0.0.1:${proxy.port}/voice/uploads`,
			chunkSize: CHUNK_BYTES,
			headers: { Authorization: `Bearer ${token}` },
			metadata: { destination: 'channel:room', filename: 'memo.wav', filetype: 'audio/wav' },
			retryDelays: [],
			...overrides,
		};
	}

	/** Starts an upload and aborts it after `chunks` acknowledged chunks; resolves with its URL. */
	function uploadSome(file: Buffer, chunks: number): Promise<string> {
		return new Promise((resolve, reject) => {
			let done = 0;
			const upload = new Upload(file, {
				...uploadOptions(),
				onChunkComplete: () => {
					if (++done === chunks) upload.abort().then(() => resolve(upload.url!), reject);
				},
				onError: reject,
			});
			upload.start();
		});
	}

	/** Resumes the upload at `url` (tus-js-client HEADs it first) to the end; resolves with the bytes it sent. */
	function resume(file: Buffer, url: string): Promise<number> {
		return new Promise((resolve, reject) => {
			let sent = 0;
			const upload = new Upload(file, {
				...uploadOptions({ uploadUrl: url }),
				onChunkComplete: (size) => {
					sent += size;
				},
				onSuccess: () => resolve(sent),
				onError: reject,
			});
			upload.start();
		});
	}

	async function settled(server: ParleyServer, id: string, timeoutMs = 20_000): Promise<VoiceMessage> {
		const deadline = Date.now() + timeoutMs;
		for (;;) {
			const m = await server.voiceStore.get(id);
			if (m && (m.status === 'ready' || m.status === 'failed')) return m;
			if (Date.now() > deadline) throw new Error(`message ${id} is still ${m?.status ?? 'missing'}`);
			await new Promise((r) => setTimeout(r, 100));
		}
	}

	async function audio(server: ParleyServer, id: string): Promise<Response> {
		return fetch(`http://127.0.0.1:${server.http.port}/voice/messages/${id}/audio`, { headers: { Authorization: `Bearer ${token}` } });
	}

	async function uploadKeys(): Promise<string[]> {
		const out = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'parley/.uploads/' }));
		return (out.Contents ?? []).map((o) => o.Key!);
	}

	beforeAll(async () => {
		[swift, pg] = await Promise.all([startSwift(), startPostgres()]);
		await swift.createBucket(BUCKET);
		s3 = swift.client();
		a = await node('node-a');
		b = await node('node-b');
		proxy = await SwitchingProxy.start(a.http.port);
		token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canRecord: true }, ttlS: 600 }, new TextEncoder().encode(SECRET));
		// About 6 s of speech: 16 kHz mono 16-bit, ~190 KB, so three or four 64 KiB chunks.
		const file = path.join(dir, 'memo.wav');
		execFileSync('espeak-ng', ['-w', file, 'A voice message that starts on one node and finishes on another, with nothing shared but the bucket and the database.']);
		execFileSync('sox', [file, '-r', '16000', '-c', '1', '-b', '16', path.join(dir, 'memo16.wav')]);
		wav = readFileSync(path.join(dir, 'memo16.wav'));
	}, 60_000);

	afterAll(async () => {
		await proxy?.close();
		await a?.shutdown('test end');
		await b?.shutdown('test end');
		s3?.destroy();
		await swift?.close();
		await pg?.close();
		rmSync(dir, { recursive: true, force: true });
	}, 60_000);

	it('an upload begun through node A resumes through node B with tus-js-client; ready and readable on both', async () => {
		expect(wav.length).toBeGreaterThan(3 * CHUNK_BYTES);
		proxy.target = a.http.port;
		const url = await uploadSome(wav, 2);
		const id = url.split('/').pop()!;
		expect(new URL(url).port).toBe(String(proxy.port));
		expect(proxy.seen.every((r) => r.port === a.http.port)).toBe(true);

		// The load balancer now sends everything to B (A could be gone: nothing of the upload is on A's disk).
		proxy.target = b.http.port;
		const sent = await resume(wav, url);
		expect(sent).toBe(wav.length - 2 * CHUNK_BYTES);
		expect(proxy.seen.filter((r) => r.port === b.http.port).map((r) => r.method)).toEqual(expect.arrayContaining(['HEAD', 'PATCH']));

		const onB = await settled(b, id);
		expect(onB).toMatchObject({ status: 'ready', source: 'upload', ownerId: 'ada', originalName: 'memo.wav', originalSizeBytes: wav.length, nodeId: 'node-b' });
		// What B assembled from the staged parts is the file that was sent.
		expect(onB.originalSha256).toBe(sha256(wav));
		expect((await a.voiceStore.get(id))?.status).toBe('ready');

		const viaA = await audio(a, id);
		const viaB = await audio(b, id);
		expect(viaA.status).toBe(200);
		expect(viaB.status).toBe(200);
		expect(viaA.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
		const [bytesA, bytesB] = [Buffer.from(await viaA.arrayBuffer()), Buffer.from(await viaB.arrayBuffer())];
		expect(bytesA.subarray(0, 4).toString()).toBe('OggS');
		expect(bytesA.equals(bytesB)).toBe(true);
		expect(bytesA.length).toBe(onB.sizeBytes);

		// Staged parts are gone (the record waits for its expiry); no multipart upload was started.
		expect(await uploadKeys()).toEqual([`parley/.uploads/${id}/upload.json`]);
		expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? []).toEqual([]);
	});

	it('Swift stopped mid-upload: PATCH 503 E_STORAGE_UNAVAILABLE with Retry-After; back: the resume completes, sha256 equal', async () => {
		proxy.target = a.http.port;
		const file = Buffer.concat([wav, Buffer.from('a different file')]);
		const url = await uploadSome(file, 1);
		const id = url.split('/').pop()!;
		await swift.stop();
		try {
			const refused = await fetch(url, {
				method: 'PATCH',
				headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(CHUNK_BYTES) },
				body: new Uint8Array(file.subarray(CHUNK_BYTES, 2 * CHUNK_BYTES)),
			});
			expect(refused.status).toBe(503);
			expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
			expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('E_STORAGE_UNAVAILABLE');
			const head = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` } });
			expect(head.status).toBe(503);
		} finally {
			await swift.start();
		}
		// The unacknowledged chunk is not counted; the client resumes from the durable offset, through B.
		proxy.target = b.http.port;
		expect(await resume(file, url)).toBe(file.length - CHUNK_BYTES);
		const m = await settled(b, id);
		expect(m.originalSha256).toBe(sha256(file));
		expect(m.status).toBe('ready');
	});
});
