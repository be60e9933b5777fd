// Short-lived signed links to one voice message's audio, for what cannot send an
// Authorization header (an <audio> element's src). The link names the message, the user it
// was issued to and its expiry, and carries an HMAC over the three:
//
//   /voice/messages/<id>/audio?user=<userId>&exp=<unix s>&sig=<base64url HMAC-SHA256>
//
// so the user's access token never travels in a URL (into proxy logs, browser history,
// Referer), and a leaked link opens one message for minutes, not the user's account for
// the token's lifetime. The HMAC key is derived from the token signing key with HKDF under
// a purpose of its own: an audio signature is never a valid token signature or vice versa.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { USER_ID_PATTERN } from '../../protocol/patterns.js';
import { RequestError } from '../../protocol/RequestError.js';

const HKDF_INFO = 'parley audio-url v1';
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/; // 32 bytes, base64url without padding

export interface SignedAudioUrl {
	/** Path and query, relative to the server's HTTP origin. */
	url: string;
	/** Unix seconds after which the link is refused (E_AUDIO_URL_EXPIRED). */
	expiresAt: number;
}

export class AudioUrlSigner {
	readonly #key: Buffer;
	readonly #ttlS: number;

	/** `signingKey`: the access-token key (auth.jwtSecret); `ttlS`: auth.audioUrlTtlS. */
	constructor(signingKey: Uint8Array, ttlS: number) {
		this.#key = Buffer.from(hkdfSync('sha256', signingKey, Buffer.alloc(0), HKDF_INFO, 32));
		this.#ttlS = ttlS;
	}

	get ttlS(): number {
		return this.#ttlS;
	}

	/** A link to `messageId`'s audio for `userId`, valid ttlS from `nowS`. */
	sign(messageId: string, userId: string, nowS = Math.floor(Date.now() / 1000)): SignedAudioUrl {
		const expiresAt = nowS + this.#ttlS;
		const query = new URLSearchParams({ user: userId, exp: String(expiresAt), sig: this.#signature(messageId, userId, expiresAt) });
		return { url: `/voice/messages/${encodeURIComponent(messageId)}/audio?${query}`, expiresAt };
	}

	/** The user a link to `messageId` was issued to; throws RequestError E_AUDIO_URL_INVALID
	 * (tampered, another message's or user's) or E_AUDIO_URL_EXPIRED. */
	verify(messageId: string, query: URLSearchParams, nowS = Math.floor(Date.now() / 1000)): string {
		const userId = query.get('user') ?? '';
		const expText = query.get('exp') ?? '';
		const sig = query.get('sig') ?? '';
		const exp = /^\d{1,12}$/.test(expText) ? Number(expText) : NaN;
		if (!USER_ID_PATTERN.test(userId) || !Number.isSafeInteger(exp) || !SIGNATURE.test(sig)) {
			throw new RequestError('E_AUDIO_URL_INVALID', 'The audio link is malformed: it needs user, exp and sig as issued by POST /voice/messages/:id/audio-url.');
		}
		const expected = Buffer.from(this.#signature(messageId, userId, exp));
		if (!timingSafeEqual(expected, Buffer.from(sig))) throw new RequestError('E_AUDIO_URL_INVALID', 'The audio link was not issued for this message and user.');
		// Checked after the signature, so only a link this server issued learns it expired.
		if (exp < nowS) throw new RequestError('E_AUDIO_URL_EXPIRED', 'The audio link has expired: ask POST /voice/messages/:id/audio-url for a new one.');
		return userId;
	}

	#signature(messageId: string, userId: string, expiresAt: number): string {
		// Newline-separated: none of the three may contain one (ids and user ids are patterns).
		return createHmac('sha256', this.#key).update(`${messageId}\n${userId}\n${expiresAt}`).digest('base64url');
	}
}
