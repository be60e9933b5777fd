// A Parley config for tests: loopback only, few workers, free ports, a temp storage dir.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ParleyConfig } from '../../config/schema.js';
import { loadConfig } from '../../server/config/loadConfig.js';
import { freePortRange } from '../../testkit/ports.js';

export async function testEnv(overrides: Record<string, string> = {}): Promise<Record<string, string>> {
	const workers = Number(overrides.PARLEY_MEDIA_WORKERS ?? '1');
	const dataDir = mkdtempSync(path.join(os.tmpdir(), 'parley-test-data-'));
	return {
		PARLEY_LOG_LEVEL: 'warn',
		PARLEY_HTTP_HOST: '127.0.0.1',
		PARLEY_HTTP_PORT: '0',
		PARLEY_MEDIA_WORKERS: String(workers),
		PARLEY_MEDIA_LISTEN_IP: '127.0.0.1',
		PARLEY_MEDIA_RTC_PORT: String(await freePortRange(workers)),
		PARLEY_STORAGE_DIR: path.join(dataDir, 'storage'),
		PARLEY_VOICE_DATABASE_PATH: path.join(dataDir, 'parley.db'),
		PARLEY_SHUTDOWN_DEADLINE_MS: '5000',
		// Tests fire requests faster than any person; the tests of these limits turn them on.
		PARLEY_SIGNALING_USER_REQUESTS_PER_SECOND: '0',
		PARLEY_VOICE_USER_REQUESTS_PER_SECOND: '0',
		// Tests leave uploads unfinished by the dozen as one user; test/reliability/quotas.test.ts turns it on.
		PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '0',
		// Tests read /metrics on the loopback main listener; the metrics endpoint tests check
		// the default (not public) with this set to false.
		PARLEY_METRICS_PUBLIC: 'true',
		// A cluster node refuses to start without it (only used when a test sets a Redis URL).
		PARLEY_CLUSTER_SECRET: 'test-cluster-secret-0123456789abcdef0123456789',
		...overrides,
	};
}

export async function testConfig(overrides: Record<string, string> = {}): Promise<ParleyConfig> {
	return loadConfig({ env: await testEnv(overrides) });
}
