// Tables, headlines and the report section of the recording-repair scenario.
import { modeLabel, type RecordingRepairResult } from '../scenarios/recordingRepair.js';
import type { Headline } from './BenchRun.js';
import { type Cell, markdownTable, num, textTable } from './table.js';

const HEADERS = ['mode', 'frames sent', 'missing /1000', 'missing', 'from RED', 'from retransmission', 'wrong bytes', 'uplink dropped', 'retransmitted', 'RED invalid'];

function rows(r: RecordingRepairResult): Cell[][] {
	return r.modes.map((m): Cell[] => [
		modeLabel(m),
		m.framesSent,
		m.missingPer1000.toFixed(2),
		m.framesMissing,
		m.counts?.framesFromRed ?? null,
		m.counts?.framesFromRetransmission ?? null,
		m.framesWrong,
		m.uplinkDropped,
		m.publisherRetransmissions,
		m.counts?.redInvalid ?? null,
	]);
}

export function recordingHeadlines(r: RecordingRepairResult | undefined): Headline[] {
	if (!r) return [];
	const pct = num(r.options.lossRate * 100);
	return [{ label: `Recording behind ${pct}% random uplink loss: missing frames per 1,000 sent (${r.modes.map(modeLabel).join(' / ')})`, value: r.modes.map((m) => m.missingPer1000.toFixed(2)).join(' / '), path: r.path }];
}

export function recordingTextParts(r: RecordingRepairResult | undefined): string[] {
	return r ? [`Recording repair (${r.path}; ${num(r.options.lossRate * 100)}% random uplink loss, ${r.options.durationS} s; worker ${r.worker.path} sha256 ${r.worker.sha256})\n${textTable(HEADERS, rows(r))}${r.errors.map((e) => `\n${e}`).join('')}`] : [];
}

export function recordingMarkdown(r: RecordingRepairResult | undefined): string[] {
	if (!r) return [];
	return [
		'## Recordings repaired: RED and NACK behind a lossy uplink',
		'',
		`Path: ${r.path}. Each mode is one publisher sending ${r.options.durationS} s of speech (Opus ${num(r.options.bitrateBps / 1000)} kb/s, 20 ms frames) through ${num(r.options.lossRate * 100)}% random uplink loss, recorded into a voice message; all modes at once. The stored Ogg file is read back and compared with the frames the publisher encoded, frame by frame from the first frame the recording holds: *missing* = concealment in the file where a frame was sent, *wrong bytes* = a frame that is not the one encoded (must be 0). *from RED* and *from retransmission* are the recording's own counts (metadata): frames restored from RED copies in later packets, and packets that arrived behind later ones (NACK retransmissions). Worker: \`${r.worker.path}\` (sha256 ${r.worker.sha256}, file dated ${r.worker.modified}); only the worker with Parley's RED patch forwards RED.`,
		'',
		markdownTable(HEADERS, rows(r)),
		'',
		...r.errors.flatMap((e) => [e, '']),
	];
}
