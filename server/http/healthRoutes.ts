// GET /healthz: the process is up and its event loop answers.
// GET /readyz: Parley can serve: every readiness check passes within its timeout
// (workers up, storage writable, Redis reachable when configured). Load balancers and
// orchestrators route traffic on /readyz and restart on /healthz.
import type { HttpServer } from './HttpServer.js';

export interface ReadinessCheck {
	name: string;
	/** Resolves when ready; rejects with the reason otherwise. */
	check(): Promise<void>;
}

export interface CheckResult {
	ok: boolean;
	durationMs: number;
	error?: string;
}

export async function runReadinessChecks(checks: ReadinessCheck[], timeoutMs: number): Promise<Record<string, CheckResult>> {
	const results = await Promise.all(
		checks.map(async (c): Promise<[string, CheckResult]> => {
			const started = performance.now();
			let timer: NodeJS.Timeout | undefined;
			try {
				await Promise.race([
					c.check(),
					new Promise<never>((_, reject) => {
						timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
					}),
				]);
				return [c.name, { ok: true, durationMs: elapsed(started) }];
			} catch (err) {
				return [c.name, { ok: false, durationMs: elapsed(started), error: (err as Error).message }];
			} finally {
				clearTimeout(timer);
			}
		}),
	);
	return Object.fromEntries(results);
}

function elapsed(started: number): number {
	return Math.round((performance.now() - started) * 100) / 100;
}

export interface HealthRouteOptions {
	checks: ReadinessCheck[];
	checkTimeoutMs: number;
	/** False once shutdown began: not ready, so balancers stop sending new clients. */
	isAccepting: () => boolean;
}

export function registerHealthRoutes(http: HttpServer, options: HealthRouteOptions): void {
	const startedAt = Date.now();
	http.get('/healthz', () => ({ status: 200, body: { status: 'ok', uptimeS: Math.round((Date.now() - startedAt) / 1000) } }), { quiet: true, unlimited: true });
	http.get(
		'/readyz',
		async (req) => {
			const checks = await runReadinessChecks(options.checks, options.checkTimeoutMs);
			const draining = !options.isAccepting();
			const ready = !draining && Object.values(checks).every((c) => c.ok);
			if (!ready) req.log.warn({ checks, draining }, 'not ready');
			return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : draining ? 'draining' : 'not ready', checks } };
		},
		{ quiet: true, unlimited: true },
	);
}
