// Who may read /metrics: on the public listener nobody anonymous by default (404
// E_METRICS_NOT_PUBLIC), a scraper with the bearer token, or anyone when metrics.public is on.
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../config/schema.js';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { ParleyServer } from '../ParleyServer.js';

describe('GET /metrics on the public listener', () => {
	let server: ParleyServer | undefined;
	afterEach(async () => {
		await server?.shutdown('test end');
		server = undefined;
	});
	const metricsUrl = () => `http://127.0.0.1:${server!.http.port}/metrics`;

	it('is not public by default', () => {
		expect(configSchema.parse({}).metrics).toMatchObject({ public: false, bearerToken: '', port: 0 });
	});

	it('refuses anonymous scrapes with 404 E_METRICS_NOT_PUBLIC when neither a token nor metrics.public is set', async () => {
		server = await ParleyServer.create(await testConfig({ PARLEY_METRICS_PUBLIC: 'false' }), testLogger());
		const res = await fetch(metricsUrl());
		expect(res.status).toBe(404);
		expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_METRICS_NOT_PUBLIC');
		// Sending some bearer token does not open it either: there is none to match.
		expect((await fetch(metricsUrl(), { headers: { authorization: 'Bearer anything' } })).status).toBe(404);
	});

	it('serves a scraper with the bearer token, and 401 E_AUTH to everyone else', async () => {
		server = await ParleyServer.create(await testConfig({ PARLEY_METRICS_PUBLIC: 'false', PARLEY_METRICS_BEARER_TOKEN: 'scrape-token-0123' }), testLogger());
		for (const authorization of [undefined, 'Bearer wrong', 'Bearer scrape-token-012', 'Basic scrape-token-0123', 'scrape-token-0123']) {
			const res = await fetch(metricsUrl(), authorization === undefined ? {} : { headers: { authorization } });
			expect(res.status, authorization).toBe(401);
			expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_AUTH');
		}
		const ok = await fetch(metricsUrl(), { headers: { authorization: 'Bearer scrape-token-0123' } });
		expect(ok.status).toBe(200);
		expect(await ok.text()).toContain('parley_workers_up');
	});

	it('serves anyone when metrics.public is on (an operator who wants it open says so)', async () => {
		server = await ParleyServer.create(await testConfig({ PARLEY_METRICS_PUBLIC: 'true' }), testLogger());
		const res = await fetch(metricsUrl());
		expect(res.status).toBe(200);
		expect(await res.text()).toContain('parley_workers_up');
	});
});
