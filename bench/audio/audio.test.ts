// The audio path the loss sweep relies on: speech from espeak-ng, Opus with FEC, the wasm
// decoder's FEC and concealment routes, LBRR detection, and the quality scores.
import { describe, expect, it } from 'vitest';
import { encodeOpusFrames } from './opusEncoding.js';
import { hasLbrr, opusMode } from './opusPacket.js';
import { OpusWasmDecoder } from './OpusWasmDecoder.js';
import { concatFrames, qualityScores } from './quality.js';
import { FRAME_SAMPLES, SAMPLE_RATE, speechPcm } from './speech.js';

describe('speech and Opus', () => {
	const pcm = speechPcm();

	it('makes several seconds of speech at 48 kHz', () => {
		expect(pcm.length / SAMPLE_RATE).toBeGreaterThan(8);
		let peak = 0;
		for (const s of pcm) peak = Math.max(peak, Math.abs(s));
		expect(peak).toBeGreaterThan(8000);
	});

	it('puts LBRR in packets only when FEC is on with a loss hint', () => {
		const withFec = encodeOpusFrames(pcm, 300, { inbandFec: true, packetLossPercent: 10 });
		const without = encodeOpusFrames(pcm, 300, { inbandFec: false, packetLossPercent: 0 });
		expect(withFec.every((p) => opusMode(p) !== 'celt')).toBe(true);
		expect(withFec.filter(hasLbrr).length).toBeGreaterThan(150);
		expect(without.filter(hasLbrr).length).toBe(0);
	});

	it('rebuilds lost frames from FEC far better than concealment does', () => {
		const packets = encodeOpusFrames(pcm, 500, { inbandFec: true, packetLossPercent: 10 });
		const reference = concatFrames(decodeAll(packets, () => false, false).frames);
		const lost = (i: number): boolean => i > 10 && i % 10 === 3;
		const fec = decodeAll(packets, lost, true);
		const plc = decodeAll(packets, lost, false);
		const qFec = qualityScores(reference, concatFrames(fec.frames), fec.kinds);
		const qPlc = qualityScores(reference, concatFrames(plc.frames), plc.kinds);
		expect(fec.kinds.filter((k) => k === 'recovered').length).toBeGreaterThan(30);
		expect(qFec.recoveredSnrDb!).toBeGreaterThan(qPlc.concealedSnrDb! + 6);
		expect(qFec.segmentalSnrDb).toBeGreaterThan(qPlc.segmentalSnrDb);
	});
});

function decodeAll(packets: Uint8Array[], lost: (i: number) => boolean, useFec: boolean): { frames: Int16Array[]; kinds: string[] } {
	const dec = new OpusWasmDecoder();
	const frames: Int16Array[] = [];
	const kinds: string[] = [];
	packets.forEach((p, i) => {
		const next = packets[i + 1];
		if (!lost(i)) {
			frames.push(dec.decode(p));
			kinds.push('delivered');
		} else if (useFec && next && !lost(i + 1) && hasLbrr(next)) {
			frames.push(dec.decodeFec(next));
			kinds.push('recovered');
		} else {
			frames.push(dec.conceal());
			kinds.push('concealed');
		}
		expect(frames[frames.length - 1]!.length).toBe(FRAME_SAMPLES);
	});
	dec.close();
	return { frames, kinds };
}
