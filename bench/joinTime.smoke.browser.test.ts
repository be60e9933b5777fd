// The CI smoke run of the join-time scenario (Chromium in a network namespace, so it runs with
// the browser tests, one at a time): one join per path through the real entry point's code,
// checking that each path is the one it says and that the report has the table, not what the
// figures are.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netAdminUnavailable } from '../testkit/netns.js';
import type { BenchRun } from './report/BenchRun.js';
import { runBench } from './runBench.js';

const unavailable = netAdminUnavailable();
if (unavailable) console.warn(`[bench join] skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)('bench smoke run (join time)', () => {
	const outDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-smoke-join-'));
	let run: BenchRun;

	beforeAll(async () => {
		({ run } = await runBench({ scenarios: ['join'], smoke: true, outDir, command: 'vitest bench smoke (join)', loss: {}, capacity: {}, capacityTransports: [], signaling: {}, log: () => {} }));
	}, 90_000);

	afterAll(() => rmSync(outDir, { recursive: true, force: true }));

	it('joins over direct UDP, ICE-TCP and the TURN relay (UDP and TCP), each on its own kind of candidate pair, and reports them', () => {
		expect(run.errors).toEqual([]);
		const j = run.join!;
		expect(j.paths.map((p) => p.path)).toEqual(['direct-udp', 'ice-tcp', 'turn-relay', 'turn-tcp']);
		for (const p of j.paths) {
			expect(p.failed, p.errors.join('; ')).toBe(0);
			expect(p.joins).toBe(j.options.joinsPerPath);
			expect(p.joinMs.p50).toBeGreaterThan(0);
			expect(Math.abs(p.heardHz! - j.toneHz)).toBeLessThan(30);
		}
		expect(j.paths[0]!.selectedPair).toBe('host/udp');
		expect(j.paths[1]!.selectedPair).toMatch(/\/tcp$/);
		expect(j.paths[2]!.selectedPair).toBe('relay/udp (relay over udp)');
		expect(j.paths[3]!.selectedPair).toBe('relay/udp (relay over tcp)');
		const md = readFileSync(path.join(outDir, 'report.md'), 'utf8');
		expect(md).toContain('## Join time: direct UDP, ICE-TCP, TURN relay');
	});
});
