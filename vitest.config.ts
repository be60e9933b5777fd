import { defineConfig } from 'vitest/config';

/** Tests that start a browser, a server process or a full WebRTC session: `system`. */
const SYSTEM_SUFFIXES = ['**/*.browser.test.ts', '**/*.process.test.ts', '**/*.e2e.test.ts'];

export default defineConfig({
	test: {
		// Tests start real mediasoup workers, browsers and servers: run files one at a time
		// on these 2-core machines so timings stay honest and ports never collide.
		fileParallelism: false,
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
					include: ['test/**/*.test.ts', ...SYSTEM_SUFFIXES.map((s) => s.replace('**/', '{protocol,server,client,bench,testkit}/**/'))],
					exclude: ['**/node_modules/**'],
				},
			},
		],
	},
});
