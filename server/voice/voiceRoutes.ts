// The voice-message HTTP API. Every request carries the same JWT as the WebSocket, as
// `Authorization: Bearer <jwt>` only: tokens stay out of URLs. Where a browser cannot set
// headers (an <audio> element's src) it plays a short-lived signed link to one message
// (auth/audioUrl.ts) that the client asks for with its token. Only the sender, the
// addressed user, or users whose token allows the addressed channel may read a message;
// only the sender may delete it.
//
//   GET    /voice/messages?channel=NAME | ?user=ME [&limit=N&before=CURSOR]   list, newest first
//   GET    /voice/messages/:id                                               metadata
//   POST   /voice/messages/:id/audio-url                                     {url, expiresAt}: a signed audio link
//   GET    /voice/messages/:id/audio                                         the Ogg Opus file (Range, ETag),
//                                                                            with the Bearer header or a signed link;
//                                                                            302 to a presigned S3 URL when configured
import type { HttpReply, HttpRouteRequest, HttpServer } from '../http/HttpServer.js';
import { errorReply, httpErrorReply } from '../http/HttpServer.js';
import { channelAllowed, type AccessClaims, type TokenPolicy } from '../auth/accessToken.js';
import { authenticate, VOICE_API_TOKEN } from '../auth/httpAuth.js';
import type { AudioUrlSigner } from '../auth/audioUrl.js';
import { CHANNEL_NAME_PATTERN, USER_ID_PATTERN } from '../../protocol/patterns.js';
import { RequestError } from '../../protocol/RequestError.js';
import type { HttpRateLimits } from '../ratelimit/rateLimits.js';
import { storageFailure, storageFailureText } from './files/storageDirectory.js';
import { InvalidCursorError, type VoiceMessageStore } from './store/VoiceMessageStore.js';
import { VoiceMessageService } from './VoiceMessageService.js';
import type { VoiceStorage } from './files/VoiceStorage.js';
import { type Destination, type VoiceMessage } from './voiceMessage.js';
import { VOICE_MESSAGE_ID_PATTERN } from '../../protocol/patterns.js';

export const OGG_OPUS_CONTENT_TYPE = 'audio/ogg; codecs=opus';
const MAX_PAGE = 100;
/** Retry-After of a 503 E_STORAGE_UNAVAILABLE (disk, metadata store or S3 away). */
const STORAGE_RETRY_AFTER_S = 5;

export interface VoiceRouteOptions {
	store: VoiceMessageStore;
	storage: VoiceStorage;
	service: VoiceMessageService;
	signingKey: Uint8Array;
	/** Lifetime, audience and issuer rules (auth.*); the defaults when absent. */
	tokenPolicy?: TokenPolicy;
	/** Per-address (before authentication) and per-user request limits: 429 with Retry-After. */
	rateLimits?: HttpRateLimits;
	/** Signs and checks the audio links (auth.audioUrlTtlS). */
	audioUrls: AudioUrlSigner;
}

/** Parses `bytes=a-b` / `bytes=a-` / `bytes=-n` against `size`; null when unsatisfiable. */
export function parseRange(header: string, size: number): { start: number; end: number } | null | undefined {
	if (!header) return undefined;
	const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
	if (!m || (m[1] === '' && m[2] === '')) return null;
	let start: number;
	let end: number;
	if (m[1] === '') {
		const suffix = Number(m[2]);
		if (suffix === 0) return null;
		start = Math.max(0, size - suffix);
		end = size - 1;
	} else {
		start = Number(m[1]);
		end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
	}
	if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start > end || start >= size) return null;
	return { start, end };
}

/** The reply to an audio download of a `size`-byte file, and the byte range its body is (none: no body). */
function audioReply(req: HttpRouteRequest, m: VoiceMessage, size: number): { reply: HttpReply; send?: { start: number; end: number } } {
	const etag = `"${m.sha256 ?? `${m.id}-${size}`}"`;
	const headers: Record<string, string> = { 'accept-ranges': 'bytes', etag, 'cache-control': 'private, max-age=31536000, immutable' };
	if (req.header('if-none-match') === etag) return { reply: { status: 304, headers } };
	// If-Range with another validator: send the whole file.
	const ifRange = req.header('if-range');
	const range = !ifRange || ifRange === etag ? parseRange(req.header('range'), size) : undefined;
	if (range === null) return { reply: { status: 416, headers: { ...headers, 'content-range': `bytes */${size}` }, body: '' } };
	const { start, end } = range ?? { start: 0, end: size - 1 };
	const reply: HttpReply = {
		status: range ? 206 : 200,
		body: Buffer.alloc(0),
		contentType: OGG_OPUS_CONTENT_TYPE,
		headers: { ...headers, ...(range && { 'content-range': `bytes ${start}-${end}/${size}` }) },
	};
	return size === 0 ? { reply } : { reply, send: { start, end } };
}

export function registerVoiceRoutes(http: HttpServer, o: VoiceRouteOptions): void {
	/** Rate limits, then who is asking (`identify`), then the handler; refusals as replies. */
	const guarded =
		<Who>(identify: (req: HttpRouteRequest) => Promise<Who>, userOf: (who: Who) => string, handler: (req: HttpRouteRequest, who: Who) => Promise<HttpReply> | HttpReply) =>
		async (req: HttpRouteRequest): Promise<HttpReply> => {
			const byAddress = await o.rateLimits?.admitAddress(req);
			if (byAddress) return byAddress;
			try {
				const who = await identify(req);
				const byUser = await o.rateLimits?.admitUser(userOf(who));
				if (byUser) return byUser;
				return await handler(req, who);
			} catch (err) {
				if (err instanceof RequestError) return httpErrorReply(err);
				// The metadata store (Redis) or the disk is away: worth retrying, not a server bug.
				const failure = storageFailure(err);
				if (failure) return errorReply('E_STORAGE_UNAVAILABLE', `Voice messages cannot be reached right now: ${storageFailureText(failure)}.`, { 'Retry-After': String(STORAGE_RETRY_AFTER_S) });
				throw err;
			}
		};
	const authenticated = (handler: (req: HttpRouteRequest, claims: AccessClaims) => Promise<HttpReply> | HttpReply) =>
		guarded((req) => authenticate(req, o.signingKey, VOICE_API_TOKEN, o.tokenPolicy), (claims) => claims.userId, handler);

	/** The audio route: a signed link (`sig` in the query) names its message and user and
	 * was issued after a read check; otherwise the Bearer token, checked here. */
	type AudioReader = { signedFor: string } | { claims: AccessClaims };
	const audioReader = async (req: HttpRouteRequest): Promise<AudioReader> => {
		const query = new URLSearchParams(req.query);
		if (query.has('sig')) return { signedFor: o.audioUrls.verify(req.params[0] ?? '', query) };
		return { claims: await authenticate(req, o.signingKey, VOICE_API_TOKEN, o.tokenPolicy) };
	};

	/** The message named in the URL, if it exists and this user may read it (else 404: ids do not leak). */
	const readable = async (req: HttpRouteRequest, claims: AccessClaims) => {
		const id = req.params[0] ?? '';
		if (!VOICE_MESSAGE_ID_PATTERN.test(id)) return undefined;
		const m = await o.store.get(id);
		return m && VoiceMessageService.canRead(claims, m) ? m : undefined;
	};
	const notFound = () => errorReply('E_NOT_FOUND', 'No such voice message.');

	http.route(
		'get',
		'/voice/messages',
		authenticated(async (req, claims) => {
			const q = new URLSearchParams(req.query);
			const channel = q.get('channel');
			const user = q.get('user');
			let destination: Destination;
			if (channel !== null && user === null) {
				if (!CHANNEL_NAME_PATTERN.test(channel)) return errorReply('E_BAD_REQUEST', 'Invalid channel name.');
				if (!channelAllowed(claims.channels, channel)) return errorReply('E_FORBIDDEN', `The access token does not allow channel "${channel}".`);
				destination = { kind: 'channel', channel };
			} else if (user !== null && channel === null) {
				if (!USER_ID_PATTERN.test(user)) return errorReply('E_BAD_REQUEST', 'Invalid user id.');
				if (user !== claims.userId) return errorReply('E_FORBIDDEN', 'You can list only the voice messages sent to you.');
				destination = { kind: 'user', userId: user };
			} else {
				return errorReply('E_BAD_REQUEST', 'Name exactly one of ?channel= or ?user=.');
			}
			const limit = q.has('limit') ? Number(q.get('limit')) : 20;
			if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) return errorReply('E_BAD_REQUEST', `limit must be 1..${MAX_PAGE}.`);
			try {
				const page = await o.store.listFor(destination, { limit, ...(q.get('before') && { before: q.get('before')! }) });
				return { status: 200, body: { messages: page.messages.map(VoiceMessageService.info), ...(page.nextCursor && { nextCursor: page.nextCursor }) } };
			} catch (err) {
				if (err instanceof InvalidCursorError) return errorReply('E_BAD_REQUEST', 'Invalid cursor.');
				throw err;
			}
		}),
	);

	http.route(
		'get',
		'/voice/messages/:id',
		authenticated(async (req, claims) => {
			const m = await readable(req, claims);
			return m ? { status: 200, body: VoiceMessageService.info(m) } : notFound();
		}),
	);

	http.route(
		'post',
		'/voice/messages/:id/audio-url',
		authenticated(async (req, claims) => {
			const m = await readable(req, claims);
			if (!m) return notFound();
			return { status: 200, body: o.audioUrls.sign(m.id, claims.userId), headers: { 'cache-control': 'no-store' } };
		}),
	);

	http.route(
		'get',
		'/voice/messages/:id/audio',
		guarded(audioReader, (reader) => ('claims' in reader ? reader.claims.userId : reader.signedFor), async (req, reader) => {
			const id = req.params[0] ?? '';
			// A signed link was issued to a reader of this id (its signature covers the id).
			const m = 'claims' in reader ? await readable(req, reader.claims) : VOICE_MESSAGE_ID_PATTERN.test(id) ? await o.store.get(id) : undefined;
			if (!m) return notFound();
			if (m.status !== 'ready') return errorReply('E_NOT_READY', `The voice message is ${m.status}.`);
			// S3 with storage.s3.presignedDownloadTtlS: the client fetches the bytes from the
			// bucket itself (Range works there too); the link is per request, so never cached.
			const direct = await o.storage.downloadUrl?.(m);
			if (direct) return { status: 302, headers: { location: direct, 'cache-control': 'no-store' }, body: '' };
			const file = await o.storage.openRead(m);
			if (!file) return notFound();
			const { reply, send } = audioReply(req, m, file.size);
			if (!send) {
				await file.handle.close();
				return reply;
			}
			// Streamed as the client reads (the HTTP server closes the handle): a reader that
			// stalls holds one chunk, not the whole file.
			return { ...reply, file: { handle: file.handle, start: send.start, length: send.end - send.start + 1 } };
		}),
	);

	http.route(
		'del',
		'/voice/messages/:id',
		authenticated(async (req, claims) => {
			const m = await readable(req, claims);
			if (!m) return notFound();
			await o.service.delete(claims, m.id);
			return { status: 204 };
		}),
	);
}
