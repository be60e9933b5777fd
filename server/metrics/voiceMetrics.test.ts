// Which operation a storage error counts as (parley_storage_failures_total{operation}), from
// errors the real fs and SQLite throw; errors that are not the disk's are not counted.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { open, readFile, rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../testkit/ports.js';
import { s3Call } from '../voice/files/s3Errors.js';
import { parsePrometheusText, total } from '../../test/helpers/prometheusText.js';
import { ParleyMetrics, type MetricSources } from './metrics.js';
import { storageOperationOf, voiceMessageEvents } from './voiceMetrics.js';

const caught = async (work: () => Promise<unknown>): Promise<unknown> => work().then(() => expect.fail('should have failed'), (err: unknown) => err);

describe('storageOperationOf', () => {
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-storage-op-'));
	const file = path.join(dir, 'file');
	writeFileSync(file, 'x');

	it('names the fs operation that failed', async () => {
		// A path under a regular file: creating fails (write), reading a missing file fails (read).
		expect(storageOperationOf(await caught(() => open(path.join(file, 'a.ogg'), 'w')))).toBe('write');
		expect(storageOperationOf(await caught(() => readFile(path.join(dir, 'missing.ogg'))))).toBe('read');
		expect(storageOperationOf(await caught(() => rename(path.join(dir, 'missing.part'), path.join(dir, 'a.ogg'))))).toBe('rename');
		expect(storageOperationOf({ code: 'ENOSPC', syscall: 'fsync' })).toBe('fsync');
	});

	it('counts SQLite errors as metadata and ignores errors that are not storage ones', async () => {
		const db = new Database(path.join(dir, 'meta.db'));
		db.exec('CREATE TABLE t (a)');
		db.close();
		const readonly = new Database(path.join(dir, 'meta.db'), { readonly: true });
		let sqliteError: unknown;
		try {
			readonly.exec('INSERT INTO t VALUES (1)');
		} catch (err) {
			sqliteError = err;
		} finally {
			readonly.close();
		}
		expect((sqliteError as { code: string }).code).toMatch(/^SQLITE_READONLY/);
		expect(storageOperationOf(sqliteError)).toBe('metadata');
		expect(storageOperationOf(new TypeError('a bug'))).toBeUndefined();
		expect(storageOperationOf(undefined)).toBeUndefined();
	});

	it('counts an S3 endpoint that cannot be reached by what the call was doing', async () => {
		// Nothing listens on the port: the SDK's connection error, through s3Call as storage uses it.
		const client = new S3Client({ endpoint: `http://127.0.0.1:${await freePort()}`, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
		try {
			const put = await caught(() => s3Call('checkpoint put', () => client.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: 'x' }))));
			expect((put as Error).name).toBe('StorageUnavailableError');
			expect(storageOperationOf(put)).toBe('write');
			expect(storageOperationOf(await caught(() => s3Call('download', () => client.send(new GetObjectCommand({ Bucket: 'b', Key: 'k' })))))).toBe('read');
		} finally {
			client.destroy();
		}
	});
});

describe('recording metrics', () => {
	it('adds each finished recording’s repaired and missing frames', async () => {
		const pool = { size: 0, info: () => [], liveWorkers: () => [], on: () => pool } as unknown as MetricSources['pool'];
		const channels = { size: 0, channels: () => [] } as unknown as MetricSources['channels'];
		const metrics = new ParleyMetrics({ pool, channels, signalingConnections: () => 0, activeRecordings: () => 0, transcodeJobs: () => ({ running: 0, queued: 0 }) });
		const events = voiceMessageEvents(metrics);
		const counts = { packetsReceived: 900, packetsWritten: 995, gaps: 2, packetsMissing: 5, duplicates: 30, late: 1 };
		const result = { reason: 'stopped' as const, durationMs: 20_000, sizeBytes: 80_000, consumerPacketCount: 900, finalizeMs: 5 };
		events.recordingFinished!({ ...result, counts: { ...counts, framesFromRed: 80, framesFromRetransmission: 15 } });
		events.recordingFinished!({ ...result, counts }); // stored before RED: no such counts
		const samples = parsePrometheusText((await metrics.exposition()).body);
		expect(total(samples, 'parley_voice_recording_frames_repaired_total', { source: 'red' })).toBe(80);
		expect(total(samples, 'parley_voice_recording_frames_repaired_total', { source: 'retransmission' })).toBe(15);
		expect(total(samples, 'parley_voice_recording_frames_missing_total')).toBe(10);
	});
});
