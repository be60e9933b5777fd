// Access tokens: HS256 JWTs (jose) naming the user, the channels they may enter and what
// they may do there. Verified once per connection; every request is checked against them.
import { randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import type { Grants } from '../../protocol/messages.js';
import { USER_ID_PATTERN } from '../../protocol/patterns.js';
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

/** Control characters, line/paragraph separators and bidi overrides: a display name is shown
 * to other users and written to logs, where these forge lines or reorder text. */
const UNSAFE_NAME_CHARS = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

const channelPattern = z.union([channelNameSchema, z.string().regex(/^[A-Za-z0-9._:-]{0,63}\*$/, 'a channel prefix ends with *')]);

/** The token payload Parley issues and accepts (beyond the registered exp/iat/nbf). */
const payloadSchema = z.object({
	// The subject names storage folders and voice-message owners: only the user-id alphabet.
	sub: z.string().regex(USER_ID_PATTERN, 'must be a user id (up to 128 letters, digits, . _ @ -, starting with a letter or digit)'),
	name: z
		.string()
		.min(1)
		.max(64)
		.refine((v) => !UNSAFE_NAME_CHARS.test(v), 'must not contain control characters')
		.optional(),
	channels: z.array(channelPattern).min(1).max(64),
	grants: z
		.object({ canPublish: z.boolean().default(false), canSubscribe: z.boolean().default(true), canRecord: z.boolean().default(false) })
		.prefault({}),
	exp: z.number().int(),
	iat: z.number().int().optional(),
});

/** What a deployment demands of tokens beyond a valid signature (auth.* options). */
export interface TokenPolicy {
	/** Longest accepted exp - iat (exp - now without iat); a stolen long-lived token stays useful for that long. */
	maxLifetimeS?: number;
	/** Required `aud` value; empty or absent: not checked. */
	audience?: string;
	/** Required `iss` value; empty or absent: not checked. */
	issuer?: string;
}

export const DEFAULT_MAX_TOKEN_LIFETIME_S = 7 * 86_400;

/** The policy of the auth.* options (maxTokenLifetimeS, audience, issuer). */
export function tokenPolicy(auth: { maxTokenLifetimeS: number; audience: string; issuer: string }): TokenPolicy {
	return { maxLifetimeS: auth.maxTokenLifetimeS, audience: auth.audience, issuer: auth.issuer };
}

export class AccessTokenError extends Error {
	override readonly name = 'AccessTokenError';
}

/** The HMAC key: the configured secret, or a random one that lives as long as the process. */
export function signingKey(configuredSecret: string): Uint8Array {
	return configuredSecret ? new TextEncoder().encode(configuredSecret) : randomBytes(32);
}

export async function verifyAccessToken(token: string, key: Uint8Array, policy: TokenPolicy = {}): Promise<AccessClaims> {
	let payload: unknown;
	try {
		// Only HS256: refuses `none` and RS/HS confusion; exp is required and checked.
		({ payload } = await jwtVerify(token, key, {
			algorithms: ['HS256'],
			requiredClaims: ['exp', 'sub'],
			clockTolerance: 5,
			...(policy.audience && { audience: policy.audience }),
			...(policy.issuer && { issuer: policy.issuer }),
		}));
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
	const maxLifetimeS = policy.maxLifetimeS ?? DEFAULT_MAX_TOKEN_LIFETIME_S;
	const now = Math.floor(Date.now() / 1000);
	// From iat, or from now when iat is absent or in the future (a future iat must not
	// stretch what is left of the token beyond the limit).
	const lifetimeS = p.exp - Math.min(p.iat ?? now, now);
	if (lifetimeS > maxLifetimeS) throw new AccessTokenError(`token lifetime ${lifetimeS} s exceeds the ${maxLifetimeS} s allowed (auth.maxTokenLifetimeS)`);
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
	/** `aud` and `iss` claims (auth.audience, auth.issuer); empty or absent: none. */
	audience?: string;
	issuer?: string;
}

export async function mintAccessToken(options: MintOptions, key: Uint8Array): Promise<string> {
	const grants: Grants = { canPublish: false, canSubscribe: true, canRecord: false, ...options.grants };
	const claims = payloadSchema.omit({ exp: true, iat: true }).parse({ sub: options.userId, name: options.displayName, channels: options.channels, grants });
	const now = Math.floor(Date.now() / 1000);
	const jwt = new SignJWT({ name: claims.name, channels: claims.channels, grants: claims.grants })
		.setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
		.setSubject(claims.sub)
		.setIssuedAt(now)
		.setExpirationTime(now + options.ttlS);
	if (options.notBefore !== undefined) jwt.setNotBefore(options.notBefore);
	if (options.audience) jwt.setAudience(options.audience);
	if (options.issuer) jwt.setIssuer(options.issuer);
	return jwt.sign(key);
}

export function channelAllowed(patterns: string[], channel: string): boolean {
	return patterns.some((p) => (p.endsWith('*') ? channel.startsWith(p.slice(0, -1)) : p === channel));
}
