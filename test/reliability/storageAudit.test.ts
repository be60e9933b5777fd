// The startup audit (server/voice/StorageAudit.ts): metadata and files agree both ways after
// a restart. Ready messages whose file was deleted, truncated or rewritten are failed with the
// reason; .ogg files no message owns are moved to .orphans (not deleted); leftover temp files
// are removed; untouched messages and unknown files are left alone; the counts reach the log
// and /metrics. Guards: a database that owns none of the files, or a storage folder with none
// of the database's files, changes nothing. And what the audit costs per 10 000 files.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DAMAGED_REASON, MISSING_REASON, ORPHANS_SUBDIR, StorageAudit } from '../../server/voice/files/StorageAudit.js';
import { SqliteVoiceMessageStore } from '../../server/voice/store/SqliteVoiceMessageStore.js';
import { LocalVoiceStorage } from '../../server/voice/files/VoiceStorage.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { testLogger } from '../helpers/logger.js';
import { parsePrometheusText, select } from '../helpers/prometheusText.js';
import { writeToneWav } from '../helpers/wav.js';
import { sleep, startHarness, waitUntil, type Harness } from './helpers/harness.js';
import { uploadFile, type TusTarget } from './helpers/tus.js';

function yyyymm(ms = Date.now()): string {
	const d = new Date(ms);
	return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** A voice message record as the service writes it, for a file the test puts in place. */
function readyRecord(ownerId: string, sizeBytes: number, createdAt = Date.now(), sha256?: string): VoiceMessage {
	return {
		id: randomUUID(),
		ownerId,
		destination: { kind: 'channel', channel: 'room' },
		source: 'upload',
		status: 'ready',
		sizeBytes,
		...(sha256 && { sha256 }),
		createdAt,
		// Marked ready after its file was written.
		updatedAt: Date.now(),
	};
}

describe('storage audit at startup', () => {
	let h: Harness | undefined;
	afterEach(async () => {
		await h?.close();
		h = undefined;
	});

	it('fails ready messages whose file is gone or changed, quarantines orphan files, removes leftover temp files, and leaves the rest alone', async () => {
		const data = mkdtempSync(path.join(os.tmpdir(), 'parley-audit-'));
		const env = { PARLEY_STORAGE_DIR: path.join(data, 'storage'), PARLEY_VOICE_DATABASE_PATH: path.join(data, 'parley.db') };
		h = await startHarness(env);
		expect(await h.server.storageAudit).toMatchObject({ readyChecked: 0, files: 0, orphans: 0, tempRemoved: 0, errors: 0 });
		const tus: TusTarget = { base: h.base, token: await h.token({ userId: 'ada' }) };
		const wav = path.join(data, 'a.wav');
		writeToneWav(wav, 440, 1);
		const ids: string[] = [];
		for (let i = 0; i < 4; i++) ids.push(await uploadFile(tus, readFileSync(wav)));
		const harness = h;
		await waitUntil(async () => (await Promise.all(ids.map((id) => harness.server.voiceStore.get(id)))).every((m) => m?.status === 'ready'), 20_000, 'four ready uploads');
		const messages = (await Promise.all(ids.map((id) => harness.server.voiceStore.get(id)))) as VoiceMessage[];
		const storage = new LocalVoiceStorage(h.server.storageDir);
		const [gone, truncated, rewritten, kept] = messages.map((m) => storage.pathOf(m)) as [string, string, string, string];
		await h.close();
		h = undefined;

		// What a crash, an operator or a bad disk leaves behind, a while after they were ready.
		await sleep(1100);
		rmSync(gone);
		appendFileSync(truncated, 'x');
		const fd = openSync(rewritten, 'r+');
		writeSync(fd, Buffer.from([0xff]), 0, 1, 200); // same size, one byte changed (mtime moves)
		closeSync(fd);
		const root = path.join(data, 'storage');
		const month = yyyymm();
		const orphan = path.join(root, 'eve', month, `${randomUUID()}.ogg`);
		mkdirSync(path.dirname(orphan), { recursive: true });
		copyFileSync(kept, orphan);
		const strayCopy = path.join(root, 'bob', month, path.basename(kept)); // a message's id under the wrong user
		mkdirSync(path.dirname(strayCopy), { recursive: true });
		copyFileSync(kept, strayCopy);
		const notes = path.join(root, 'eve', month, 'notes.txt');
		writeFileSync(notes, 'not ours to judge');
		const transcodeTemp = `${kept}.${randomBytes(6).toString('hex')}.part`;
		writeFileSync(transcodeTemp, 'half a file');
		const probe = path.join(root, '.ready-probe-4242-abcdef01');
		writeFileSync(probe, 'ok');
		const accepted = path.join(root, '.uploads', `${randomUUID()}.part.accepted`);
		writeFileSync(accepted, 'an input whose message is gone');
		// Temp files of a crashed process are older than the restarted one.
		const past = new Date(Date.now() - 60_000);
		for (const f of [transcodeTemp, probe, accepted]) utimesSync(f, past, past);

		h = await startHarness(env);
		const report = (await h.server.storageAudit)!;
		console.log(`storage audit after tampering: ${JSON.stringify(report)}`);
		expect(report).toMatchObject({ readyChecked: 4, missing: 1, damaged: 2, markedFailed: 3, files: 5, orphans: 2, quarantined: 2, tempRemoved: 3, errors: 0, repaired: true, aborted: false });
		const after = (await Promise.all(ids.map((id) => h!.server.voiceStore.get(id)))) as VoiceMessage[];
		expect(after.map((m) => [m.status, m.failureReason])).toEqual([
			['failed', MISSING_REASON],
			['failed', DAMAGED_REASON],
			['failed', DAMAGED_REASON],
			['ready', undefined],
		]);
		// Recipients asking now hear why.
		const meta = await fetch(`${h.base}/voice/messages/${ids[0]}`, { headers: { authorization: `Bearer ${await h.token({ userId: 'ada' })}` } });
		expect(await meta.json()).toMatchObject({ status: 'failed', failureReason: MISSING_REASON });
		// Orphans moved, same relative path, bytes intact; nothing else touched.
		expect(existsSync(orphan)).toBe(false);
		expect(existsSync(strayCopy)).toBe(false);
		expect(readFileSync(path.join(root, ORPHANS_SUBDIR, 'eve', month, path.basename(orphan)))).toEqual(readFileSync(kept));
		expect(existsSync(path.join(root, ORPHANS_SUBDIR, 'bob', month, path.basename(kept)))).toBe(true);
		expect(existsSync(kept)).toBe(true);
		expect(existsSync(notes)).toBe(true);
		for (const f of [transcodeTemp, probe, accepted]) expect(existsSync(f)).toBe(false);
		const samples = parsePrometheusText(await (await fetch(`${h.base}/metrics`)).text());
		const items = Object.fromEntries(select(samples, 'parley_storage_audit_items').map((s) => [s.labels.kind!, s.value]));
		expect(items).toMatchObject({ ready_checked: 4, missing: 1, damaged: 2, marked_failed: 3, files: 5, orphans: 2, quarantined: 2, temp_removed: 3, errors: 0 });

		// A second start finds everything in order.
		await h.close();
		h = await startHarness(env);
		// (The failed messages keep their damaged files; only ready ones are served.)
		expect(await h.server.storageAudit).toMatchObject({ readyChecked: 1, missing: 0, damaged: 0, files: 3, orphans: 0, tempRemoved: 0 });
	}, 60_000);

	it('changes nothing when the database owns none of the files, or the storage has none of its files', async () => {
		const data = mkdtempSync(path.join(os.tmpdir(), 'parley-audit-guard-'));
		const root = path.join(data, 'storage');
		const month = path.join(root, 'ada', yyyymm());
		mkdirSync(month, { recursive: true });
		const orphans = Array.from({ length: 25 }, () => path.join(month, `${randomUUID()}.ogg`));
		for (const f of orphans) writeFileSync(f, 'OggS');
		// A database of another install: 25 ready messages, none of whose files is here.
		const store = new SqliteVoiceMessageStore(path.join(data, 'parley.db'), { nodeId: 'test' });
		for (let i = 0; i < 25; i++) await store.insert(readyRecord('bob', 100));
		await store.close();

		h = await startHarness({ PARLEY_STORAGE_DIR: root, PARLEY_VOICE_DATABASE_PATH: path.join(data, 'parley.db') });
		const report = (await h.server.storageAudit)!;
		expect(report).toMatchObject({ readyChecked: 25, missing: 25, markedFailed: 0, files: 25, orphans: 25, quarantined: 0, repaired: false });
		for (const f of orphans) expect(existsSync(f)).toBe(true);
		expect((await h.server.voiceStore.listByStatus('ready')).length).toBe(25);
		expect(existsSync(path.join(root, ORPHANS_SUBDIR))).toBe(false);
	});

	it('costs about a stat and a lookup per file: 10 000 ready messages and files', async () => {
		const data = mkdtempSync(path.join(os.tmpdir(), 'parley-audit-10k-'));
		const storage = new LocalVoiceStorage(path.join(data, 'storage'));
		// In memory: 10 000 inserts with a durable commit each take ~20 s; lookups cost the same
		// either way once the pages are cached.
		const store = new SqliteVoiceMessageStore(':memory:', { nodeId: 'test' });
		const FILES = 10_000;
		const SIZE = 2048;
		const body = randomBytes(SIZE);
		const sha256 = createHash('sha256').update(body).digest('hex');
		const created = performance.now();
		const old = Date.now() - 3_600_000;
		for (let i = 0; i < FILES; i++) {
			const m = readyRecord(`user-${i % 100}`, SIZE, old, sha256);
			const file = await storage.workPath(m);
			writeFileSync(file, body);
			await store.insert(m);
		}
		console.log(`storage audit bench: ${FILES} messages and files created in ${Math.round(performance.now() - created)} ms`);
		const run = (hashAll: boolean) =>
			StorageAudit.run({ store, storage, uploadsDir: path.join(data, 'storage', '.uploads'), shared: false, hashAll, startedAtMs: Date.now(), log: testLogger() });
		try {
			const rssBefore = process.memoryUsage().rss;
			const quick = await run(false);
			const rssGrowthMb = Math.round((process.memoryUsage().rss - rssBefore) / 1_048_576);
			expect(quick).toMatchObject({ readyChecked: FILES, files: FILES, missing: 0, damaged: 0, orphans: 0, hashed: 0, errors: 0 });
			const full = await run(true);
			expect(full).toMatchObject({ readyChecked: FILES, hashed: FILES, damaged: 0 });
			console.log(
				`storage audit bench: ${FILES} files of ${SIZE} B: ${quick.durationMs} ms (stat + lookup per ready message, walk + lookup per file), RSS +${rssGrowthMb} MB; hashing every file too: ${full.durationMs} ms`,
			);
			expect(quick.durationMs).toBeLessThan(60_000);
			expect(readdirSync(path.join(data, 'storage')).length).toBe(100);
		} finally {
			await store.close();
			rmSync(data, { recursive: true, force: true });
		}
	}, 120_000);
});
