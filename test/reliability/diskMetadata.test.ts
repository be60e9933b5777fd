// The SQLite metadata database on a full disk (its own small tmpfs, filled to the last
// byte; the files' disk has room): every metadata write fails with SQLITE_FULL. A recording
// stopped then, a recording started then and an upload finished then all fail clearly
// (E_STORAGE_UNAVAILABLE, 507), none is ever reported ready (not now, not after a restart),
// live audio and the rest of the node keep working, parley_storage_failures_total{operation=
// "metadata"} counts it, and once there is room again everything works without a restart.
// Needs root with CAP_SYS_ADMIN (mount); skipped without it.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Notifications } from '../../protocol/messages.js';
import { encodeTone } from '../helpers/audio.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { writeToneWav } from '../helpers/wav.js';
import { publishWithWerift, streamTone } from '../../testkit/weriftPublisher.js';
import { sleep, startHarness, storageFailures, voiceUpdates as updates, waitUntil, type Harness } from './helpers/harness.js';
import { CAN_MOUNT, fill, TmpfsMounts } from './helpers/tmpfs.js';
import { createUploadId, headUpload, patchUpload, type TusTarget } from './helpers/tus.js';
import { listenWithWerift } from '../../testkit/weriftListener.js';


describe.skipIf(!CAN_MOUNT)('the metadata database on a full disk', () => {
	const mounts = new TmpfsMounts();
	let h: Harness | undefined;
	afterAll(async () => {
		await h?.close();
		mounts.unmountAll();
	});

	it('fails recordings and uploads whose metadata cannot be written, never reports them ready, keeps serving, and recovers once there is room', async () => {
		const files = mounts.mount(8 * 1024 * 1024);
		const meta = mounts.mount(1024 * 1024);
		const env = { PARLEY_STORAGE_DIR: path.join(files, 'storage'), PARLEY_VOICE_DATABASE_PATH: path.join(meta, 'parley.db') };
		h = await startHarness(env);
		const harness = h;
		const speaker = await h.joined('room', { userId: 'ada' });
		const publisher = await publishWithWerift(speaker.client);
		const tone = streamTone(publisher, encodeTone(1000, 50));
		const listener = await h.joined('room', { userId: 'bob' });
		const media = await listenWithWerift(listener.client, 1);
		try {
			await waitUntil(() => media.packets.length > 10, 5000, 'live audio');
			const rec = await speaker.client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			if (!rec.ok) throw new Error(rec.error.code);
			const recId = rec.data.voiceMessageId;
			// An upload sent up to its last chunk while there was room.
			const wav = path.join(files, 'a.wav');
			writeToneWav(wav, 440, 2);
			const file = readFileSync(wav);
			rmSync(wav);
			const tus: TusTarget = { base: h.base, token: await h.token({ userId: 'ada' }) };
			const uploadId = await createUploadId(tus, file.length);
			const last = file.length - 1000;
			expect((await patchUpload(tus, uploadId, 0, file.subarray(0, last))).status).toBe(204);
			await sleep(1000);

			const filler = fill(meta, 0);
			const audioBefore = media.packets.length;
			// The recording stops: its file is complete, but its status cannot be stored.
			const stopped = await speaker.client.request('stopRecording', { voiceMessageId: recId });
			expect(stopped.ok ? 'OK' : stopped.error).toEqual({ code: 'E_STORAGE_UNAVAILABLE', message: expect.stringMatching(/storage is full/) as unknown as string });
			await waitUntil(() => statuses(speaker.client, recId).includes('failed'), 2000, 'the failed notification');
			expect(statuses(speaker.client, recId)).not.toContain('ready');
			expect(lastUpdate(speaker.client, recId)?.message.failureReason).toMatch(/could not be saved: the server's voice-message storage is full/);
			// Its file was removed, so no later recovery can turn it ready.
			expect(existsSync(path.join(h.server.storageDir, 'ada'))).toBe(true);
			const recFile = path.join(h.server.storageDir, 'ada', yyyymm(), `${recId}.ogg`);
			expect(existsSync(recFile)).toBe(false);
			// A new recording cannot start: its record cannot be written.
			const refused = await speaker.client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			expect(refused.ok ? 'OK' : refused.error.code).toBe('E_STORAGE_UNAVAILABLE');
			expect(h.server.voice.activeRecordings).toBe(0);
			// The upload's last chunk is stored, but the voice message cannot be created: 507,
			// and the upload is kept for a retry.
			const final = await patchUpload(tus, uploadId, last, file.subarray(last));
			expect(final.status).toBe(507);
			expect(await final.json()).toMatchObject({ error: { code: 'E_STORAGE_FULL' } });
			expect(await h.server.voiceStore.get(uploadId)).toBeUndefined();
			const failures = await storageFailures(h.base);
			console.log(`metadata disk full: storage failures ${JSON.stringify(failures)}`);
			expect(failures.metadata).toBeGreaterThanOrEqual(3);
			// The node keeps serving: live audio, health, new sessions.
			await waitUntil(() => media.packets.length > audioBefore + 50, 5000, 'live audio while the database is full');
			expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
			const fresh = await TestSignalingClient.connect(h.wsUrl(await h.token()));
			fresh.client.close();

			// Room again: the upload finishes on its next HEAD, recordings work, no restart.
			rmSync(filler);
			const head = await headUpload(tus, uploadId);
			expect(head.status).toBe(200);
			expect(head.headers.get('upload-offset')).toBe(String(file.length));
			await waitUntil(async () => (await harness.server.voiceStore.get(uploadId))?.status === 'ready', 15_000, 'the upload ready');
			const again = await speaker.client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
			if (!again.ok) throw new Error(again.error.code);
			await sleep(800);
			expect((await speaker.client.request('stopRecording', { voiceMessageId: again.data.voiceMessageId })).ok).toBe(true);
			await waitUntil(async () => (await harness.server.voiceStore.get(again.data.voiceMessageId))?.status === 'ready', 10_000, 'the next recording ready');

			// After a restart the recording whose status could not be stored is failed, not ready.
			const stale = await h.server.voiceStore.get(recId);
			console.log(`record of the unsaved recording before the restart: ${stale?.status}`);
			expect(stale?.status).not.toBe('ready');
			await tone.stop();
			await publisher.close();
			await media.close();
			await h.close();
			h = await startHarness(env);
			const recovered = await h.server.voiceStore.get(recId);
			expect(recovered?.status).toBe('failed');
			expect((await h.server.voiceStore.get(uploadId))?.status).toBe('ready');
		} finally {
			await tone.stop();
			await publisher.close().catch(() => undefined);
			await media.close().catch(() => undefined);
		}
	}, 60_000);
});

function statuses(client: TestSignalingClient, id: string): string[] {
	return updates(client, id).map((u) => u.message.status);
}

function lastUpdate(client: TestSignalingClient, id: string): Notifications['voiceMessage'] | undefined {
	return updates(client, id).at(-1);
}


function yyyymm(): string {
	const d = new Date();
	return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}
