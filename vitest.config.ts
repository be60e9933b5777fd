import { defineConfig } from 'vitest/config';

/** Tests that start a browser, a server process or a full WebRTC session: `system`. */
const SYSTEM_SUFFIXES = ['**/*.browser.test.ts', '**/*.process.test.ts', '**/*.e2e.test.ts'];
const SYSTEM_FILES = ['test/**/*.test.ts', ...SYSTEM_SUFFIXES.map((s) => s.replace('**/', '{protocol,server,client,bench,testkit,sdk}/**/'))];

/**
 * System tests that must have the machine to themselves: browsers (Chromium and Firefox
 * decode, encode and mix audio on the CPU, and their tests time how soon a tone is heard),
 * and the tests whose figures are latencies, lost frames or packets per window. (The soaks are not among them:
 * what they check is counts and memory after the churn, which a busy CPU only slows.)
 */
const SERIAL_FILES = [
	'**/*.browser.test.ts',
	'test/cluster/bridgeLatency.test.ts',
	'test/scale/scaleOut.process.test.ts',
	// Their victims must keep talking (packets per window) or their slow clients hold slots for
	// a set time while the test counts: a neighbour's CPU changes what they see.
	'test/reliability/signalingFuzz.test.ts',
	'test/reliability/workerCrash.test.ts',
	'test/reliability/httpLimits.test.ts',
];

/**
 * Unit and system files at a time, in one group (the serial files after it, alone). Both kinds
 * spend most of their time waiting on what they started (Redis, Swift, SQL servers, ffmpeg,
 * workers, server processes, a lease or a node TTL to run out), each on free ports: two unit
 * files at a time kept the 2 cores about 40% busy (CPU time over wall time, 158 s wall), and
 * each group ended on its last long file while the next waited. Three side by side, with no
 * barrier between the two kinds, keep the cores busier; the files whose figures a neighbour's
 * CPU changes are in SERIAL_FILES. PARLEY_TEST_FILES overrides it (1 runs every file alone).
 */
const PARALLEL_FILES = Number(process.env.PARLEY_TEST_FILES ?? 3);

export default defineConfig({
	// PARLEY_VITEST_CACHE_DIR (.ci/run sets it under ~/.cache/parley) keeps vitest's per-file
	// durations between CI's clean clones, so each group starts its longest files first instead
	// of its largest, and does not end on one long file alone.
	...(process.env.PARLEY_VITEST_CACHE_DIR && { cacheDir: process.env.PARLEY_VITEST_CACHE_DIR }),
	test: {
		pool: 'forks',
		testTimeout: 30_000,
		hookTimeout: 30_000,
		projects: [
			{
				extends: true,
				test: {
					// `npm run test:unit`: one module or class at a time (real mediasoup workers,
					// ffmpeg and Redis where the module uses them), seconds per file.
					name: 'unit',
					// Unit and system files run side by side, PARALLEL_FILES at a time (one group:
					// vitest needs the same maxWorkers for both).
					maxWorkers: PARALLEL_FILES,
					sequence: { groupOrder: 0 },
					// Unit files share one worker process instead of a fresh one each: about 1.3 s of
					// start-up per file (28 s over the project). Each file closes what it opened
					// (workers, servers, Redis), so nothing carries over; system tests stay isolated.
					isolate: false,
					include: ['protocol/**/*.test.ts', 'server/**/*.test.ts', 'client/**/*.test.ts', 'bench/**/*.test.ts', 'testkit/**/*.test.ts', 'sdk/**/*.test.ts'],
					exclude: ['**/node_modules/**', ...SYSTEM_SUFFIXES],
				},
			},
			{
				extends: true,
				test: {
					// Server processes, clusters and real services killed and restarted: two files at a
					// time. Most of their time is spent waiting (for a lease to expire, a node to be
					// declared dead, a service to come back), each on its own free ports, and their
					// deadlines are generous next to what they measure.
					name: 'system',
					maxWorkers: PARALLEL_FILES,
					// Beside two other files a server process takes longer to start and stop: the
					// default deadlines are generous (tests with their own keep them).
					testTimeout: 60_000,
					hookTimeout: 60_000,
					sequence: { groupOrder: 0 },
					include: SYSTEM_FILES,
					exclude: ['**/node_modules/**', ...SERIAL_FILES],
				},
			},
			{
				extends: true,
				test: {
					// Browsers, latency and soak figures: one file at a time, so timings stay honest on
					// 2 cores and nothing competes for the CPU a figure measures.
					name: 'serial',
					fileParallelism: false,
					sequence: { groupOrder: 1 },
					include: SERIAL_FILES,
					exclude: ['**/node_modules/**'],
				},
			},
		],
	},
});
