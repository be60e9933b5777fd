// Tables, headlines and report sections of the storage and metadata scenarios.
import type { MetadataOperation, MetadataResult } from '../scenarios/metadata.js';
import type { StorageResult } from '../scenarios/storage.js';
import type { Headline } from './BenchRun.js';
import { type Cell, markdownTable, ms, num, pct, textTable } from './table.js';

const MIB = 1_048_576;
const OPERATION_LABELS: Record<MetadataOperation, string> = {
	create: 'create (+ outbox row)',
	statusUpdate: 'status update (+ outbox row)',
	listByDestination: 'list by destination (page)',
};

function chunkLabel(bytes: number): string {
	return bytes >= MIB ? `${(bytes / MIB).toFixed(bytes % MIB ? 1 : 0)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`;
}

const STORAGE_HEADERS = ['backend', 'what', 'size', 'requests', 'MB/s', 'first byte p50', 'time', 'PATCH p50 / last', 'ready at', 'server CPU', 'bench CPU', 'cores busy'];

function storageRows(s: StorageResult): Cell[][] {
	return s.backends.flatMap((b) => [
		...b.uploads.map((u): Cell[] => [b.backend, `upload, ${chunkLabel(u.chunkBytes)} chunks`, `${(u.bytes / MIB).toFixed(1)} MiB`, `${u.patches} PATCH`, num(u.mbPerS, 1), '-', ms(u.uploadMs, 0), `${ms(u.patchMs, 0)} / ${ms(u.lastPatchMs, 0)}`, ms(u.readyMs, 0), pct(u.cpu.server, 0), pct(u.cpu.bench, 0), num(u.cpu.coresBusy, 2)]),
		[b.backend, `download (median of ${b.download.runs})`, `${(b.download.bytes / MIB).toFixed(1)} MiB`, `${b.download.runs} GET`, num(b.download.mbPerS, 1), ms(b.download.firstByteMs.p50, 1), ms(b.download.totalMs.p50, 0), '-', '-', pct(b.download.cpu.server, 0), pct(b.download.cpu.bench, 0), num(b.download.cpu.coresBusy, 2)],
		[b.backend, `recording finalize (median of ${b.recording.runs})`, `${(b.recording.durationMs / 1000).toFixed(1)} s`, `stop reply p50 ${ms(b.recording.stopReplyMs.p50, 0)}`, '-', '-', `stop to ready ${ms(b.recording.finalizeMs.p50, 0)} (max ${ms(b.recording.finalizeMs.max, 0)})`, '-', '-', '-', '-', '-'],
	]);
}

const METADATA_HEADERS = ['engine', 'operation', 'ops', 'failed', 'ops/s', 'p50', 'p99', 'max'];

function metadataRows(m: MetadataResult): Cell[][] {
	return m.engines.flatMap((e) =>
		(Object.keys(OPERATION_LABELS) as MetadataOperation[]).map((op): Cell[] => {
			const f = e.operations[op];
			return [e.engine, OPERATION_LABELS[op], f.ops, f.failed, num(f.opsPerSecond), ms(f.latencyMs.p50), ms(f.latencyMs.p99), ms(f.latencyMs.max)];
		}),
	);
}

export function storageHeadlines(storage: StorageResult | undefined, metadata: MetadataResult | undefined): Headline[] {
	const out: Headline[] = [];
	for (const b of storage?.backends ?? []) {
		const uploads = b.uploads.map((u) => `${num(u.mbPerS, 1)} MB/s, ready at ${num(u.readyMs / 1000, 1)} s (${chunkLabel(u.chunkBytes)} chunks)`).join('; ');
		out.push({ label: `Upload of ${num(storage!.options.fileMiB)} MiB, tus-js-client, ${b.backend}`, value: uploads, path: storage!.path });
		out.push({ label: `Download throughput and first byte, ${b.backend}`, value: `${num(b.download.mbPerS, 1)} MB/s, first byte p50 ${ms(b.download.firstByteMs.p50, 1)}`, path: storage!.path });
		out.push({ label: `Recording finalize (stopRecording to ready), ${b.backend}`, value: `p50 ${ms(b.recording.finalizeMs.p50, 0)} (${b.recording.runs} recordings of ${(b.recording.durationMs / 1000).toFixed(1)} s)`, path: storage!.path });
	}
	for (const e of metadata?.engines ?? []) {
		out.push({
			label: `Metadata ops/s (p99), ${e.engine}: create / status update / list`,
			value: (Object.keys(OPERATION_LABELS) as MetadataOperation[]).map((op) => `${num(e.operations[op].opsPerSecond)} (${ms(e.operations[op].latencyMs.p99)})`).join(' / '),
			path: `${metadata!.path}; ${e.durability}`,
		});
	}
	return out;
}

/** Sections of the stdout summary. */
export function storageTextParts(storage: StorageResult | undefined, metadata: MetadataResult | undefined): string[] {
	const parts: string[] = [];
	if (storage) parts.push(`Storage (${storage.path}; files on ${storage.fileSystem}; MB = 10^6 bytes)\n${textTable(STORAGE_HEADERS, storageRows(storage))}`);
	if (metadata) {
		parts.push(
			`Metadata (${metadata.path}; ${metadata.options.ops} operations per phase)\n${textTable(METADATA_HEADERS, metadataRows(metadata))}\n${metadata.engines.map((e) => `${e.engine} ${e.version}: ${e.durability}`).join('\n')}`,
		);
	}
	return parts;
}

/** Sections of report.md. */
export function storageMarkdown(storage: StorageResult | undefined, metadata: MetadataResult | undefined): string[] {
	const lines: string[] = [];
	if (storage) {
		const o = storage.options;
		lines.push('## Voice-message storage: disk and s3', '');
		lines.push(
			`Path: ${storage.path}. Upload: stock tus-js-client sends a ${o.fileMiB} MiB Ogg Opus file (510 kb/s stereo, looped speech) once per chunk size; MB/s (10^6 bytes) from its first request to the last PATCH acknowledged (*time*); *PATCH p50 / last* = one chunk's round trip, and the last one's (the node assembles the upload before it answers); *ready at* = from the first request to the voiceMessage notification saying ready (Parley checks that every packet decodes, remuxes the file, computes its waveform and sha256 and commits it to its folder or bucket). Download: GET /voice/messages/<id>/audio of the file from the last upload, ${o.downloads} times, one new connection each; first byte = request sent to the first body byte. CPU over each transfer in shares of one core: *server* = Parley's process (not ffmpeg, not Swift), *bench* = the client side, *cores busy* = every core (Swift and other processes included). Recording finalize: a werift publisher (ICE + DTLS + SRTP) talks into the channel while the node records, ${o.recordings} recordings of ${o.recordingS} s; from sending stopRecording to the ready notification (the reply to stopRecording comes first). Parley's folder and Swift's objects were on ${storage.fileSystem} under the same disk; s3 is OpenStack Swift's s3api on loopback (SigV4 checked), so the s3 figures are Parley's own cost on that path, not a network's.`,
			'',
		);
		lines.push(markdownTable(STORAGE_HEADERS, storageRows(storage)), '');
	}
	if (metadata) {
		const o = metadata.options;
		lines.push('## Voice-message metadata: SQLite, MariaDB, PostgreSQL', '');
		lines.push(
			`Path: ${metadata.path}. Per engine, from an empty database: ${o.ops} creates (a message in status processing, with its outbox row, one transaction), then ${o.ops} status updates (processing -> ready with size, duration, sha256, codec and a 100-value waveform: a read, then a compare-and-set UPDATE and the outbox row in one transaction), then ${o.ops} pages (the newest ${o.pageLimit} of one of ${o.destinations} channels, ${Math.round(o.ops / o.destinations)} messages each). ${o.concurrency} operations in flight at once; ops/s = operations / the phase's wall time; p50/p99 over each operation's own time. Every engine with the settings below (testkit's throwaway servers): they decide what a commit waits for, so compare them with that in mind.`,
			'',
		);
		lines.push(markdownTable(['engine', 'version', 'durability', 'outbox rows pending after', 'page size'], metadata.engines.map((e) => [e.engine, e.version, e.durability, e.outboxPending, e.pageSize])), '');
		lines.push(markdownTable(METADATA_HEADERS, metadataRows(metadata)), '');
		const errors = metadata.engines.flatMap((e) => (Object.keys(OPERATION_LABELS) as MetadataOperation[]).flatMap((op) => e.operations[op].errors.map((x) => `${e.engine} ${op}: ${x}`)));
		if (errors.length) lines.push(`Errors: ${errors.join('; ')}`, '');
	}
	return lines;
}
