// The CI smoke run of the mouth-to-ear scenario (two Chromium processes, the speaker in a
// network namespace, so it runs with the browser tests, one at a time): a few seconds per path
// at 5% uplink loss through the real entry point's code, checking that bursts are heard on both
// paths with the same codec settings and that the figures are finite and plausible, not what
// they are.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netAdminUnavailable } from '../testkit/netns.js';
import type { BenchRun } from './report/BenchRun.js';
import { runBench } from './runBench.js';

const unavailable = netAdminUnavailable();
if (unavailable) console.warn(`[bench mouth-to-ear] skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)('bench smoke run (mouth-to-ear)', () => {
	const outDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-smoke-m2e-'));
	let run: BenchRun;

	beforeAll(async () => {
		({ run } = await runBench({ scenarios: ['mouth-to-ear'], smoke: true, outDir, command: 'vitest bench smoke (mouth-to-ear)', loss: {}, capacity: {}, capacityTransports: [], signaling: {}, log: () => {} }));
	}, 120_000);

	afterAll(() => rmSync(outDir, { recursive: true, force: true }));

	it('hears the bursts through Parley and over the direct connection, with plausible mouth-to-ear figures', () => {
		expect(run.errors).toEqual([]);
		const m = run.mouthToEar!;
		expect(m.conditions.map((c) => `${c.path} ${c.lossPercent}`)).toEqual(['parley 5', 'direct 5']);
		for (const c of m.conditions) {
			expect(c.error).toBeNull();
			// 4 s of bursts 500-595 ms apart, less the last 450 ms: 6 or more sent.
			expect(c.burstsSent, c.path).toBeGreaterThanOrEqual(5);
			// 5% loss with FEC: a burst is 3 frames, so hardly one goes missing.
			expect(c.burstsDetected, c.path).toBeGreaterThanOrEqual(c.burstsSent - 1);
			expect(c.samplesMs).toHaveLength(c.burstsSent);
			for (const v of [c.mouthToEarMs!.p50, c.mouthToEarMs!.p99, c.mouthToEarMs!.max]) {
				expect(v, c.path).toBeGreaterThan(10);
				expect(v, c.path).toBeLessThan(1000);
			}
			expect(c.listener!.packetsReceived).toBeGreaterThan(0);
			// The rule drops 5% of the speaker's datagrams: the listener misses about that share.
			expect(c.listener!.lossShare, c.path).toBeGreaterThan(0.01);
			expect(c.listener!.lossShare, c.path).toBeLessThan(0.15);
			expect(c.listener!.jitterBufferMs).toBeGreaterThan(0);
			expect(c.listener!.jitterBufferMs).toBeLessThan(1000);
			// Both ends heard the bursts well above the detector's threshold.
			expect(c.onsetLevel.speaker!).toBeGreaterThan(m.detector.thresholdRms * 2);
			expect(c.onsetLevel.listener!).toBeGreaterThan(m.detector.thresholdRms * 2);
		}
		const [parley, direct] = m.conditions;
		// The same encoder settings on both paths, so the difference is Parley's.
		expect(direct!.speaker!.codec).toBe(parley!.speaker!.codec);
		expect(direct!.speaker!.opusFmtp).toBe(parley!.speaker!.opusFmtp);
		expect(parley!.speaker!.opusFmtp).toMatch(/useinbandfec=1/);
		expect(m.comparisons).toHaveLength(1);
		expect(Number.isFinite(m.comparisons[0]!.addedP99Ms)).toBe(true);
		const md = readFileSync(path.join(outDir, 'report.md'), 'utf8');
		expect(md).toContain('## Mouth-to-ear: Chromium to Chromium, through Parley and direct, under uplink loss');
		expect(md).toContain('Parley - direct p99');
	});
});
