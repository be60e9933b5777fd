// The node's rate limits beyond the per-connection bucket: per user and per client address,
// for signaling requests, new WebSocket connections and the voice HTTP API (tus uploads
// included). With Redis the buckets are shared by every node (one user's requests spread
// over several nodes drain one bucket); without it they are this node's own.
import type { Redis } from 'ioredis';
import type { ParleyConfig } from '../../config/schema.js';
import { rateLimiterFor } from './RedisRateLimiter.js';
import { addressLimitKey, clientAddress } from '../http/clientAddress.js';
import { httpErrorReply, type HttpReply, type HttpRequestInfo } from '../http/HttpServer.js';
import type { Logger } from '../telemetry/logger.js';
import type { ProtocolError } from '../../protocol/errors.js';
import { describeDelay, type RateLimiter, type RateLimitRule } from './RateLimiter.js';
import { RequestError } from '../../protocol/RequestError.js';

/** Which limit refused (the `scope` label of parley_rate_limited_total). */
export type RateLimitScope = 'signaling_user' | 'signaling_ip' | 'ws_connect_ip' | 'voice_user' | 'voice_ip';
export const RATE_LIMIT_SCOPES: readonly RateLimitScope[] = ['signaling_user', 'signaling_ip', 'ws_connect_ip', 'voice_user', 'voice_ip'];

/** Redis bucket scopes (`parley:rl:<scope>:<key>`). */
const REDIS_SCOPES: Record<RateLimitScope, string> = {
	signaling_user: 'sig-user',
	signaling_ip: 'sig-ip',
	ws_connect_ip: 'ws-conn-ip',
	voice_user: 'voice-user',
	voice_ip: 'voice-ip',
};

export type OnRateLimited = (scope: RateLimitScope) => void;

function ruleText(rule: RateLimitRule, per = 's'): string {
	const rate = per === 'min' ? rule.ratePerSecond * 60 : rule.ratePerSecond;
	return `${Number(rate.toFixed(3))}/${per}, bursts of ${rule.burst}`;
}

export interface SignalingRateLimitsOptions {
	user?: RateLimiter | undefined;
	ip?: RateLimiter | undefined;
	connectionsPerIp?: RateLimiter | undefined;
	onLimited?: OnRateLimited | undefined;
}

/** Limits on signaling: checked for each valid request and each new connection. */
export class SignalingRateLimits {
	readonly #o: SignalingRateLimitsOptions;

	constructor(options: SignalingRateLimitsOptions = {}) {
		this.#o = options;
	}

	/** The per-user rule, if any: the welcome tells clients to pace under it. */
	get userRule(): RateLimitRule | undefined {
		return this.#o.user?.rule;
	}

	/** Undefined when a new connection from this address may open; else why not (close 4429). */
	async admitConnection(address: string): Promise<ProtocolError | undefined> {
		const limiter = this.#o.connectionsPerIp;
		if (!limiter) return undefined;
		const d = await limiter.take(addressLimitKey(address));
		if (d.allowed) return undefined;
		this.#o.onLimited?.('ws_connect_ip');
		return {
			code: 'E_RATE_LIMIT',
			message: `Too many new connections from your address (${ruleText(limiter.rule, 'min')}); retry in ${describeDelay(d.retryAfterMs)}.`,
			retryAfterMs: d.retryAfterMs,
		};
	}

	/** Throws E_RATE_LIMIT (with retryAfterMs) when this user's or this address's requests are over their limit. */
	async admitRequest(userId: string, address: string): Promise<void> {
		const { user, ip } = this.#o;
		if (user) {
			const d = await user.take(userId);
			if (!d.allowed) {
				this.#o.onLimited?.('signaling_user');
				throw new RequestError('E_RATE_LIMIT', `Too many requests from your user across all connections (${ruleText(user.rule)}); retry in ${describeDelay(d.retryAfterMs)}.`, { retryAfterMs: d.retryAfterMs });
			}
		}
		if (ip) {
			const d = await ip.take(addressLimitKey(address));
			if (!d.allowed) {
				this.#o.onLimited?.('signaling_ip');
				throw new RequestError('E_RATE_LIMIT', `Too many requests from your address (${ruleText(ip.rule)}); retry in ${describeDelay(d.retryAfterMs)}.`, { retryAfterMs: d.retryAfterMs });
			}
		}
	}
}

export interface HttpRateLimitsOptions {
	user?: RateLimiter | undefined;
	ip?: RateLimiter | undefined;
	/** Take the client address from X-Forwarded-For (http.trustProxy). */
	trustProxy: boolean;
	onLimited?: OnRateLimited | undefined;
}

/** 429 with Retry-After (whole seconds, rounded up) and the usual JSON error body. */
export function rateLimitReply(message: string, retryAfterMs: number): HttpReply {
	const retryAfterS = Math.max(1, Math.ceil(retryAfterMs / 1000));
	return httpErrorReply(new RequestError('E_RATE_LIMIT', message, { retryAfterMs }, { 'Retry-After': String(retryAfterS) }));
}

/** Limits on the voice HTTP API: the address before authentication, the user after. */
export class HttpRateLimits {
	readonly #o: HttpRateLimitsOptions;

	constructor(options: HttpRateLimitsOptions = { trustProxy: false }) {
		this.#o = options;
	}

	/** The client's address for this request (honours http.trustProxy). */
	address(req: HttpRequestInfo): string {
		return clientAddress(req.remoteAddress, req.header('x-forwarded-for'), this.#o.trustProxy);
	}

	/** A 429 reply when this request's address is over its limit. */
	async admitAddress(req: HttpRequestInfo): Promise<HttpReply | undefined> {
		const ip = this.#o.ip;
		if (!ip) return undefined;
		const d = await ip.take(addressLimitKey(this.address(req)));
		if (d.allowed) return undefined;
		this.#o.onLimited?.('voice_ip');
		return rateLimitReply(`Too many requests from your address (${ruleText(ip.rule)}); retry in ${describeDelay(d.retryAfterMs)}.`, d.retryAfterMs);
	}

	/** A 429 reply when this user is over their limit. */
	async admitUser(userId: string): Promise<HttpReply | undefined> {
		const user = this.#o.user;
		if (!user) return undefined;
		const d = await user.take(userId);
		if (d.allowed) return undefined;
		this.#o.onLimited?.('voice_user');
		return rateLimitReply(`Too many requests from your user (${ruleText(user.rule)}); retry in ${describeDelay(d.retryAfterMs)}.`, d.retryAfterMs);
	}
}

export interface RateLimits {
	signaling: SignalingRateLimits;
	http: HttpRateLimits;
}

/** Every limit the configuration turns on, in Redis when the node has it. */
export function createRateLimits(config: ParleyConfig, redis: Redis | undefined, log: Logger, onLimited?: OnRateLimited): RateLimits {
	const limiter = (scope: RateLimitScope, rule: RateLimitRule) => rateLimiterFor(redis, REDIS_SCOPES[scope], rule, log);
	const s = config.signaling;
	const v = config.voice;
	return {
		signaling: new SignalingRateLimits({
			user: limiter('signaling_user', { ratePerSecond: s.userRequestsPerSecond, burst: s.userRequestBurst }),
			ip: limiter('signaling_ip', { ratePerSecond: s.ipRequestsPerSecond, burst: s.ipRequestBurst }),
			connectionsPerIp: limiter('ws_connect_ip', { ratePerSecond: s.ipConnectionsPerMinute / 60, burst: s.ipConnectionBurst }),
			onLimited,
		}),
		http: new HttpRateLimits({
			user: limiter('voice_user', { ratePerSecond: v.userRequestsPerSecond, burst: v.userRequestBurst }),
			ip: limiter('voice_ip', { ratePerSecond: v.ipRequestsPerSecond, burst: v.ipRequestBurst }),
			trustProxy: config.http.trustProxy,
			onLimited,
		}),
	};
}
