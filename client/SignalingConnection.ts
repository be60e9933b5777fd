// One WebSocket to the Parley server speaking the protocol in server/signaling/protocol.ts:
// typed requests matched to responses by id, typed notifications as events. It counts as
// open only after the server's `welcome`, which carries the grants and limits everything
// else depends on. It never reconnects by itself: it reports how it closed (final or
// retryable) and ParleyClient decides.
import { CLOSE_CODES, PROTOCOL_VERSION, SIGNALING_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, type Method, type NotificationMessage, type NotificationName, type Notifications, type RequestData, type ResponseData, type ResponseMessage } from '../protocol/messages.js';
import type { ProtocolError, RedirectTarget } from '../protocol/errors.js';
import { ParleyError, type ParleyErrorCode } from './ParleyError.js';
import { TokenBucket } from '../protocol/TokenBucket.js';
import { TypedEmitter } from './TypedEmitter.js';

export type Welcome = Notifications['welcome'];

export interface SignalingConnectionOptions {
	/** ws:// or wss:// URL of the endpoint (http(s):// is accepted and converted). */
	url: string;
	token: string;
	/** Per request, from the call to the response. */
	requestTimeoutMs?: number;
	/** From opening the socket to the `welcome` notification. */
	openTimeoutMs?: number;
	/** Creates the socket; the browser's WebSocket by default (tests pass a fake). */
	createWebSocket?: (url: string, protocols: string[]) => WebSocket;
}

export interface SignalingClose {
	/** WebSocket close code (1006 when the network dropped). */
	code: number;
	reason: string;
	/** True when reconnecting cannot help (auth, protocol version, replaced, or we closed). */
	final: boolean;
	byClient: boolean;
	/** What pending and later requests fail with. */
	error: ParleyError;
}

export type SignalingEvents = { [N in NotificationName]: [data: Notifications[N]] } & {
	close: [close: SignalingClose];
	/** A message the client could not use (unparsable, or an error answer without an id). */
	error: [error: ParleyError];
};

export interface RequestOptions {
	timeoutMs?: number;
	/** How many times an E_RATE_LIMIT answer that says when to retry (retryAfterMs) is retried
	 * after that wait, within timeoutMs (default RATE_LIMIT_RETRIES). 0 surfaces it at once. */
	rateLimitRetries?: number;
}

/** A refused request did nothing on the server, so it is safe to send again; the connection's
 * own pacing keeps a client under its own limit, but a user's or address's limit is shared
 * with the user's other connections (tabs, devices, nodes of a cluster), which this one
 * cannot see. */
export const RATE_LIMIT_RETRIES = 2;

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_OPEN_TIMEOUT_MS = 10_000;

/** Close codes after which the same token and client version will be refused again. */
const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([CLOSE_CODES.AUTH, CLOSE_CODES.PROTOCOL_VERSION, CLOSE_CODES.REPLACED, CLOSE_CODES.REMOVED]);

export function isFinalCloseCode(code: number): boolean {
	return FINAL_CLOSE_CODES.has(code);
}

const CLOSE_CODE_ERRORS: Readonly<Record<number, { code: ParleyErrorCode; message?: string }>> = {
	[CLOSE_CODES.AUTH]: { code: 'E_AUTH' },
	[CLOSE_CODES.PROTOCOL_VERSION]: { code: 'E_PROTOCOL_VERSION' },
	[CLOSE_CODES.REPLACED]: { code: 'E_REPLACED' },
	[CLOSE_CODES.REMOVED]: { code: 'E_REMOVED' },
	[CLOSE_CODES.SHUTTING_DOWN]: { code: 'E_SHUTTING_DOWN' },
	[CLOSE_CODES.SLOW_CONSUMER]: { code: 'E_CONNECTION_CLOSED', message: 'The server dropped the connection: messages were not read fast enough.' },
	[CLOSE_CODES.OVERLOADED]: { code: 'E_CONNECTION_CLOSED', message: 'The server has too many connections right now.' },
};

/**
 * The error a close code stands for. The server's close reason ("E_AUTH: Access token
 * refused: expired.") is the better sentence; the close code decides the error code, since
 * it is what says whether to reconnect.
 */
export function closeError(code: number, reason: string): ParleyError {
	const known = CLOSE_CODE_ERRORS[code];
	const sentence = /^E_[A-Z_]+: ([^]*)$/.exec(reason)?.[1] ?? reason;
	return new ParleyError(known?.code ?? 'E_CONNECTION_CLOSED', sentence || known?.message, { closeCode: code });
}

/** The endpoint URL with the protocol version the server checks on upgrade. The token is not
 * in it: it travels as a subprotocol (signalingSubprotocols), out of proxy logs and history. */
export function signalingUrl(url: string): string {
	const parsed = new URL(url);
	if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
	else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
	if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new TypeError(`not a WebSocket URL: ${url}`);
	parsed.searchParams.set('v', String(PROTOCOL_VERSION));
	return parsed.toString();
}

/** The subprotocols offered on upgrade: `parley` (the one the server selects) and the token. */
export function signalingSubprotocols(token: string): string[] {
	return [SIGNALING_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + token];
}

interface PendingRequest {
	method: Method;
	resolve: (data: unknown) => void;
	reject: (error: ParleyError) => void;
	timeoutTimer: ReturnType<typeof setTimeout>;
	/** Set while the request waits for the rate limiter. */
	sendTimer: ReturnType<typeof setTimeout> | undefined;
}

type ServerMessage = ResponseMessage | NotificationMessage;

const MAX_REQUEST_ID = 2 ** 31 - 1;
const WEBSOCKET_OPEN = 1;

export class SignalingConnection extends TypedEmitter<SignalingEvents> {
	readonly #socket: WebSocket;
	readonly #requestTimeoutMs: number;
	readonly #pending = new Map<number, PendingRequest>();
	#state: 'opening' | 'open' | 'closed' = 'opening';
	#welcome: Welcome | null = null;
	#bucket: TokenBucket | null = null;
	#maxMessageBytes = Infinity;
	#lastId = 0;
	#closeInfo: SignalingClose | null = null;
	#settleOpen: ((error: ParleyError | null) => void) | null = null;

	/** Opens the socket and resolves once the server's welcome arrived. */
	static open(options: SignalingConnectionOptions): Promise<SignalingConnection> {
		const url = signalingUrl(options.url);
		const protocols = signalingSubprotocols(options.token);
		const socket = (options.createWebSocket ?? ((u: string, p: string[]) => new WebSocket(u, p)))(url, protocols);
		const connection = new SignalingConnection(socket, options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
		const openTimeoutMs = options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => {
				connection.#fail(new ParleyError('E_TIMEOUT', `No welcome from the server within ${openTimeoutMs} ms.`));
			}, openTimeoutMs);
			connection.#settleOpen = (error) => {
				clearTimeout(timer);
				connection.#settleOpen = null;
				if (error) reject(error);
				else resolve(connection);
			};
		});
	}

	/** performance.now() when the socket was created, opened, and the welcome arrived (the bench's join phases). */
	readonly openTimings: { created: number; wsOpen?: number; welcome?: number } = { created: performance.now() };

	private constructor(socket: WebSocket, requestTimeoutMs: number) {
		super();
		this.#socket = socket;
		this.#requestTimeoutMs = requestTimeoutMs;
		socket.addEventListener?.('open', () => (this.openTimings.wsOpen = performance.now()));
		// 'error' carries no information and is always followed by 'close'.
		socket.onmessage = (event: MessageEvent) => this.#onMessage(event.data);
		socket.onclose = (event: CloseEvent) => this.#onSocketClose(event.code, event.reason);
	}

	/** The server's welcome: user, grants, allowed channels, limits. */
	get welcome(): Welcome {
		if (!this.#welcome) throw new ParleyError('E_NOT_CONNECTED');
		return this.#welcome;
	}

	get isOpen(): boolean {
		return this.#state === 'open';
	}

	/** How the connection ended, once it has. */
	get closeInfo(): SignalingClose | null {
		return this.#closeInfo;
	}

	async request<M extends Method>(method: M, data: RequestData<M>, options: RequestOptions = {}): Promise<ResponseData[M]> {
		const timeoutMs = options.timeoutMs ?? this.#requestTimeoutMs;
		const deadline = performance.now() + timeoutMs;
		for (let retries = options.rateLimitRetries ?? RATE_LIMIT_RETRIES; ; retries--) {
			try {
				return await this.#requestOnce(method, data, Math.max(1, deadline - performance.now()));
			} catch (error) {
				const retryAfterMs = error instanceof ParleyError && error.code === 'E_RATE_LIMIT' ? error.retryAfterMs : undefined;
				if (retryAfterMs === undefined || retries <= 0) throw error;
				// Up to twice the wait: requests refused together (the user's other tabs) do not
				// all come back at the same instant and collide again.
				const waitMs = retryAfterMs * (1 + Math.random());
				// Only when the retry can still be answered in time.
				if (performance.now() + waitMs >= deadline) throw error;
				await new Promise((resolve) => setTimeout(resolve, waitMs));
			}
		}
	}

	#requestOnce<M extends Method>(method: M, data: RequestData<M>, timeoutMs: number): Promise<ResponseData[M]> {
		if (this.#state !== 'open') return Promise.reject(this.#closeInfo?.error ?? new ParleyError('E_NOT_CONNECTED'));
		this.#lastId = this.#lastId >= MAX_REQUEST_ID ? 1 : this.#lastId + 1;
		const id = this.#lastId;
		const text = JSON.stringify({ id, method, data });
		if (this.#maxMessageBytes !== Infinity && new TextEncoder().encode(text).byteLength > this.#maxMessageBytes) {
			return Promise.reject(new ParleyError('E_MESSAGE_TOO_LARGE', `The ${method} request exceeds the server's ${this.#maxMessageBytes}-byte limit.`));
		}
		return new Promise<ResponseData[M]>((resolve, reject) => {
			const pending: PendingRequest = {
				method,
				resolve: resolve as (data: unknown) => void,
				reject,
				timeoutTimer: setTimeout(() => {
					this.#settle(id);
					reject(new ParleyError('E_TIMEOUT', `The server did not answer ${method} within ${timeoutMs} ms.`));
				}, timeoutMs),
				sendTimer: undefined,
			};
			this.#pending.set(id, pending);
			const waitMs = this.#bucket?.reserve() ?? 0;
			if (waitMs === 0) this.#send(text);
			else {
				pending.sendTimer = setTimeout(() => {
					pending.sendTimer = undefined;
					if (this.#pending.has(id)) this.#send(text);
				}, waitMs);
			}
		});
	}

	/** Closes the socket; pending requests fail with E_CONNECTION_CLOSED. Idempotent. */
	close(code = 1000, reason = 'client closing'): void {
		if (this.#state === 'closed') return;
		this.#finish({ code, reason, final: true, byClient: true, error: new ParleyError('E_CONNECTION_CLOSED', 'The connection was closed by the client.', { closeCode: code }) });
		try {
			this.#socket.close(code, reason);
		} catch {
			// close() only throws for invalid codes/reasons, which we never pass; the socket
			// is abandoned either way.
		}
	}

	#send(text: string): void {
		if (this.#socket.readyState === WEBSOCKET_OPEN) this.#socket.send(text);
		// Otherwise the socket is closing: its close event rejects the request.
	}

	#onMessage(raw: unknown): void {
		if (this.#state === 'closed') return;
		const message = typeof raw === 'string' ? parseServerMessage(raw) : null;
		if (!message) {
			this.emit('error', new ParleyError('E_BAD_MESSAGE'));
			return;
		}
		if ('id' in message) {
			this.#onResponse(message);
			return;
		}
		if (message.method === 'welcome') {
			if (!this.#onWelcome(message.data as Welcome)) return;
		}
		// Names this client does not know (a newer server) have no listeners: ignored on purpose.
		(this.emit as (event: NotificationName, data: unknown) => void)(message.method, message.data);
	}

	#onWelcome(welcome: Welcome): boolean {
		if (welcome.protocolVersion !== PROTOCOL_VERSION) {
			this.#fail(
				new ParleyError('E_PROTOCOL_VERSION', `The server speaks protocol version ${welcome.protocolVersion}; this client speaks ${PROTOCOL_VERSION}.`),
			);
			return false;
		}
		this.#welcome = welcome;
		this.openTimings.welcome = performance.now();
		const { requestsPerSecond, requestBurst, maxMessageBytes } = welcome.limits;
		// A little under the server's limit: requests paced exactly at the rate can arrive
		// bunched up after network jitter and be refused.
		if (requestsPerSecond > 0 && requestBurst >= 1) {
			this.#bucket = new TokenBucket({ ratePerSecond: requestsPerSecond * 0.9, burst: Math.max(1, requestBurst - 1) });
		}
		if (maxMessageBytes > 0) this.#maxMessageBytes = maxMessageBytes;
		if (this.#state === 'opening') {
			this.#state = 'open';
			this.#settleOpen?.(null);
		}
		return true;
	}

	#onResponse(message: ResponseMessage): void {
		const pending = message.id === null ? undefined : this.#settle(message.id);
		if (!pending) {
			// A late answer to a request that timed out is expected; an error we cannot match
			// to a request is not, and must be seen.
			if (!message.ok) this.emit('error', new ParleyError(message.error.code, message.error.message));
			return;
		}
		if (message.ok) pending.resolve(message.data);
		else {
			const redirect = redirectOf(message.error);
			const retryAfterMs = retryAfterOf(message.error);
			pending.reject(new ParleyError(message.error.code, message.error.message, { ...(redirect && { redirect }), ...(retryAfterMs !== undefined && { retryAfterMs }) }));
		}
	}

	/** Removes a pending request and its timers; returns it if it was still pending. */
	#settle(id: number): PendingRequest | undefined {
		const pending = this.#pending.get(id);
		if (!pending) return undefined;
		this.#pending.delete(id);
		clearTimeout(pending.timeoutTimer);
		if (pending.sendTimer !== undefined) clearTimeout(pending.sendTimer);
		return pending;
	}

	#onSocketClose(code: number, reason: string): void {
		if (this.#state === 'closed') return;
		const error = closeError(code, reason);
		this.#finish({ code, reason, final: isFinalCloseCode(code), byClient: false, error });
	}

	/** A client-side failure (timeout, version mismatch): close and report it as final or not. */
	#fail(error: ParleyError): void {
		if (this.#state === 'closed') return;
		const final = error.code === 'E_PROTOCOL_VERSION';
		this.#finish({ code: 1000, reason: error.message, final, byClient: false, error });
		try {
			this.#socket.close(1000, 'client gave up');
		} catch {
			// See close().
		}
	}

	#finish(info: SignalingClose): void {
		this.#state = 'closed';
		this.#closeInfo = info;
		this.#socket.onmessage = null;
		this.#socket.onclose = null;
		for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(info.error);
		this.#settleOpen?.(info.error);
		this.emit('close', info);
		this.removeAllListeners();
	}
}

/** The E_REDIRECT target, when the error carries a well-formed one (the caller checks the URL). */
/** With E_RATE_LIMIT: the server's wait, when it gave a sane one (at most a minute). */
function retryAfterOf(error: ProtocolError): number | undefined {
	const ms = (error as { retryAfterMs?: unknown }).retryAfterMs;
	return error.code === 'E_RATE_LIMIT' && typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 && ms <= 60_000 ? ms : undefined;
}

function redirectOf(error: ProtocolError): RedirectTarget | undefined {
	const r = (error as { redirect?: unknown }).redirect;
	if (error.code !== 'E_REDIRECT' || typeof r !== 'object' || r === null) return undefined;
	const { nodeId, url } = r as Record<string, unknown>;
	return typeof nodeId === 'string' && typeof url === 'string' ? { nodeId, url } : undefined;
}

/**
 * Checks the envelope only: the data inside is the server's, typed by protocol.ts. That
 * turns a broken message into one clear error here instead of a crash somewhere deeper.
 */
export function parseServerMessage(text: string): ServerMessage | null {
	let value: unknown;
	try {
		value = JSON.parse(text);
	} catch {
		return null;
	}
	if (typeof value !== 'object' || value === null) return null;
	const message = value as Record<string, unknown>;
	if ('id' in message) {
		if (!(typeof message.id === 'number' || message.id === null)) return null;
		if (message.ok === true) return typeof message.id === 'number' ? (message as unknown as ServerMessage) : null;
		if (message.ok !== false) return null;
		const error = message.error as Record<string, unknown> | undefined;
		if (typeof error !== 'object' || error === null || typeof error.code !== 'string' || typeof error.message !== 'string') return null;
		return message as unknown as ServerMessage;
	}
	if (typeof message.method !== 'string' || typeof message.data !== 'object' || message.data === null) return null;
	return message as unknown as ServerMessage;
}
