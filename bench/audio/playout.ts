// What a listener hears from one received stream: each 20 ms frame is played from its own
// packet if that arrived before its playout deadline (send time + playoutDelayMs: a fixed
// jitter buffer), else from a redundant copy (RFC 2198 RED: the same encoded frame carried
// again in a later packet) that arrived in time, else rebuilt from the in-band FEC of the
// next frame (from any copy of it in time, its own packet or a redundant one) if that
// carries LBRR data, else concealed. Both this decode and the lossless reference decode run
// on the wasm Opus decoder, so the comparison isolates the damage done by loss.
import { hasLbrr } from './opusPacket.js';
import { OpusWasmDecoder } from './OpusWasmDecoder.js';
import { concatFrames, type QualityScores, qualityScores } from './quality.js';
import { FRAME_MS } from './speech.js';

export interface ReceivedFrame {
	atMs: number;
	payload: Uint8Array;
	/** Arrived as the answer to a NACK. */
	afterNack: boolean;
}

/** Where a played frame came from (or that it was concealed). */
export type FrameOutcome = 'delivered' | 'redundant' | 'recovered' | 'concealed';

export interface PlayoutResult {
	frames: number;
	/** Played from their own packet, in time. */
	delivered: number;
	/** ... of which only thanks to a NACK retransmission. */
	deliveredAfterNack: number;
	/** Own packet arrived, but after the playout deadline. */
	late: number;
	/** Played from a redundant copy: a RED block of a later packet at this listener, or (a
	 * listener without RED) a frame the server rebuilt from such a block after its own packet
	 * was lost upstream. Exact copies of the encoded frame, not approximations. */
	fromRedundancy: number;
	/** Rebuilt from the next frame's in-band FEC (lower quality). */
	recovered: number;
	/** ... of which the FEC came from a redundant copy of the next frame. */
	recoveredFromRedundantCopy: number;
	concealed: number;
	/** (delivered + fromRedundancy + recovered) / frames. */
	playableShare: number;
	/** The share that would play with no deadline: some copy of the frame (or of the next
	 * one, with LBRR) arrived at all. What loss alone leaves; the difference to
	 * playableShare is lateness (on a busy machine, mostly the bench's own event loop). */
	playableWithoutDeadline: number;
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
	/** First arrival of each frame's own packet (for a listener without RED fed by the
	 * server's RED stripping, also the frames the server rebuilt; see `rebuiltUpstream`). */
	arrivals: ReadonlyMap<number, ReceivedFrame>;
	/** First arrival of a redundant copy of each frame (RED listeners). */
	redundantArrivals?: ReadonlyMap<number, ReceivedFrame>;
	/** Frames whose own packet never reached the server: an arrival of one of them at a
	 * listener without RED is the server's rebuild from redundancy, counted as such. */
	rebuiltUpstream?: (frame: number) => boolean;
	playoutDelayMs: number;
	/** Use in-band FEC when the next frame has it (receivers do; off to measure without). */
	useFec: boolean;
}

/** Lossless decodes of a packet sequence, kept per array: many conditions share one. */
const referenceCache = new WeakMap<Uint8Array[], { frames: Int16Array[]; speech: boolean[] }>();

function referenceDecode(sent: Uint8Array[]): { frames: Int16Array[]; speech: boolean[] } {
	let ref = referenceCache.get(sent);
	if (!ref || ref.frames.length < sent.length) {
		const decoder = new OpusWasmDecoder();
		try {
			const frames = sent.map((p) => decoder.decode(p));
			ref = { frames, speech: frames.map(isSpeech) };
		} finally {
			decoder.close();
		}
		referenceCache.set(sent, ref);
	}
	return ref;
}

export function playout(input: PlayoutInput): PlayoutResult {
	const n = input.sent.length;
	const deadlineOf = (i: number): number => (input.sendTimeOf(i) ?? -Infinity) + input.playoutDelayMs;
	const inTime = (a: ReceivedFrame | undefined, deadline: number): ReceivedFrame | undefined => (a && a.atMs <= deadline ? a : undefined);
	const reference = referenceDecode(input.sent);
	const listener = new OpusWasmDecoder();
	const outFrames: Int16Array[] = [];
	const kinds: FrameOutcome[] = [];
	let deliveredAfterNack = 0;
	let late = 0;
	let recoveredFromRedundantCopy = 0;
	let reachable = 0;
	let run = 0;
	let longestConcealedRun = 0;
	let speechFrames = 0;
	let speechPlayable = 0;
	try {
		for (let i = 0; i < n; i++) {
			const speech = reference.speech[i]!;
			const deadline = deadlineOf(i);
			const arrived = input.arrivals.get(i);
			const own = inTime(arrived, deadline);
			if (!own && arrived) late++;
			const copy = own ? undefined : inTime(input.redundantArrivals?.get(i), deadline);
			const nextAny = [input.arrivals.get(i + 1), input.redundantArrivals?.get(i + 1)].some((a) => a && hasLbrr(a.payload));
			if (arrived || input.redundantArrivals?.has(i) || (input.useFec && nextAny)) reachable++;
			let kind: FrameOutcome;
			if (own) {
				outFrames.push(listener.decode(own.payload));
				kind = input.rebuiltUpstream?.(i) ? 'redundant' : 'delivered';
				if (own.afterNack) deliveredAfterNack++;
			} else if (copy) {
				outFrames.push(listener.decode(copy.payload));
				kind = 'redundant';
			} else {
				// FEC needs a copy of the next frame before *this* frame's deadline.
				const nextOwn = inTime(input.arrivals.get(i + 1), deadline);
				const nextCopy = inTime(input.redundantArrivals?.get(i + 1), deadline);
				const next = nextOwn && hasLbrr(nextOwn.payload) ? nextOwn : nextCopy && hasLbrr(nextCopy.payload) ? nextCopy : undefined;
				if (input.useFec && next) {
					outFrames.push(listener.decodeFec(next.payload));
					kind = 'recovered';
					if (next !== nextOwn) recoveredFromRedundantCopy++;
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
		listener.close();
	}
	const count = (k: FrameOutcome): number => kinds.filter((x) => x === k).length;
	const delivered = count('delivered');
	const fromRedundancy = count('redundant');
	const recovered = count('recovered');
	return {
		frames: n,
		delivered,
		deliveredAfterNack,
		late,
		fromRedundancy,
		recovered,
		recoveredFromRedundantCopy,
		concealed: count('concealed'),
		playableShare: n ? (delivered + fromRedundancy + recovered) / n : 0,
		playableWithoutDeadline: n ? reachable / n : 0,
		speechFrames,
		speechPlayableShare: speechFrames ? speechPlayable / speechFrames : 1,
		quality: qualityScores(concatFrames(reference.frames.slice(0, n)), concatFrames(outFrames), kinds),
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

/** One lossy leg as a two-state chain: P(good -> bad), P(bad -> good), a packet lost in bad.
 * Random loss q is the chain with goodToBad = q, badToGood = 1 - q (no memory). */
export interface LossLeg {
	goodToBad: number;
	badToGood: number;
}

export function lossLeg(model: 'random' | 'bursty', lossRate: number, meanBurstLength: number): LossLeg {
	if (model === 'random') return { goodToBad: lossRate, badToGood: 1 - lossRate };
	const badToGood = 1 / meanBurstLength;
	return { goodToBad: (lossRate * badToGood) / (1 - lossRate), badToGood };
}

/**
 * Probability that `run` consecutive packets are all lost end to end, with loss on every
 * leg in `legs` (a packet is lost when any leg is in its bad state; the legs are independent
 * chains). Exact, on the product chain restricted to its lossy states.
 */
export function lossRunProbability(legs: readonly LossLeg[], run: number): number {
	if (legs.length === 0 || run <= 0) return legs.length === 0 ? 0 : 1;
	const states = 1 << legs.length; // bit k set: leg k bad
	const stationaryBad = legs.map((l) => (l.goodToBad + l.badToGood > 0 ? l.goodToBad / (l.goodToBad + l.badToGood) : 0));
	const prob = (state: number, leg: number): number => ((state >> leg) & 1 ? stationaryBad[leg]! : 1 - stationaryBad[leg]!);
	const step = (from: number, to: number): number =>
		legs.reduce((p, l, k) => {
			const wasBad = (from >> k) & 1;
			const isBad = (to >> k) & 1;
			return p * (wasBad ? (isBad ? 1 - l.badToGood : l.badToGood) : isBad ? l.goodToBad : 1 - l.goodToBad);
		}, 1);
	// Lossy states: at least one leg bad (state 0 is all good).
	let dist = Array.from({ length: states }, (_, s) => (s === 0 ? 0 : legs.reduce((p, _l, k) => p * prob(s, k), 1)));
	for (let r = 1; r < run; r++) {
		const next = new Array<number>(states).fill(0);
		for (let from = 1; from < states; from++) if (dist[from]) for (let to = 1; to < states; to++) next[to] = next[to]! + dist[from]! * step(from, to);
		dist = next;
	}
	return dist.reduce((a, b) => a + b, 0);
}

/**
 * How many later packets can stand in for a lost frame before its deadline: RED distance d
 * puts the frame in the next d packets; FEC puts its LBRR in the next frame, which itself
 * travels in up to d + 1 packets; packet i + j leaves j frames later, so only those with
 * j x 20 ms < the playout delay can make it.
 */
export function coveringPackets(mode: { redDistance: number; fec: boolean }, playoutDelayMs: number): number {
	const reach = Math.max(0, Math.ceil(playoutDelayMs / FRAME_MS) - 1);
	return Math.min(reach, mode.fec ? mode.redDistance + 1 : mode.redDistance);
}

/** Playable-share ceiling: a frame is lost only when its packet and every packet that could
 * stand in for it are lost. Random loss p, k covering packets: 1 - p^(k+1); one bursty leg
 * (Gilbert, burst mean L): 1 - p (1 - 1/L)^k. */
export function lossCeiling(legs: readonly LossLeg[], coveringPacketCount: number): number {
	return 1 - lossRunProbability(legs, coveringPacketCount + 1);
}

/** Playable-share ceiling of single-frame FEC: random loss p loses a frame only when the next
 * is lost too (1 - p^2); a burst of mean length L is rebuilt only at its last frame. */
export function fecCeiling(model: 'random' | 'bursty', lossRate: number, meanBurstLength: number): number {
	return lossRate === 0 ? 1 : lossCeiling([lossLeg(model, lossRate, meanBurstLength)], 1);
}
