// The playout model's sources (own packet, redundant copy, FEC, concealment) on synthetic
// arrivals built from real Opus packets, and the loss ceilings against closed forms and a
// simulation of the same chains.
import { describe, expect, it } from 'vitest';
import { createLossModel } from '../loss/LossModel.js';
import { encodeOpusFrames } from './opusEncoding.js';
import { hasLbrr } from './opusPacket.js';
import { coveringPackets, fecCeiling, lossCeiling, lossLeg, lossRunProbability, playout, type ReceivedFrame } from './playout.js';
import { FRAME_MS, speechPcm } from './speech.js';

const FRAMES = 400;
const DELAY_MS = 60;
const LATENCY_MS = 1;

/** Arrivals at a RED listener of distance `distance` when the packets in `lost` are dropped:
 * packet j carries frame j and, redundantly, frames j-1 .. j-distance. */
function redArrivals(packets: Uint8Array[], lost: (j: number) => boolean, distance: number): { own: Map<number, ReceivedFrame>; copies: Map<number, ReceivedFrame> } {
	const own = new Map<number, ReceivedFrame>();
	const copies = new Map<number, ReceivedFrame>();
	for (let j = 0; j < packets.length; j++) {
		if (lost(j)) continue;
		const atMs = j * FRAME_MS + LATENCY_MS;
		own.set(j, { atMs, payload: packets[j]!, afterNack: false });
		for (let d = 1; d <= distance && j - d >= 0; d++) if (!copies.has(j - d)) copies.set(j - d, { atMs, payload: packets[j - d]!, afterNack: false });
	}
	return { own, copies };
}

describe('playout with RED', () => {
	const packets = encodeOpusFrames(speechPcm(), FRAMES, { inbandFec: true, packetLossPercent: 20 });
	const sendTimeOf = (i: number): number | undefined => (i < FRAMES ? i * FRAME_MS : undefined);
	// Pairs of consecutive losses every 10 packets, and a run of three at 216..218.
	const lost = (j: number): boolean => (j > 20 && j % 10 === 3) || (j > 20 && j % 10 === 4) || (j >= 216 && j <= 218);

	it('plays a frame lost with the next one from the copy two packets later (distance 2), not with distance 1', () => {
		const d2 = redArrivals(packets, lost, 2);
		const r2 = playout({ sent: packets, sendTimeOf, arrivals: d2.own, redundantArrivals: d2.copies, playoutDelayMs: DELAY_MS, useFec: false });
		const d1 = redArrivals(packets, lost, 1);
		const r1 = playout({ sent: packets, sendTimeOf, arrivals: d1.own, redundantArrivals: d1.copies, playoutDelayMs: DELAY_MS, useFec: false });
		const lostCount = Array.from({ length: FRAMES }, (_, j) => j).filter(lost).length;
		expect(r2.delivered).toBe(FRAMES - lostCount);
		// Distance 2 brings back every pair; of the run of three only the first frame is out of reach.
		expect(r2.fromRedundancy).toBe(lostCount - 1);
		expect(r2.concealed).toBe(1);
		// Distance 1 brings back the second of each pair (and the last of the run of three) only.
		expect(r1.fromRedundancy).toBeLessThan(r2.fromRedundancy);
		expect(r1.concealed).toBe(lostCount - r1.fromRedundancy);
		expect(r2.playableShare).toBeCloseTo((FRAMES - 1) / FRAMES, 10);
		// Redundant copies are the exact frames: the lossless decode where nothing is concealed.
		expect(r2.quality.concealedSnrDb).not.toBeNull();
		expect(r2.recovered).toBe(0);
	});

	it('uses the FEC of a redundant copy of the next frame when no copy of the frame is in time', () => {
		const d1 = redArrivals(packets, lost, 1);
		const fec = playout({ sent: packets, sendTimeOf, arrivals: d1.own, redundantArrivals: d1.copies, playoutDelayMs: DELAY_MS, useFec: true });
		const noFec = playout({ sent: packets, sendTimeOf, arrivals: d1.own, redundantArrivals: d1.copies, playoutDelayMs: DELAY_MS, useFec: false });
		expect(fec.fromRedundancy).toBe(noFec.fromRedundancy);
		expect(fec.recovered).toBeGreaterThan(0);
		// The first of each pair: the next frame's own packet is lost too, its copy (packet j+2) carries the FEC.
		expect(fec.recoveredFromRedundantCopy).toBe(fec.recovered);
		expect(fec.playableShare).toBeGreaterThan(noFec.playableShare);
		expect(fec.delivered + fec.fromRedundancy + fec.recovered + fec.concealed).toBe(FRAMES);
	});

	it('ignores copies that arrive after the deadline and counts late own packets', () => {
		const d2 = redArrivals(packets, lost, 2);
		// A 30 ms jitter buffer: the copy two packets later (40 ms) is too late.
		const r = playout({ sent: packets, sendTimeOf, arrivals: d2.own, redundantArrivals: d2.copies, playoutDelayMs: 30, useFec: false });
		const d1 = redArrivals(packets, lost, 1);
		const r1 = playout({ sent: packets, sendTimeOf, arrivals: d1.own, redundantArrivals: d1.copies, playoutDelayMs: 30, useFec: false });
		expect(r.fromRedundancy).toBe(r1.fromRedundancy);
		const slow = new Map([...d2.own].map(([i, a]) => [i, { ...a, atMs: a.atMs + (i === 50 ? 100 : 0) }]));
		const s = playout({ sent: packets, sendTimeOf, arrivals: slow, redundantArrivals: d2.copies, playoutDelayMs: DELAY_MS, useFec: false });
		const onTime = playout({ sent: packets, sendTimeOf, arrivals: d2.own, redundantArrivals: d2.copies, playoutDelayMs: DELAY_MS, useFec: false });
		expect(s.late).toBe(1);
		expect(s.playableWithoutDeadline).toBe(onTime.playableWithoutDeadline);
		expect(r.playableWithoutDeadline).toBeGreaterThan(r.playableShare);
		// Frame 50 plays from its copy in packet 51 instead.
		expect(s.fromRedundancy).toBe(onTime.fromRedundancy + 1);
		expect(s.playableShare).toBe(onTime.playableShare);
	});

	it('counts frames the server rebuilt upstream for a listener without RED as redundancy', () => {
		const d0 = redArrivals(packets, () => false, 0);
		const r = playout({ sent: packets, sendTimeOf, arrivals: d0.own, rebuiltUpstream: lost, playoutDelayMs: DELAY_MS, useFec: true });
		const lostCount = Array.from({ length: FRAMES }, (_, j) => j).filter(lost).length;
		expect(r.fromRedundancy).toBe(lostCount);
		expect(r.delivered).toBe(FRAMES - lostCount);
		expect(r.playableShare).toBe(1);
	});

	it('has LBRR in the test packets (the FEC cases above depend on it)', () => {
		expect(packets.filter(hasLbrr).length).toBeGreaterThan(FRAMES / 2);
	});
});

describe('loss ceilings', () => {
	it('are 1 - p^2 for FEC or RED d=1 and 1 - p^3 for RED d=2 under random loss', () => {
		const leg = [lossLeg('random', 0.2, 3)];
		expect(lossCeiling(leg, coveringPackets({ redDistance: 0, fec: true }, 60))).toBeCloseTo(1 - 0.2 ** 2, 12);
		expect(lossCeiling(leg, coveringPackets({ redDistance: 1, fec: false }, 60))).toBeCloseTo(1 - 0.2 ** 2, 12);
		expect(lossCeiling(leg, coveringPackets({ redDistance: 2, fec: false }, 60))).toBeCloseTo(1 - 0.2 ** 3, 12);
		// The packet three frames later leaves 60 ms after the frame: past a 60 ms deadline.
		expect(coveringPackets({ redDistance: 2, fec: true }, 60)).toBe(2);
		expect(coveringPackets({ redDistance: 2, fec: true }, 80)).toBe(3);
		expect(coveringPackets({ redDistance: 0, fec: false }, 60)).toBe(0);
		expect(fecCeiling('random', 0.1, 3)).toBeCloseTo(0.99, 12);
	});

	it('match the closed form on one bursty leg and a simulation on two', () => {
		const p = 0.2;
		const L = 3;
		expect(lossCeiling([lossLeg('bursty', p, L)], 2)).toBeCloseTo(1 - p * (1 - 1 / L) ** 2, 12);
		expect(fecCeiling('bursty', p, L)).toBeCloseTo(1 - p * (1 - 1 / L), 12);
		// Two bursty legs of 10% each: count runs of three end-to-end losses in a long simulation.
		const q = 0.1;
		const up = createLossModel({ kind: 'bursty', lossRate: q, meanBurstLength: L }, 7);
		const down = createLossModel({ kind: 'bursty', lossRate: q, meanBurstLength: L }, 8);
		const n = 400_000;
		const drops: boolean[] = [];
		for (let i = 0; i < n; i++) drops.push(up.drop() || down.drop());
		let runs = 0;
		for (let i = 0; i + 2 < n; i++) if (drops[i] && drops[i + 1] && drops[i + 2]) runs++;
		const exact = lossRunProbability([lossLeg('bursty', q, L), lossLeg('bursty', q, L)], 3);
		expect(runs / n).toBeGreaterThan(exact * 0.9);
		expect(runs / n).toBeLessThan(exact * 1.1);
	});
});
