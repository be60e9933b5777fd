// Scenario `storage`: what voice-message files cost with storage.backend disk and s3, through
// a real Parley node (its own process, server/main.ts; metadata in its SQLite file):
// - upload: stock tus-js-client sends an N MiB Ogg Opus file in 64 KiB and in 5 MiB chunks
//   (one PATCH per chunk); MB/s from the first request to the last acknowledged PATCH, then
//   the time from that acknowledgement until the node says the message is ready (the
//   conversion of an Ogg Opus upload validates every packet and remuxes it, then the file is
//   committed to its folder or bucket);
// - download: GET /voice/messages/<id>/audio of that file, a few times: time to the first
//   body byte and MB/s over the whole response;
// - recording finalize: a werift publisher (ICE + DTLS + SRTP) talks into a channel while
//   the node records it; from sending stopRecording until the node says the message is ready
//   (its reply to stopRecording comes first and is shown too), a few recordings of a few
//   seconds.
// "Ready" is the voiceMessage notification the node sends the owner over the signaling
// WebSocket, stamped when it arrives. The s3 backend is OpenStack Swift's s3api on loopback
// (testkit/services/swift.ts): a local object store, so these figures show Parley's own
// cost on that path, not a network's.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Upload } from 'tus-js-client';
import { Encoder } from '@evan/opus';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { OggOpusWriter } from '../../server/voice/ogg/OggOpusWriter.js';
import { startSwift, type TestSwift } from '../../testkit/services/swift.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { publishWithWerift, streamTone } from '../../testkit/weriftPublisher.js';
import { encodeOpusFrames } from '../audio/opusEncoding.js';
import { FRAME_SAMPLES, loopFrames, speechPcm } from '../audio/speech.js';
import { CpuMeter } from '../metrics/cpu.js';
import { type LatencySummary, summarize } from '../metrics/stats.js';
import { ParleyProcess } from '../signaling/ParleyProcess.js';

export type StorageBackend = 'disk' | 's3';

export interface StorageOptions {
	backends: StorageBackend[];
	/** Size of the uploaded file (MiB). */
	fileMiB: number;
	/** tus chunk sizes, one upload each (KiB). */
	chunkKiB: number[];
	/** Downloads of the uploaded file per backend. */
	downloads: number;
	recordings: number;
	recordingS: number;
}

export const STORAGE_DEFAULTS: StorageOptions = {
	backends: ['disk', 's3'],
	fileMiB: 20,
	chunkKiB: [64, 5 * 1024],
	downloads: 5,
	recordings: 3,
	recordingS: 3,
};

export interface UploadFigure {
	chunkBytes: number;
	bytes: number;
	patches: number;
	/** First tus request to the last PATCH acknowledged. */
	uploadMs: number;
	/** 10^6 bytes per second over uploadMs. */
	mbPerS: number;
	/** First tus request to the ready notification. */
	readyMs: number;
	/** Last PATCH acknowledged to the ready notification; negative when the notification came
	 * first (the node had committed the message before its reply to the last PATCH arrived). */
	readyAfterUploadMs: number;
	/** Median PATCH, from the previous chunk's acknowledgement to this one's. */
	patchMs: number;
	/** The last PATCH (the node assembles the upload before it answers). */
	lastPatchMs: number;
	cpu: CpuShares;
}

/** Over the transfer, shares of one core: Parley's process (JS thread and its libuv pool;
 * not ffmpeg, not Swift), the bench (the client), and all cores busy (Swift included). */
export interface CpuShares {
	server: number;
	bench: number;
	coresBusy: number;
}

export interface DownloadFigure {
	bytes: number;
	runs: number;
	/** Request sent to the first body byte. */
	firstByteMs: LatencySummary;
	totalMs: LatencySummary;
	/** Median over runs, 10^6 bytes per second over the whole response. */
	mbPerS: number;
	/** Over all runs. */
	cpu: CpuShares;
}

export interface RecordingFigure {
	runs: number;
	/** Median recorded duration the node reported. */
	durationMs: number;
	/** stopRecording sent to its reply. */
	stopReplyMs: LatencySummary;
	/** stopRecording sent to the ready notification. */
	finalizeMs: LatencySummary;
}

export interface StorageBackendResult {
	backend: StorageBackend;
	uploads: UploadFigure[];
	download: DownloadFigure;
	recording: RecordingFigure;
}

export interface StorageResult {
	path: string;
	options: StorageOptions;
	/** File system of os.tmpdir(), where the node's folder and Swift's objects live. */
	fileSystem: string;
	backends: StorageBackendResult[];
}

const BUCKET = 'parley-bench';
const CHANNEL = 'room';
const USER = 'bench-storage';

export async function runStorage(options: StorageOptions, log: (line: string) => void = () => {}): Promise<StorageResult> {
	const o = options;
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-storage-'));
	let swift: TestSwift | undefined;
	try {
		const file = uploadFile(path.join(dir, 'upload.opus'), o.fileMiB * 1_048_576);
		log(`storage: upload file ${(file.bytes / 1_048_576).toFixed(1)} MiB of Ogg Opus (${(file.durationMs / 1000).toFixed(0)} s, 510 kb/s stereo)`);
		const talk = encodeOpusFrames(speechPcm(), 250, { bitrateBps: 32_000 });
		const backends: StorageBackendResult[] = [];
		for (const backend of o.backends) {
			let env: Record<string, string> = {};
			if (backend === 's3') {
				swift ??= await startSwift();
				await swift.createBucket(BUCKET);
				env = swift.nodeEnv(BUCKET, 'voice/');
			}
			backends.push(await measureBackend(backend, env, file, talk, o, log));
		}
		return {
			path: 'Parley as a child process (server/main.ts), metadata in SQLite; tus-js-client over HTTP/1.1; werift publisher (ICE + DTLS + SRTP) for recordings; s3 = OpenStack Swift s3api on loopback',
			options: o,
			fileSystem: fileSystemOf(os.tmpdir()),
			backends,
		};
	} finally {
		await swift?.close();
		rmSync(dir, { recursive: true, force: true });
	}
}

async function measureBackend(backend: StorageBackend, env: Record<string, string>, file: { path: string; bytes: number; durationMs: number; data: Buffer }, talk: Uint8Array[], o: StorageOptions, log: (line: string) => void): Promise<StorageBackendResult> {
	const jwtSecret = randomBytes(24).toString('hex');
	const server = await ParleyProcess.start({
		jwtSecret,
		env: {
			...env,
			PARLEY_VOICE_MAX_UPLOAD_BYTES: String(Math.max(file.bytes + 1_048_576, 20 * 1_048_576)),
			PARLEY_VOICE_MAX_DURATION_MS: '3600000',
			PARLEY_VOICE_TRANSCODE_TIMEOUT_MS: '600000',
		},
	});
	const cleanups: (() => unknown)[] = [];
	try {
		const token = await mintAccessToken({ userId: USER, channels: [CHANNEL], grants: { canPublish: true, canSubscribe: true, canRecord: true }, ttlS: 3600 }, new TextEncoder().encode(jwtSecret));
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
		cleanups.push(() => client.close());
		const settled = new SettledMessages(client);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error(`getRouterRtpCapabilities: ${caps.error.code}`);
		const joined = await client.request('join', { channel: CHANNEL, rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		if (!joined.ok) throw new Error(`join: ${joined.error.code}`);

		const uploads: UploadFigure[] = [];
		let lastId = '';
		for (const kib of o.chunkKiB) {
			const { id, figure } = await tusUpload(server.port, server.pid, token, file.data, kib * 1024, settled);
			uploads.push(figure);
			lastId = id;
			log(`storage ${backend}: upload ${(figure.bytes / 1_048_576).toFixed(1)} MiB in ${kib} KiB chunks (${figure.patches} PATCH): ${figure.mbPerS.toFixed(1)} MB/s, ready ${(figure.readyMs / 1000).toFixed(2)} s after the start (${figure.readyAfterUploadMs.toFixed(0)} ms after the last PATCH's reply); PATCH p50 ${figure.patchMs.toFixed(0)} ms, last ${figure.lastPatchMs.toFixed(0)} ms`);
		}

		const runs: { bytes: number; firstByteMs: number; totalMs: number }[] = [];
		const meter = new CpuMeter([server.pid]);
		meter.start();
		for (let i = 0; i < o.downloads; i++) {
			const r = await download(server.port, lastId, token);
			if (r.status !== 200) throw new Error(`download answered ${r.status}`);
			if (r.bytes !== r.contentLength) throw new Error(`download gave ${r.bytes} bytes of ${r.contentLength}`);
			runs.push(r);
		}
		const downloadCpu = cpuShares(meter);
		const downloadFigure: DownloadFigure = {
			bytes: runs[0]?.bytes ?? 0,
			runs: runs.length,
			firstByteMs: summarize(runs.map((r) => r.firstByteMs)),
			totalMs: summarize(runs.map((r) => r.totalMs)),
			mbPerS: median(runs.map((r) => r.bytes / 1e6 / (r.totalMs / 1000))),
			cpu: downloadCpu,
		};
		log(`storage ${backend}: download ${(downloadFigure.bytes / 1_048_576).toFixed(1)} MiB x${runs.length}: ${downloadFigure.mbPerS.toFixed(1)} MB/s, first byte p50 ${downloadFigure.firstByteMs.p50.toFixed(1)} ms`);

		const publisher = await publishWithWerift(client);
		cleanups.push(() => publisher.close());
		const stopReplies: number[] = [];
		const finalizes: number[] = [];
		const durations: number[] = [];
		for (let i = 0; i < o.recordings; i++) {
			const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: CHANNEL } });
			if (!rec.ok) throw new Error(`startRecording: ${rec.error.code}`);
			const id = rec.data.voiceMessageId;
			const stream = streamTone(publisher, talk);
			await new Promise((r) => setTimeout(r, o.recordingS * 1000));
			const sent = performance.now();
			const stopped = await client.request('stopRecording', { voiceMessageId: id });
			const replied = performance.now();
			await stream.stop();
			if (!stopped.ok) throw new Error(`stopRecording: ${stopped.error.code}`);
			const ready = await settled.wait(id, 60_000);
			stopReplies.push(replied - sent);
			finalizes.push(ready.at - sent);
			durations.push(ready.message.durationMs ?? 0);
		}
		const recording: RecordingFigure = { runs: finalizes.length, durationMs: median(durations), stopReplyMs: summarize(stopReplies), finalizeMs: summarize(finalizes) };
		log(`storage ${backend}: ${recording.runs} recordings of ${(recording.durationMs / 1000).toFixed(1)} s: stop to ready p50 ${recording.finalizeMs.p50.toFixed(0)} ms (stop reply p50 ${recording.stopReplyMs.p50.toFixed(0)} ms)`);
		return { backend, uploads, download: downloadFigure, recording };
	} finally {
		for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
		await server.stop();
	}
}

/** Ready (or failed) voiceMessage notifications of the owner's messages, stamped on arrival. */
class SettledMessages {
	readonly #settled = new Map<string, { message: VoiceMessageInfo; at: number }>();
	readonly #waiters = new Set<() => void>();

	constructor(client: TestSignalingClient) {
		client.ws.on('message', (raw, isBinary) => {
			if (isBinary) return;
			const at = performance.now();
			const msg = JSON.parse(raw.toString()) as { method?: string; data?: { message?: VoiceMessageInfo } };
			const m = msg.method === 'voiceMessage' ? msg.data?.message : undefined;
			if (!m || (m.status !== 'ready' && m.status !== 'failed') || this.#settled.has(m.id)) return;
			this.#settled.set(m.id, { message: m, at });
			for (const w of this.#waiters) w();
		});
	}

	/** Resolves once `id` is ready (with when the notification came); rejects if it failed. */
	async wait(id: string, timeoutMs: number): Promise<{ message: VoiceMessageInfo; at: number }> {
		const deadline = Date.now() + timeoutMs;
		for (;;) {
			const s = this.#settled.get(id);
			if (s) {
				if (s.message.status !== 'ready') throw new Error(`voice message ${id} failed: ${s.message.failureReason ?? '?'}`);
				return s;
			}
			if (Date.now() > deadline) throw new Error(`voice message ${id} not ready after ${timeoutMs} ms`);
			await new Promise<void>((resolve) => {
				const done = (): void => {
					clearTimeout(timer);
					this.#waiters.delete(done);
					resolve();
				};
				const timer = setTimeout(done, 200);
				this.#waiters.add(done);
			});
		}
	}
}

function cpuShares(meter: CpuMeter): CpuShares {
	const u = meter.stop();
	return { server: u.processes[0]!, bench: u.bench, coresBusy: u.cores.reduce((a, b) => a + b, 0) };
}

async function tusUpload(port: number, serverPid: number, token: string, data: Buffer, chunkBytes: number, settled: SettledMessages): Promise<{ id: string; figure: UploadFigure }> {
	const acknowledged: number[] = [];
	const meter = new CpuMeter([serverPid]);
	meter.start();
	const started = performance.now();
	const url = await new Promise<string>((resolve, reject) => {
		const upload = new Upload(data, {
			endpoint: `http://127.0.0.1:${port}/voice/uploads`,
			chunkSize: chunkBytes,
			headers: { Authorization: `Bearer ${token}` },
			metadata: { destination: `channel:${CHANNEL}`, filename: 'bench.opus', filetype: 'audio/ogg' },
			retryDelays: [],
			onChunkComplete: () => {
				acknowledged.push(performance.now());
			},
			onSuccess: () => resolve(upload.url!),
			onError: reject,
		});
		upload.start();
	});
	const uploaded = performance.now();
	const cpu = cpuShares(meter);
	const id = new URL(url).pathname.split('/').at(-1)!;
	const ready = await settled.wait(id, 600_000);
	const uploadMs = uploaded - started;
	// The creating POST comes before the first PATCH: each interval is one PATCH (or POST + PATCH).
	const intervals = acknowledged.map((t, i) => t - (i === 0 ? started : acknowledged[i - 1]!));
	return {
		id,
		figure: {
			chunkBytes,
			bytes: data.length,
			patches: acknowledged.length,
			uploadMs,
			mbPerS: data.length / 1e6 / (uploadMs / 1000),
			readyMs: ready.at - started,
			readyAfterUploadMs: ready.at - uploaded,
			patchMs: median(intervals.slice(1).length ? intervals.slice(1) : intervals),
			lastPatchMs: intervals.at(-1) ?? NaN,
			cpu,
		},
	};
}

function download(port: number, id: string, token: string): Promise<{ status: number; bytes: number; contentLength: number; firstByteMs: number; totalMs: number }> {
	return new Promise((resolve, reject) => {
		const t0 = performance.now();
		let first: number | undefined;
		let bytes = 0;
		const req = http.get({ host: '127.0.0.1', port, path: `/voice/messages/${id}/audio`, headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
			res.on('data', (chunk: Buffer) => {
				first ??= performance.now();
				bytes += chunk.length;
			});
			res.on('end', () => {
				const end = performance.now();
				resolve({ status: res.statusCode ?? 0, bytes, contentLength: Number(res.headers['content-length'] ?? -1), firstByteMs: (first ?? end) - t0, totalMs: end - t0 });
			});
			res.on('error', reject);
		});
		req.on('error', reject);
	});
}

/**
 * An Ogg Opus file of about `bytes`: five seconds of speech encoded at 510 kb/s CBR stereo
 * (Opus' largest packets, so the file is not hours long), looped. Parley keeps Ogg Opus as
 * it was encoded (every packet checked, then remuxed), so the stored file is about as large
 * as the upload and the download moves the same bytes.
 */
function uploadFile(file: string, bytes: number): { path: string; bytes: number; durationMs: number; data: Buffer } {
	const encoder = new Encoder({ channels: 2, sample_rate: 48_000, application: 'audio' });
	encoder.bitrate = 510_000;
	encoder.vbr = false;
	const packets = loopFrames(speechPcm(), 250).map((mono) => {
		const stereo = new Int16Array(FRAME_SAMPLES * 2);
		for (let i = 0; i < FRAME_SAMPLES; i++) stereo[2 * i] = stereo[2 * i + 1] = mono[i]!;
		return encoder.encode(stereo).slice();
	});
	const writer = new OggOpusWriter(file, { channels: 2 });
	let written = 0;
	let n = 0;
	// Ogg framing adds about 1%: stop a little short of the size asked for.
	while (written < bytes * 0.99) {
		const packet = packets[n % packets.length]!;
		writer.writePacket(packet, n * FRAME_SAMPLES);
		written += packet.length;
		n++;
	}
	const summary = writer.finalize();
	const data = readFileSync(file);
	return { path: file, bytes: data.length, durationMs: summary.durationMs, data };
}

function fileSystemOf(dir: string): string {
	try {
		return execFileSync('df', ['--output=fstype', dir], { encoding: 'utf8' }).trim().split('\n').at(-1)!.trim();
	} catch {
		return 'unknown';
	}
}

function median(values: number[]): number {
	const s = [...values].sort((a, b) => a - b);
	if (s.length === 0) return NaN;
	const m = s.length >> 1;
	return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
