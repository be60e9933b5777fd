// One client's WebSocket: parses and validates its messages, enforces its rate limit and
// message size, runs its requests one at a time, and sends responses and notifications
// with backpressure in mind. Also the PeerLink through which its channel reaches it.
import type { WebSocket } from 'uWebSockets.js';
import type { Channel } from '../channels/Channel.js';
import type { Peer, PeerLink } from '../channels/Peer.js';
import { settlesWithin } from '../async/settlesWithin.js';
import type { Logger } from '../telemetry/logger.js';
import type { AccessClaims } from '../auth/accessToken.js';
import { exceedsDepth, isMethod, MAX_DATA_DEPTH, requestEnvelopeSchema, requestSchemas } from '../../protocol/schemas.js';
import { CLOSE_CODES, type Method, type NotificationName, type Notifications } from '../../protocol/messages.js';
import { protocolError, type ErrorCode, type ProtocolError } from '../../protocol/errors.js';
import { RequestError } from '../../protocol/RequestError.js';
import type { TokenBucket } from '../../protocol/TokenBucket.js';

/** Per-connection data uWS keeps with the socket (set at upgrade). */
export interface SocketData {
	/** The upgrade request's query string (uWS's request object dies with the upgrade handler). */
	query: string;
	/** The upgrade's Sec-WebSocket-Protocol header (it may carry the token). */
	subprotocols: string;
	remoteAddress: string;
	claims: AccessClaims | undefined;
	/** Why the connection is refused right after the token check, if it is. */
	refusal: { closeCode: number; error: ProtocolError } | undefined;
	/** Set once the token is checked and accepted. */
	session: SignalingSession | undefined;
	/** Frames that arrived while the token was being checked; replayed to the session. */
	early: { text: string | undefined; byteLength: number }[];
	/** The socket is gone: the token check's answer must not touch it. */
	closed: boolean;
}

export interface SessionLimits {
	maxMessageBytes: number;
	maxBufferedBytes: number;
	requestTimeoutMs: number;
}

/** Runs validated requests, and takes back what one did when its client never got the answer. */
export interface RequestDispatcher {
	/** Runs one request; throws RequestError for protocol-level failures. */
	run(session: SignalingSession, method: Method, data: unknown): Promise<unknown>;
	/** Undoes a request that succeeded after it timed out or after the socket closed. */
	undo(session: SignalingSession, method: Method, result: unknown): void;
}

/** Why a frame was rejected before any handler ran. */
export type InvalidMessageReason = 'binary' | 'not_json' | 'not_request' | 'too_large' | 'unknown_method' | 'bad_data';

export interface SessionEvents {
	onRequestDone?: (method: string, code: ErrorCode | 'OK', durationMs: number) => void;
	/** A frame that was not a valid request (rate-limited frames are not judged, only counted as such). */
	onInvalidMessage?: (reason: InvalidMessageReason) => void;
}

export class SignalingSession implements PeerLink {
	readonly claims: AccessClaims;
	readonly log: Logger;
	peer: Peer | undefined;
	channel: Channel | undefined;
	readonly #ws: WebSocket<SocketData>;
	readonly #bucket: TokenBucket;
	readonly #limits: SessionLimits;
	readonly #dispatch: RequestDispatcher;
	readonly #events: SessionEvents;
	/** Requests run in arrival order, one at a time (a timed-out one until its handler is done): no races on one peer's state. */
	#queue: Promise<void> = Promise.resolve();
	#closed = false;

	constructor(ws: WebSocket<SocketData>, claims: AccessClaims, bucket: TokenBucket, limits: SessionLimits, dispatch: RequestDispatcher, log: Logger, events: SessionEvents = {}) {
		this.#ws = ws;
		this.claims = claims;
		this.#bucket = bucket;
		this.#limits = limits;
		this.#dispatch = dispatch;
		this.log = log;
		this.#events = events;
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** The client's address (per-address limits; behind a proxy per http.trustProxy). */
	get remoteAddress(): string {
		return this.#ws.getUserData().remoteAddress;
	}

	/** The joined peer, or undefined when not in a channel (or the channel closed). */
	get joinedPeer(): Peer | undefined {
		if (this.peer?.closed) {
			this.peer = undefined;
			this.channel = undefined;
		}
		return this.peer;
	}

	/** Handles one incoming frame. `text` is already a copy (uWS buffers die after the callback). */
	onMessage(text: string | undefined, byteLength: number): void {
		// Every frame costs a token, valid or not: junk floods are limited like requests.
		const allowed = this.#bucket.tryTake();
		if (text === undefined) {
			if (allowed) this.#events.onInvalidMessage?.('binary');
			this.#reply(null, new RequestError(allowed ? 'E_BAD_REQUEST' : 'E_RATE_LIMIT', allowed ? 'Binary frames are not accepted; send JSON text.' : undefined));
			return;
		}
		if (byteLength > this.#limits.maxMessageBytes) {
			this.#events.onInvalidMessage?.('too_large');
			this.#reply(null, new RequestError('E_MESSAGE_TOO_LARGE', `Messages are limited to ${this.#limits.maxMessageBytes} bytes (got ${byteLength}).`));
			return;
		}
		let json: unknown;
		try {
			json = JSON.parse(text);
		} catch {
			if (allowed) this.#events.onInvalidMessage?.('not_json');
			this.#reply(null, allowed ? new RequestError('E_BAD_REQUEST', 'Message is not valid JSON.') : new RequestError('E_RATE_LIMIT'));
			return;
		}
		const rawId = (json as { id?: unknown } | null)?.id;
		const idGuess = Number.isInteger(rawId) && (rawId as number) >= 0 && (rawId as number) < 2 ** 31 ? (rawId as number) : null;
		if (!allowed) {
			this.#reply(idGuess, new RequestError('E_RATE_LIMIT'));
			return;
		}
		const envelope = requestEnvelopeSchema.safeParse(json);
		if (!envelope.success) {
			this.#events.onInvalidMessage?.('not_request');
			this.#reply(idGuess, new RequestError('E_BAD_REQUEST', `Not a request: ${describeIssue(envelope.error.issues[0])}. Expected {"id": <int>, "method": <string>, "data": {...}}.`));
			return;
		}
		const { id, method } = envelope.data;
		if (!isMethod(method)) {
			this.#events.onInvalidMessage?.('unknown_method');
			this.#reply(id, new RequestError('E_UNKNOWN_METHOD', `Unknown method "${method.slice(0, 64)}".`), method);
			return;
		}
		if (exceedsDepth(envelope.data.data, MAX_DATA_DEPTH)) {
			this.#events.onInvalidMessage?.('bad_data');
			this.#reply(id, new RequestError('E_BAD_REQUEST', `Invalid data for ${method}: nested deeper than ${MAX_DATA_DEPTH} levels.`), method);
			return;
		}
		const data = requestSchemas[method].safeParse(envelope.data.data ?? {});
		if (!data.success) {
			this.#events.onInvalidMessage?.('bad_data');
			this.#reply(id, new RequestError('E_BAD_REQUEST', `Invalid data for ${method}: ${describeIssue(data.error.issues[0])}.`), method);
			return;
		}
		const started = performance.now();
		this.#queue = this.#queue.then(() => this.#run(id, method, data.data, started));
	}

	/**
	 * Runs one request in the queue. The queue waits for the handler itself, not for its
	 * timeout: a handler still running after its client got the timeout error keeps the
	 * connection's turn (the next request waits), and what it did once done is undone, as it
	 * is when the socket closed meanwhile: its client was told it failed, or is gone.
	 */
	async #run(id: number, method: Method, data: unknown, started: number): Promise<void> {
		if (this.#closed) return;
		const running = this.#dispatch.run(this, method, data);
		if (!(await settlesWithin(running, this.#limits.requestTimeoutMs))) {
			this.#reply(id, new Error(`${method} timed out after ${this.#limits.requestTimeoutMs} ms`), method, started);
			try {
				this.#undo(method, await running);
			} catch (err) {
				this.log.warn({ err, method }, 'timed-out request failed later');
			}
			return;
		}
		try {
			const result = await running;
			if (this.#closed) {
				this.#undo(method, result);
				return;
			}
			this.#send({ id, ok: true, data: result ?? {} });
			this.#events.onRequestDone?.(method, 'OK', performance.now() - started);
		} catch (err) {
			this.#reply(id, err, method, started);
		}
	}

	#undo(method: Method, result: unknown): void {
		try {
			this.#dispatch.undo(this, method, result);
		} catch (err) {
			this.log.error({ err, method }, 'undoing a late request failed');
		}
	}

	#reply(id: number | null, err: unknown, method = 'invalid', started = performance.now()): void {
		let error: ProtocolError;
		if (err instanceof RequestError) {
			error = err.toProtocol();
		} else {
			this.log.error({ err, method }, 'request failed');
			error = protocolError('E_INTERNAL');
		}
		this.#send({ id, ok: false, error });
		this.#events.onRequestDone?.(method, error.code, performance.now() - started);
	}

	notify<N extends NotificationName>(name: N, data: Notifications[N], options: { lossy?: boolean } = {}): void {
		if (this.#closed) return;
		// Lossy notifications (levels, scores) are the first to go when a client lags.
		if (options.lossy && this.#ws.getBufferedAmount() > this.#limits.maxBufferedBytes / 4) return;
		this.#sendText(encodeNotification(name, data));
	}

	#send(message: object): void {
		if (this.#closed) return;
		this.#sendText(JSON.stringify(message));
	}

	#sendText(text: string): void {
		if (this.#ws.getBufferedAmount() > this.#limits.maxBufferedBytes) {
			// A client that does not read would grow our memory without bound.
			this.log.warn({ bufferedBytes: this.#ws.getBufferedAmount() }, 'closing slow client');
			this.disconnect(CLOSE_CODES.SLOW_CONSUMER, 'E_RATE_LIMIT: too slow reading messages');
			return;
		}
		// Corked: called from async continuations, outside uWS's own callbacks.
		this.#ws.cork(() => this.#ws.send(text, false));
	}

	/** Closes the WebSocket with an application close code (the reason carries the error code). */
	disconnect(code: number, reason: string): void {
		if (this.#closed) return;
		this.#closed = true;
		this.#ws.end(code, reason.slice(0, 120));
	}

	/** Called by the server from uWS's close handler: the socket is gone. */
	markClosed(): void {
		this.#closed = true;
	}
}

/**
 * A channel broadcast hands the same data object to every peer in one synchronous loop
 * (peerJoined to everyone in the channel on each join): encode it once, not once per peer.
 * One slot, emptied at the end of the turn, so a data object changed later is encoded again.
 */
let lastNotification: { name: string; data: unknown; text: string } | undefined;
export function encodeNotification(name: string, data: unknown): string {
	if (lastNotification && lastNotification.data === data && lastNotification.name === name) return lastNotification.text;
	if (!lastNotification) queueMicrotask(() => (lastNotification = undefined));
	lastNotification = { name, data, text: JSON.stringify({ method: name, data }) };
	return lastNotification.text;
}

function describeIssue(issue: { path: PropertyKey[]; message: string } | undefined): string {
	if (!issue) return 'invalid';
	const path = issue.path.map(String).join('.');
	return path ? `${path}: ${issue.message}` : issue.message;
}
