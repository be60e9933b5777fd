// Storage that cannot take writes: a storage path whose parent is a file, a user's folder
// replaced by a file mid-recording, a full disk (a small tmpfs, filled), a read-only disk
// (the tmpfs remounted ro) and a file-size limit (RLIMIT_FSIZE on the server process).
// Recordings and uploads fail with a clear error to the client, nothing incomplete is
// reported ready, acknowledged upload bytes survive, and the node recovers once the disk
// does. The tmpfs cases need root with CAP_SYS_ADMIN (mount); without it they are skipped
// and the other three still run.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { encodeTone } from '../helpers/audio.js';
import { testEnv } from '../helpers/config.js';
import { freePort } from '../../testkit/ports.js';
import { logLine, type ServerProcess } from '../helpers/serverProcess.js';
import type { TestSignalingClient } from '../../testkit/signalingClient.js';
import { writeToneWav } from '../helpers/wav.js';
import { publishWithWerift, streamTone, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { KEY, sleep, startHarness, storageFailures, voiceUpdates, waitUntil, type Harness } from './helpers/harness.js';
import { CAN_MOUNT, fill, TmpfsMounts } from './helpers/tmpfs.js';
import { createUpload, createUploadId, headUpload, patchUpload, type TusTarget } from './helpers/tus.js';

function wavBytes(seconds: number): Buffer {
	const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-disk-wav-')), 'a.wav');
	writeToneWav(file, 440, seconds);
	return readFileSync(file);
}


describe('disk problems', () => {
	let h: Harness | undefined;
	const cleanups: (() => unknown)[] = [];
	afterEach(async () => {
		for (const c of cleanups.splice(0).reverse()) await c();
		await h?.close();
		h = undefined;
	});

	/** A joined peer publishing a tone with werift. */
	async function speaker(harness: Harness, userId: string): Promise<{ client: TestSignalingClient; publisher: WeriftPublisher }> {
		const { client } = await harness.joined('room', { userId });
		const publisher = await publishWithWerift(client);
		const stream = streamTone(publisher, encodeTone(1000, 50));
		cleanups.push(async () => {
			await stream.stop();
			await publisher.close();
			client.close();
		});
		return { client, publisher };
	}

	it('starts with a storage path whose parent is a file: live audio works, recording and uploads fail clearly, readiness says why', async () => {
		const root = mkdtempSync(path.join(os.tmpdir(), 'parley-disk-'));
		writeFileSync(path.join(root, 'file'), 'not a directory');
		const storageDir = path.join(root, 'file', 'storage');
		h = await startHarness({ PARLEY_STORAGE_DIR: storageDir });
		// Exported from the start, at zero, so dashboards and alerts have a series.
		expect(await storageFailures(h.base)).toEqual({ write: 0, fsync: 0, rename: 0, read: 0, metadata: 0 });
		const ready = await fetch(`${h.base}/readyz`);
		expect(ready.status).toBe(503);
		// Names the failing check; the reason (with the path) is in the log, not the body.
		const readyText = await ready.text();
		expect(JSON.parse(readyText)).toMatchObject({ status: 'not ready', checks: { storage: { ok: false } } });
		expect(readyText).not.toContain(storageDir);
		const { client, publisher } = await speaker(h, 'ada');
		const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
		expect(rec.ok ? 'OK' : rec.error).toEqual({ code: 'E_STORAGE_UNAVAILABLE', message: expect.stringMatching(/not writable/) as unknown as string });
		const tus: TusTarget = { base: h.base, token: await h.token({ userId: 'ada' }) };
		const post = await createUpload(tus, 1000);
		expect(post.status).toBe(503);
		expect(await post.json()).toMatchObject({ error: { code: 'E_STORAGE_UNAVAILABLE' } });
		expect(h.server.voice.activeRecordings).toBe(0);
		// The recording's folder and the upload's file could not be created: two failed writes.
		expect(await storageFailures(h.base)).toMatchObject({ write: 2, metadata: 0 });

		// The disk is fixed: everything works without a restart.
		rmSync(path.join(root, 'file'));
		mkdirSync(storageDir, { recursive: true });
		// /readyz reuses its last results for readiness.cacheMs: poll, as a balancer does.
		const base = h.base;
		await waitUntil(async () => (await fetch(`${base}/readyz`)).status === 200, 5000, '/readyz 200', 100);
		expect((await createUpload(tus, 1000)).status).toBe(201);
		const again = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
		expect(again.ok).toBe(true);
	});

	it("fails a recording whose user folder was replaced by a file, and no one else's", async () => {
		h = await startHarness();
		const ada = await speaker(h, 'ada');
		const bob = await speaker(h, 'bob');
		const start = async (s: typeof ada) => {
			const r = await s.client.request('startRecording', { producerId: s.publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			if (!r.ok) throw new Error(r.error.code);
			return r.data.voiceMessageId;
		};
		const [adaRec, bobRec] = [await start(ada), await start(bob)];
		await sleep(1500);
		const adaDir = path.join(h.server.storageDir, 'ada');
		rmSync(adaDir, { recursive: true });
		writeFileSync(adaDir, 'in the way');
		for (const [s, id] of [
			[ada, adaRec],
			[bob, bobRec],
		] as const) {
			expect((await s.client.request('stopRecording', { voiceMessageId: id })).ok).toBe(true);
		}
		const harness = h;
		await waitUntil(async () => ['ready', 'failed'].includes((await harness.server.voiceStore.get(adaRec))!.status) && (await harness.server.voiceStore.get(bobRec))!.status === 'ready', 5000, 'both settled');
		expect(await h.server.voiceStore.get(adaRec)).toMatchObject({ status: 'failed', failureReason: expect.stringMatching(/could not/) as unknown as string });
		expect(voiceUpdates(ada.client, adaRec).map((u) => u.message.status)).not.toContain('ready');
		expect((await h.server.voiceStore.get(bobRec))!.durationMs).toBeGreaterThan(1000);
		expect((await storageFailures(h.base)).write).toBe(1);
	});

	it('fails an upload chunk over RLIMIT_FSIZE with 507, keeps what was acknowledged, and resumes once the limit is lifted', async () => {
		const env = await testEnv({ PARLEY_AUTH_JWT_SECRET: new TextDecoder().decode(KEY), PARLEY_LOG_LEVEL: 'info', PARLEY_HTTP_PORT: String(await freePort()) });
		// bash sets the limit (in KiB) for the process it then becomes; Node ignores SIGXFSZ, so
		// a write past the limit fails with EFBIG instead of killing the server.
		const child = spawn('bash', ['-c', 'ulimit -S -f 512 && exec "$@"', 'bash', process.execPath, '--import', 'tsx', 'server/main.ts'], {
			env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let out = '';
		let err = '';
		child.stdout.on('data', (d: Buffer) => (out += d.toString()));
		child.stderr.on('data', (d: Buffer) => (err += d.toString()));
		const server: ServerProcess = { child, stdout: () => out, stderr: () => err, exited: once(child, 'exit').then(([code]) => code as number | null) };
		cleanups.push(() => {
			if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
		});
		await logLine(server, 'parley listening');
		const tus: TusTarget = { base: `http://127.0.0.1:${env.PARLEY_HTTP_PORT}`, token: await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canRecord: true }, ttlS: 600 }, KEY) };
		const file = wavBytes(10); // 960 KB
		const CHUNK = 64 * 1024;
		const id = await createUploadId(tus, file.length);
		let offset = 0;
		let refused: Response | undefined;
		while (offset < file.length) {
			const res = await patchUpload(tus, id, offset, file.subarray(offset, offset + CHUNK));
			if (res.status !== 204) {
				refused = res;
				break;
			}
			offset += CHUNK;
		}
		expect(refused?.status).toBe(507);
		expect(await refused!.json()).toMatchObject({ error: { code: 'E_STORAGE_FULL', message: expect.stringMatching(/full/) as unknown as string } });
		expect(offset).toBe(512 * 1024);
		expect((await headUpload(tus, id)).headers.get('upload-offset')).toBe(String(offset));
		expect(child.exitCode).toBeNull();
		expect((await storageFailures(tus.base)).write).toBe(1);

		execFileSync('prlimit', [`--pid=${child.pid}`, '--fsize=unlimited']);
		for (; offset < file.length; offset += CHUNK) expect((await patchUpload(tus, id, offset, file.subarray(offset, offset + CHUNK))).status).toBe(204);
		const message = await fetch(`${tus.base}/voice/messages/${id}`, { headers: { authorization: `Bearer ${tus.token}` } });
		expect(await message.json()).toMatchObject({ originalSha256: createHash('sha256').update(file).digest('hex') });
		child.kill('SIGTERM');
		expect(await server.exited).toBe(0);
	});

	describe.skipIf(!CAN_MOUNT)('on a small tmpfs', () => {
		const mounts = new TmpfsMounts();
		afterAll(() => mounts.unmountAll());
		const tmpfs = (sizeBytes: number): string => mounts.mount(sizeBytes);

		it('fails a recording cut short by a full disk, never reports it ready, and records again once there is room', async () => {
			const mnt = tmpfs(4 * 1024 * 1024);
			h = await startHarness({ PARLEY_STORAGE_DIR: path.join(mnt, 'storage') });
			const ada = await speaker(h, 'ada');
			mkdirSync(path.join(h.server.storageDir, 'ada'), { recursive: true });
			const filler = fill(mnt, 8192);
			const rec = await ada.client.request('startRecording', { producerId: ada.publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			if (!rec.ok) throw new Error(rec.error.code);
			const id = rec.data.voiceMessageId;
			const harness = h;
			await waitUntil(async () => (await harness.server.voiceStore.get(id))!.status === 'failed', 10_000, 'the recording to fail', 50);
			const m = (await h.server.voiceStore.get(id))!;
			console.log(`disk full during a recording: failed after ${m.updatedAt - m.createdAt} ms: ${m.failureReason}`);
			expect(m.failureReason).toMatch(/storage is full/);
			// The notification follows the stored status over the socket.
			await waitUntil(() => voiceUpdates(ada.client, id).at(-1)?.message.status === 'failed', 2000, 'the failed notification');
			const updates = voiceUpdates(ada.client, id);
			expect(updates.at(-1)).toMatchObject({ message: { status: 'failed' }, reason: 'write failed' });
			expect(updates.map((u) => u.message.status)).not.toContain('ready');
			expect(h.server.voice.activeRecordings).toBe(0);
			expect(existsSync(path.join(h.server.storageDir, 'ada'))).toBe(true);
			// stopRecording of the failed recording answers with what happened.
			const stopped = await ada.client.request('stopRecording', { voiceMessageId: id });
			expect(stopped.ok && stopped.data.voiceMessage.status).toBe('failed');
			// Full to the last byte: refused at the start, with the reason.
			const lastFillers = [fill(mnt, 0)];
			// /readyz answers from its cache for readiness.cacheMs: the next run of its checks sees the full disk.
			// What the failed recording still frees after this point is filled again, so the disk stays full.
			await waitUntil(
				async () => {
					if (statfsSync(mnt).bavail > 0) lastFillers.push(fill(mnt, 0));
					return (await fetch(`${harness.base}/readyz`)).status === 503;
				},
				5000,
				'/readyz 503 on a full disk',
				100,
			);
			const refused = await ada.client.request('startRecording', { producerId: ada.publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			expect(refused.ok ? 'OK' : refused.error.code).toBe('E_STORAGE_UNAVAILABLE');
			// The page write that stopped the recording, and the refused start.
			expect(await storageFailures(h.base)).toMatchObject({ write: 2, metadata: 0 });

			rmSync(filler);
			for (const f of lastFillers) rmSync(f);
			await waitUntil(async () => (await fetch(`${harness.base}/readyz`)).status === 200, 5000, '/readyz 200', 100);
			const again = await ada.client.request('startRecording', { producerId: ada.publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			if (!again.ok) throw new Error(again.error.code);
			await sleep(1000);
			await ada.client.request('stopRecording', { voiceMessageId: again.data.voiceMessageId });
			await waitUntil(async () => (await harness.server.voiceStore.get(again.data.voiceMessageId))!.status === 'ready', 5000, 'the next recording ready');
		});

		it('answers 507 to upload chunks that do not fit, keeps the acknowledged offset, and finishes once there is room', async () => {
			const mnt = tmpfs(4 * 1024 * 1024);
			h = await startHarness({ PARLEY_STORAGE_DIR: path.join(mnt, 'storage') });
			const tus: TusTarget = { base: h.base, token: await h.token({ userId: 'ada' }) };
			const file = wavBytes(4); // 384 KB
			const id = await createUploadId(tus, file.length);
			const filler = fill(mnt, 150 * 1024);
			const CHUNK = 64 * 1024;
			let offset = 0;
			let refused: Response | undefined;
			while (offset < file.length) {
				const res = await patchUpload(tus, id, offset, file.subarray(offset, offset + CHUNK));
				if (res.status !== 204) {
					refused = res;
					break;
				}
				offset += CHUNK;
			}
			expect(refused?.status).toBe(507);
			expect(await refused!.json()).toMatchObject({ error: { code: 'E_STORAGE_FULL' } });
			expect(offset).toBeGreaterThan(0);
			expect((await headUpload(tus, id)).headers.get('upload-offset')).toBe(String(offset));
			// What was not acknowledged was cut back off the file.
			expect(statSync(path.join(h.server.storageDir, '.uploads', `${id}.part`)).size).toBe(offset);
			expect((await storageFailures(h.base)).write).toBe(1);

			rmSync(filler);
			for (; offset < file.length; offset += CHUNK) expect((await patchUpload(tus, id, offset, file.subarray(offset, offset + CHUNK))).status).toBe(204);
			const harness = h;
			await waitUntil(async () => (await harness.server.voiceStore.get(id))?.status === 'ready', 10_000, 'upload ready');
			expect((await h.server.voiceStore.get(id))!.originalSha256).toBe(createHash('sha256').update(file).digest('hex'));
		});

		it('refuses recordings and uploads on a read-only disk with the reason, and recovers when it is writable again', async () => {
			const mnt = tmpfs(4 * 1024 * 1024);
			h = await startHarness({ PARLEY_STORAGE_DIR: path.join(mnt, 'storage') });
			const ada = await speaker(h, 'ada');
			const tus: TusTarget = { base: h.base, token: await h.token({ userId: 'ada' }) };
			const pending = await createUploadId(tus, 10);
			execFileSync('mount', ['-o', 'remount,ro', mnt]);
			try {
				const rec = await ada.client.request('startRecording', { producerId: ada.publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
				expect(rec.ok ? 'OK' : rec.error).toEqual({ code: 'E_STORAGE_UNAVAILABLE', message: expect.stringMatching(/not writable/) as unknown as string });
				const post = await createUpload(tus, 10);
				expect(post.status).toBe(503);
				expect(post.headers.get('retry-after')).toBe('30');
				const patch = await patchUpload(tus, pending, 0, Buffer.alloc(10));
				expect(patch.status).toBe(503);
				expect((await fetch(`${h.base}/readyz`)).status).toBe(503);
				// The recording's folder, the upload's file, the chunk: three refused writes.
				expect(await storageFailures(h.base)).toMatchObject({ write: 3, metadata: 0 });
			} finally {
				execFileSync('mount', ['-o', 'remount,rw', mnt]);
			}
			expect((await headUpload(tus, pending)).headers.get('upload-offset')).toBe('0');
			expect((await patchUpload(tus, pending, 0, Buffer.alloc(10))).status).toBe(204);
			const rec = await ada.client.request('startRecording', { producerId: ada.publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			expect(rec.ok).toBe(true);
		});
	});
});
