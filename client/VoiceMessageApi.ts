// The voice-message HTTP API (server/voice/voiceRoutes.ts): list, read, delete, and the
// audio URL an <audio> element can play. Same JWT as the WebSocket, always as a Bearer
// header: where the browser makes the request (an <audio> src) it gets a short-lived link
// signed for one message instead, so the token never appears in a URL.
import { isErrorCode } from '../protocol/errors.js';
import { CHANNEL_NAME_PATTERN, USER_ID_PATTERN } from '../protocol/patterns.js';
import type { VoiceMessageDestination, VoiceMessageInfo } from '../protocol/schemas.js';
import { ParleyError, type ParleyErrorCode } from './ParleyError.js';

/** Whose messages to list: a channel's, or the ones sent to us (our own user id). */
export type VoiceMessageListTarget = { channel: string } | { user: string };

export interface ListVoiceMessagesOptions {
	/** 1-100 (server default 20). */
	limit?: number;
	/** The `nextCursor` of the previous page. */
	before?: string;
	signal?: AbortSignal;
}

export interface VoiceMessagePage {
	/** Newest first. */
	messages: VoiceMessageInfo[];
	/** Pass as `before` for the next (older) page; absent on the last page. */
	nextCursor?: string;
}

export interface VoiceMessageApiOptions {
	/** http(s) origin of the server, e.g. `https://parley.example`. */
	baseUrl: string;
	/** A valid token for a request (may fetch a fresh one). */
	token: () => Promise<string>;
	/** The browser's fetch by default; tests pass a fake. */
	fetch?: typeof fetch;
}

/** The HTTP origin for a signaling URL: ws -> http, wss -> https, same host and port. */
export function httpBaseUrl(signalingUrl: string): string {
	const url = new URL(signalingUrl);
	if (url.protocol === 'ws:') url.protocol = 'http:';
	else if (url.protocol === 'wss:') url.protocol = 'https:';
	if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`not a ws(s):// or http(s):// URL: ${signalingUrl}`);
	return url.origin;
}

/** Throws E_BAD_REQUEST for a destination the server would refuse anyway. */
export function assertValidDestination(destination: VoiceMessageDestination): void {
	if (destination.kind === 'channel') {
		if (!CHANNEL_NAME_PATTERN.test(destination.channel)) throw new ParleyError('E_BAD_REQUEST', `Invalid channel name: ${JSON.stringify(destination.channel)}.`);
	} else if (destination.kind === 'user') {
		if (!USER_ID_PATTERN.test(destination.userId)) throw new ParleyError('E_BAD_REQUEST', `Invalid user id: ${JSON.stringify(destination.userId)}.`);
	} else {
		throw new ParleyError('E_BAD_REQUEST', 'A destination is {kind: "channel", channel} or {kind: "user", userId}.');
	}
}

/** `channel:<name>` or `user:<id>`, the form tus Upload-Metadata carries. */
export function destinationText(destination: VoiceMessageDestination): string {
	return destination.kind === 'channel' ? `channel:${destination.channel}` : `user:${destination.userId}`;
}

export function sameDestination(a: VoiceMessageDestination, b: VoiceMessageDestination): boolean {
	return destinationText(a) === destinationText(b);
}

const STATUS_CODES: Readonly<Record<number, ParleyErrorCode>> = {
	400: 'E_BAD_REQUEST',
	401: 'E_AUTH',
	403: 'E_FORBIDDEN',
	404: 'E_NOT_FOUND',
	409: 'E_INVALID_STATE',
	410: 'E_NOT_FOUND',
	413: 'E_MESSAGE_TOO_LARGE',
	429: 'E_RATE_LIMIT',
};

/**
 * An HTTP error answer as a ParleyError: the server's `{error: {code, message}}` when it
 * sent one with a code we know, else a code from the status.
 */
export function httpError(status: number, bodyText: string, fallbackMessage = `The server answered HTTP ${status}.`): ParleyError {
	let code: ParleyErrorCode = status >= 500 ? 'E_INTERNAL' : (STATUS_CODES[status] ?? 'E_BAD_REQUEST');
	let message = fallbackMessage;
	try {
		const error = (JSON.parse(bodyText) as { error?: { code?: unknown; message?: unknown } } | null)?.error;
		if (typeof error?.message === 'string' && error.message) message = error.message;
		if (typeof error?.code === 'string' && isErrorCode(error.code)) code = error.code;
	} catch {
		// Not JSON (a proxy's HTML page): the status is all we have.
	}
	return new ParleyError(code, message, { httpStatus: status });
}

/** A light shape check: the page must not crash deep inside on a broken answer. */
export function isVoiceMessageInfo(value: unknown): value is VoiceMessageInfo {
	const m = value as Partial<VoiceMessageInfo> | null;
	return (
		typeof m === 'object' &&
		m !== null &&
		typeof m.id === 'string' &&
		typeof m.ownerId === 'string' &&
		typeof m.status === 'string' &&
		typeof m.createdAt === 'number' &&
		typeof m.destination === 'object' &&
		m.destination !== null &&
		(m.waveform === undefined || Array.isArray(m.waveform))
	);
}

export class VoiceMessageApi {
	readonly baseUrl: string;
	readonly #token: () => Promise<string>;
	readonly #fetch: typeof fetch;

	constructor({ baseUrl, token, fetch: fetchImpl }: VoiceMessageApiOptions) {
		this.baseUrl = new URL(baseUrl).origin;
		this.#token = token;
		// Bound: window.fetch called as a method of another object throws "Illegal invocation".
		this.#fetch = fetchImpl ?? ((input, init) => globalThis.fetch(input, init));
	}

	/** One page of a channel's messages, or of the ones sent to `user` (must be us). */
	async list(target: VoiceMessageListTarget, { limit, before, signal }: ListVoiceMessagesOptions = {}): Promise<VoiceMessagePage> {
		const query = new URLSearchParams();
		if ('channel' in target) {
			assertValidDestination({ kind: 'channel', channel: target.channel });
			query.set('channel', target.channel);
		} else {
			assertValidDestination({ kind: 'user', userId: target.user });
			query.set('user', target.user);
		}
		if (limit !== undefined) {
			if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new TypeError('limit must be an integer 1..100');
			query.set('limit', String(limit));
		}
		if (before !== undefined) query.set('before', before);
		const body = (await this.#request('GET', `/voice/messages?${query}`, signal)) as { messages?: unknown; nextCursor?: unknown } | null;
		if (!Array.isArray(body?.messages) || !body.messages.every(isVoiceMessageInfo)) {
			throw new ParleyError('E_BAD_MESSAGE', 'The server answered the voice-message list with something unexpected.');
		}
		return { messages: body.messages, ...(typeof body.nextCursor === 'string' && { nextCursor: body.nextCursor }) };
	}

	async get(id: string, signal?: AbortSignal): Promise<VoiceMessageInfo> {
		const body = await this.#request('GET', `/voice/messages/${encodeURIComponent(id)}`, signal);
		if (!isVoiceMessageInfo(body)) throw new ParleyError('E_BAD_MESSAGE', 'The server answered with something that is not a voice message.');
		return body;
	}

	/** Deletes one of our own messages (E_FORBIDDEN for anyone else's). */
	async delete(id: string, signal?: AbortSignal): Promise<void> {
		await this.#request('DELETE', `/voice/messages/${encodeURIComponent(id)}`, signal);
	}

	/**
	 * Absolute URL of the Ogg Opus file for an <audio> src: a link the server signs for this
	 * message and our user, valid for minutes (auth.audioUrlTtlS, `expiresAt` in unix
	 * seconds). Seeking (Range) works on it while it is valid; ask again after that.
	 */
	async audioUrl(message: Pick<VoiceMessageInfo, 'id'> | string, signal?: AbortSignal): Promise<{ url: string; expiresAt: number }> {
		const id = typeof message === 'string' ? message : message.id;
		const body = (await this.#request('POST', `/voice/messages/${encodeURIComponent(id)}/audio-url`, signal)) as { url?: unknown; expiresAt?: unknown } | null;
		// Only a path on this server (not `//elsewhere`) goes into an <audio> element.
		const url = typeof body?.url === 'string' && body.url.startsWith('/') ? new URL(body.url, this.baseUrl) : undefined;
		if (url?.origin !== this.baseUrl || typeof body?.expiresAt !== 'number') {
			throw new ParleyError('E_BAD_MESSAGE', 'The server answered the audio-link request with something unexpected.');
		}
		return { url: url.toString(), expiresAt: body.expiresAt };
	}

	async #request(method: string, path: string, signal: AbortSignal | undefined): Promise<unknown> {
		const token = await this.#token();
		let response: Response;
		try {
			response = await this.#fetch(new URL(path, this.baseUrl).toString(), {
				method,
				headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
				...(signal && { signal }),
			});
		} catch (error) {
			if (signal?.aborted) throw new ParleyError('E_ABORTED', undefined, { cause: error });
			throw new ParleyError('E_NETWORK', `Could not reach the server (${method} ${path.split('?')[0]}).`, { cause: error });
		}
		const text = await response.text();
		if (!response.ok) throw httpError(response.status, text);
		if (response.status === 204 || text === '') return null;
		try {
			return JSON.parse(text) as unknown;
		} catch (error) {
			throw new ParleyError('E_BAD_MESSAGE', `The server answered ${method} ${path.split('?')[0]} with something that is not JSON.`, { cause: error });
		}
	}
}
