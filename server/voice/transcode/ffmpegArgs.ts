// The argument pieces every ffmpeg / ffprobe run shares: how untrusted input is opened, and
// the filters some inputs need before they are resampled.
import path from 'node:path';
import { FFMPEG_DEMUXER, type AudioFormat } from './audioFormat.js';

/** ffmpeg's -max_alloc: the largest single allocation. Audio decoding needs a few MiB at
 * most; a crafted header (an MP4 sample table claiming billions of entries) would otherwise
 * make ffmpeg try to allocate whatever it declares. */
export const MAX_ALLOC_BYTES = 64 * 1024 * 1024;

/** Global options: no banner, only errors (ffprobe gets `warning` where we read one), the
 * allocation cap. ffprobe has no -nostdin; it never reads stdin, which we close anyway. */
export function globalArgs(tool: 'ffmpeg' | 'ffprobe', logLevel: 'error' | 'warning' = 'error'): string[] {
	return [...(tool === 'ffmpeg' ? ['-nostdin'] : []), '-hide_banner', '-loglevel', logLevel, '-max_alloc', String(MAX_ALLOC_BYTES)];
}

/** The file as a `file:` URL with an absolute path: a name like `concat:...`, `http://...`
 * or `-foo` is then just a file name, never a protocol or an option. */
export function fileUrl(filePath: string): string {
	return `file:${path.resolve(filePath)}`;
}

/** Opens the input with only the file protocol (and pipe) allowed, so a playlist or a
 * reference inside the file cannot make ffmpeg open URLs or other local files, and with
 * the demuxer the magic bytes named. */
export function inputArgs(format: Exclude<AudioFormat, 'unknown'>, filePath: string): string[] {
	return ['-protocol_whitelist', 'file,pipe', '-f', FFMPEG_DEMUXER[format], '-i', fileUrl(filePath)];
}

/** Filters applied before resampling. ffmpeg's AMR decoders do not implement comfort noise:
 * SID and NO_DATA frames (discontinuous transmission, common in AMR from phones and sox) are
 * dropped, so pauses would shrink and the audio end early. `aresample=async` fills the
 * timestamp gaps they leave with silence (any gap over 10 ms, from time 0), and `apad`
 * restores trailing DTX frames up to the duration the packets declare. */
export function inputFilters(format: AudioFormat, packetDurationMs: number | undefined): string[] {
	if (format !== 'amr-nb' && format !== 'amr-wb') return [];
	const filters = ['aresample=async=1:min_hard_comp=0.01:first_pts=0'];
	if (packetDurationMs !== undefined) filters.push(`apad=whole_dur=${(packetDurationMs / 1000).toFixed(3)}`);
	return filters;
}

/** Seconds for -t and friends. */
export function seconds(ms: number): string {
	return (ms / 1000).toFixed(3);
}
