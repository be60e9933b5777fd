// A synthetic listener: one UDP socket receiving RTP from one or more consumers (each consumer
// SSRC mapped to the publisher it carries). Two ways to keep what arrives:
// - 'record': every frame's first arrival with its payload, for decoding (loss sweep);
// - 'sample': only counts and added-latency samples, for the capacity ramp's sampled listeners.
// Optionally sends generic NACKs for sequence gaps, back to where the RTP came from.
// A stream can be RED (RFC 2198): packets of its RED payload type are split into their
// blocks, the primary one being the packet's own frame and the others redundant copies of
// earlier frames, each kept apart so the playout model can tell which copy played.
import dgram from 'node:dgram';
import { once } from 'node:events';
import { isRedParseError, parseRedPayload } from '../../server/media/redPayload.js';
import { buildNack, isRtcp, rtpSequence, rtpSsrc, rtpTimestamp, parseRtp } from '../rtp/rtp.js';

/** What the subscriber needs from the publisher of a stream. */
export interface StreamSource {
	frameIndexOf(timestamp: number): number;
	sendTimeOf(frameIndex: number): number | undefined;
}

export interface Arrival {
	/** performance.now() at arrival. */
	atMs: number;
	payload: Buffer;
	/** It came after a NACK asked for it (arrived behind a newer packet). */
	afterNack: boolean;
}

/** Payload types a stream's consumer negotiated. */
export interface StreamPayloadTypes {
	/** Opus: the plain packets' payload type and, in RED, every block's. */
	opus: number;
	/** RED, when the consumer has it. */
	red?: number;
}

export class ReceivedStream {
	readonly ssrc: number;
	readonly source: StreamSource;
	readonly payloadTypes: StreamPayloadTypes | undefined;
	/** First arrival per frame index of the frame's own packet (RED: its primary block; 'record' mode). */
	readonly arrivals = new Map<number, Arrival>();
	/** First arrival per frame index of a redundant copy (a RED block of a later packet). */
	readonly redundantArrivals = new Map<number, Arrival>();
	packets = 0;
	/** Packets of the RED payload type. */
	redPackets = 0;
	/** RED packets that did not parse, or with blocks of another payload type than Opus:
	 * a listener must never get blocks it cannot map (should stay 0). */
	invalidRedPackets = 0;
	/** Packets of a payload type the consumer did not negotiate (should stay 0). */
	unexpectedPayloadType = 0;
	duplicates = 0;
	nacksSent = 0;
	nackedPackets = 0;
	#highestSeq = -1;
	readonly #nacked = new Set<number>();

	constructor(ssrc: number, source: StreamSource, payloadTypes?: StreamPayloadTypes) {
		this.ssrc = ssrc;
		this.source = source;
		this.payloadTypes = payloadTypes;
	}

	/** Returns the sequence numbers newly missing (a gap before `seq`), updating the highest seen. */
	trackSequence(seq: number): number[] {
		if (this.#highestSeq < 0) {
			this.#highestSeq = seq;
			return [];
		}
		const ahead = (seq - this.#highestSeq) & 0xffff;
		if (ahead === 0 || ahead >= 0x8000) return []; // duplicate or older (a retransmission)
		const missing: number[] = [];
		// A gap of more than ~1 s is a reset or a pause, not loss worth asking for.
		if (ahead > 1 && ahead < 50) for (let s = (this.#highestSeq + 1) & 0xffff; s !== ((this.#highestSeq + ahead) & 0xffff); s = (s + 1) & 0xffff) missing.push(s);
		this.#highestSeq = seq;
		return missing;
	}

	markNacked(seqs: number[]): void {
		for (const s of seqs) this.#nacked.add(s);
		this.nackedPackets += seqs.length;
		this.nacksSent++;
	}

	wasNacked(seq: number): boolean {
		return this.#nacked.has(seq);
	}
}

export interface RtpSubscriberOptions {
	mode: 'record' | 'sample';
	/** Send NACKs for gaps (record mode). */
	nack?: boolean;
	/** Room for latency samples in sample mode (grows as needed). */
	initialSamples?: number;
}

export class RtpSubscriber {
	readonly #socket: dgram.Socket;
	readonly #options: RtpSubscriberOptions;
	readonly #streams = new Map<number, ReceivedStream>();
	readonly #ssrc = (Math.random() * 2 ** 32) >>> 0;
	#latencies: Float64Array;
	#arrivedAt: Float64Array;
	#latencyCount = 0;
	readonly #payloadTypes = new Set<number>();
	/** Packets whose SSRC or frame was unknown (should stay 0). */
	unknown = 0;
	rtcpReceived = 0;

	private constructor(socket: dgram.Socket, options: RtpSubscriberOptions) {
		this.#socket = socket;
		this.#options = options;
		this.#latencies = new Float64Array(options.initialSamples ?? 4096);
		this.#arrivedAt = new Float64Array(this.#latencies.length);
		socket.on('message', options.mode === 'sample' ? this.#onSample : this.#onRecord);
	}

	static async create(options: RtpSubscriberOptions): Promise<RtpSubscriber> {
		const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
		socket.bind(0, '127.0.0.1');
		await once(socket, 'listening');
		return new RtpSubscriber(socket, options);
	}

	get port(): number {
		return this.#socket.address().port;
	}

	/** `payloadTypes`: checked in 'record' mode; with `red`, RED packets are split into blocks. */
	addStream(ssrc: number, source: StreamSource, payloadTypes?: StreamPayloadTypes): ReceivedStream {
		const stream = new ReceivedStream(ssrc >>> 0, source, payloadTypes);
		this.#streams.set(stream.ssrc, stream);
		return stream;
	}

	streams(): ReceivedStream[] {
		return [...this.#streams.values()];
	}

	/** Latency samples (ms) since the last reset, in arrival order. */
	latencies(): Float64Array {
		return this.#latencies.subarray(0, this.#latencyCount);
	}

	/** performance.now() at arrival of each latency sample. */
	arrivalTimes(): Float64Array {
		return this.#arrivedAt.subarray(0, this.#latencyCount);
	}

	/** Starts a new measuring window: counts and latency samples from zero. */
	resetWindow(): void {
		this.#latencyCount = 0;
		for (const s of this.#streams.values()) s.packets = 0;
	}

	/** Payload types of the RTP packets seen in 'sample' mode. */
	payloadTypesSeen(): number[] {
		return [...this.#payloadTypes];
	}

	#onSample = (msg: Buffer): void => {
		const at = performance.now();
		if (msg.length < 12 || isRtcp(msg)) return;
		this.#payloadTypes.add(msg[1]! & 0x7f);
		const stream = this.#streams.get(rtpSsrc(msg));
		if (!stream) {
			this.unknown++;
			return;
		}
		stream.packets++;
		const sentAt = stream.source.sendTimeOf(stream.source.frameIndexOf(rtpTimestamp(msg)));
		if (sentAt === undefined) {
			this.unknown++;
			return;
		}
		if (this.#latencyCount === this.#latencies.length) {
			const grow = (a: Float64Array): Float64Array => {
				const g = new Float64Array(a.length * 2);
				g.set(a);
				return g;
			};
			this.#latencies = grow(this.#latencies);
			this.#arrivedAt = grow(this.#arrivedAt);
		}
		this.#arrivedAt[this.#latencyCount] = at;
		this.#latencies[this.#latencyCount++] = at - sentAt;
	};

	#onRecord = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
		const at = performance.now();
		if (isRtcp(msg)) {
			this.rtcpReceived++;
			return;
		}
		const rtp = parseRtp(msg);
		const stream = rtp && this.#streams.get(rtp.ssrc);
		if (!rtp || !stream) {
			this.unknown++;
			return;
		}
		stream.packets++;
		const seq = rtpSequence(msg);
		const missing = stream.trackSequence(seq);
		if (missing.length > 0 && this.#options.nack) {
			stream.markNacked(missing);
			this.#socket.send(buildNack(this.#ssrc, stream.ssrc, missing), rinfo.port, rinfo.address);
		}
		const pts = stream.payloadTypes;
		let primary: Uint8Array = rtp.payload;
		if (pts && pts.red !== undefined && rtp.payloadType === pts.red) {
			stream.redPackets++;
			const red = parseRedPayload(rtp.payload);
			if (isRedParseError(red) || red.primary.payloadType !== pts.opus || red.redundant.some((b) => b.payloadType !== pts.opus)) {
				stream.invalidRedPackets++;
				return;
			}
			const afterNack = stream.wasNacked(seq);
			for (const block of red.redundant) {
				const earlier = stream.source.frameIndexOf((rtp.timestamp - block.timestampOffset) >>> 0);
				// Empty blocks carry no frame (a sender with nothing to repeat yet).
				if (Number.isInteger(earlier) && block.data.length > 0 && !stream.redundantArrivals.has(earlier)) stream.redundantArrivals.set(earlier, { atMs: at, payload: Buffer.from(block.data), afterNack });
			}
			primary = red.primary.data;
		} else if (pts && rtp.payloadType !== pts.opus) {
			stream.unexpectedPayloadType++;
			return;
		}
		const frame = stream.source.frameIndexOf(rtp.timestamp);
		if (!Number.isInteger(frame)) {
			this.unknown++;
			return;
		}
		if (stream.arrivals.has(frame)) {
			stream.duplicates++;
			return;
		}
		stream.arrivals.set(frame, { atMs: at, payload: Buffer.from(primary), afterNack: stream.wasNacked(seq) });
	};

	close(): void {
		this.#socket.close();
	}
}
