// RecordingCheckpointer against a real OggOpusWriter writing a real file, with a storage
// stand-in that keeps what it is given (the S3 side has its own test against Swift): the
// checkpoints are contiguous, each ends on a page boundary, together they are the file's
// pages, a failed PUT is retried from the same offset, one PUT at a time, stop leaves no timer.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { decodeFileToMono, encodeTone, probeDurationMs } from '../../../test/helpers/audio.js';
import { testLogger } from '../../../test/helpers/logger.js';
import { sleep, waitUntil } from '../../../test/helpers/wait.js';
import { OggOpusWriter } from '../ogg/OggOpusWriter.js';
import { PAGE_FLAG_EOS, readPages } from '../ogg/OggPageWriter.js';
import { recoverOggOpus } from '../ogg/recoverOggOpus.js';
import { RecordingCheckpointer, type RecordingCheckpointerOptions } from './RecordingCheckpointer.js';

interface Put {
	index: number;
	offset: number;
	bytes: Buffer;
}

const FRAMES = encodeTone(440, 100); // 2 s of 20 ms packets
const INTERVAL_MS = 40;


describe('RecordingCheckpointer', () => {
	let dir: string;
	let writer: OggOpusWriter;
	let checkpointer: RecordingCheckpointer | undefined;

	beforeEach(() => {
		dir = mkdtempSync(path.join(os.tmpdir(), 'parley-checkpoints-'));
		writer = new OggOpusWriter(path.join(dir, 'rec.ogg'));
	});

	afterEach(async () => {
		await checkpointer?.stop();
		checkpointer = undefined;
		writer.abort();
		rmSync(dir, { recursive: true, force: true });
	});

	const start = (put: RecordingCheckpointerOptions['put'], extra: Partial<RecordingCheckpointerOptions> = {}) => {
		checkpointer = new RecordingCheckpointer({ path: writer.path, intervalMs: INTERVAL_MS, boundary: () => writer.flush(), put, log: testLogger(), ...extra });
		return checkpointer;
	};

	/** Writes `frames` the way a live producer does: a few packets, then a pause. */
	async function feed(frames: Uint8Array[], first = 0): Promise<void> {
		for (let i = 0; i < frames.length; i++) {
			writer.writePacket(frames[i]!, (first + i) * 960);
			if (i % 4 === 3) await sleep(10);
		}
	}

	/** Checks index order and contiguity; returns the checkpoints concatenated. */
	function joined(puts: Put[]): Buffer {
		let offset = 0;
		puts.forEach((p, i) => {
			expect(p.index).toBe(i);
			expect(p.offset).toBe(offset);
			expect(p.bytes.length).toBeGreaterThan(0);
			offset += p.bytes.length;
		});
		return Buffer.concat(puts.map((p) => p.bytes));
	}

	it('stores contiguous checkpoints that end on page boundaries and together are the file', async () => {
		const puts: Put[] = [];
		const cp = start(async (index, offset, bytes) => void puts.push({ index, offset, bytes: Buffer.from(bytes) }));
		await feed(FRAMES);
		await sleep(INTERVAL_MS * 2); // a last tick after the last packet
		const stats = await cp.stop();
		const summary = writer.finalize();
		expect(puts.length).toBeGreaterThanOrEqual(5);
		expect(stats).toMatchObject({ stored: puts.length, failures: 0 });

		const all = joined(puts);
		expect(stats.bytes).toBe(all.length);
		// Every prefix a crash could leave (checkpoints 0..i) is made of whole pages.
		let prefix = 0;
		for (const p of puts) {
			prefix += p.bytes.length;
			const pages = readPages(all.subarray(0, prefix));
			expect(pages.reduce((n, page) => n + page.length, 0)).toBe(prefix);
		}
		// They hold every packet: the last tick came after the last packet and flushed its page.
		const pages = readPages(all);
		expect(pages[0]!.packets[0]!.toString('ascii', 0, 8)).toBe('OpusHead');
		expect(pages[1]!.packets[0]!.toString('ascii', 0, 8)).toBe('OpusTags');
		expect(pages.slice(2).flatMap((p) => p.packets)).toEqual(FRAMES.map((f) => Buffer.from(f)));

		// The checkpoints are the finished file's bytes, but for the EOS flag finalize set on
		// its last page in place (no empty page added after a checkpoint's flush).
		const file = readFileSync(writer.path);
		expect(file.length).toBe(all.length);
		expect(summary.sizeBytes).toBe(file.length);
		const finalPages = readPages(file);
		expect(finalPages.map((p) => p.packets)).toEqual(pages.map((p) => p.packets));
		expect(finalPages.at(-1)!.flags & PAGE_FLAG_EOS).toBe(PAGE_FLAG_EOS);
		expect(finalPages.slice(0, -1).every((p) => (p.flags & PAGE_FLAG_EOS) === 0)).toBe(true);
		expect(Math.abs(probeDurationMs(writer.path) - 2000)).toBeLessThanOrEqual(20);

		// What another node would assemble from them: recovery closes it, and it decodes.
		const assembled = path.join(dir, 'assembled.ogg');
		writeFileSync(assembled, all);
		const recovered = recoverOggOpus(assembled);
		expect(recovered).toMatchObject({ durationMs: 2000, droppedBytes: 0 });
		expect(Math.abs(decodeFileToMono(assembled).length / 48 - 2000)).toBeLessThanOrEqual(20);
	});

	it('retries a failed PUT at the next tick from the same offset, and counts it', async () => {
		const puts: Put[] = [];
		const attempts: { index: number; offset: number; length: number }[] = [];
		const failures: unknown[] = [];
		let failNext = 0;
		const cp = start(
			async (index, offset, bytes) => {
				attempts.push({ index, offset, length: bytes.length });
				if (index === 1 && attempts.filter((a) => a.index === 1).length <= 2) {
					failNext++;
					throw new Error('S3 said 503');
				}
				puts.push({ index, offset, bytes: Buffer.from(bytes) });
			},
			{ onFailure: (err) => failures.push(err) },
		);
		await feed(FRAMES);
		await sleep(INTERVAL_MS * 2);
		const stats = await cp.stop();
		expect(failNext).toBe(2);
		expect(stats.failures).toBe(2);
		expect(failures).toHaveLength(2);
		// The three attempts at checkpoint 1 started at the same offset, each with at least as
		// much as the one before (what was written meanwhile rides along).
		const ones = attempts.filter((a) => a.index === 1);
		expect(ones).toHaveLength(3);
		expect(new Set(ones.map((a) => a.offset)).size).toBe(1);
		expect(ones[1]!.length).toBeGreaterThanOrEqual(ones[0]!.length);
		expect(ones[2]!.length).toBeGreaterThanOrEqual(ones[1]!.length);
		// Nothing is missing from what was stored.
		const all = joined(puts);
		expect(readPages(all).slice(2).flatMap((p) => p.packets)).toHaveLength(FRAMES.length);
	});

	it('keeps one PUT in flight: ticks meanwhile are skipped, stop waits for it', async () => {
		let inFlight = 0;
		let maxInFlight = 0;
		let settled = 0;
		const cp = start(async () => {
			inFlight++;
			maxInFlight = Math.max(maxInFlight, inFlight);
			await sleep(INTERVAL_MS * 3);
			inFlight--;
			settled++;
		});
		await feed(FRAMES.slice(0, 40));
		await waitUntil(() => inFlight === 1, 2000, 'a PUT in flight');
		const stats = await cp.stop();
		expect(inFlight).toBe(0); // stop resolved after the PUT in flight settled
		expect(maxInFlight).toBe(1);
		expect(stats.busyTicks).toBeGreaterThan(0);
		expect(stats.stored).toBe(settled);
	});

	it('gives up waiting for a stuck PUT after stopWaitMs', async () => {
		const cp = start(() => new Promise<void>(() => undefined), { stopWaitMs: 100 });
		writer.writePacket(FRAMES[0]!, 0);
		await sleep(INTERVAL_MS * 2);
		const t0 = performance.now();
		const stats = await cp.stop();
		expect(performance.now() - t0).toBeLessThan(1000);
		expect(stats.stored).toBe(0);
	});

	it('stop leaves no timer and no later PUT; nothing new means no PUT', async () => {
		const set = vi.spyOn(globalThis, 'setInterval');
		const cleared = vi.spyOn(globalThis, 'clearInterval');
		const puts: Put[] = [];
		let cp: RecordingCheckpointer;
		try {
			cp = start(async (index, offset, bytes) => void puts.push({ index, offset, bytes }));
			expect(set).toHaveBeenCalledTimes(1);
			const timer = set.mock.results[0]!.value as NodeJS.Timeout;
			expect(timer.hasRef()).toBe(false); // never keeps a process alive
			await sleep(INTERVAL_MS * 3);
			expect(puts).toHaveLength(1); // the header pages, once: no packets since
			await cp.stop();
			expect(cleared).toHaveBeenCalledWith(timer);
		} finally {
			set.mockRestore();
			cleared.mockRestore();
		}
		writer.writePacket(FRAMES[0]!, 0);
		await sleep(INTERVAL_MS * 3);
		expect(puts).toHaveLength(1);
		expect(await cp.stop()).toMatchObject({ stored: 1 });
	});

	it('refuses a zero interval', () => {
		expect(() => start(async () => undefined, { intervalMs: 0 })).toThrow(RangeError);
	});
});
