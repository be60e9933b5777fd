// Auth of the backend API: each call carries `authorization: Bearer <JWT>`, an HS256 token a
// backend signs with one of the API keys (api.keys) and names that key in `iss` (or in the
// `kid` header). Its `api` claim grants operations (protocol/apiOperations.ts) on channels
// (exact names or `prefix*`, as in browser tokens). Tokens are short-lived
// (api.maxTokenLifetimeS): a leaked one is useful for minutes, not days.
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { ApiOperation } from '../../protocol/apiOperations.js';
import { RequestError } from '../../protocol/RequestError.js';
import { apiTokenPayloadSchema as payloadSchema, channelAllowed } from '../../protocol/tokens.js';

// The claims and the minting live in protocol/tokens.ts (the SDK mints the same tokens).
export { mintApiToken, type ApiGrant, type ApiTokenOptions as MintApiTokenOptions } from '../../protocol/tokens.js';

export interface ApiKey {
	id: string;
	secret: string;
}

/** Who is calling, once the token checked out. */
export interface ApiPrincipal {
	keyId: string;
	/** Exact names or prefixes ending in `*`. */
	channels: string[];
	/** Granted operations ("*": all). */
	operations: ReadonlySet<ApiOperation | '*'>;
	/** Seconds since the epoch. */
	expiresAt: number;
}

function unauthenticated(reason: string): RequestError {
	return new RequestError('E_AUTH', `API token refused: ${reason}.`);
}

export class ApiAuthenticator {
	readonly #keys: Map<string, Uint8Array>;
	readonly #maxLifetimeS: number;

	constructor(keys: ApiKey[], options: { maxTokenLifetimeS: number }) {
		this.#keys = new Map(keys.map((k) => [k.id, new TextEncoder().encode(k.secret)]));
		this.#maxLifetimeS = options.maxTokenLifetimeS;
	}

	/** The principal of an `authorization` metadata value; E_AUTH when it does not check out. */
	async authenticate(authorization: string | undefined): Promise<ApiPrincipal> {
		if (!authorization) throw unauthenticated('no authorization metadata (expected "Bearer <token>")');
		const m = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(authorization.trim());
		if (!m) throw unauthenticated('authorization is not "Bearer <JWT>"');
		const token = m[1]!;
		let keyId: string | undefined;
		try {
			const header = decodeProtectedHeader(token);
			keyId = typeof header.kid === 'string' ? header.kid : decodeJwt(token).iss;
		} catch {
			throw unauthenticated('token malformed');
		}
		if (!keyId) throw unauthenticated('token names no key (iss claim or kid header)');
		const key = this.#keys.get(keyId);
		if (!key) throw unauthenticated(`unknown API key "${keyId.slice(0, 64)}"`);
		let payload: unknown;
		try {
			({ payload } = await jwtVerify(token, key, { algorithms: ['HS256'], requiredClaims: ['exp'], clockTolerance: 5 }));
		} catch (err) {
			if (err instanceof joseErrors.JWTExpired) throw unauthenticated('token expired');
			if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw unauthenticated('signature invalid');
			if (err instanceof joseErrors.JOSEAlgNotAllowed) throw unauthenticated('algorithm not allowed (HS256 only)');
			if (err instanceof joseErrors.JWTClaimValidationFailed) throw unauthenticated(`claim "${err.claim}" invalid: ${err.reason}`);
			throw unauthenticated('token malformed');
		}
		const parsed = payloadSchema.safeParse(payload);
		if (!parsed.success) {
			const issue = parsed.error.issues[0]!;
			throw unauthenticated(`claim "${issue.path.join('.')}" invalid: ${issue.message}`);
		}
		const p = parsed.data;
		const now = Math.floor(Date.now() / 1000);
		const lifetimeS = p.exp - Math.min(p.iat ?? now, now);
		if (lifetimeS > this.#maxLifetimeS) throw unauthenticated(`lifetime ${lifetimeS} s exceeds the ${this.#maxLifetimeS} s allowed (api.maxTokenLifetimeS)`);
		return { keyId, channels: p.api.channels, operations: new Set(p.api.operations), expiresAt: p.exp };
	}
}

/** E_FORBIDDEN unless the principal may do `operation` (on `channel`, when the call names one). */
export function authorize(principal: ApiPrincipal, operation: ApiOperation, channel?: string): void {
	if (!principal.operations.has('*') && !principal.operations.has(operation)) {
		throw new RequestError('E_FORBIDDEN', `The API token does not grant ${operation}.`);
	}
	if (channel !== undefined && !channelAllowed(principal.channels, channel)) {
		throw new RequestError('E_FORBIDDEN', `The API token does not cover channel "${channel}".`);
	}
}

/** Whether the principal's channels cover `channel` (filters lists rather than failing them). */
export function coversChannel(principal: ApiPrincipal, channel: string): boolean {
	return channelAllowed(principal.channels, channel);
}
