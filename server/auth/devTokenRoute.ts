// POST /dev/token {displayName, channel}: mints a short-lived token for the demo page.
// Development only: `auth.devTokens` limits it to loopback clients by default, so a
// server reachable from the network does not hand out tokens to anyone. The socket address
// alone does not prove that: a reverse proxy on the same host makes every client loopback,
// and a DNS-rebound page reaches 127.0.0.1 under its own host name. So "loopback" also
// refuses proxied requests and Host headers that do not name this machine.
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { z } from 'zod';
import { clientAddress } from '../http/clientAddress.js';
import type { HttpRequestInfo, HttpServer } from '../http/HttpServer.js';
import { errorReply } from '../http/HttpServer.js';
import type { Logger } from '../telemetry/logger.js';
import { mintAccessToken, type TokenPolicy } from './accessToken.js';
import { channelNameSchema } from '../../protocol/schemas.js';

const bodySchema = z.strictObject({
	displayName: z.string().trim().min(1).max(64),
	channel: channelNameSchema,
});

export interface DevTokenOptions {
	mode: 'off' | 'loopback' | 'any';
	ttlS: number;
	signingKey: Uint8Array;
	maxBodyBytes: number;
	/** http.trustProxy: the client address is the proxy's last X-Forwarded-For entry. */
	trustProxy?: boolean;
	/** http.host, to warn when tokens are served on a listener reachable from the network. */
	listenHost?: string;
	/** auth.audience / auth.issuer: minted tokens carry them so the server accepts them. */
	policy?: TokenPolicy;
}

/** Header names a proxy adds and a browser talking to us directly never sends: the standard
 * `Forwarded` and `Via` (RFC 7239, RFC 9110 §7.6.3: proxies and gateways add it; no browser
 * does), and the de-facto client-address headers. Any `X-Forwarded-*` counts too. */
const PROXY_HEADER_NAMES = new Set(['forwarded', 'via', 'x-real-ip', 'x-client-ip', 'true-client-ip', 'cf-connecting-ip', 'x-cluster-client-ip', 'x-original-forwarded-for']);

/** Whether a (lower-case) header name is one a proxy adds. */
export function isProxyHeader(name: string): boolean {
	const lower = name.toLowerCase();
	return PROXY_HEADER_NAMES.has(lower) || lower.startsWith('x-forwarded-');
}

/** What the refusal reads from a request: its address, headers, and every header name. */
export type DevTokenRequest = Pick<HttpRequestInfo, 'remoteAddress' | 'header' | 'headerNames'>;

/** 127.0.0.0/8 and ::1, in the forms uWS prints them (IPv6 may be written out in full). */
export function isLoopback(address: string): boolean {
	const a = address.toLowerCase();
	if (/^(::ffff:)?127\./.test(a) || a === '::1') return true;
	if (/^(0{1,4}:){7}0{0,3}1$/.test(a)) return true;
	return /^(0{1,4}:){5}ffff:(7f[0-9a-f]{2}:[0-9a-f]{1,4}|127\.)/.test(a);
}

/** A Host header naming this machine: localhost, *.localhost, 127.x.x.x or [::1], with an optional port. */
export function isLoopbackHost(host: string): boolean {
	const m = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(host.trim().toLowerCase());
	if (!m) return false;
	const name = m[1]!;
	if (name === 'localhost' || name.endsWith('.localhost')) return /^[a-z0-9.-]+$/.test(name);
	if (name.startsWith('[')) return name === '[::1]';
	return net.isIPv4(name) && name.startsWith('127.');
}

/** Why a "loopback" request is refused, or undefined when it may have a token. */
export function loopbackRefusal(req: DevTokenRequest, trustProxy = false): string | undefined {
	if (!isLoopback(req.remoteAddress)) return 'Development tokens are served to loopback clients only (auth.devTokens).';
	const proxied = [...req.headerNames()].map((name) => name.toLowerCase()).find(isProxyHeader);
	if (proxied) return `Development tokens are not served through a proxy (the request has a ${proxied} header): behind one every client looks local (auth.devTokens).`;
	if (!isLoopbackHost(req.header('host'))) return 'Development tokens are served only for a loopback Host (localhost, 127.0.0.1, [::1]) (auth.devTokens).';
	if (trustProxy && !isLoopback(clientAddress(req.remoteAddress, req.header('x-forwarded-for'), true))) {
		return 'Development tokens are served to loopback clients only (auth.devTokens).';
	}
	return undefined;
}

export function registerDevTokenRoute(http: Pick<HttpServer, 'post'>, options: DevTokenOptions, log: Logger): void {
	if (options.mode === 'off') return;
	log.warn({ mode: options.mode }, 'development tokens enabled at POST /dev/token (set auth.devTokens=off in production)');
	if (options.listenHost !== undefined && !isLoopback(options.listenHost) && !isLoopbackHost(options.listenHost)) {
		log.warn(
			{ mode: options.mode, host: options.listenHost },
			'development tokens are enabled while http.host listens beyond loopback: set auth.devTokens=off on any server others can reach',
		);
	}
	http.post(
		'/dev/token',
		async (req) => {
			if (options.mode === 'loopback') {
				const refusal = loopbackRefusal(req, options.trustProxy);
				if (refusal) return errorReply('E_FORBIDDEN', refusal);
			}
			let json: unknown;
			try {
				json = JSON.parse(req.body.toString('utf8'));
			} catch {
				return errorReply('E_BAD_REQUEST', 'Body must be JSON: {"displayName": "...", "channel": "..."}.');
			}
			const parsed = bodySchema.safeParse(json);
			if (!parsed.success) {
				const issue = parsed.error.issues[0]!;
				return errorReply('E_BAD_REQUEST', `${issue.path.join('.') || 'body'}: ${issue.message}`);
			}
			const { displayName, channel } = parsed.data;
			const token = await mintAccessToken(
				{
					// A fresh user id per token: two tabs with the same name are two people.
					userId: `dev-${randomUUID()}`,
					displayName,
					channels: [channel],
					grants: { canPublish: true, canSubscribe: true, canRecord: true },
					ttlS: options.ttlS,
					...(options.policy?.audience && { audience: options.policy.audience }),
					...(options.policy?.issuer && { issuer: options.policy.issuer }),
				},
				options.signingKey,
			);
			return { status: 200, body: { token, expiresAt: Math.floor(Date.now() / 1000) + options.ttlS } };
		},
		{ maxBodyBytes: options.maxBodyBytes },
	);
}
