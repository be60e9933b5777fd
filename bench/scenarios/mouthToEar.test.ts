// The mouth-to-ear scenario's pure parts: pairing onsets, rewriting the direct path's answer,
// the burst file.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { burstTrain, writeBurstWav } from '../audio/toneBursts.js';
import { matchOnsets, rewriteDirectAnswer } from './mouthToEar.js';

describe('matchOnsets', () => {
	it('pairs each burst with the first onset heard after it, and reports missed bursts and stray onsets', () => {
		const sent = [1000, 1500, 2000, 2600];
		// 1500 missed; 2100 and 2105 both after 2000 (the second is stray); 3500 too late for 2600.
		const heard = [1080, 2100, 2105, 3500];
		const { latenciesMs, unmatched } = matchOnsets(sent, heard, 450);
		expect(latenciesMs).toEqual([80, null, 100, null]);
		expect(unmatched).toBe(2);
	});

	it('never gives one onset to two bursts, nor a burst an onset from before it', () => {
		expect(matchOnsets([0, 500], [400, 900], 450)).toEqual({ latenciesMs: [400, 400], unmatched: 0 });
		expect(matchOnsets([0, 100], [150], 450)).toEqual({ latenciesMs: [150, null], unmatched: 0 });
		// Later than 450 ms is not this burst's.
		expect(matchOnsets([0], [460], 450)).toEqual({ latenciesMs: [null], unmatched: 1 });
		expect(matchOnsets([1000], [999], 450).latenciesMs).toEqual([null]);
	});
});

const ANSWER = [
	'v=0',
	'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0',
	'a=rtpmap:111 opus/48000/2',
	'a=rtcp-fb:111 transport-cc',
	'a=rtcp-fb:111 nack',
	'a=fmtp:111 minptime=10;useinbandfec=1',
	'a=rtpmap:63 red/48000/2',
	'a=fmtp:63 111/111',
	'a=rtpmap:9 G722/8000',
	'',
].join('\r\n');

describe('rewriteDirectAnswer', () => {
	it("asks for Parley's Opus parameters and ptime, without NACK, Opus first", () => {
		const out = rewriteDirectAnswer(ANSWER, { red: false, opusFmtp: 'minptime=10;stereo=0;usedtx=1;useinbandfec=1 (a=ptime:20)' });
		expect(out).toContain('m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0\r\n');
		expect(out).toContain('a=fmtp:111 minptime=10;stereo=0;usedtx=1;useinbandfec=1\r\na=ptime:20\r\n');
		expect(out).not.toContain('a=rtcp-fb:111 nack');
		expect(out).toContain('a=rtcp-fb:111 transport-cc');
	});

	it('puts RED first when the speaker should send it', () => {
		const out = rewriteDirectAnswer(ANSWER, { red: true, opusFmtp: 'useinbandfec=1' });
		expect(out).toContain('m=audio 9 UDP/TLS/RTP/SAVPF 63 111 9 0\r\n');
		expect(out).not.toContain('a=ptime');
	});
});

describe('burst file', () => {
	it('has a burst at every onset of the train and silence between', () => {
		const train = burstTrain();
		expect(train.onsetsMs).toHaveLength(20);
		const gaps = train.onsetsMs.slice(1).map((t, i) => t - train.onsetsMs[i]!);
		expect(Math.min(...gaps)).toBeGreaterThanOrEqual(500);
		const wider = burstTrain({ minGapMs: 700 }).onsetsMs;
		expect(Math.min(...wider.slice(1).map((t, i) => t - wider[i]!))).toBe(700);
		expect(Math.max(...wider.slice(1).map((t, i) => t - wider[i]!))).toBeLessThanOrEqual(795);
		const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-bursts-'));
		try {
			const file = path.join(dir, 'b.wav');
			writeBurstWav(file, train);
			const pcm = readFileSync(file).subarray(44);
			const at = (ms: number) => Math.abs(pcm.readInt16LE(Math.round((ms * train.sampleRate) / 1000) * 2)) / 32767;
			const peakIn = (fromMs: number, toMs: number) => {
				let p = 0;
				for (let t = fromMs; t < toMs; t += 0.1) p = Math.max(p, at(t));
				return p;
			};
			expect(pcm.length / 2).toBe(Math.round((train.loopMs * train.sampleRate) / 1000));
			for (const onset of train.onsetsMs) {
				expect(peakIn(onset + 5, onset + 50)).toBeGreaterThan(0.3);
				expect(peakIn(onset - 100, onset)).toBe(0);
				expect(peakIn(onset + train.burstMs + 1, Math.min(onset + 400, train.loopMs))).toBe(0);
			}
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	});
});
