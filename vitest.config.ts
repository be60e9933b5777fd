import { defineConfig } from 'vitest/config';

/** Tests that start a browser, a server process or a full WebRTC session: `system`. */
const SYSTEM_SUFFIXES = ['**/*.browser.test.ts', '**/*.process.test.ts', '**/*.e2e.test.ts'];

export default defineConfig({
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
					// Two unit files at a time (these machines have 2 cores): each waits on its
					// own services (Redis, Swift, SQL, ffmpeg, a worker) much of the time, on free
					// ports, so two side by side take about half as long and measure nothing.
					maxWorkers: 2,
					sequence: { groupOrder: 0 },
					// Unit files share one worker process instead of a fresh one each: about 1.3 s of
					// start-up per file (28 s over the project). Each file closes what it opened
					// (workers, servers, Redis), so nothing carries over; system tests stay isolated.
					isolate: false,
					include: ['protocol/**/*.test.ts', 'server/**/*.test.ts', 'client/**/*.test.ts', 'bench/**/*.test.ts', 'testkit/**/*.test.ts'],
					exclude: ['**/node_modules/**', ...SYSTEM_SUFFIXES],
				},
			},
			{
				extends: true,
				test: {
					// The whole system: browsers, server processes, clusters, soaks.
					name: 'system',
					// Browsers, server processes and clusters: one file at a time, so timings stay
					// honest on 2 cores and nothing competes for the CPU a latency figure measures.
					fileParallelism: false,
					sequence: { groupOrder: 1 },
					include: ['test/**/*.test.ts', ...SYSTEM_SUFFIXES.map((s) => s.replace('**/', '{protocol,server,client,bench,testkit}/**/'))],
					exclude: ['**/node_modules/**'],
				},
			},
		],
	},
});
