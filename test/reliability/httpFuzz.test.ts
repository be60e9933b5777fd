// Hostile HTTP input to the voice-message API and tus uploads, through the whole server
// (storage, SQLite, the transcoder): fuzzed tus headers and offsets from a seeded PRNG,
// concurrent PATCHes racing for one upload, huge and negative lengths, path traversal in
// every id, wrong content types, files that declare hours in a few bytes, and an ffmpeg
// that hangs. Each is refused or bounded with a clear status (never a 5xx), nothing is
// written outside the storage directory, and the server keeps serving.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oggPageCrc, readPages } from '../../server/voice/ogg/OggPageWriter.js';
import { processAlive } from '../helpers/process.js';
import { writeToneWav } from '../helpers/wav.js';
import { hangingTools } from './helpers/fakeTools.js';
import { startHarness, waitUntil, type Harness } from './helpers/harness.js';
import { Prng } from './helpers/prng.js';
import { createUpload, createUploadId, headUpload, metadata, patchUpload, uploadFile, type TusTarget } from './helpers/tus.js';

const SEED = 0x7e57_4771;
const MAX_UPLOAD_BYTES = 256 * 1024;
const MAX_DURATION_MS = 10_000;
const TUS_STATUSES = new Set([200, 201, 204, 400, 401, 403, 404, 409, 410, 412, 413, 415, 460]);

/** Every file under `dir`, relative, with its size. */
function tree(dir: string): Map<string, number> {
	const out = new Map<string, number>();
	const walk = (d: string) => {
		for (const entry of readdirSync(d, { withFileTypes: true })) {
			const p = path.join(d, entry.name);
			if (entry.isDirectory()) walk(p);
			else out.set(path.relative(dir, p), statSync(p).size);
		}
	};
	walk(dir);
	return out;
}

describe('HTTP and voice messages under hostile input', () => {
	let h: Harness;
	let ada: TusTarget;
	let bob: TusTarget;
	/** The storage dir's parent (a fresh temp dir): nothing may appear here but storage and the database. */
	let root: string;
	let rootBefore: string[];

	beforeAll(async () => {
		h = await startHarness({
			PARLEY_VOICE_MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
			PARLEY_VOICE_MAX_DURATION_MS: String(MAX_DURATION_MS),
			PARLEY_VOICE_TRANSCODE_TIMEOUT_MS: '1500',
			PARLEY_VOICE_TRANSCODE_CONCURRENCY: '2',
		});
		ada = { base: h.base, token: await h.token({ userId: 'ada', channels: ['room'] }) };
		bob = { base: h.base, token: await h.token({ userId: 'bob', channels: ['room'] }) };
		root = path.dirname(h.server.storageDir);
		rootBefore = readdirSync(root).sort();
	});

	afterAll(async () => {
		await h.close();
	});

	/** Waits for a voice message to leave `processing`; resolves with it. */
	async function settled(id: string, timeoutMs = 10_000) {
		await waitUntil(async () => ['ready', 'failed'].includes((await h.server.voiceStore.get(id))?.status ?? ''), timeoutMs, `message ${id} settled`, 50);
		return (await h.server.voiceStore.get(id))!;
	}

	it('answers fuzzed tus requests with tus statuses only, and stores nothing it should not', async () => {
		const rng = Prng.fromEnv(SEED);
		const own: string[] = [];
		for (let i = 0; i < 5; i++) own.push(await createUploadId(ada, rng.int(1, 4096)));
		const others = [await createUploadId(bob, 100)];
		const lengths = ['', '-1', '0', '1', '2048', '100', '1e3', '0x10', ' 5', '5 ', '+5', '1.5', '007', '99999999999999999999', '9007199254740993', String(MAX_UPLOAD_BYTES), String(MAX_UPLOAD_BYTES + 1), 'NaN', '²', '1 2'];
		const ids = () => rng.pick([...own, ...others, crypto.randomUUID(), '..', '%2e%2e', '..%2F..%2Fetc%2Fpasswd', `${own[0]}%00`, own[0]!.toUpperCase(), 'x'.repeat(300), '%C0%AE%C0%AE', '.uploads']);
		// Header values must be Latin-1 without control characters (fetch refuses others).
		const header = (values: string[]) => (rng.chance(0.15) ? rng.string(40).replace(/[^\x20-\x7e\xa0-\xff]/g, '~') : rng.pick(values));
		const b64 = (text: string) => Buffer.from(text).toString('base64');
		const metadataValues = [
			metadata({ destination: 'channel:room' }),
			metadata({ destination: 'user:bob', filename: '../../etc/passwd' }),
			metadata({ destination: 'user:../../etc' }),
			metadata({ destination: 'channel:../x' }),
			metadata({ destination: 'channel:forbidden' }),
			`destination ${b64('channel:room')},destination ${b64('channel:room')}`,
			'destination not@base64',
			`destination ${b64('channel:room')},filename ${b64('x'.repeat(300))}`,
			'',
		];
		const statuses: Record<number, number> = {};
		const bad: string[] = [];
		const REQUESTS = 600;
		for (let i = 0; i < REQUESTS; i++) {
			const method = rng.pick(['POST', 'HEAD', 'PATCH', 'PATCH', 'DELETE', 'OPTIONS']);
			const headers: Record<string, string> = {};
			// Mostly right on the checks that come first, so the fuzz gets past them.
			if (rng.chance(0.97)) headers['tus-resumable'] = rng.chance(0.85) ? '1.0.0' : header(['0.2.2', '1.0', '', '1.0.0 ']);
			if (rng.chance(0.97)) headers.authorization = rng.chance(0.75) ? `Bearer ${ada.token}` : rng.pick([`Bearer ${bob.token}`, 'Bearer x.y.z', 'Basic YTpi', `Bearer ${ada.token}x`, '']);
			let body: Buffer | undefined;
			let url = `${h.base}/voice/uploads`;
			if (method === 'POST') {
				headers['upload-length'] = header(lengths);
				headers['upload-metadata'] = header(metadataValues);
				if (rng.chance(0.1)) headers['upload-defer-length'] = '1';
			} else {
				url += `/${ids()}`;
			}
			if (method === 'PATCH') {
				headers['content-type'] = header(['application/offset+octet-stream', 'application/offset+octet-stream', 'Application/Offset+Octet-Stream; x=y', 'text/plain', 'application/json', 'multipart/form-data; boundary=x']);
				headers['upload-offset'] = header(['0', '0', '1', '-1', '18446744073709551616', '1e2', ' 0', String(rng.int(0, 5000))]);
				if (rng.chance(0.2)) headers['upload-checksum'] = header(['sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=', 'sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', 'md5 1B2M2Y8AsgTpgAmY7PhCfg==', 'sha1', 'sha1 !!!']);
				body = rng.bytes(rng.int(0, 3000));
			}
			const res = await fetch(url, { method, headers, ...(body && { body: new Uint8Array(body) }) });
			statuses[res.status] = (statuses[res.status] ?? 0) + 1;
			const text = await res.text();
			if (!TUS_STATUSES.has(res.status)) bad.push(`${method} ${url.slice(h.base.length)} ${JSON.stringify(headers)} -> ${res.status} ${text.slice(0, 200)}`);
			// fetch resolves `..` and `%2e%2e` itself: those requests leave the tus routes.
			const onTusRoute = new URL(url).pathname.startsWith('/voice/uploads');
			if (onTusRoute && res.headers.get('tus-resumable') !== '1.0.0') bad.push(`${method} without Tus-Resumable in the reply (${res.status})`);
			if (res.status >= 400 && method !== 'HEAD' && res.status !== 460) {
				const code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
				if (typeof code !== 'string' || !code.startsWith('E_')) bad.push(`${res.status} without an error code: ${text.slice(0, 200)}`);
			}
		}
		console.log(`tus fuzz (seed ${rng.seed}): ${REQUESTS} requests, statuses ${JSON.stringify(statuses)}`);
		expect(bad.slice(0, 5), `seed ${rng.seed}`).toEqual([]);

		// Only upload files, each no longer than its declared length; nothing outside storage.
		await waitUntil(() => h.server.transcoder.running + h.server.transcoder.queued === 0, 10_000, 'conversions done');
		const files = tree(h.server.storageDir);
		for (const [name, size] of files) {
			const m = /^\.uploads\/([0-9a-f-]{36})\.(part|json)$/.exec(name) ?? /^(ada|bob)\/\d{6}\/([0-9a-f-]{36})\.ogg$/.exec(name);
			expect(m, name).not.toBeNull();
			if (name.endsWith('.part')) {
				const record = JSON.parse(readFileSync(path.join(h.server.storageDir, name.replace(/\.part$/, '.json')), 'utf8')) as { lengthBytes: number };
				expect(size).toBeLessThanOrEqual(record.lengthBytes);
			}
		}
		expect(readdirSync(root).sort()).toEqual(rootBefore);
		expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
	}, 60_000);

	it('lets exactly one of 20 concurrent PATCHes at an offset win, and the file comes out whole', async () => {
		const rng = Prng.fromEnv(SEED);
		const file = Buffer.alloc(64 * 1024);
		for (let i = 0; i < file.length; i++) file[i] = (i * 7 + (i >> 8)) & 0xff;
		const id = await createUploadId(ada, file.length);
		// Twenty different bodies at offset 0: one wins, the rest are told the offset moved.
		const racing = await Promise.all(Array.from({ length: 20 }, (_, k) => patchUpload(ada, id, 0, Buffer.alloc(1024, k))));
		const codes = racing.map((r) => r.status);
		expect(codes.filter((c) => c === 204)).toHaveLength(1);
		expect(codes.filter((c) => c === 409)).toHaveLength(19);
		expect((await headUpload(ada, id)).headers.get('upload-offset')).toBe('1024');
		// Start again from a fresh upload: every chunk sent at once, repeatedly, until done.
		const id2 = await createUploadId(ada, file.length);
		const CHUNK = 4096;
		let rounds = 0;
		for (;;) {
			const offset = Number((await headUpload(ada, id2)).headers.get('upload-offset'));
			if (offset === file.length) break;
			rounds++;
			// In a shuffled order, so most arrive at the wrong offset.
			const order = Array.from({ length: file.length / CHUNK }, (_, k) => k).sort(() => rng.next() - 0.5);
			const replies = await Promise.all(order.map((k) => patchUpload(ada, id2, k * CHUNK, file.subarray(k * CHUNK, (k + 1) * CHUNK))));
			for (const r of replies) expect([204, 409, 404]).toContain(r.status);
		}
		const m = await settled(id2);
		expect(m.originalSha256).toBe(createHash('sha256').update(file).digest('hex'));
		console.log(`racing chunks: the upload completed whole after ${rounds} rounds of 16 concurrent PATCHes`);
	}, 60_000);

	it('refuses huge, negative and malformed lengths and offsets with 400 or 413', async () => {
		const cases: [string, number][] = [
			['-1', 400],
			['0', 400],
			['1e6', 400],
			['9007199254740993', 400],
			['99999999999999999999999999', 400],
			[String(MAX_UPLOAD_BYTES + 1), 413],
			[String(2 ** 40), 413],
		];
		for (const [length, status] of cases) expect((await createUpload(ada, length)).status, length).toBe(status);
		const id = await createUploadId(ada, 100);
		for (const offset of ['-1', '1.5', '0x0', '', '+0', '0 0']) expect((await patchUpload(ada, id, offset, Buffer.alloc(1))).status, offset).toBe(400);
		// A body past the declared length is refused and nothing of it is kept.
		expect((await patchUpload(ada, id, 0, Buffer.alloc(101))).status).toBe(413);
		expect((await headUpload(ada, id)).headers.get('upload-offset')).toBe('0');
		// A body over the HTTP chunk limit (8 MiB) is cut off with 413 before it is buffered.
		const huge = await createUploadId(ada, MAX_UPLOAD_BYTES);
		expect((await patchUpload(ada, huge, 0, Buffer.alloc(9 * 1024 * 1024))).status).toBe(413);
	});

	it('404s path traversal in every id, writing nothing outside storage', async () => {
		const before = tree(h.server.storageDir);
		const real = await createUploadId(ada, 10);
		const probes = ['..', '%2e%2e', '..%2F..%2Fetc%2Fpasswd', '..%5C..%5Cwindows', '%2F', `${real}%00`, `${real}%2F..`, '%C0%AE%C0%AE%C0%AF', '....%2F%2F', '.uploads', encodeURIComponent(`../.uploads/${real}.json`), 'x'.repeat(2000)];
		const auth = { authorization: `Bearer ${ada.token}` };
		for (const p of probes) {
			expect((await fetch(`${h.base}/voice/messages/${p}`, { headers: auth })).status, p).toBe(404);
			expect((await fetch(`${h.base}/voice/messages/${p}/audio`, { headers: auth })).status, p).toBe(404);
			expect((await fetch(`${h.base}/voice/messages/${p}`, { method: 'DELETE', headers: auth })).status, p).toBe(404);
			expect((await headUpload(ada, p)).status, p).toBe(404);
			expect((await patchUpload(ada, p, 0, Buffer.from('pwned'))).status, p).toBe(404);
			expect((await fetch(`${h.base}/voice/uploads/${p}`, { method: 'DELETE', headers: { ...auth, 'tus-resumable': '1.0.0' } })).status, p).toBe(404);
		}
		// Written out raw: fetch would resolve the dot segments itself.
		for (const target of ['/voice/uploads/../../x', `/voice/uploads/%2e%2e/%2e%2e/${real}`, '/voice/messages/../uploads', '/voice/messages/..%2f..%2fparley.db/audio']) {
			const reply = await new Promise<string>((resolve) => {
				let text = '';
				const s = net.connect(h.server.http.port, '127.0.0.1', () =>
					s.end(`PATCH ${target} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer ${ada.token}\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 5\r\nConnection: close\r\n\r\npwned`),
				);
				s.on('data', (d) => (text += d.toString()));
				s.on('end', () => resolve(text));
			});
			expect(reply.slice(0, 12), target).toBe('HTTP/1.1 404');
		}
		// Traversal in query parameters and upload metadata.
		for (const q of ['user=../../etc', 'channel=../x', 'channel=room&before=../../x', 'user=ada&limit=-1', 'channel=room&user=ada', 'channel=%2e%2e']) {
			expect((await fetch(`${h.base}/voice/messages?${q}`, { headers: auth })).status, q).toBe(400);
		}
		expect((await createUpload(ada, 10, { destination: 'user:../../etc' })).status).toBe(400);
		const named = await createUploadId(ada, 10, { destination: 'channel:room', filename: '../../../../tmp/pwned', filetype: '../x' });
		const after = tree(h.server.storageDir);
		const added = [...after.keys()].filter((k) => !before.has(k)).sort();
		expect(added).toEqual([`.uploads/${named}.json`, `.uploads/${named}.part`, `.uploads/${real}.json`, `.uploads/${real}.part`].sort());
		expect(readdirSync(root).sort()).toEqual(rootBefore);
	});

	it('refuses PATCH bodies that are not application/offset+octet-stream with 415', async () => {
		const id = await createUploadId(ada, 10);
		for (const type of ['text/plain', 'application/json', 'application/octet-stream', 'multipart/form-data; boundary=x', 'application/offset+octet-streamx', '']) {
			expect((await patchUpload(ada, id, 0, Buffer.from('12345'), { 'content-type': type })).status, type).toBe(415);
		}
		expect((await headUpload(ada, id)).headers.get('upload-offset')).toBe('0');
	});

	it('fails tiny files that declare hours of audio, quickly and with the reason', async () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-bomb-'));
		// A WAV header declaring 4 GB of 8 kHz 8-bit mono (about 149 hours), then 1 KB of data.
		const wav = Buffer.alloc(44 + 1024, 0x80);
		wav.write('RIFF', 0);
		wav.writeUInt32LE(0xffffffff - 8, 4);
		wav.write('WAVEfmt ', 8);
		wav.writeUInt32LE(16, 16);
		wav.writeUInt16LE(1, 20);
		wav.writeUInt16LE(1, 22);
		wav.writeUInt32LE(8000, 24);
		wav.writeUInt32LE(8000, 28);
		wav.writeUInt16LE(1, 32);
		wav.writeUInt16LE(8, 34);
		wav.write('data', 36);
		wav.writeUInt32LE(0xffffffff - 44, 40);
		// A real 1 s Ogg Opus whose last page claims a granule position of ten hours.
		const source = path.join(dir, 'tone.wav');
		writeToneWav(source, 440, 1);
		const oggPath = path.join(dir, 'tone.ogg');
		execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-i', source, '-c:a', 'libopus', '-b:a', '24000', '-f', 'ogg', oggPath]);
		const ogg = readFileSync(oggPath);
		const last = readPages(ogg).at(-1)!;
		ogg.writeBigInt64LE(BigInt(10 * 3600 * 48_000), last.offset + 6);
		ogg.writeUInt32LE(oggPageCrc(ogg.subarray(last.offset, last.offset + last.length)), last.offset + 22);
		writeFileSync(path.join(dir, 'ten-hours.ogg'), ogg);
		for (const [name, bytes] of [
			['hours.wav', wav],
			['ten-hours.ogg', ogg],
		] as const) {
			const started = performance.now();
			const id = await uploadFile(ada, bytes, 64 * 1024, { destination: 'channel:room', filename: name });
			const m = await settled(id);
			const ms = Math.round(performance.now() - started);
			console.log(`${name} (${bytes.length} bytes): ${m.status} after ${ms} ms: ${m.failureReason}`);
			expect(m.status).toBe('failed');
			expect(m.failureReason).toMatch(/declares|longer than/);
			expect(ms).toBeLessThan(3000);
			expect(h.server.storageDir && (await fetch(`${h.base}/voice/messages/${id}/audio`, { headers: { authorization: `Bearer ${ada.token}` } })).status).toBe(409);
		}
	});

	it('kills an ffmpeg that hangs at the transcode deadline and fails the upload with the reason', async () => {
		const tools = hangingTools('.accepted');
		const path0 = process.env.PATH;
		process.env.PATH = `${tools.dir}:${path0}`;
		try {
			const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-hang-'));
			writeToneWav(path.join(dir, 'a.wav'), 440, 1);
			const file = readFileSync(path.join(dir, 'a.wav'));
			const started = performance.now();
			const ids = await Promise.all([uploadFile(ada, file), uploadFile(ada, file)]);
			const messages = await Promise.all(ids.map((id) => settled(id, 10_000)));
			const ms = Math.round(performance.now() - started);
			const pids = readFileSync(tools.pidFile, 'utf8').trim().split('\n').map(Number);
			console.log(`hanging ffmpeg: ${ids.length} uploads failed after ${ms} ms (${messages[0]!.failureReason})`);
			for (const m of messages) expect(m).toMatchObject({ status: 'failed', failureReason: expect.stringMatching(/took longer than 1\.5 s/) as unknown as string });
			expect(pids.length).toBeGreaterThanOrEqual(2);
			await waitUntil(() => pids.every((p) => !processAlive(p)), 2000, 'hung processes gone');
			expect(ms).toBeLessThan(6000);
		} finally {
			process.env.PATH = path0;
		}
		expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
		expect(h.server.transcoder.running + h.server.transcoder.queued).toBe(0);
	});
});
