import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeFileToMono, dominantFrequency, encodeTone, probeDurationMs, rms } from '../../../test/helpers/audio.js';
import { OggOpusWriter, opusPacketSamples } from './OggOpusWriter.js';
import { PAGE_FLAG_EOS, readPages } from './OggPageWriter.js';
import { recoverOggOpus, UnrecoverableFileError } from './recoverOggOpus.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'parley-ogg-'));

/** Duration opusinfo (libopusfile's reference tooling) reports, in ms. */
function opusinfoDurationMs(file: string): number {
	const out = execFileSync('opusinfo', [file], { encoding: 'utf8' });
	const m = /Playback length:\s*(?:(\d+)m:)?([\d.]+)s/.exec(out);
	if (!m) throw new Error(`no playback length in opusinfo output:\n${out}`);
	return Math.round((Number(m[1] ?? 0) * 60 + Number(m[2])) * 1000);
}

describe('OggOpusWriter', () => {
	it('reads packet durations from the TOC byte', () => {
		expect(opusPacketSamples(Uint8Array.of(0b01111_0_00))).toBe(960); // CELT 20 ms, 1 frame
		expect(opusPacketSamples(Uint8Array.of(0b00001_0_01))).toBe(1920); // SILK 20 ms, 2 frames
		expect(opusPacketSamples(Uint8Array.of(0b11111_0_11, 3))).toBe(2880); // CELT 20 ms x3
	});

	it('writes a file that decodes to the right duration and tone', () => {
		const file = path.join(tmp(), 'tone.ogg');
		const frames = encodeTone(1000, 150); // 3 s
		const writer = new OggOpusWriter(file);
		frames.forEach((f, i) => writer.writePacket(f, 123_456 + i * 960));
		const summary = writer.finalize();
		expect(summary).toMatchObject({ durationMs: 3000, packetsWritten: 150, fillerPackets: 0 });
		expect(summary.sizeBytes).toBe(statSync(file).size);
		expect(Math.abs(opusinfoDurationMs(file) - 3000)).toBeLessThanOrEqual(20);
		expect(Math.abs(probeDurationMs(file) - 3000)).toBeLessThanOrEqual(20);
		const audio = decodeFileToMono(file);
		expect(Math.abs(audio.length / 48 - 3000)).toBeLessThanOrEqual(20);
		expect(Math.abs(dominantFrequency(audio.subarray(4800)) - 1000)).toBeLessThanOrEqual(10);
		const pages = readPages(readFileSync(file));
		expect(pages[0]!.packets[0]!.toString('ascii', 0, 8)).toBe('OpusHead');
		expect(pages.at(-1)!.flags & PAGE_FLAG_EOS).toBe(PAGE_FLAG_EOS);
		// Pages hold at most ~1 s, so a crash loses little.
		expect(pages.length).toBeGreaterThanOrEqual(2 + 3);
	});

	it('keeps the timeline through DTX silence and lost packets, wrapping the RTP clock', () => {
		const file = path.join(tmp(), 'gaps.ogg');
		const frames = encodeTone(440, 100);
		const writer = new OggOpusWriter(file);
		const start = 2 ** 32 - 960 * 20; // wraps after 20 packets
		for (let i = 0; i < 100; i++) {
			if (i >= 40 && i < 45) continue; // 5 packets lost
			// 1 s of DTX silence after packet 60: the sender sent nothing, time went on.
			const ts = (start + i * 960 + (i >= 60 ? 48_000 : 0)) >>> 0;
			writer.writePacket(frames[i]!, ts);
		}
		const summary = writer.finalize();
		expect(summary.packetsWritten).toBe(95);
		expect(summary.fillerPackets).toBe(5 + 50);
		expect(summary.durationMs).toBe(3000);
		expect(Math.abs(decodeFileToMono(file).length / 48 - 3000)).toBeLessThanOrEqual(20);
		const audio = decodeFileToMono(file);
		// The silence is where it was: quiet in the middle of the DTX second, loud around it.
		expect(rms(audio.subarray(48 * 1800, 48 * 2000))).toBeLessThan(rms(audio.subarray(48 * 500, 48 * 700)) / 5);
	});

	it('fills a timestamp jump only up to maxGapMs (and the caller\'s budget), counting it', () => {
		const file = path.join(tmp(), 'jump.ogg');
		const frames = encodeTone(440, 4);
		const writer = new OggOpusWriter(file, { maxGapMs: 2000 });
		const t0 = performance.now();
		writer.writePacket(frames[0]!, 0);
		writer.writePacket(frames[1]!, 960 + 2 ** 31 - 480); // ~12.4 h later: 2 s of filler
		writer.writePacket(frames[2]!, 2 * 960 + 2 ** 31 - 480); // the new position, no gap
		writer.writePacket(frames[3]!, 3 * 960 + 2 ** 31 - 480 + 48_000, 24_000); // 1 s gap, 0.5 s allowed
		const summary = writer.finalize();
		expect(performance.now() - t0).toBeLessThan(50);
		expect(summary).toMatchObject({ packetsWritten: 4, fillerPackets: 100 + 25, timestampJumps: 1, durationMs: 80 + 2000 + 500 });
		expect(summary.sizeBytes).toBeLessThan(10_000);
		expect(Math.abs(probeDurationMs(file) - 2580)).toBeLessThanOrEqual(20);
	});

	it('flush() writes the page in progress early; finalize then marks that page end-of-stream in place', () => {
		const file = path.join(tmp(), 'flushed.ogg');
		const frames = encodeTone(1000, 30);
		const writer = new OggOpusWriter(file);
		const headers = writer.flushedBytes;
		expect(headers).toBe(statSync(file).size);
		frames.slice(0, 10).forEach((f, i) => writer.writePacket(f, i * 960));
		expect(writer.flushedBytes).toBe(headers); // 200 ms pending, not on disk yet
		const first = writer.flush();
		expect(first).toBe(statSync(file).size);
		expect(writer.flush()).toBe(first); // nothing pending: nothing written
		frames.slice(10).forEach((f, i) => writer.writePacket(f, (10 + i) * 960));
		const second = writer.flush();
		const summary = writer.finalize();
		// No empty EOS page was added: the last page was rewritten with the flag, same length.
		expect(summary.sizeBytes).toBe(second);
		expect(statSync(file).size).toBe(second);
		const pages = readPages(readFileSync(file));
		expect(pages.map((p) => p.packets.length)).toEqual([1, 1, 10, 20]);
		expect(pages.map((p) => p.flags & PAGE_FLAG_EOS)).toEqual([0, 0, 0, PAGE_FLAG_EOS]);
		expect(pages.at(-1)!.granule).toBe(312n + 30n * 960n);
		expect(Math.abs(opusinfoDurationMs(file) - 600)).toBeLessThanOrEqual(20);
		expect(Math.abs(probeDurationMs(file) - 600)).toBeLessThanOrEqual(20);
	});

	it('leaves a readable prefix after a crash, which recovery closes', () => {
		const file = path.join(tmp(), 'crash.ogg');
		const frames = encodeTone(1000, 250); // 5 s
		const writer = new OggOpusWriter(file);
		frames.forEach((f, i) => writer.writePacket(f, i * 960));
		writer.abort(); // the process died: the last (pending) page never reached the disk
		truncateSync(file, statSync(file).size - 7); // and the last written page is torn
		const recovered = recoverOggOpus(file);
		expect(recovered.wasComplete).toBe(false);
		expect(recovered.droppedBytes).toBeGreaterThan(0);
		// Whole pages of ~1 s survive: at least 3 s of the 5.
		expect(recovered.durationMs).toBeGreaterThanOrEqual(3000);
		expect(recovered.durationMs).toBeLessThan(5000);
		expect(Math.abs(probeDurationMs(file) - recovered.durationMs)).toBeLessThanOrEqual(20);
		expect(readPages(readFileSync(file)).at(-1)!.flags & PAGE_FLAG_EOS).toBe(PAGE_FLAG_EOS);
		// Recovering a complete file changes nothing.
		expect(recoverOggOpus(file)).toMatchObject({ wasComplete: true, droppedBytes: 0, durationMs: recovered.durationMs });
	});

	it('refuses to recover a file without headers', () => {
		const file = path.join(tmp(), 'empty.ogg');
		const writer = new OggOpusWriter(file);
		writer.abort();
		truncateSync(file, 20);
		expect(() => recoverOggOpus(file)).toThrow(UnrecoverableFileError);
	});
});
