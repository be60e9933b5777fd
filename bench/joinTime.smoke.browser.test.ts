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
import { CHROMIUM_JOIN_PHASES } from './scenarios/joinTime.js';
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
		expect(md).toContain('Join phases, direct-udp');
	});

	it("breaks each path's joins into phases, every one reached and in the order a join passes them", () => {
		for (const p of run.join!.paths) {
			expect(p.phases.map((x) => x.phase)).toEqual(CHROMIUM_JOIN_PHASES.map(([name]) => name));
			for (const x of p.phases) expect(x.count, `${p.path} ${x.phase}`).toBe(p.joins);
			const p50 = (name: string) => p.phases.find((x) => x.phase === name)!.fromConnectMs.p50;
			const speaker = ['socketCreated', 'wsOpen', 'welcome', 'deviceLoaded', 'joinReplied', 'transportsCreated', 'sendConnectRequested', 'produceRequested'];
			for (let i = 1; i < speaker.length; i++) expect(p50(speaker[i]!), `${p.path} ${speaker[i]}`).toBeGreaterThanOrEqual(p50(speaker[i - 1]!));
			// The listener's receive connection is up before the speaker connects (set up at its join).
			expect(p50('listener.recv.dtlsConnected')).toBeLessThan(0);
			// ICE and DTLS run beside the produce round trip: after the transports, in either order with it.
			expect(p50('send.dtlsConnected')).toBeGreaterThanOrEqual(p50('send.iceConnected'));
			expect(p50('send.iceConnected')).toBeGreaterThanOrEqual(p50('transportsCreated'));
			expect(p50('listener.newConsumer')).toBeGreaterThanOrEqual(p50('produceRequested'));
			expect(p50('listener.firstTrack')).toBeGreaterThanOrEqual(p50('listener.newConsumer'));
			expect(p50('firstRtpIn')).toBeGreaterThanOrEqual(p50('listener.firstTrack'));
		}
	});
});
