// What a listener hears from one received stream: each 20 ms frame is played from its packet
// if that arrived before its playout deadline (send time + playoutDelayMs: a fixed jitter
// buffer), else rebuilt from the in-band FEC of the next packet if that one is in time and
// carries LBRR data, else concealed. Both this decode and the lossless reference decode run
// on the wasm Opus decoder, so the comparison isolates the damage done by loss.
import { hasLbrr } from './opusPacket.js';
import { OpusWasmDecoder } from './OpusWasmDecoder.js';
import { concatFrames, type QualityScores, qualityScores } from './quality.js';

export interface ReceivedFrame {
	atMs: number;
	payload: Uint8Array;
	/** Arrived as the answer to a NACK. */
	afterNack: boolean;
}

export type FrameOutcome = 'delivered' | 'recovered' | 'concealed';

export interface PlayoutResult {
	frames: number;
	/** Played from their own packet, in time. */
	delivered: number;
	/** ... of which only thanks to a NACK retransmission. */
	deliveredAfterNack: number;
	/** Arrived, but after the playout deadline. */
	late: number;
	/** Rebuilt from the next packet's FEC. */
	recovered: number;
	concealed: number;
	/** (delivered + recovered) / frames. */
	playableShare: number;
	/** Frames whose lossless decode has speech in it (not a pause). */
	speechFrames: number;
	/** The playable share over speech frames only. Opus adds no FEC data to frames in pauses,
	 * so a loss there is concealed even with FEC on, but conceals silence, which nobody hears. */
	speechPlayableShare: number;
	quality: QualityScores;
	/** Longest run of concealed frames. */
	longestConcealedRun: number;
}

export interface PlayoutInput {
	/** Packets as sent, by frame index. */
	sent: Uint8Array[];
	sendTimeOf(frame: number): number | undefined;
	arrivals: ReadonlyMap<number, ReceivedFrame>;
	playoutDelayMs: number;
	/** Use in-band FEC when the next packet has it (receivers do; off to measure without). */
	useFec: boolean;
}

export function playout(input: PlayoutInput): PlayoutResult {
	const n = input.sent.length;
	const inTime = (i: number): ReceivedFrame | undefined => {
		const a = input.arrivals.get(i);
		const sentAt = input.sendTimeOf(i);
		if (!a || sentAt === undefined) return undefined;
		return a.atMs - sentAt <= input.playoutDelayMs ? a : undefined;
	};
	const reference = new OpusWasmDecoder();
	const listener = new OpusWasmDecoder();
	const refFrames: Int16Array[] = [];
	const outFrames: Int16Array[] = [];
	const kinds: FrameOutcome[] = [];
	let deliveredAfterNack = 0;
	let late = 0;
	let run = 0;
	let longestConcealedRun = 0;
	let speechFrames = 0;
	let speechPlayable = 0;
	try {
		for (let i = 0; i < n; i++) {
			const ref = reference.decode(input.sent[i]!);
			refFrames.push(ref);
			const speech = isSpeech(ref);
			const own = inTime(i);
			if (!own && input.arrivals.has(i)) late++;
			let kind: FrameOutcome;
			if (own) {
				outFrames.push(listener.decode(own.payload));
				kind = 'delivered';
				if (own.afterNack) deliveredAfterNack++;
			} else {
				// FEC needs the next packet before *this* frame's deadline.
				const next = input.arrivals.get(i + 1);
				const deadline = (input.sendTimeOf(i) ?? -Infinity) + input.playoutDelayMs;
				if (input.useFec && next && next.atMs <= deadline && hasLbrr(next.payload)) {
					outFrames.push(listener.decodeFec(next.payload));
					kind = 'recovered';
				} else {
					outFrames.push(listener.conceal());
					kind = 'concealed';
				}
			}
			kinds.push(kind);
			if (speech) {
				speechFrames++;
				if (kind !== 'concealed') speechPlayable++;
			}
			run = kind === 'concealed' ? run + 1 : 0;
			longestConcealedRun = Math.max(longestConcealedRun, run);
		}
	} finally {
		reference.close();
		listener.close();
	}
	const count = (k: FrameOutcome): number => kinds.filter((x) => x === k).length;
	const delivered = count('delivered');
	const recovered = count('recovered');
	return {
		frames: n,
		delivered,
		deliveredAfterNack,
		late,
		recovered,
		concealed: count('concealed'),
		playableShare: n ? (delivered + recovered) / n : 0,
		speechFrames,
		speechPlayableShare: speechFrames ? speechPlayable / speechFrames : 1,
		quality: qualityScores(concatFrames(refFrames), concatFrames(outFrames), kinds),
		longestConcealedRun,
	};
}

/** Mean square above SPEECH_POWER (full scale 1): about -50 dBFS, above espeak-ng's pauses. */
const SPEECH_POWER = 1e-5;

function isSpeech(frame: Int16Array): boolean {
	let sum = 0;
	for (const v of frame) sum += (v / 32768) ** 2;
	return sum / Math.max(1, frame.length) > SPEECH_POWER;
}

/** Playable-share ceiling of single-frame FEC: random loss p loses a frame only when the next
 * is lost too (1 - p^2); a burst of mean length L is rebuilt only at its last frame. */
export function fecCeiling(model: 'random' | 'bursty', lossRate: number, meanBurstLength: number): number {
	return model === 'random' ? 1 - lossRate * lossRate : 1 - lossRate * (1 - 1 / meanBurstLength);
}
