// Access tokens: HS256 JWTs (jose) naming the user, the channels they may enter and what
// they may do there. Verified once per connection; every request is checked against them.
import { randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify } from 'jose';
import type { Grants } from '../../protocol/messages.js';
import { accessTokenPayloadSchema as payloadSchema } from '../../protocol/tokens.js';

// The claims and the minting live in protocol/tokens.ts (the SDK mints the same tokens);
// re-exported here for the server's callers.
export { channelAllowed, mintAccessToken, type AccessTokenOptions as MintOptions } from '../../protocol/tokens.js';

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
