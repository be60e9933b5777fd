// The one place a request's access token is read and verified: the voice API, tus uploads
// and the WebSocket upgrade differ only in where they accept the token, declared below.
import { SIGNALING_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../../protocol/messages.js';
import { RequestError } from '../../protocol/RequestError.js';
import { AccessTokenError, verifyAccessToken, type AccessClaims, type TokenPolicy } from './accessToken.js';

/** Where a route accepts the token, and what it tells a client that sent none. */
export interface TokenForms {
	/** `Authorization: Bearer <jwt>` is read first. */
	bearerHeader: boolean;
	/** A query parameter carrying the token when there is no Bearer header: for what a
	 * browser cannot give headers (an <audio> element's src, a WebSocket). */
	queryParam?: string;
	/** A Sec-WebSocket-Protocol entry `<prefix><jwt>` carrying the token (read before the query). */
	subprotocolPrefix?: string;
	/** The E_AUTH sentence when no token came in an accepted form. */
	missingMessage: string;
}

/** The voice-message API: the header only. Tokens stay out of URLs (proxy logs, history,
 * Referer): an <audio> element plays a signed link instead (audioUrl.ts). */
export const VOICE_API_TOKEN: TokenForms = {
	bearerHeader: true,
	missingMessage: 'Send the access token as "Authorization: Bearer <jwt>" (audio elements: a signed link from POST /voice/messages/:id/audio-url).',
};

/** tus uploads: the header only (tus-js-client sets it on every request). */
export const UPLOAD_TOKEN: TokenForms = { bearerHeader: true, missingMessage: 'Authorization: Bearer <token> is required.' };

/** The WebSocket upgrade: the subprotocol `parley.token.<JWT>` (browsers cannot set other
 * headers on a WebSocket; a header stays out of URLs), else `?token=`. */
export const WEBSOCKET_TOKEN: TokenForms = {
	bearerHeader: false,
	subprotocolPrefix: TOKEN_SUBPROTOCOL_PREFIX,
	queryParam: 'token',
	missingMessage: `No access token: offer the subprotocols "${SIGNALING_SUBPROTOCOL}" and "${TOKEN_SUBPROTOCOL_PREFIX}<JWT>", or connect to /ws?token=<JWT>.`,
};

/** What a request offers to read a token from (an HTTP request; a WebSocket upgrade: its
 * query string and Sec-WebSocket-Protocol header). */
export interface TokenCarrier {
	/** The raw query string, without `?`. */
	query: string;
	header?(name: string): string;
}

/** The token in one of the accepted forms, or undefined. A Bearer header wins over the query. */
export function tokenFromRequest(req: TokenCarrier, forms: TokenForms): string | undefined {
	const authorization = forms.bearerHeader ? (req.header?.('authorization') ?? '') : '';
	if (authorization.startsWith('Bearer ')) return authorization.slice('Bearer '.length).trim() || undefined;
	const prefix = forms.subprotocolPrefix;
	if (prefix) {
		const offered = (req.header?.('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim());
		const entry = offered.find((p) => p.startsWith(prefix));
		if (entry) return entry.slice(prefix.length) || undefined;
	}
	return (forms.queryParam ? new URLSearchParams(req.query).get(forms.queryParam) : undefined) || undefined;
}

/** The verified claims of the request's token; throws RequestError E_AUTH when there is none
 * or it is refused (expired, bad signature, too long-lived, wrong audience, ...). Without a
 * policy the defaults apply (lifetime limit; audience and issuer unchecked). */
export async function authenticate(req: TokenCarrier, signingKey: Uint8Array, forms: TokenForms, policy?: TokenPolicy): Promise<AccessClaims> {
	const token = tokenFromRequest(req, forms);
	if (!token) throw new RequestError('E_AUTH', forms.missingMessage);
	try {
		return await verifyAccessToken(token, signingKey, policy);
	} catch (err) {
		if (err instanceof AccessTokenError) throw new RequestError('E_AUTH', `Access token refused: ${err.message}.`);
		throw err;
	}
}
