// The two tokens Parley accepts, in one place for the server (which verifies them) and for
// whoever mints them (the SDK's token builder, `npm run token`, tests): the claim schemas and
// the minting. Both are HS256 JWTs (jose).
//  - Access tokens: a browser's, signed with auth.jwtSecret; the user, the channels they may
//    enter (exact names or `prefix*`) and what they may do there (grants).
//  - API tokens: a backend's, signed with one of the API keys (api.keys) and naming that key in
//    `iss`; the `api` claim grants operations (apiOperations.ts) on channels. Short-lived.
import { SignJWT } from 'jose';
import { z } from 'zod';
import { API_OPERATIONS } from './apiOperations.js';
import type { Grants } from './messages.js';
import { USER_ID_PATTERN } from './patterns.js';
import { channelNameSchema } from './schemas.js';

/** Control characters, line/paragraph separators and bidi overrides: a display name is shown
 * to other users and written to logs, where these forge lines or reorder text. */
const UNSAFE_NAME_CHARS = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** A channel a token covers: an exact name, or a prefix ending in `*` (`*` alone: every channel). */
export const channelPatternSchema = z.union([channelNameSchema, z.string().regex(/^[A-Za-z0-9._:-]{0,63}\*$/, 'a channel prefix ends with *')]);

/** The access token payload Parley issues and accepts (beyond the registered exp/iat/nbf). */
export const accessTokenPayloadSchema = z.object({
	// The subject names storage folders and voice-message owners: only the user-id alphabet.
	sub: z.string().regex(USER_ID_PATTERN, 'must be a user id (up to 128 letters, digits, . _ @ -, starting with a letter or digit)'),
	name: z
		.string()
		.min(1)
		.max(64)
		.refine((v) => !UNSAFE_NAME_CHARS.test(v), 'must not contain control characters')
		.optional(),
	channels: z.array(channelPatternSchema).min(1).max(64),
	grants: z
		.object({ canPublish: z.boolean().default(false), canSubscribe: z.boolean().default(true), canRecord: z.boolean().default(false) })
		.prefault({}),
	exp: z.number().int(),
	iat: z.number().int().optional(),
});

/** The `api` claim of an API token. */
export const apiGrantSchema = z.strictObject({
	channels: z.array(channelPatternSchema).min(1).max(64),
	operations: z.array(z.enum([...API_OPERATIONS, '*'])).min(1).max(API_OPERATIONS.length + 1),
});

/** The API token payload (beyond iss, which names the key). */
export const apiTokenPayloadSchema = z.object({
	exp: z.number().int(),
	iat: z.number().int().optional(),
	api: apiGrantSchema,
});

/** What an API token grants: operations ("*": all) on channels (exact names or `prefix*`). */
export type ApiGrant = z.input<typeof apiGrantSchema>;

/** An HMAC key as a secret string (UTF-8) or its bytes. */
export type SigningSecret = string | Uint8Array;

function keyBytes(secret: SigningSecret): Uint8Array {
	return typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
}

export interface AccessTokenOptions {
	userId: string;
	displayName?: string;
	/** Exact channel names, or prefixes ending in `*` (`team-*`; `*` alone allows all). */
	channels: string[];
	/** Unset grants default to: canPublish false, canSubscribe true, canRecord false. */
	grants?: Partial<Grants>;
	ttlS: number;
	/** Seconds since the epoch; defaults to now (tests mint not-yet-valid tokens with it). */
	notBefore?: number;
	/** `aud` and `iss` claims (auth.audience, auth.issuer); empty or absent: none. */
	audience?: string;
	issuer?: string;
}

/** A browser access token signed with auth.jwtSecret. Throws a ZodError on claims the server would refuse. */
export async function mintAccessToken(options: AccessTokenOptions, secret: SigningSecret): Promise<string> {
	const grants: Grants = { canPublish: false, canSubscribe: true, canRecord: false, ...options.grants };
	const claims = accessTokenPayloadSchema.omit({ exp: true, iat: true }).parse({ sub: options.userId, name: options.displayName, channels: options.channels, grants });
	const now = Math.floor(Date.now() / 1000);
	const jwt = new SignJWT({ name: claims.name, channels: claims.channels, grants: claims.grants })
		.setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
		.setSubject(claims.sub)
		.setIssuedAt(now)
		.setExpirationTime(now + options.ttlS);
	if (options.notBefore !== undefined) jwt.setNotBefore(options.notBefore);
	if (options.audience) jwt.setAudience(options.audience);
	if (options.issuer) jwt.setIssuer(options.issuer);
	return jwt.sign(keyBytes(secret));
}

export interface ApiTokenOptions {
	/** The API key's id (api.keys[].id): the token's `iss`. */
	keyId: string;
	secret: SigningSecret;
	grant: ApiGrant;
	/** The server refuses more than api.maxTokenLifetimeS. */
	ttlS: number;
}

/** An API token for the backend API. Throws a ZodError on a grant the server would refuse. */
export async function mintApiToken({ keyId, secret, grant, ttlS }: ApiTokenOptions): Promise<string> {
	const now = Math.floor(Date.now() / 1000);
	return new SignJWT({ api: apiGrantSchema.parse(grant) })
		.setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
		.setIssuer(keyId)
		.setIssuedAt(now)
		.setExpirationTime(now + ttlS)
		.sign(keyBytes(secret));
}

/** Whether channel patterns (exact names or `prefix*`) cover `channel`. */
export function channelAllowed(patterns: string[], channel: string): boolean {
	return patterns.some((p) => (p.endsWith('*') ? channel.startsWith(p.slice(0, -1)) : p === channel));
}
