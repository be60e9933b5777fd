// Records one live producer into an Ogg Opus file, in-process: a DirectTransport consumer
// hands every forwarded RTP packet to Node, a short reorder window puts them in sequence,
// and OggOpusWriter writes them with the RTP timeline. No ffmpeg per recording.
//
// It stops (and finalizes the file) when asked, at the duration limit, when the producer
// closes (the speaker left) or when its router goes away (channel closed, worker died).
//
// The sender controls timestamps and pacing, so the file is bounded on the media timeline
// too: a gap adds at most maxGapMs of silence, the audio never runs more than
// aheadToleranceMs ahead of the wall clock (faster packets are dropped), and the duration
// limit applies to the audio written, not only to the time the recording has run.
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import { inSpan } from '../../telemetry/tracing.js';
import { OggOpusWriter, OPUS_SAMPLE_RATE, opusPacketSamples } from '../ogg/OggOpusWriter.js';
import type { RecordingCounts } from '../voiceMessage.js';
import { RtpReorderBuffer } from './RtpReorderBuffer.js';

/** Packets the reorder window holds (20 ms each): reordering beyond 100 ms counts as late. */
const REORDER_WINDOW_PACKETS = 5;

export interface RecordingBounds {
	/** Longest timestamp gap filled with silence. DTX pauses are legitimate and last a few
	 * seconds; a longer jump (a resumed producer, a broken or forged timestamp) adds only this. */
	maxGapMs: number;
	/** How far the audio may run ahead of the wall clock since the first packet: jitter and a
	 * delayed first packet fit in it; packets beyond it are dropped and counted. */
	aheadToleranceMs: number;
	/** Silence is filled only up to the wall clock plus this, so a jump does not use up the
	 * tolerance the following packets need for their jitter. */
	fillAheadMs: number;
}

/** Fixed, not configured: they bound what a sender can make us write rather than express a
 * product choice. 5 s is far above the 400 ms between Opus DTX packets; 2 s covers jitter. */
export const DEFAULT_RECORDING_BOUNDS: RecordingBounds = { maxGapMs: 5000, aheadToleranceMs: 2000, fillAheadMs: 500 };

const samplesOf = (ms: number) => (ms * OPUS_SAMPLE_RATE) / 1000;

export type StopReason = 'stopped' | 'max duration reached' | 'producer closed' | 'media closed' | 'server shutting down' | 'write failed';

export interface RecordingResult {
	reason: StopReason;
	durationMs: number;
	sizeBytes: number;
	counts: RecordingCounts;
	/** Packets the server's consumer sent us, by mediasoup's own count (the cross-check). */
	consumerPacketCount: number | undefined;
	/** Time from stop() to the file being complete on disk. */
	finalizeMs: number;
	/** Set when the file could not be written (disk full, read-only): it is incomplete. */
	error?: Error;
}

export interface ProducerRecordingEvents {
	finished: [RecordingResult];
}

/** Payload of an RTP packet: skips CSRCs and header extensions, drops padding. */
export function rtpPayload(packet: Buffer): Buffer | undefined {
	if (packet.length < 12 || packet[0]! >> 6 !== 2) return undefined;
	let off = 12 + 4 * (packet[0]! & 0x0f);
	if (packet[0]! & 0x10) {
		if (off + 4 > packet.length) return undefined;
		off += 4 + 4 * packet.readUInt16BE(off + 2);
	}
	let end = packet.length;
	if (packet[0]! & 0x20) end -= packet[end - 1]!;
	return off <= end ? packet.subarray(off, end) : undefined;
}

export class ProducerRecording extends EventEmitter<ProducerRecordingEvents> {
	readonly producerId: string;
	readonly startedAt = Date.now();
	readonly #transport: ms.DirectTransport;
	readonly #consumer: ms.Consumer;
	readonly #writer: OggOpusWriter;
	readonly #reorder: RtpReorderBuffer<{ payload: Buffer; timestamp: number }>;
	readonly #limitTimer: NodeJS.Timeout;
	#result: RecordingResult | undefined;
	#stopping: Promise<RecordingResult> | undefined;
	/** Set as #finish starts: closing our transport there must not call stop() again
	 * (#stopping is assigned only once #finish returned its promise). */
	#finishing = false;
	#writeError: Error | undefined;
	readonly #maxSamples: number;
	readonly #bounds: RecordingBounds;
	/** When the first packet was written: the wall clock the media timeline is held to. */
	#firstWrittenAt: number | undefined;
	/** The media timeline reached the duration limit: nothing more is written. */
	#full = false;
	#packetsAhead = 0;

	private constructor(producerId: string, transport: ms.DirectTransport, consumer: ms.Consumer, writer: OggOpusWriter, maxDurationMs: number, bounds: RecordingBounds) {
		super();
		this.producerId = producerId;
		this.#transport = transport;
		this.#consumer = consumer;
		this.#writer = writer;
		this.#maxSamples = samplesOf(maxDurationMs);
		this.#bounds = bounds;
		this.#reorder = new RtpReorderBuffer(REORDER_WINDOW_PACKETS, ({ payload, timestamp }) => this.#write(payload, timestamp));
		consumer.on('rtp', (packet) => {
			const payload = rtpPayload(packet);
			if (!payload || payload.length === 0) return;
			// Copy: the buffer belongs to mediasoup's channel reader.
			try {
				this.#reorder.push(packet.readUInt16BE(2), { payload: Buffer.from(payload), timestamp: packet.readUInt32BE(4) });
			} catch (err) {
				// A page write failed (disk full, read-only): the file cannot be completed.
				this.#writeError ??= err as Error;
				void this.stop('write failed');
			}
		});
		consumer.on('producerclose', () => {
			if (!this.#finishing) void this.stop('producer closed');
		});
		transport.observer.once('close', () => {
			if (!this.#finishing) void this.stop('media closed');
		});
		this.#limitTimer = setTimeout(() => void this.stop('max duration reached'), maxDurationMs);
		this.#limitTimer.unref();
	}

	/** Starts consuming `producer` on its router and writing to `path` (which must not exist). */
	static async start(router: ms.Router, producer: ms.Producer, path: string, maxDurationMs: number, bounds: Partial<RecordingBounds> = {}): Promise<ProducerRecording> {
		const b = { ...DEFAULT_RECORDING_BOUNDS, ...bounds };
		const transport = await router.createDirectTransport();
		try {
			const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities, paused: false });
			const writer = new OggOpusWriter(path, { channels: 1, tags: { ENCODER: 'Parley' }, maxGapMs: b.maxGapMs });
			return new ProducerRecording(producer.id, transport, consumer, writer, maxDurationMs, b);
		} catch (err) {
			transport.close();
			throw err;
		}
	}

	get finished(): boolean {
		return this.#result !== undefined;
	}

	get durationMs(): number {
		return this.#writer.durationMs;
	}

	/** The file being written. */
	get path(): string {
		return this.#writer.path;
	}

	/**
	 * For a checkpoint: writes the audio received so far (what the reorder window released) as
	 * a page and returns the bytes of whole pages in the file; everything below is final. A
	 * failed write stops the recording as one in the RTP path does. Once finishing, the bytes
	 * as they are (finalize owns the last page).
	 */
	checkpointBoundary(): number {
		if (this.#finishing || this.#writeError) return this.#writer.flushedBytes;
		try {
			return this.#writer.flush();
		} catch (err) {
			this.#writeError ??= err as Error;
			void this.stop('write failed');
			return this.#writer.flushedBytes;
		}
	}

	/** Writes one packet in sequence order, within the duration limit and the wall clock. */
	#write(payload: Buffer, timestamp: number): void {
		if (this.#full) return;
		const now = performance.now();
		const samples = opusPacketSamples(payload);
		const written = this.#writer.samples;
		if (written + samples > this.#maxSamples) {
			this.#reachedLimit();
			return;
		}
		const wallSamples = this.#firstWrittenAt === undefined ? 0 : samplesOf(now - this.#firstWrittenAt);
		if (written + samples > wallSamples + samplesOf(this.#bounds.aheadToleranceMs)) {
			this.#packetsAhead++;
			return;
		}
		const fillerBudget = Math.min(this.#maxSamples - written - samples, wallSamples + samplesOf(this.#bounds.fillAheadMs) - written);
		this.#writer.writePacket(payload, timestamp, fillerBudget);
		this.#firstWrittenAt ??= now;
		if (this.#writer.samples >= this.#maxSamples) this.#reachedLimit();
	}

	#reachedLimit(): void {
		this.#full = true;
		if (!this.#finishing) void this.stop('max duration reached');
	}

	/** Finalizes the file with everything received so far; later calls return the same result. */
	stop(reason: StopReason = 'stopped'): Promise<RecordingResult> {
		this.#stopping ??= inSpan('voice.recording.finalize', { 'parley.producer_id': this.producerId, 'parley.stop_reason': reason }, async (span) => {
			const result = await this.#finish(reason);
			span.setAttributes({
				'parley.duration_ms': Math.round(result.durationMs),
				'parley.size_bytes': result.sizeBytes,
				'parley.packets_written': result.counts.packetsWritten,
				'parley.packets_missing': result.counts.packetsMissing,
			});
			return result;
		});
		return this.#stopping;
	}

	async #finish(reason: StopReason): Promise<RecordingResult> {
		this.#finishing = true;
		const started = performance.now();
		clearTimeout(this.#limitTimer);
		// mediasoup's count of what the consumer forwarded to us, for the metadata cross-check.
		// Pause first, still listening: RTP and the pause reply share the worker's channel in
		// order, so every packet forwarded before the pause has reached us when it resolves,
		// and the count matches what we received exactly.
		let consumerPacketCount: number | undefined;
		if (!this.#consumer.closed) {
			await this.#consumer.pause().catch(() => undefined);
			consumerPacketCount = await this.#consumer.getStats().then(
				(stats) => stats.find((s) => s.type === 'outbound-rtp')?.packetCount,
				() => undefined,
			);
		}
		this.#consumer.removeAllListeners('rtp');
		let summary: { durationMs: number; sizeBytes: number; packetsWritten: number };
		try {
			if (this.#writeError) throw this.#writeError;
			this.#reorder.flush();
			summary = this.#writer.finalize();
		} catch (err) {
			this.#writeError ??= err as Error;
			this.#writer.abort();
			summary = { durationMs: this.#writer.durationMs, sizeBytes: 0, packetsWritten: this.#writer.packetsWritten };
		}
		this.#transport.close();
		const c = this.#reorder.counts;
		this.#result = {
			reason,
			durationMs: summary.durationMs,
			sizeBytes: summary.sizeBytes,
			counts: { packetsReceived: c.received, packetsWritten: summary.packetsWritten, gaps: c.gaps, packetsMissing: c.missing, duplicates: c.duplicates, late: c.late, timestampJumps: this.#writer.timestampJumps, packetsAhead: this.#packetsAhead },
			consumerPacketCount,
			finalizeMs: Math.round((performance.now() - started) * 100) / 100,
			...(this.#writeError && { error: this.#writeError }),
		};
		this.emit('finished', this.#result);
		return this.#result;
	}
}
