import { defineConfig } from 'vitest/config';

export default defineConfig({
	test: {
		include: ['protocol/**/*.test.ts', 'server/**/*.test.ts', 'client/**/*.test.ts', 'bench/**/*.test.ts', 'test/**/*.test.ts'],
		// Tests start real mediasoup workers, browsers and servers: run files one at a time
		// on these 2-core machines so timings stay honest and ports never collide.
		fileParallelism: false,
		pool: 'forks',
		testTimeout: 30_000,
		hookTimeout: 30_000,
	},
});
