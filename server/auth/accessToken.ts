// Access tokens: HS256 JWTs (jose) naming the user, the channels they may enter and what
// they may do there. Verified once per connection; every request is checked against them.
import { randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import type { Grants } from '../../protocol/messages.js';
import { channelNameSchema } from '../../protocol/schemas.js';

/** What a verified token says about its holder. */
export interface AccessClaims {
	userId: string;
	displayName: string;
	/** Exact channel names, or prefixes ending in `*` (`team-*`; `*` alone allows all). */
	channels: string[];
	grants: Grants;
	/** Seconds since the epoch. */
	expiresAt: number;
}

const channelPattern = z.union([channelNameSchema, z.string().regex(/^[A-Za-z0-9._:-]{0,63}\*$/, 'a channel prefix ends with *')]);

/** The token payload Parley issues and accepts (beyond the registered exp/iat/nbf). */
const payloadSchema = z.object({
	sub: z.string().min(1).max(128),
	name: z.string().min(1).max(64).optional(),
	channels: z.array(channelPattern).min(1).max(64),
	grants: z
		.object({ canPublish: z.boolean().default(false), canSubscribe: z.boolean().default(true), canRecord: z.boolean().default(false) })
		.prefault({}),
	exp: z.number().int(),
});

export class AccessTokenError extends Error {
	override readonly name = 'AccessTokenError';
}

/** The HMAC key: the configured secret, or a random one that lives as long as the process. */
export function signingKey(configuredSecret: string): Uint8Array {
	return configuredSecret ? new TextEncoder().encode(configuredSecret) : randomBytes(32);
}

export async function verifyAccessToken(token: string, key: Uint8Array): Promise<AccessClaims> {
	let payload: unknown;
	try {
		// Only HS256: refuses `none` and RS/HS confusion; exp is required and checked.
		({ payload } = await jwtVerify(token, key, { algorithms: ['HS256'], requiredClaims: ['exp', 'sub'], clockTolerance: 5 }));
	} catch (err) {
		if (err instanceof joseErrors.JWTExpired) throw new AccessTokenError('token expired');
		if (err instanceof joseErrors.JWTClaimValidationFailed) throw new AccessTokenError(`token claim "${err.claim}" invalid: ${err.reason}`);
		if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw new AccessTokenError('token signature invalid');
		if (err instanceof joseErrors.JOSEAlgNotAllowed) throw new AccessTokenError('token algorithm not allowed (HS256 only)');
		throw new AccessTokenError('token malformed');
	}
	const parsed = payloadSchema.safeParse(payload);
	if (!parsed.success) {
		const issue = parsed.error.issues[0]!;
		throw new AccessTokenError(`token claim "${issue.path.join('.')}" invalid: ${issue.message}`);
	}
	const p = parsed.data;
	return { userId: p.sub, displayName: p.name ?? p.sub, channels: p.channels, grants: p.grants, expiresAt: p.exp };
}

export interface MintOptions {
	userId: string;
	displayName?: string;
	channels: string[];
	grants?: Partial<Grants>;
	ttlS: number;
	/** Seconds since the epoch; defaults to now (tests mint not-yet-valid tokens with it). */
	notBefore?: number;
}

export async function mintAccessToken(options: MintOptions, key: Uint8Array): Promise<string> {
	const grants: Grants = { canPublish: false, canSubscribe: true, canRecord: false, ...options.grants };
	const claims = payloadSchema.omit({ exp: true }).parse({ sub: options.userId, name: options.displayName, channels: options.channels, grants });
	const now = Math.floor(Date.now() / 1000);
	const jwt = new SignJWT({ name: claims.name, channels: claims.channels, grants: claims.grants })
		.setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
		.setSubject(claims.sub)
		.setIssuedAt(now)
		.setExpirationTime(now + options.ttlS);
	if (options.notBefore !== undefined) jwt.setNotBefore(options.notBefore);
	return jwt.sign(key);
}

export function channelAllowed(patterns: string[], channel: string): boolean {
	return patterns.some((p) => (p.endsWith('*') ? channel.startsWith(p.slice(0, -1)) : p === channel));
}
