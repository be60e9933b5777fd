// A synthetic publisher: sends pre-encoded Opus frames as RTP from its own UDP socket, one
// frame per call to `sendNext()` (a FramePacer calls it every 20 ms), remembers when each
// frame left (for added-latency figures) and answers generic NACKs from its recent history.
// With `red`, every packet is RFC 2198 RED as Chromium sends it: the previous `distance`
// frames as redundant blocks (oldest first), then the frame itself as the primary.
import dgram from 'node:dgram';
import { once } from 'node:events';
import { buildRedPayload, RED_MAX_BLOCK_LENGTH, type RedundantBlock } from '../../server/media/redPayload.js';
import { FRAME_SAMPLES } from '../audio/speech.js';
import { buildRtp, isRtcp, parseNacks } from '../rtp/rtp.js';

export interface RtpPublisherOptions {
	ssrc: number;
	payloadType: number;
	/** Opus packets, 20 ms each; looped when more are sent. */
	frames: Uint8Array[];
	target: { address: string; port: number };
	/** Send instants kept for this many most recent frames. */
	sendTimeSlots?: number;
	/** Packets kept for retransmission on NACK. */
	historyPackets?: number;
	/** First RTP timestamp (random by default, as real senders do). */
	initialTimestamp?: number;
	/** Send RED: the RTP payload type is `red.payloadType`, the blocks carry `payloadType` (Opus). */
	red?: RedOptions;
}

export interface RedOptions {
	payloadType: number;
	/** Previous frames carried in each packet (1 or 2 as browsers do; up to 32). */
	distance: number;
}

const DEFAULT_SLOTS = 1 << 15; // ~11 minutes of 20 ms frames

export class RtpPublisher {
	readonly ssrc: number;
	readonly payloadType: number;
	readonly baseTimestamp: number;
	readonly #socket: dgram.Socket;
	readonly #frames: Uint8Array[];
	readonly #target: { address: string; port: number };
	readonly #sendTimes: Float64Array;
	readonly #sendFrame: Int32Array;
	readonly #history: (Buffer | undefined)[];
	readonly #baseSeq: number;
	readonly #red: RedOptions | undefined;
	#next = 0;
	/** Packets resent on NACK. */
	retransmitted = 0;
	/** NACKed packets no longer in the history. */
	nackMisses = 0;

	private constructor(socket: dgram.Socket, options: RtpPublisherOptions) {
		this.#socket = socket;
		this.ssrc = options.ssrc >>> 0;
		this.payloadType = options.payloadType;
		this.#frames = options.frames;
		this.#target = options.target;
		const slots = options.sendTimeSlots ?? DEFAULT_SLOTS;
		this.#sendTimes = new Float64Array(slots);
		this.#sendFrame = new Int32Array(slots).fill(-1);
		this.#history = new Array(options.historyPackets ?? 512);
		this.baseTimestamp = (options.initialTimestamp ?? Math.floor(Math.random() * 2 ** 31)) >>> 0;
		this.#baseSeq = Math.floor(Math.random() * 30_000);
		this.#red = options.red;
		socket.on('message', (msg) => {
			if (isRtcp(msg)) this.#onRtcp(msg);
		});
	}

	static async create(options: RtpPublisherOptions): Promise<RtpPublisher> {
		const socket = dgram.createSocket('udp4');
		socket.bind(0, '127.0.0.1');
		await once(socket, 'listening');
		return new RtpPublisher(socket, options);
	}

	/** Frames sent so far (the next frame's index). */
	get sent(): number {
		return this.#next;
	}

	get localPort(): number {
		return this.#socket.address().port;
	}

	/** Sends the next frame now. */
	sendNext(): void {
		const i = this.#next++;
		const packet = buildRtp(
			{ payloadType: this.#red ? this.#red.payloadType : this.payloadType, sequenceNumber: this.#baseSeq + i, timestamp: this.baseTimestamp + i * FRAME_SAMPLES, ssrc: this.ssrc, marker: i === 0 },
			this.#red ? this.#redPayload(i, this.#red.distance) : this.#frames[i % this.#frames.length]!,
		);
		this.#history[i % this.#history.length] = packet;
		const slot = i % this.#sendTimes.length;
		this.#sendFrame[slot] = i;
		// Stamped right before the send: Node tries a synchronous sendmsg first.
		this.#sendTimes[slot] = performance.now();
		this.#socket.send(packet, this.#target.port, this.#target.address);
	}

	/** Frame `i` with up to `distance` previous frames as redundancy (none before the first
	 * frame; a block too large for RFC 2198's 10-bit length is left out, as Chromium does). */
	#redPayload(i: number, distance: number): Uint8Array {
		const redundant: RedundantBlock[] = [];
		for (let d = Math.min(distance, i); d >= 1; d--) {
			const data = this.#frames[(i - d) % this.#frames.length]!;
			if (data.length <= RED_MAX_BLOCK_LENGTH) redundant.push({ payloadType: this.payloadType, timestampOffset: d * FRAME_SAMPLES, data });
		}
		return buildRedPayload({ payloadType: this.payloadType, data: this.#frames[i % this.#frames.length]! }, redundant);
	}

	/** performance.now() at which frame `i` left, if still remembered. */
	sendTimeOf(i: number): number | undefined {
		const slot = i % this.#sendTimes.length;
		return i >= 0 && this.#sendFrame[slot] === i ? this.#sendTimes[slot] : undefined;
	}

	/** Frame index of an RTP timestamp of this stream (mediasoup forwards timestamps as they are). */
	frameIndexOf(timestamp: number): number {
		return ((timestamp - this.baseTimestamp) >>> 0) / FRAME_SAMPLES;
	}

	#onRtcp(msg: Buffer): void {
		for (const nack of parseNacks(msg)) {
			if (nack.mediaSsrc !== this.ssrc) continue;
			for (const seq of nack.sequenceNumbers) {
				const i = this.#next - 1 - ((this.#baseSeq + this.#next - 1 - seq) & 0xffff);
				const packet = i >= 0 && this.#next - i <= this.#history.length ? this.#history[i % this.#history.length] : undefined;
				if (packet) {
					this.retransmitted++;
					this.#socket.send(packet, this.#target.port, this.#target.address);
				} else {
					this.nackMisses++;
				}
			}
		}
	}

	close(): void {
		this.#socket.close();
	}
}
