// The HTTP + WebSocket listener (uWebSockets.js). Routes are registered as small async
// handlers returning a reply value; this module owns the uWS details: reading the request
// before the handler yields (uWS request objects die when the callback returns), abort
// handling, corked writes, request ids and one log line per request.
//
// uWS has no connection cap for plain HTTP, so this module bounds the work instead: at most
// maxConcurrentRequests requests are in flight (more get 503 + Retry-After at once, before
// their body is read), and a body must arrive within bodyTimeoutMs (408, connection closed).
// uWS itself closes a connection whose headers take over ~10 s or whose body trickles in
// slower than 16 KB/s; the body timeout also bounds a body sent just fast enough for that.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { errorMessage, httpStatusOf, type ErrorCode } from '../../protocol/errors.js';
import type { RequestError } from '../../protocol/RequestError.js';
import type { Logger } from '../telemetry/logger.js';
import { uWS } from './uws.js';

export interface HttpRequestInfo {
	method: string;
	url: string;
	query: string;
	requestId: string;
	/** Peer address as text (IPv4, or IPv6 possibly in its long form). */
	remoteAddress: string;
	/** The request body (POST routes; empty otherwise). */
	body: Buffer;
	header(name: string): string;
	log: Logger;
}

export interface HttpReply {
	status: number;
	/** Buffers are sent as they are; strings as text/plain and objects as JSON unless contentType says otherwise. */
	body?: unknown;
	contentType?: string;
	headers?: Record<string, string>;
	/** Close the connection after this reply (overload, a body cut off mid-way). */
	closeConnection?: boolean;
}

export type HttpHandler = (req: HttpRequestInfo) => HttpReply | Promise<HttpReply>;

export interface HttpRouteOptions {
	/** Log this route's requests at debug level (health probes hit every few seconds). */
	quiet?: boolean;
	/** Largest body read for this route (POST); larger requests get 413. */
	maxBodyBytes?: number;
	/** Headers added to every reply of this route, also to the 413 and 500 replies made here
	 * (a protocol like tus needs its version header on those too); the handler's own win. */
	headers?: Record<string, string>;
	/** Served even when maxConcurrentRequests are in flight and not counted: health probes
	 * and metrics must tell the truth about a busy node, not 503 because it is busy. */
	unlimited?: boolean;
}

/** Per-listener bounds on plain HTTP work (WebSocket sessions have their own). */
export interface HttpLimits {
	/** Requests in flight at once (from arrival to reply); more get 503. Default: no limit. */
	maxConcurrentRequests?: number;
	/** Time from a request's arrival to the last byte of its body; past it 408. Default: none. */
	bodyTimeoutMs?: number;
}

/** Methods route() registers (uWS spells DELETE `del`). */
export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'del' | 'head' | 'options';

export interface HttpRouteRequest extends HttpRequestInfo {
	/** The pattern's `:name` parameters in order, as sent (not percent-decoded): validate them. */
	params: string[];
}

export type HttpRouteHandler = (req: HttpRouteRequest) => HttpReply | Promise<HttpReply>;

export interface HttpAnyRouteOptions extends HttpRouteOptions {
	/** Read the body in full (up to maxBodyBytes, 413 beyond) before the handler runs. */
	readBody?: boolean;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const EMPTY = Buffer.alloc(0);

export class HttpServer {
	readonly app: TemplatedApp;
	readonly #log: Logger;
	readonly #maxInFlight: number;
	readonly #bodyTimeoutMs: number;
	#listenSocket: us_listen_socket | undefined;
	#port = 0;
	#inFlight = 0;
	#rejectedBusy = 0;
	#bodyTimeouts = 0;

	constructor(log: Logger, limits: HttpLimits = {}) {
		this.#log = log;
		this.#maxInFlight = limits.maxConcurrentRequests ?? Infinity;
		this.#bodyTimeoutMs = limits.bodyTimeoutMs ?? 0;
		this.app = uWS.App();
		this.app.any('/*', (res, req) => {
			this.#serve(res, req, () => errorReply('E_NOT_FOUND', `No route for ${req.getMethod().toUpperCase()} ${req.getUrl()}`), {});
		});
	}

	get port(): number {
		return this.#port;
	}

	get listening(): boolean {
		return this.#listenSocket !== undefined;
	}

	/** Counted requests in flight now (tests check it returns to zero), and those refused. */
	get requestStats(): { inFlight: number; rejectedBusy: number; bodyTimeouts: number } {
		return { inFlight: this.#inFlight, rejectedBusy: this.#rejectedBusy, bodyTimeouts: this.#bodyTimeouts };
	}

	get(pattern: string, handler: HttpHandler, options: HttpRouteOptions = {}): void {
		this.app.get(pattern, (res, req) => this.#serve(res, req, handler, options));
	}

	/** A POST route whose body is read in full (up to maxBodyBytes) before the handler runs. */
	post(pattern: string, handler: HttpHandler, options: HttpRouteOptions & { maxBodyBytes: number }): void {
		this.app.post(pattern, (res, req) => this.#serve(res, req, handler, options, true));
	}

	/**
	 * A route for any method, with the pattern's parameters. HEAD replies never carry a body
	 * (uWS would send it, and the bytes would corrupt the next response on the connection).
	 */
	route(method: HttpMethod, pattern: string, handler: HttpRouteHandler, options: HttpAnyRouteOptions = {}): void {
		const paramCount = pattern.split('/').filter((segment) => segment.startsWith(':')).length;
		const headRequest = method === 'head';
		this.app[method](pattern, (res, req) => {
			// The uWS request dies when this callback returns, before any body arrives.
			const params = Array.from({ length: paramCount }, (_, i) => req.getParameter(i) ?? '');
			const routeHandler: HttpHandler = async (info) => {
				if (!headRequest) return handler({ ...info, params });
				try {
					return { ...(await handler({ ...info, params })), body: undefined };
				} catch (err) {
					info.log.error({ err }, 'http handler failed');
					return { status: 500 };
				}
			};
			this.#serve(res, req, routeHandler, options, options.readBody === true);
		});
	}

	#serve(res: HttpResponse, req: HttpRequest, handler: HttpHandler, options: HttpRouteOptions, readBody = false): void {
		const started = performance.now();
		const method = req.getMethod().toUpperCase();
		const url = req.getUrl();
		const query = req.getQuery() ?? '';
		const headers = new Map<string, string>();
		req.forEach((k, v) => headers.set(k, v));
		const given = headers.get('x-request-id');
		const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
		const log = this.#log.child({ requestId });
		const counted = !options.unlimited;
		let released = !counted;
		let bodyTimer: NodeJS.Timeout | undefined;
		// Once per request, whichever comes first: the reply, or the client going away.
		const release = (): void => {
			clearTimeout(bodyTimer);
			if (released) return;
			released = true;
			this.#inFlight--;
		};
		let aborted = false;
		res.onAborted(() => {
			aborted = true;
			release();
		});
		const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
		const info: HttpRequestInfo = { method, url, query, requestId, remoteAddress, body: EMPTY, header: (n) => headers.get(n.toLowerCase()) ?? '', log };
		let done = false;
		const finish = (handlerReply: HttpReply): void => {
			if (done) return;
			done = true;
			release();
			const reply = options.headers ? { ...handlerReply, headers: { ...options.headers, ...handlerReply.headers } } : handlerReply;
			const durationMs = Math.round((performance.now() - started) * 100) / 100;
			const line = { method, url, status: reply.status, durationMs };
			if (options.quiet && reply.status < 500) log.debug(line, 'http request');
			else log.info(line, 'http request');
			if (aborted) return;
			res.cork(() => writeReply(res, reply, requestId));
		};
		if (counted) {
			if (this.#inFlight >= this.#maxInFlight) {
				this.#rejectedBusy++;
				released = true; // never took a slot
				// Before the body is read: refusing must cost less than serving. Closing the
				// connection sheds its body and its keep-alive slot too.
				finish({
					...errorReply('E_BUSY', `This server is handling as many requests as it can (${this.#maxInFlight}); retry in a moment.`, { 'Retry-After': '1' }),
					closeConnection: true,
				});
				return;
			}
			this.#inFlight++;
		}
		if (!readBody) {
			runHandler(handler, info, finish);
			return;
		}
		const limit = options.maxBodyBytes ?? 0;
		const tooLarge = errorReply('E_TOO_LARGE', `Body limited to ${limit} bytes.`);
		if (Number(headers.get('content-length') ?? 0) > limit) {
			finish(tooLarge);
			return;
		}
		const chunks: Buffer[] = [];
		let size = 0;
		if (this.#bodyTimeoutMs > 0) {
			const timeoutMs = this.#bodyTimeoutMs;
			bodyTimer = setTimeout(() => {
				this.#bodyTimeouts++;
				log.warn({ method, url, receivedBytes: size, timeoutMs }, 'request body too slow; connection closed');
				finish({ ...errorReply('E_TIMEOUT', `The request body did not arrive within ${timeoutMs / 1000} s.`), closeConnection: true });
			}, timeoutMs);
		}
		res.onData((chunk, isLast) => {
			if (done) return;
			size += chunk.byteLength;
			if (size > limit) {
				finish(tooLarge);
				return;
			}
			// uWS reuses `chunk` after this callback: copy it.
			chunks.push(Buffer.from(new Uint8Array(chunk)));
			if (isLast) {
				clearTimeout(bodyTimer);
				info.body = Buffer.concat(chunks);
				runHandler(handler, info, finish);
			}
		});
	}

	async listen(host: string, port: number): Promise<number> {
		return new Promise((resolve, reject) => {
			this.app.listen(host, port, (socket) => {
				if (!socket) {
					reject(new Error(`cannot listen on ${host}:${port} (address in use or not available)`));
					return;
				}
				this.#listenSocket = socket;
				this.#port = uWS.us_socket_local_port(socket);
				resolve(this.#port);
			});
		});
	}

	/** Stops accepting new connections; open ones keep working until close(). */
	stopListening(): void {
		if (this.#listenSocket) {
			uWS.us_listen_socket_close(this.#listenSocket);
			this.#listenSocket = undefined;
		}
	}

	/** Stops listening and closes every open connection. */
	close(): void {
		this.stopListening();
		// The binding has App.close() (closes every socket); this release's typings lack it.
		(this.app as TemplatedApp & { close(): void }).close();
	}
}

/** Runs a handler, turning a throw or rejection into a logged 500. */
function runHandler(handler: HttpHandler, info: HttpRequestInfo, finish: (reply: HttpReply) => void): void {
	const fail = (err: unknown): void => {
		info.log.error({ err }, 'http handler failed');
		finish(errorReply('E_INTERNAL', 'Internal server error'));
	};
	try {
		const result = handler(info);
		if (result instanceof Promise) result.then(finish, fail);
		else finish(result);
	} catch (err) {
		fail(err);
	}
}

/** The JSON error reply for a code: `{error: {code, message}}` with the code's HTTP status. */
export function errorReply(code: ErrorCode, message: string = errorMessage(code), headers?: Record<string, string>): HttpReply {
	return { status: httpStatusOf(code), body: { error: { code, message } }, ...(headers && { headers }) };
}

/** The HTTP boundary for a RequestError thrown by a route: its code's status, its details
 * (retryAfterMs, redirect) in the body, its headers on the reply. */
export function httpErrorReply(err: RequestError): HttpReply {
	return { status: httpStatusOf(err.code), body: { error: err.toProtocol() }, ...(err.headers && { headers: { ...err.headers } }) };
}

function writeReply(res: HttpResponse, reply: HttpReply, requestId: string): void {
	res.writeStatus(`${reply.status} ${STATUS_CODES[reply.status] ?? ''}`);
	res.writeHeader('x-request-id', requestId);
	let body: string | Buffer = '';
	let contentType = reply.contentType;
	if (Buffer.isBuffer(reply.body)) {
		body = reply.body;
		contentType ??= 'application/octet-stream';
	} else if (typeof reply.body === 'string') {
		body = reply.body;
		contentType ??= 'text/plain; charset=utf-8';
	} else if (reply.body !== undefined) {
		body = JSON.stringify(reply.body);
		contentType ??= 'application/json';
	}
	if (contentType) res.writeHeader('content-type', contentType);
	for (const [k, v] of Object.entries(reply.headers ?? {})) res.writeHeader(k, v);
	res.end(body, reply.closeConnection === true);
}
