// GET /metrics in the Prometheus text format, on the main listener or on a listener of its
// own (metrics.port) that serves nothing else.
//
// The main listener is the public one (clients, the voice API): metrics there would tell
// anyone who is in which channel and how busy the node is, so by default it serves them only
// to a scraper with the bearer token (metrics.bearerToken) or when metrics.public says so;
// an anonymous request gets 404 E_METRICS_NOT_PUBLIC. The separate listener is meant for a
// private network: open unless a bearer token is configured, as before.
import { createHash, timingSafeEqual } from 'node:crypto';
import { errorReply, HttpServer, type HttpReply } from '../http/HttpServer.js';
import type { Logger } from '../telemetry/logger.js';
import type { ParleyMetrics } from './metrics.js';

export interface MetricsAccess {
	/** metrics.bearerToken: when non-empty, every scrape must send `Authorization: Bearer <it>`. */
	bearerToken: string;
	/** Anonymous scrapes are served (metrics.public on the main listener; always on metrics.port). */
	anonymous: boolean;
}

export function registerMetricsRoute(http: HttpServer, metrics: ParleyMetrics, access: MetricsAccess): void {
	http.get(
		'/metrics',
		async (req): Promise<HttpReply> => {
			if (access.bearerToken) {
				if (!bearerMatches(req.header('authorization'), access.bearerToken)) {
					return errorReply('E_AUTH', 'Send "Authorization: Bearer <metrics.bearerToken>".', { 'WWW-Authenticate': 'Bearer realm="metrics"' });
				}
			} else if (!access.anonymous) {
				return errorReply('E_METRICS_NOT_PUBLIC', 'Metrics are not served on this listener: scrape metrics.port, or set metrics.bearerToken or metrics.public.');
			}
			const { contentType, body } = await metrics.exposition();
			return { status: 200, contentType, body, headers: { 'Cache-Control': 'no-store' } };
		},
		// Prometheus scrapes every few seconds: its requests are logged at debug level. A busy
		// node is still scraped (http.maxConcurrentRequests does not apply).
		{ quiet: true, unlimited: true },
	);
}

/** A listener that serves only /metrics (404 for anything else), for a private network:
 * anonymous scrapes are served unless a bearer token is configured. */
export async function startMetricsListener(host: string, port: number, metrics: ParleyMetrics, bearerToken: string, log: Logger): Promise<HttpServer> {
	const http = new HttpServer(log);
	registerMetricsRoute(http, metrics, { bearerToken, anonymous: true });
	await http.listen(host, port);
	return http;
}

/** Compares digests so the time taken does not reveal how much of the token matched. */
export function bearerMatches(authorization: string, token: string): boolean {
	const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
	if (!match) return false;
	const digest = (text: string) => createHash('sha256').update(text).digest();
	return timingSafeEqual(digest(match[1]!), digest(token));
}
