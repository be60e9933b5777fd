// GET /metrics in the Prometheus text format, optionally behind a bearer token, on the main
// listener or on a listener of its own (metrics.port) that serves nothing else.
import { createHash, timingSafeEqual } from 'node:crypto';
import { errorReply, HttpServer, type HttpReply } from '../http/HttpServer.js';
import type { Logger } from '../telemetry/logger.js';
import type { ParleyMetrics } from './metrics.js';

export function registerMetricsRoute(http: HttpServer, metrics: ParleyMetrics, bearerToken: string): void {
	http.get(
		'/metrics',
		async (req): Promise<HttpReply> => {
			if (bearerToken && !bearerMatches(req.header('authorization'), bearerToken)) {
				return errorReply('E_AUTH', 'Send "Authorization: Bearer <metrics.bearerToken>".', { 'WWW-Authenticate': 'Bearer realm="metrics"' });
			}
			const { contentType, body } = await metrics.exposition();
			return { status: 200, contentType, body, headers: { 'Cache-Control': 'no-store' } };
		},
		// Prometheus scrapes every few seconds: its requests are logged at debug level. A busy
		// node is still scraped (http.maxConcurrentRequests does not apply).
		{ quiet: true, unlimited: true },
	);
}

/** A listener that serves only /metrics (404 for anything else). */
export async function startMetricsListener(host: string, port: number, metrics: ParleyMetrics, bearerToken: string, log: Logger): Promise<HttpServer> {
	const http = new HttpServer(log);
	registerMetricsRoute(http, metrics, bearerToken);
	await http.listen(host, port);
	return http;
}

/** Compares digests so the time taken does not reveal how much of the token matched. */
function bearerMatches(authorization: string, token: string): boolean {
	const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
	if (!match) return false;
	const digest = (text: string) => createHash('sha256').update(text).digest();
	return timingSafeEqual(digest(match[1]!), digest(token));
}
