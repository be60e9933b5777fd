// GET /healthz: the process is up and its event loop answers.
// GET /readyz: Parley can serve: every readiness check passes within its timeout
// (workers up, storage writable, Redis reachable when configured). Load balancers and
// orchestrators route traffic on /readyz and restart on /healthz.
// /readyz is anonymous and exempt from the in-flight cap, so its checks (one of them a
// write + fsync) run at most once per cacheMs however often it is called, and its body
// says only which check failed: the reasons (paths, errno) go to the log.
import type { Logger } from '../telemetry/logger.js';
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

/** How long one run of the readiness checks answers /readyz (config readiness.cacheMs). */
export const DEFAULT_READINESS_CACHE_MS = 1000;

export type ReadinessResults = Record<string, CheckResult>;

/**
 * The readiness checks behind a cache: calls within cacheMs of the last run's end get its
 * results, and calls during a run wait for that run (single flight), so the checks run at
 * most once per cacheMs plus their duration.
 */
export class CachedReadiness {
	readonly #checks: ReadinessCheck[];
	readonly #timeoutMs: number;
	readonly #cacheMs: number;
	#last: { results: ReadinessResults; atMs: number } | undefined;
	#running: Promise<ReadinessResults> | undefined;
	#runs = 0;

	constructor(checks: ReadinessCheck[], timeoutMs: number, cacheMs: number) {
		this.#checks = checks;
		this.#timeoutMs = timeoutMs;
		this.#cacheMs = cacheMs;
	}

	/** How many times the checks have run (tests). */
	get runs(): number {
		return this.#runs;
	}

	/** The current results; `ran` is true only for the one caller whose call ran the checks. */
	async results(): Promise<{ results: ReadinessResults; ran: boolean }> {
		const last = this.#last;
		if (last && performance.now() - last.atMs < this.#cacheMs) return { results: last.results, ran: false };
		if (this.#running) return { results: await this.#running, ran: false };
		this.#runs++;
		const run = runReadinessChecks(this.#checks, this.#timeoutMs)
			.then((results) => {
				this.#last = { results, atMs: performance.now() };
				return results;
			})
			.finally(() => {
				this.#running = undefined;
			});
		this.#running = run;
		return { results: await run, ran: true };
	}
}

/** What anonymous callers see of a check: its name and whether it passed. */
export function publicChecks(results: ReadinessResults): Record<string, { ok: boolean }> {
	return Object.fromEntries(Object.entries(results).map(([name, r]) => [name, { ok: r.ok }]));
}

function logFailures(log: Logger, results: ReadinessResults): void {
	const failed = Object.entries(results).filter(([, r]) => !r.ok);
	if (failed.length > 0) log.warn({ checks: Object.fromEntries(failed) }, `readiness check(s) failed: ${failed.map(([name]) => name).join(', ')}`);
}

export interface HealthRouteOptions {
	checks: ReadinessCheck[];
	checkTimeoutMs: number;
	/** Results are reused for this long; default DEFAULT_READINESS_CACHE_MS. */
	cacheMs?: number;
	/** False once shutdown began: not ready, so balancers stop sending new clients. */
	isAccepting: () => boolean;
}

/** Registers /healthz and /readyz; returns the readiness cache (its run count, for tests). */
export function registerHealthRoutes(http: HttpServer, options: HealthRouteOptions): CachedReadiness {
	const startedAt = Date.now();
	const readiness = new CachedReadiness(options.checks, options.checkTimeoutMs, options.cacheMs ?? DEFAULT_READINESS_CACHE_MS);
	http.get('/healthz', () => ({ status: 200, body: { status: 'ok', uptimeS: Math.round((Date.now() - startedAt) / 1000) } }), { quiet: true, unlimited: true });
	http.get(
		'/readyz',
		async (req) => {
			const { results, ran } = await readiness.results();
			// Logged by the call that ran the checks only: at most one line per cacheMs.
			if (ran) logFailures(req.log, results);
			const draining = !options.isAccepting();
			const ready = !draining && Object.values(results).every((c) => c.ok);
			return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : draining ? 'draining' : 'not ready', checks: publicChecks(results) } };
		},
		{ quiet: true, unlimited: true },
	);
	return readiness;
}
