// Time-limited TURN credentials in the "TURN REST API" scheme that coturn verifies with
// `use-auth-secret`: the username carries its own expiry, the credential is an HMAC of the
// username under the secret both sides share, so the TURN server needs no user database and
// no call to Parley. Minted per transport: every (re)join and ICE restart gets fresh ones.
import { createHmac } from 'node:crypto';
import { turnUrlList, type ParleyConfig } from '../../config/schema.js';
import type { IceServer } from '../../protocol/messages.js';

export interface TurnCredentialIssuer {
	/** The TURN servers with credentials for `userId`, valid for turn.credentialTtlS from `nowMs`. */
	iceServers(userId: string, nowMs?: number): IceServer[];
}

/** username `<unix expiry>:<userId>`, credential base64(HMAC-SHA1(secret, username)). */
export function turnCredential(secret: string, userId: string, expiresAtS: number): { username: string; credential: string } {
	const username = `${expiresAtS}:${userId}`;
	return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/** From config.turn; issues nothing (an empty list) when no TURN server is configured. */
export function turnCredentialIssuer(turn: ParleyConfig['turn']): TurnCredentialIssuer {
	const urls = turnUrlList(turn.urls);
	const secret = turn.secret;
	return {
		iceServers(userId, nowMs = Date.now()) {
			if (urls.length === 0) return [];
			const expiresAtS = Math.floor(nowMs / 1000) + turn.credentialTtlS;
			return [{ urls: [...urls], ...turnCredential(secret, userId, expiresAtS) }];
		},
	};
}
