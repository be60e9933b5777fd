// POST /dev/token {displayName, channel}: mints a short-lived token for the demo page.
// Development only: `auth.devTokens` limits it to loopback clients by default, so a
// server reachable from the network does not hand out tokens to anyone.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { HttpServer } from '../http/HttpServer.js';
import { errorReply } from '../http/HttpServer.js';
import type { Logger } from '../telemetry/logger.js';
import { mintAccessToken } from './accessToken.js';
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
}

/** 127.0.0.0/8 and ::1, in the forms uWS prints them (IPv6 may be written out in full). */
export function isLoopback(address: string): boolean {
	const a = address.toLowerCase();
	if (/^(::ffff:)?127\./.test(a) || a === '::1') return true;
	if (/^(0{1,4}:){7}0{0,3}1$/.test(a)) return true;
	return /^(0{1,4}:){5}ffff:(7f[0-9a-f]{2}:[0-9a-f]{1,4}|127\.)/.test(a);
}

export function registerDevTokenRoute(http: HttpServer, options: DevTokenOptions, log: Logger): void {
	if (options.mode === 'off') return;
	log.warn({ mode: options.mode }, 'development tokens enabled at POST /dev/token (set auth.devTokens=off in production)');
	http.post(
		'/dev/token',
		async (req) => {
			if (options.mode === 'loopback' && !isLoopback(req.remoteAddress)) {
				return errorReply('E_FORBIDDEN', 'Development tokens are served to loopback clients only (auth.devTokens).');
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
				},
				options.signingKey,
			);
			return { status: 200, body: { token, expiresAt: Math.floor(Date.now() / 1000) + options.ttlS } };
		},
		{ maxBodyBytes: options.maxBodyBytes },
	);
}
