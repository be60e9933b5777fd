// Records one live producer into an Ogg Opus file, in-process: a DirectTransport consumer
// hands every forwarded RTP packet to Node, RecordingRepairBuffer puts them in sequence and
// repairs holes from RED copies and NACK retransmissions (waiting up to REPAIR_HOLD_MS), and
// OggOpusWriter writes them with the RTP timeline. No ffmpeg per recording.
//
// The consumer takes the router's capabilities, so a producer sending RED (RFC 2198) reaches
// us as RED: the primary block is the packet's frame, the redundant blocks are copies of
// earlier ones. A RED payload that does not parse, or whose blocks are not this stream's
// Opus, is counted (redInvalid) and skipped, never written as Opus.
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
import { isRedParseError, parseRedPayload } from '../../media/redPayload.js';
import { OggOpusWriter, OPUS_SAMPLE_RATE, opusPacketSamples } from '../ogg/OggOpusWriter.js';
import type { RecordingCounts } from '../voiceMessage.js';
import { type RecordedPacket, RecordingRepairBuffer, type RepairBounds } from './RecordingRepairBuffer.js';

/**
 * How long a sequence hole is waited for before its frames count as missing: a RED copy
 * comes with the next packet or two, a NACK retransmission one round trip after the hole is
 * seen (retried while the first is lost too), so 500 ms covers several round trips of a
 * mobile uplink. The packet bound holds the wait (and memory) when packets come faster than
 * real time; 128 copies cover 64 packets of RED distance 2. Fixed, like the bounds below: a
 * recording's only cost of waiting is that much more audio held in memory.
 */
export const REPAIR_BOUNDS: RepairBounds = { holdMs: 500, maxHeldPackets: 64, maxCopies: 128 };

/** Stops after which the media is still up, so open holes can still be repaired. */
const TAIL_WAIT_REASONS: ReadonlySet<StopReason> = new Set<StopReason>(['stopped', 'server shutting down']);
const TAIL_POLL_MS = 10;

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

export interface RecordedPayloadTypes {
	/** The consumer's RED payload type (none: the stream is plain Opus). */
	red: number | undefined;
	/** Payload types that RED blocks may carry for this stream's Opus. */
	opus: ReadonlySet<number>;
}

/**
 * One forwarded RTP packet as the repair buffer takes it (its bytes copied: the buffer
 * belongs to mediasoup's channel reader). Untrusted: a RED payload that does not parse, has
 * an empty primary, or blocks of another payload type is 'invalid red', never Opus.
 */
/** A Buffer view of the same bytes (no copy). */
const asBuffer = (view: Uint8Array): Buffer => Buffer.from(view.buffer, view.byteOffset, view.byteLength);

export function recordedPacketOf(packet: Buffer, payloadTypes: RecordedPayloadTypes): RecordedPacket | 'invalid red' | undefined {
	const payload = rtpPayload(packet);
	if (!payload || payload.length === 0) return undefined;
	const seq = packet.readUInt16BE(2);
	const timestamp = packet.readUInt32BE(4);
	// One copy of the payload per packet (the buffer belongs to mediasoup's channel reader);
	// the frame and RED's copies are views into it.
	const owned = Buffer.from(payload);
	if ((packet[1]! & 0x7f) !== payloadTypes.red) return { seq, timestamp, frame: owned };
	const red = parseRedPayload(owned);
	if (isRedParseError(red) || red.primary.data.length === 0) return 'invalid red';
	if (!payloadTypes.opus.has(red.primary.payloadType) || red.redundant.some((b) => !payloadTypes.opus.has(b.payloadType))) return 'invalid red';
	return {
		seq,
		timestamp,
		frame: asBuffer(red.primary.data),
		// Empty blocks carry nothing to restore (RFC 2198 allows them).
		copies: red.redundant.filter((b) => b.data.length > 0).map((b) => ({ timestamp: (timestamp - b.timestampOffset) >>> 0, frame: asBuffer(b.data) })),
	};
}

export class ProducerRecording extends EventEmitter<ProducerRecordingEvents> {
	readonly producerId: string;
	readonly startedAt = Date.now();
	readonly #transport: ms.DirectTransport;
	readonly #consumer: ms.Consumer;
	readonly #writer: OggOpusWriter;
	readonly #repair: RecordingRepairBuffer;
	readonly #payloadTypes: RecordedPayloadTypes;
	#redInvalid = 0;
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

	private constructor(producer: ms.Producer, transport: ms.DirectTransport, consumer: ms.Consumer, writer: OggOpusWriter, maxDurationMs: number, bounds: RecordingBounds) {
		super();
		this.producerId = producer.id;
		this.#transport = transport;
		this.#consumer = consumer;
		this.#writer = writer;
		this.#maxSamples = samplesOf(maxDurationMs);
		this.#bounds = bounds;
		const isMime = (mime: string) => (c: { mimeType: string }) => c.mimeType.toLowerCase() === mime;
		this.#payloadTypes = {
			red: consumer.rtpParameters.codecs.find(isMime('audio/red'))?.payloadType,
			// The worker maps block types to the router's Opus; the producer's is accepted too.
			opus: new Set([...consumer.rtpParameters.codecs, ...producer.rtpParameters.codecs].filter(isMime('audio/opus')).map((c) => c.payloadType)),
		};
		this.#repair = new RecordingRepairBuffer(REPAIR_BOUNDS, (frame, timestamp) => this.#write(frame, timestamp));
		consumer.on('rtp', (packet) => {
			const recorded = recordedPacketOf(packet, this.#payloadTypes);
			if (recorded === 'invalid red') this.#redInvalid++;
			if (typeof recorded !== 'object') return;
			try {
				this.#repair.push(recorded, performance.now());
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
			return new ProducerRecording(producer, transport, consumer, writer, maxDurationMs, b);
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
	 * For a checkpoint: writes the audio received so far (what the repair buffer released) as
	 * a page and returns the bytes of whole pages in the file; everything below is final. A
	 * failed write stops the recording as one in the RTP path does. Once finishing, the bytes
	 * as they are (finalize owns the last page).
	 */
	checkpointBoundary(): number {
		if (this.#finishing || this.#writeError) return this.#writer.flushedBytes;
		try {
			// Holes that waited their time are given up now, even if no packet came since.
			this.#repair.release(performance.now());
			return this.#writer.flush();
		} catch (err) {
			this.#writeError ??= err as Error;
			void this.stop('write failed');
			return this.#writer.flushedBytes;
		}
	}

	/** Writes one frame in sequence order, within the duration limit and the wall clock. */
	#write(payload: Uint8Array, timestamp: number): void {
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
				'parley.frames_from_red': result.counts.framesFromRed ?? 0,
				'parley.frames_from_retransmission': result.counts.framesFromRetransmission ?? 0,
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
		// A stop while a hole waits for its repair (a retransmission one round trip away, a RED
		// copy in the next packet) would lose frames that reached the server just after it.
		// So a stop that leaves the media up first waits, up to the hold bound, for the holes
		// open now, taking no audio newer than the stop.
		if (TAIL_WAIT_REASONS.has(reason) && !this.#consumer.closed && !this.#writeError) {
			this.#repair.seal();
			const deadline = performance.now() + REPAIR_BOUNDS.holdMs;
			while (this.#repair.holeOpen && !this.#consumer.closed && performance.now() < deadline) {
				await new Promise((r) => setTimeout(r, TAIL_POLL_MS));
				this.#repair.release(performance.now());
			}
		}
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
			this.#repair.flush();
			summary = this.#writer.finalize();
		} catch (err) {
			this.#writeError ??= err as Error;
			this.#writer.abort();
			summary = { durationMs: this.#writer.durationMs, sizeBytes: 0, packetsWritten: this.#writer.packetsWritten };
		}
		this.#transport.close();
		const c = this.#repair.counts;
		this.#result = {
			reason,
			durationMs: summary.durationMs,
			sizeBytes: summary.sizeBytes,
			counts: {
				packetsReceived: c.received + this.#redInvalid,
				packetsWritten: summary.packetsWritten,
				gaps: c.gaps,
				packetsMissing: c.missing,
				duplicates: c.duplicates,
				late: c.late,
				packetsAfterStop: c.afterSeal,
				timestampJumps: this.#writer.timestampJumps,
				packetsAhead: this.#packetsAhead,
				framesFromRed: c.fromRed,
				framesFromRetransmission: c.fromRetransmission,
				redInvalid: this.#redInvalid,
			},
			consumerPacketCount,
			finalizeMs: Math.round((performance.now() - started) * 100) / 100,
			...(this.#writeError && { error: this.#writeError }),
		};
		this.emit('finished', this.#result);
		return this.#result;
	}
}
