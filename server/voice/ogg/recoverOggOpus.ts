// Closes an Ogg Opus file a crash left unfinished: keeps every page that is whole and passes
// its CRC, drops the torn tail, and marks the last page end-of-stream.
import { readFileSync, truncateSync, openSync, writeSync, closeSync, fsyncSync } from 'node:fs';
import { buildPage, PAGE_FLAG_EOS, readPages } from './OggPageWriter.js';
import { OPUS_SAMPLE_RATE } from './OggOpusWriter.js';

export interface RecoveredOggOpus {
	durationMs: number;
	sizeBytes: number;
	/** Bytes of a torn last page that were cut off. */
	droppedBytes: number;
	/** True when the file already ended with an end-of-stream page. */
	wasComplete: boolean;
}

export class UnrecoverableFileError extends Error {
	override readonly name = 'UnrecoverableFileError';
}

export function recoverOggOpus(path: string): RecoveredOggOpus {
	const data = readFileSync(path);
	const pages = readPages(data);
	const head = pages[0]?.packets[0];
	if (pages.length < 2 || !head || head.toString('ascii', 0, 8) !== 'OpusHead') {
		throw new UnrecoverableFileError('no complete Ogg Opus header');
	}
	const preSkip = head.readUInt16LE(10);
	const last = pages[pages.length - 1]!;
	const end = last.offset + last.length;
	const wasComplete = (last.flags & PAGE_FLAG_EOS) !== 0 && end === data.length;
	if (!wasComplete) {
		// Rewrite the last page in place with the EOS flag (and a fresh CRC).
		const page = buildPage(last.packets, { serial: last.serial, sequence: last.sequence, granule: last.granule, flags: last.flags | PAGE_FLAG_EOS });
		truncateSync(path, last.offset);
		const fd = openSync(path, 'a');
		try {
			writeSync(fd, page);
			fsyncSync(fd);
		} finally {
			closeSync(fd);
		}
	}
	const granule = pages.length > 2 ? Number(last.granule) : preSkip;
	return {
		durationMs: (Math.max(0, granule - preSkip) * 1000) / OPUS_SAMPLE_RATE,
		sizeBytes: end,
		droppedBytes: data.length - end,
		wasComplete,
	};
}
