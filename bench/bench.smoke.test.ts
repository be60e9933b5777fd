// The CI smoke run: every scenario for a few seconds through the real entry point's code,
// checking that the outputs exist and that the figures are sane, not what they are.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchRun } from './report/BenchRun.js';
import { runBench } from './runBench.js';
import { WERIFT_LISTENER_PHASES } from './signaling/WebRtcPeers.js';

describe('bench smoke run (all scenarios)', () => {
	const outDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-smoke-'));
	let run: BenchRun;
	let files: string[];

	beforeAll(async () => {
		({ run, files } = await runBench({
			scenarios: ['loss', 'capacity', 'signaling'],
			smoke: true,
			outDir,
			command: 'vitest bench smoke',
			loss: {},
			capacity: {},
			capacityTransports: [],
			signaling: {},
			log: () => {},
		}));
	}, 90_000);

	afterAll(() => rmSync(outDir, { recursive: true, force: true }));

	it('runs every scenario without errors and writes the report, JSON and charts', () => {
		expect(run.errors).toEqual([]);
		for (const f of ['results.json', 'report.md', 'latency-cdf.svg', 'loss-playable-nack-off.svg', 'capacity-plain-p99.svg']) {
			expect(files).toContain(f);
			expect(existsSync(path.join(outDir, f))).toBe(true);
		}
		const json = JSON.parse(readFileSync(path.join(outDir, 'results.json'), 'utf8')) as BenchRun;
		expect(json.machine.cores).toBeGreaterThan(0);
		expect(json.versions.mediasoup).toMatch(/^\d+\.\d+\.\d+$/);
		const md = readFileSync(path.join(outDir, 'report.md'), 'utf8');
		expect(md).toContain('## Headline');
		expect(md).toContain('1 - p^2');
		expect(readFileSync(path.join(outDir, 'latency-cdf.svg'), 'utf8')).not.toContain('NaN');
	});

	it('loses no frame at 0% loss, with a finite latency', () => {
		for (const c of run.loss!.conditions.filter((x) => x.lossRate === 0)) {
			expect(c.playout.frames).toBeGreaterThan(100);
			expect(c.measuredNetworkLoss).toBe(0);
			// Every frame arrived. On a busy shared machine a stalled bench event loop can stamp
			// a packet past the 60 ms playout deadline ("late"), which is not a loss.
			expect(c.playout.delivered + c.playout.late).toBe(c.playout.frames);
			expect(c.playout.recovered).toBe(0);
			expect(c.playout.playableShare).toBeGreaterThan(0.97);
			expect(Number.isFinite(c.latencyMs.p99)).toBe(true);
			expect(c.latencyMs.p99).toBeLessThanOrEqual(c.latencyMs.max);
		}
	});

	it('rebuilds frames with FEC at 10% random loss and plays more than without', () => {
		const at10 = run.loss!.conditions.filter((x) => x.model === 'random' && x.lossRate === 0.1 && !x.nack);
		const on = at10.find((c) => c.fec)!;
		const off = at10.find((c) => !c.fec)!;
		expect(on.measuredNetworkLoss).toBeGreaterThan(0.03);
		expect(on.playout.recovered).toBeGreaterThan(0);
		expect(off.playout.recovered).toBe(0);
		expect(on.playout.playableShare).toBeGreaterThan(off.playout.playableShare);
		expect(on.playout.playableShare).toBeLessThanOrEqual(1);
		expect(on.playout.quality.segmentalSnrDb).toBeGreaterThan(off.playout.quality.segmentalSnrDb);
	});

	it('plays more with RED d=2 than with FEC only at 20% uplink loss, at a RED listener and at one without RED', () => {
		const at20 = run.loss!.conditions.filter((c) => c.model === 'random' && c.lossRate === 0.2 && c.lossAt === 'up');
		const fecOnly = at20.find((c) => c.redDistance === 0 && c.fec)!;
		const red = at20.find((c) => c.redDistance === 2 && c.listener === 'red');
		const stripped = at20.find((c) => c.redDistance === 2 && c.listener === 'stripped');
		// Missing when the worker does not forward RED (built without scripts/mediasoup's RED patch).
		expect(red, run.loss!.errors.join('; ')).toBeDefined();
		expect(stripped).toBeDefined();
		expect(red!.measuredNetworkLoss).toBeGreaterThan(0.1);
		expect(red!.received.redPackets).toBeGreaterThan(100);
		expect(red!.received.invalidRedPackets + red!.received.unexpectedPayloadType).toBe(0);
		expect(red!.playout.fromRedundancy).toBeGreaterThan(0);
		// The same loss pattern for both modes: RED's copies cover what FEC covers and more.
		expect(red!.playout.playableShare).toBeGreaterThan(fecOnly.playout.playableShare);
		expect(red!.playout.playableShare).toBeLessThanOrEqual(1);
		// The worker strips RED for the plain listener and rebuilds frames lost upstream.
		expect(stripped!.received.redPackets).toBe(0);
		expect(stripped!.received.unexpectedPayloadType).toBe(0);
		expect(stripped!.playout.fromRedundancy).toBeGreaterThan(0);
		expect(stripped!.playout.playableShare).toBeGreaterThan(fecOnly.playout.playableShare);
		expect(existsSync(path.join(outDir, 'loss-red-up-random.svg'))).toBe(true);
	});

	it('measures both capacity targets with finite latency and CPU', () => {
		const cap = run.capacity!.find((c) => c.options.transport === 'plain')!;
		for (const target of ['raw-mediasoup', 'parley'] as const) {
			const steps = cap.steps.filter((s) => s.target === target);
			expect(steps.length).toBeGreaterThan(0);
			const first = steps[0]!;
			expect(first.latencyMs.count).toBeGreaterThan(50);
			expect(Number.isFinite(first.latencyMs.p99)).toBe(true);
			expect(first.lossRate).toBeLessThan(0.01);
			expect(first.workerCpu).toBeGreaterThan(0);
			expect(first.forwardedPps).toBeGreaterThan(0);
		}
	});

	it('reports beside the knee the whole window, the worst second with what Parley did in it, a timeline and memory', () => {
		const cap = run.capacity!.find((c) => c.options.transport === 'plain')!;
		for (const target of ['raw-mediasoup', 'parley'] as const) {
			const step = cap.steps.find((s) => s.target === target)!;
			expect(step.latencyMs.max).toBeGreaterThanOrEqual(step.latencyMs.p99);
			expect(step.seconds.length).toBeGreaterThan(0);
			const worst = step.worstSecond!;
			expect(worst.p99Ms).toBe(Math.max(...step.seconds.map((x) => x.p99Ms)));
			expect(worst.p99Ms).toBeLessThanOrEqual(worst.maxMs);
			expect(worst.maxMs).toBeLessThanOrEqual(step.latencyMs.max + 0.01);
			expect(Number.isFinite(worst.eventLoopMaxMs) && worst.eventLoopMaxMs >= 0).toBe(true);
			expect(Array.isArray(worst.statsRounds)).toBe(true);
			// 100 ms slices over a 1 s window.
			expect(step.timeline.length).toBeGreaterThanOrEqual(5);
			for (const t of step.timeline) expect(t.atMs).toBeLessThan(cap.options.windowMs);
			expect(step.memory!.workerRssBytes).toBeGreaterThan(1024 * 1024);
			expect(step.memory!.nodeRssBytes).toBeGreaterThan(1024 * 1024);
			const memory = cap.summary.find((x) => x.target === target)!.memory!;
			const largest = cap.steps.filter((s) => s.target === target).sort((a, b) => b.consumers - a.consumers)[0]!;
			expect(memory.atConsumers).toBe(largest.consumers);
			expect(memory.peers).toBe(largest.listeners + cap.options.publishers);
			expect(Number.isFinite(memory.workerMiBPer1000Consumers) && memory.workerMiBPer1000Consumers >= 0).toBe(true);
			expect(Number.isFinite(memory.nodeMiBPer1000Peers) && memory.nodeMiBPer1000Peers >= 0).toBe(true);
		}
		const webrtc = run.capacity!.find((c) => c.options.transport === 'webrtc')!;
		expect(webrtc.steps[0]!.memory!.nodeRssBytes).toBeGreaterThan(1024 * 1024);
		expect(webrtc.steps[0]!.worstSecond).not.toBeNull();
		expect(files).toContain('capacity-plain-timeline.svg');
		expect(readFileSync(path.join(outDir, 'capacity-plain-timeline.svg'), 'utf8')).not.toContain('NaN');
		const md = readFileSync(path.join(outDir, 'report.md'), 'utf8');
		expect(md).toContain('worst second');
		expect(md).toContain('MiB / 1,000 consumers');
	});

	it('carries WebRTC through signaling in the WebRTC capacity ramp', () => {
		const cap = run.capacity!.find((c) => c.options.transport === 'webrtc')!;
		const first = cap.steps[0]!;
		expect(first.target).toBe('parley');
		expect(first.latencyMs.count).toBeGreaterThan(50);
		expect(Number.isFinite(first.latencyMs.p99)).toBe(true);
		expect(first.lossRate).toBeLessThan(0.01);
		expect(first.workerCpu).toBeGreaterThan(0);
	});

	it('joins every storm client, hears audio over WebRTC and serves HTTP', () => {
		const s = run.signaling!;
		expect(s.waves[0]!.joined).toBe(s.waves[0]!.clients);
		expect(s.joinsPerSecond).toBeGreaterThan(0);
		expect(s.firstAudio.succeeded).toBe(s.firstAudio.clients);
		expect(Number.isFinite(s.firstAudio.firstAudioMs.p50)).toBe(true);
		// Every join phase reached by every listener, in the order a join passes them.
		const phases = s.firstAudio.phases;
		expect(phases.map((p) => p.phase)).toEqual(WERIFT_LISTENER_PHASES.map(([name]) => name));
		for (const p of phases) expect(p.count, p.phase).toBe(s.firstAudio.succeeded);
		const maxOf = (name: string) => phases.find((p) => p.phase === name)!.fromConnectMs.max;
		const p50Of = (name: string) => phases.find((p) => p.phase === name)!.fromConnectMs.p50;
		const sequential = ['wsOpen', 'welcome', 'joined', 'consumerAnnounced', 'answerSet', 'connectReplied', 'consumeDone'];
		for (let i = 1; i < sequential.length; i++) expect(p50Of(sequential[i]!), sequential[i]).toBeGreaterThanOrEqual(p50Of(sequential[i - 1]!));
		expect(p50Of('iceConnected')).toBeLessThanOrEqual(p50Of('dtlsConnected'));
		expect(p50Of('dtlsConnected')).toBeLessThanOrEqual(p50Of('firstRtpIn'));
		expect(maxOf('firstRtpIn')).toBe(s.firstAudio.firstAudioMs.max);
		const one = s.firstAudioOneAtATime!;
		expect(one.succeeded).toBe(one.joins);
		expect(one.phases.map((p) => p.phase)).toEqual(WERIFT_LISTENER_PHASES.map(([name]) => name));
		for (const p of one.phases) expect(p.count, p.phase).toBe(one.succeeded);
		expect(one.firstAudioMs.max).toBe(one.phases.find((p) => p.phase === 'firstRtpIn')!.fromConnectMs.max);
		const healthz = s.http.find((h) => h.name === 'healthz')!.requests['GET /healthz']!;
		expect(healthz.statuses['200']).toBeGreaterThan(0);
		const tus = s.http.find((h) => h.name === 'tus upload')!;
		expect(Object.values(tus.requests).every((r) => r.requests > 0)).toBe(true);
		expect(tus.errors).toBe(0);
	});
});

describe('bench smoke run (storage and metadata)', () => {
	const outDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-smoke-storage-'));
	let run: BenchRun;

	beforeAll(async () => {
		({ run } = await runBench({
			scenarios: ['storage', 'metadata'],
			smoke: true,
			outDir,
			command: 'vitest bench smoke (storage, metadata)',
			loss: {},
			capacity: {},
			capacityTransports: [],
			signaling: {},
			log: () => {},
		}));
	}, 60_000);

	afterAll(() => rmSync(outDir, { recursive: true, force: true }));

	it('runs both without errors and reports them with the machine', () => {
		expect(run.errors).toEqual([]);
		const md = readFileSync(path.join(outDir, 'report.md'), 'utf8');
		expect(md).toContain('## Machine and versions');
		expect(md).toContain('## Voice-message storage: disk and s3');
		expect(md).toContain('## Voice-message metadata: SQLite, MariaDB, PostgreSQL');
		const json = JSON.parse(readFileSync(path.join(outDir, 'results.json'), 'utf8')) as BenchRun;
		expect(json.storage?.backends).toHaveLength(2);
		expect(json.metadata?.engines).toHaveLength(3);
	});

	it('uploads with tus-js-client in both chunk sizes, downloads the same bytes and finalizes a recording, on disk and s3', () => {
		const s = run.storage!;
		expect(s.backends.map((b) => b.backend)).toEqual(['disk', 's3']);
		for (const b of s.backends) {
			expect(b.uploads.map((u) => u.chunkBytes)).toEqual([64 * 1024, 5 * 1024 * 1024]);
			for (const u of b.uploads) {
				expect(u.bytes).toBeGreaterThan(0.9 * s.options.fileMiB * 1_048_576);
				// One PATCH per chunk: tus-js-client really used the chunk size.
				expect(u.patches).toBe(Math.ceil(u.bytes / u.chunkBytes));
				expect(u.mbPerS).toBeGreaterThan(0);
				expect(Number.isFinite(u.mbPerS)).toBe(true);
				expect(u.patchMs).toBeGreaterThan(0);
				expect(u.lastPatchMs).toBeGreaterThan(0);
				expect(u.readyMs).toBeGreaterThan(u.patchMs);
			}
			// The stored file is the upload remuxed: about as large.
			expect(b.download.bytes).toBeGreaterThan(0.9 * b.uploads[0]!.bytes);
			expect(b.download.runs).toBe(s.options.downloads);
			expect(b.download.mbPerS).toBeGreaterThan(0);
			expect(b.download.firstByteMs.p50).toBeGreaterThan(0);
			expect(b.download.firstByteMs.p50).toBeLessThanOrEqual(b.download.totalMs.p50);
			expect(b.recording.runs).toBe(s.options.recordings);
			expect(b.recording.durationMs).toBeGreaterThan(0);
			expect(b.recording.stopReplyMs.p50).toBeGreaterThan(0);
			expect(b.recording.finalizeMs.p50).toBeGreaterThanOrEqual(b.recording.stopReplyMs.p50);
		}
	});

	it('runs every metadata operation on SQLite, MariaDB and PostgreSQL, with an outbox row per change', () => {
		const m = run.metadata!;
		expect(m.engines.map((e) => e.engine)).toEqual(['SQLite', 'MariaDB', 'PostgreSQL']);
		for (const e of m.engines) {
			for (const f of Object.values(e.operations)) {
				expect(f.errors).toEqual([]);
				expect(f.succeeded).toBe(m.options.ops);
				expect(f.opsPerSecond).toBeGreaterThan(0);
				expect(f.latencyMs.p50).toBeGreaterThan(0);
				expect(f.latencyMs.p99).toBeGreaterThanOrEqual(f.latencyMs.p50);
			}
			// Each create and each status change committed its outbox row.
			expect(e.outboxPending).toBe(2 * m.options.ops);
			expect(e.pageSize).toBeGreaterThan(0);
			expect(e.durability).not.toBe('');
		}
	});
});

describe('bench smoke run (recording repair)', () => {
	const outDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-smoke-recording-'));
	let run: BenchRun;

	beforeAll(async () => {
		({ run } = await runBench({ scenarios: ['recording'], smoke: true, outDir, command: 'vitest bench smoke', loss: {}, capacity: {}, capacityTransports: [], signaling: {}, log: () => {} }));
	}, 90_000);

	afterAll(() => rmSync(outDir, { recursive: true, force: true }));

	it('records behind 20% uplink loss: RED d=2 + NACK stores the exact frames, plain Opus without NACK misses about a fifth', () => {
		expect(run.errors).toEqual([]);
		const r = run.recording!;
		expect(r.errors).toEqual([]);
		const [repaired, plain] = r.modes;
		for (const m of r.modes) {
			expect(m.framesSent).toBeGreaterThan(180);
			expect(m.framesWrong).toBe(0);
			expect(m.counts?.packetsReceived).toBeGreaterThan(0);
		}
		expect(repaired!.missingPer1000).toBeLessThan(20);
		expect(repaired!.counts!.framesFromRed).toBeGreaterThan(0);
		expect(plain!.missingPer1000).toBeGreaterThan(80);
		expect(readFileSync(path.join(outDir, 'report.md'), 'utf8')).toContain('## Recordings repaired');
	});
});

describe('bench smoke run (backend API)', () => {
	const outDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-smoke-api-'));
	let run: BenchRun;

	beforeAll(async () => {
		({ run } = await runBench({ scenarios: ['api'], smoke: true, outDir, command: 'vitest bench smoke (api)', loss: {}, capacity: {}, capacityTransports: [], signaling: {}, log: () => {} }));
	}, 60_000);

	afterAll(() => rmSync(outDir, { recursive: true, force: true }));

	it('delivers every committed status change to every SubscribeStatus stream once, with finite latencies', () => {
		expect(run.errors).toEqual([]);
		const f = run.api!.fanOut;
		expect(f.streamErrors).toEqual([]);
		expect(f.events).toBe(run.api!.options.events);
		expect(f.expectedDeliveries).toBe(f.events * f.subscribers);
		expect(f.delivered).toBe(f.expectedDeliveries);
		expect(f.missing).toBe(0);
		expect(f.duplicates).toBe(0);
		expect(f.deliveryMs.count).toBe(f.delivered);
		expect(f.deliveryMs.p50).toBeGreaterThanOrEqual(0);
		expect(f.deliveryMs.p99).toBeLessThanOrEqual(f.deliveryMs.max);
		expect(f.lastSubscriberMs.count).toBe(f.events);
		expect(f.deliveriesPerSecond).toBeGreaterThan(0);
		expect(readFileSync(path.join(outDir, 'report.md'), 'utf8')).toContain('## Backend API (gRPC)');
	});

	it('answers ListParticipants and MuteParticipant without errors while the channel carries audio', () => {
		const m = run.api!.moderation;
		expect(m.participantsListed).toBe(m.peers + m.listeners);
		for (const f of m.methods) {
			expect(f.calls).toBeGreaterThan(10);
			expect(f.errors).toEqual({});
			expect(f.succeeded).toBe(f.calls);
			expect(f.latencyMs.p99).toBeGreaterThan(0);
			expect(f.latencyMs.p99).toBeLessThanOrEqual(f.latencyMs.max);
		}
		expect(m.audio.packetsSent).toBeGreaterThan(0);
		expect(m.audio.packetsArrived).toBeGreaterThan(0);
	});
});
