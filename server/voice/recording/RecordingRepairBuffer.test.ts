// The repair logic with synthetic packets: loss patterns against RED distance 1 and 2, late
// retransmissions inside and after the hold, DTX, sequence and timestamp wrap, and forged
// copies and jumps (bounded, never written where no packet is missing).
import { buildRedPayload } from '../../media/redPayload.js';
import { describe, expect, it } from 'vitest';
import { recordedPacketOf } from './ProducerRecording.js';
import { type FrameSource, type RecordedPacket, RecordingRepairBuffer, type RepairBounds } from './RecordingRepairBuffer.js';

const FRAME_TS = 960;
const BOUNDS: RepairBounds = { holdMs: 500, maxHeldPackets: 64, maxCopies: 128 };

/** Frame n: a 20 ms CELT TOC (code 0), then bytes unique to n. */
function frame(n: number): Uint8Array {
	const out = new Uint8Array(12 + (n % 5));
	out[0] = 0xf8;
	out[1] = n & 0xff;
	out[2] = (n >> 8) & 0xff;
	for (let i = 3; i < out.length; i++) out[i] = (n * 7 + i) & 0xff;
	return out;
}
const numberOf = (f: Uint8Array) => f[1]! | (f[2]! << 8);

interface Stream {
	seq0?: number;
	ts0?: number;
	/** Timestamp of frame n (default: contiguous 20 ms frames). */
	timestampOf?: (n: number) => number;
}

/** Packet n of a stream, carrying copies of the `distance` frames before it. */
function packet(n: number, distance: number, s: Stream = {}): RecordedPacket {
	const ts = (n: number) => ((s.ts0 ?? 1000) + (s.timestampOf ? s.timestampOf(n) : n * FRAME_TS)) >>> 0;
	const copies = [];
	for (let back = Math.min(distance, n); back >= 1; back--) copies.push({ timestamp: ts(n - back), frame: frame(n - back) });
	return { seq: ((s.seq0 ?? 100) + n) & 0xffff, timestamp: ts(n), frame: frame(n), copies };
}

function rig(bounds: RepairBounds = BOUNDS) {
	const out: { n: number; timestamp: number; source: FrameSource }[] = [];
	const buffer = new RecordingRepairBuffer(bounds, (f, timestamp, source) => out.push({ n: numberOf(f), timestamp, source }));
	let now = 0;
	return {
		out,
		buffer,
		/** Pushes packets (numbers, or packets), 20 ms of wall time apart. */
		send(packets: (RecordedPacket | undefined)[]) {
			for (const p of packets) {
				if (p) buffer.push(p, now);
				now += 20;
			}
		},
		wait(ms: number) {
			now += ms;
			buffer.release(now);
		},
	};
}

/** Packets 0..count-1 but the lost ones, at a RED distance. */
const stream = (count: number, lost: (n: number) => boolean, distance: number, s: Stream = {}) => Array.from({ length: count }, (_, n) => (lost(n) ? undefined : packet(n, distance, s)));
const numbers = (out: { n: number }[]) => out.map((o) => o.n);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('RecordingRepairBuffer', () => {
	it('passes an in-order stream straight through, holding nothing', () => {
		const r = rig();
		r.send(stream(10, () => false, 2));
		expect(numbers(r.out)).toEqual(range(0, 10));
		expect(r.out.every((o) => o.source === 'received')).toBe(true);
		expect(r.buffer.counts).toMatchObject({ received: 10, emitted: 10, fromRed: 0, fromRetransmission: 0, gaps: 0, missing: 0 });
	});

	it('fills single losses from the next packet at distance 1, at once (no waiting)', () => {
		const r = rig();
		const lost = (n: number) => n % 4 === 2; // 2, 6, 10, ...
		r.send(stream(20, lost, 1));
		expect(numbers(r.out)).toEqual(range(0, 20));
		expect(r.out.filter((o) => o.source === 'red').map((o) => o.n)).toEqual([2, 6, 10, 14, 18]);
		expect(r.buffer.counts).toMatchObject({ emitted: 20, fromRed: 5, gaps: 0, missing: 0 });
		// The timestamps written are those the frames were sent with.
		expect(r.out.map((o) => o.timestamp)).toEqual(range(0, 20).map((n) => 1000 + n * FRAME_TS));
	});

	it('fills bursts of two at distance 2; a burst of three loses exactly its oldest frame, after the hold', () => {
		const r = rig();
		r.send(stream(30, (n) => n === 5 || n === 6 || (n >= 15 && n <= 17), 2));
		// 18 carries 16 and 17; 15 has no copy left: the buffer waits for it...
		expect(numbers(r.out)).toEqual(range(0, 15));
		r.wait(500);
		expect(numbers(r.out)).toEqual([...range(0, 15), ...range(16, 30)]);
		expect(r.buffer.counts).toMatchObject({ fromRed: 4, gaps: 1, missing: 1 });
	});

	it('closes a hole with no room on the RTP clock at once, losing nothing (a lost padding-only probe)', () => {
		const r = rig();
		// Sequence numbers 100..109 carry frames 0..4, then a probe (seq 105, lost: no packet
		// here), then frames 5..8 on seq 106..109; timestamps stay contiguous across the probe.
		const at = (n: number, seq: number): RecordedPacket => ({ ...packet(n, 2), seq });
		r.send([at(0, 100), at(1, 101), at(2, 102), at(3, 103), at(4, 104), undefined, at(5, 106), at(6, 107)]);
		expect(numbers(r.out)).toEqual(range(0, 7));
		expect(r.buffer.holeOpen).toBe(false);
		expect(r.buffer.counts).toMatchObject({ gaps: 0, missing: 0, holesWithoutAudio: 1 });
		// A frame lost beside a lost probe: the copy fills the frame and nothing is waited for.
		r.send([undefined, undefined, at(8, 110)]); // seq 108 (frame 7) and 109 (a probe) lost
		expect(numbers(r.out)).toEqual(range(0, 9));
		expect(r.out.find((o) => o.n === 7)?.source).toBe('red');
		expect(r.buffer.counts).toMatchObject({ gaps: 0, missing: 0, holesWithoutAudio: 2 });
	});

	it('counts no more frames missing than the RTP clock has room for', () => {
		const r = rig();
		const at = (n: number, seq: number): RecordedPacket => ({ ...packet(n, 0), seq });
		// Frame 3 (seq 103) and a probe (seq 104) lost, no RED: one frame of room, two packets.
		r.send([at(0, 100), at(1, 101), at(2, 102), undefined, undefined, at(4, 105)]);
		r.wait(500);
		expect(numbers(r.out)).toEqual([0, 1, 2, 4]);
		expect(r.buffer.counts).toMatchObject({ gaps: 1, missing: 1 });
	});

	it('waits for a retransmission within the hold, and counts one after it as late', () => {
		const r = rig();
		const p = stream(40, () => false, 0);
		// 3 is lost, its retransmission arrives 5 packets (100 ms) later; 20 is retransmitted
		// only after 600 ms, too late.
		r.send([...p.slice(0, 3), ...p.slice(4, 9), p[3], ...p.slice(9, 20), ...p.slice(21, 40)]);
		r.wait(600);
		r.send([p[20]]);
		expect(numbers(r.out)).toEqual([...range(0, 20), ...range(21, 40)]);
		expect(r.out.find((o) => o.n === 3)?.source).toBe('retransmission');
		expect(r.buffer.counts).toMatchObject({ fromRetransmission: 1, gaps: 1, missing: 1, late: 1, duplicates: 0 });
	});

	it('takes a retransmission when RED had no copy (burst of four at distance 2), and drops the copies that come after', () => {
		const r = rig();
		const p = stream(20, () => false, 2);
		r.send([...p.slice(0, 5), ...p.slice(9, 12), p[5], p[6]]);
		expect(numbers(r.out)).toEqual(range(0, 12));
		expect(r.out.filter((o) => o.source !== 'received').map((o) => [o.n, o.source])).toEqual([
			[5, 'retransmission'],
			[6, 'retransmission'],
			[7, 'red'],
			[8, 'red'],
		]);
		expect(r.buffer.counts).toMatchObject({ missing: 0 });
	});

	it('after seal(), still fills the open holes (a retransmission, late copies) but takes no newer packet', () => {
		const r = rig();
		const p = stream(30, () => false, 2);
		// 10..12 lost, 13 has copies of 11 and 12: 10 waits for its retransmission. The stop
		// comes here; 10 arrives after it, and so do 14.. (audio after the stop).
		r.send([...p.slice(0, 10), p[13]]);
		expect(r.buffer.holeOpen).toBe(true);
		r.buffer.seal();
		r.send([p[14], p[10], p[15]]);
		expect(r.buffer.holeOpen).toBe(false);
		r.buffer.flush();
		expect(numbers(r.out)).toEqual(range(0, 14));
		expect(r.buffer.counts).toMatchObject({ fromRetransmission: 1, fromRed: 2, missing: 0, afterSeal: 2, received: 14 });
	});

	it('treats a timestamp jump without a sequence gap as DTX: a copy inside the silence is not written', () => {
		const r = rig();
		// Frames 0-9, then 1 s of silence (DTX), then 10-19; frame 10 carries a forged copy of a
		// frame in the middle of the silence.
		const s: Stream = { timestampOf: (n) => n * FRAME_TS + (n >= 10 ? 48_000 : 0) };
		const p = stream(20, () => false, 0, s);
		p[10] = { ...p[10]!, copies: [{ timestamp: 1000 + 30 * FRAME_TS, frame: frame(999) }] };
		r.send(p);
		expect(numbers(r.out)).toEqual(range(0, 20));
		expect(r.buffer.counts).toMatchObject({ fromRed: 0, missing: 0 });
	});

	it('fills a loss right before DTX silence from the copy in the first packet after it', () => {
		const r = rig();
		// 9 is lost; 10 comes after 300 ms of silence and carries 9 (offset within 14 bits).
		const s: Stream = { timestampOf: (n) => n * FRAME_TS + (n >= 10 ? 14_400 : 0) };
		r.send(stream(15, (n) => n === 9, 1, s));
		expect(numbers(r.out)).toEqual(range(0, 15));
		expect(r.out.find((o) => o.n === 9)).toEqual({ n: 9, timestamp: 1000 + 9 * FRAME_TS, source: 'red' });
	});

	it('follows the 16-bit sequence wrap and the 32-bit timestamp wrap', () => {
		const r = rig();
		r.send(stream(20, (n) => n === 4 || n === 5, 2, { seq0: 65_530, ts0: 0xffff_f000 }));
		expect(numbers(r.out)).toEqual(range(0, 20));
		expect(r.buffer.counts).toMatchObject({ fromRed: 2, missing: 0 });
	});

	it('reorders, drops duplicates, and ignores copies of frames it already has', () => {
		const r = rig();
		const p = stream(6, () => false, 0);
		// 3 is late; 4 carries a copy claiming to be frame 2 with other bytes: frame 2 was
		// received, so the copy is ignored.
		const forged = { ...p[4]!, copies: [{ timestamp: p[2]!.timestamp, frame: frame(500) }] };
		r.send([p[0], p[2], p[1], p[1], forged, p[5], p[3]]);
		expect(numbers(r.out)).toEqual(range(0, 6));
		// (Packets that arrive behind later ones count as retransmissions: RTP cannot tell.)
		expect(r.buffer.counts).toMatchObject({ duplicates: 1, fromRed: 0, fromRetransmission: 2, missing: 0 });
	});

	it('a RED copy that closes a hole first makes the retransmission a duplicate', () => {
		const r = rig();
		const p = stream(6, () => false, 2);
		r.send([p[0], p[2], p[1], p[3], p[4], p[5]]);
		expect(r.out.map((o) => o.source)).toEqual(['received', 'red', 'received', 'received', 'received', 'received']);
		expect(r.buffer.counts).toMatchObject({ duplicates: 1, fromRed: 1, fromRetransmission: 0 });
	});

	it('never writes forged copies that overlap their neighbours or each other, or more of them than packets are missing', () => {
		const r = rig();
		const p = stream(10, () => false, 0);
		// 4 is lost; 5 carries copies: one overlapping frame 3, two at the right place (one
		// duplicate timestamp), one half a frame later, and an empty Opus packet.
		const at = (n: number) => 1000 + n * FRAME_TS;
		const copies = [
			{ timestamp: at(4) - 480, frame: frame(700) },
			{ timestamp: at(4), frame: frame(4) },
			{ timestamp: at(4), frame: frame(701) },
			{ timestamp: at(4) + 480, frame: frame(702) },
			{ timestamp: at(4), frame: new Uint8Array(0) },
		];
		r.send([...p.slice(0, 4), { ...p[5]!, copies }, ...p.slice(6)]);
		expect(numbers(r.out)).toEqual(range(0, 10));
		expect(r.buffer.counts).toMatchObject({ fromRed: 1, missing: 0 });
	});

	it('stays bounded and cheap under forged input: half-space sequence jumps, floods of copies, packets faster than real time', () => {
		const r = rig();
		const t0 = performance.now();
		// 2000 packets each jumping half the sequence space, each with 32 copies at random timestamps.
		for (let i = 0; i < 2000; i++) {
			const copies = Array.from({ length: 32 }, (_, k) => ({ timestamp: (i * 7919 + k * 104_729) >>> 0, frame: frame(k) }));
			r.buffer.push({ seq: (i * 0x7fff) & 0xffff, timestamp: (i * 0x7fff_ffff) >>> 0, frame: frame(i), copies }, i);
		}
		r.buffer.flush();
		expect(performance.now() - t0).toBeLessThan(2000);
		// Nothing written but the 2000 frames sent and no more than the copies the holes can take.
		expect(r.buffer.counts.emitted - r.buffer.counts.fromRed).toBeLessThanOrEqual(2000);

		// A hole never released by the clock: the packet bound gives it up.
		const fast = rig({ holdMs: 1e9, maxHeldPackets: 8, maxCopies: 16 });
		const p = stream(30, (n) => n === 3, 0);
		for (const q of p) if (q) fast.buffer.push(q, 0);
		expect(numbers(fast.out)).toEqual([0, 1, 2, ...range(4, 30)]);
		expect(fast.buffer.counts).toMatchObject({ gaps: 1, missing: 1 });
	});
});

describe('recordedPacketOf (RTP from the recording consumer)', () => {
	const RED_PT = 63;
	const OPUS_PT = 100;
	const types = { red: RED_PT, opus: new Set([OPUS_PT]) };
	const rtp = (pt: number, payload: Uint8Array, seq = 7, ts = 96_000) => {
		const p = Buffer.alloc(12 + payload.length);
		p[0] = 0x80;
		p[1] = pt;
		p.writeUInt16BE(seq, 2);
		p.writeUInt32BE(ts, 4);
		p.set(payload, 12);
		return p;
	};

	it('takes the primary block as the frame and the redundant blocks as copies, by timestamp', () => {
		const payload = buildRedPayload({ payloadType: OPUS_PT, data: frame(3) }, [
			{ payloadType: OPUS_PT, timestampOffset: 1920, data: frame(1) },
			{ payloadType: OPUS_PT, timestampOffset: 960, data: frame(2) },
		]);
		const r = recordedPacketOf(rtp(RED_PT, payload), types);
		if (typeof r !== 'object') throw new Error(`got ${r}`);
		expect(numberOf(r.frame)).toBe(3);
		expect(r.copies!.map((c) => [c.timestamp, numberOf(c.frame)])).toEqual([
			[96_000 - 1920, 1],
			[96_000 - 960, 2],
		]);
		// Plain Opus on the Opus payload type: the payload is the frame.
		expect(recordedPacketOf(rtp(OPUS_PT, frame(9)), types)).toMatchObject({ seq: 7, timestamp: 96_000, frame: Buffer.from(frame(9)) });
	});

	it('refuses invalid RED: truncated chains, blocks past the end, an empty primary, foreign block types', () => {
		const good = buildRedPayload({ payloadType: OPUS_PT, data: frame(3) }, [{ payloadType: OPUS_PT, timestampOffset: 960, data: frame(2) }]);
		const cases = [
			good.subarray(0, 3), // header chain cut
			Uint8Array.of(0x80 | OPUS_PT, 0x0f, 0x03, 0xff, OPUS_PT, 1, 2), // block length 1023, 2 bytes follow
			Uint8Array.of(OPUS_PT), // empty primary
			buildRedPayload({ payloadType: 0, data: frame(3) }), // primary not Opus
			buildRedPayload({ payloadType: OPUS_PT, data: frame(3) }, [{ payloadType: 9, timestampOffset: 960, data: frame(2) }]),
			new Uint8Array(40).fill(0xff), // every byte a header flag
		];
		for (const payload of cases) expect(recordedPacketOf(rtp(RED_PT, payload), types)).toBe('invalid red');
		expect(recordedPacketOf(rtp(RED_PT, good), types)).toMatchObject({ seq: 7 });
	});
});
