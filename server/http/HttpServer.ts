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
//
// Large bodies (voice-message audio) are replies of kind `file`: streamed from an open file
// in 64 KiB chunks as the client takes them (uWS tryEnd/onWritable), so a reader that never
// reads holds one chunk, not the whole file, and keeps its in-flight slot until the last byte
// is taken or it goes away. uWS closes a connection that takes no bytes for ~10 s; one that
// takes no whole chunk within slowReaderTimeoutMs (a trickle) is closed here.
//
// With http.tls the listener is a uWS SSLApp (HTTPS and WSS on the same routes), and
// reloadTls() changes its certificate without dropping a connection. uWS 20.30 cannot change
// the certificate of an SSLApp once built: its SNI contexts (addServerName) serve only
// clients that send that server name, and browsers send none to an IP address, so the default
// context would stay the old one. So a reload builds a second SSLApp with the new files,
// registers the same routes on it (every registration goes through `app`, which records it),
// binds it to the same host and port (uSockets sets SO_REUSEPORT on a port it is given), and
// then closes the old app's listen socket: us_listen_socket_close leaves the connections that
// app accepted open (WebSockets, their calls, keep-alive HTTP), they end on their own or at
// close() (server/http/tls.process.test.ts checks both). A connection attempt still in the
// old socket's accept queue at that instant (arrived since the last loop iteration, before any
// TLS byte) is reset by Linux unless net.ipv4.tcp_migrate_req=1 hands it to the new socket:
// measured with 8 clients connecting back to back (~600 connections/s) through 200 swaps,
// 668 of 2457 attempts reset with the sysctl at 0 (about 3 per swap, a window of ~5 ms) and
// none of 2984 with it at 1. At a voice server's rate of new connections (a few per second)
// that comes to a few hundredths of a reset per reload, and clients retry; startup logs a
// hint when the sysctl is 0. A replaced app is kept until close(), since uWS cannot tell
// whether an app still holds a connection: about 50 KiB each (measured over 500 swaps),
// nothing at the rate certificates are renewed.
import { randomUUID } from 'node:crypto';
import { readFile, type FileHandle } from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { ConfigError } from '../config/loadConfig.js';
import { errorMessage, httpStatusOf, type ErrorCode } from '../../protocol/errors.js';
import type { RequestError } from '../../protocol/RequestError.js';
import type { Logger } from '../telemetry/logger.js';
import { certificateWarning, describeCertificate, loadTlsCertificate, type TlsCertificate, type TlsFiles } from './tlsCertificate.js';
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
	/** Every header name the request carries, lower-case (checks that refuse by name pattern). */
	headerNames(): Iterable<string>;
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
	/** Stream this file range as the body (`body` is ignored); the server closes the handle. */
	file?: HttpFileRange;
}

/**
 * What a streamed reply reads from, in order: an open file (a FileHandle has this shape) or
 * an object store's body. The server closes it when the reply ends.
 */
export interface ByteSource {
	read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
	close(): Promise<void>;
}

/** A byte range of an open file (or another ByteSource), sent as the client reads it. */
export interface HttpFileRange {
	handle: ByteSource;
	start: number;
	/** Bytes to send from `start`; the reply's Content-Length. */
	length: number;
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
	/** Time a streamed reply's client may take to accept one chunk; past it the connection is
	 * closed. Default: 30 s. */
	slowReaderTimeoutMs?: number;
	/** Serve HTTPS and WSS with these files (checked first: a ConfigError names the option). */
	tls?: TlsFiles;
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
/** Bytes read from disk per step of a streamed reply: what one connection holds at most. */
export const STREAM_CHUNK_BYTES = 64 * 1024;
const DEFAULT_SLOW_READER_TIMEOUT_MS = 30_000;
/** What registers routes on a uWS app; recorded so a reloaded TLS app gets the same ones. */
const ROUTE_METHODS = new Set<string | symbol>(['get', 'post', 'options', 'del', 'patch', 'put', 'head', 'connect', 'trace', 'any', 'ws']);

export class HttpServer {
	/** Where routes are registered (also `app.ws`): applied to the uWS app serving now and
	 * to every app a TLS reload builds. */
	readonly app: TemplatedApp;
	/** The uWS app the listen socket belongs to. */
	#current: TemplatedApp;
	/** Apps a TLS reload replaced: no listen socket, but their connections stay until close(). */
	readonly #retired: TemplatedApp[] = [];
	readonly #registrations: ((app: TemplatedApp) => void)[] = [];
	#tls: TlsCertificate | undefined;
	#reloading: Promise<unknown> = Promise.resolve();
	#host = '';
	readonly #log: Logger;
	readonly #maxInFlight: number;
	readonly #bodyTimeoutMs: number;
	readonly #slowReaderTimeoutMs: number;
	#listenSocket: us_listen_socket | undefined;
	#port = 0;
	#inFlight = 0;
	#rejectedBusy = 0;
	#bodyTimeouts = 0;
	#streaming = 0;
	#slowReaders = 0;

	constructor(log: Logger, limits: HttpLimits = {}) {
		this.#log = log;
		this.#maxInFlight = limits.maxConcurrentRequests ?? Infinity;
		this.#bodyTimeoutMs = limits.bodyTimeoutMs ?? 0;
		this.#slowReaderTimeoutMs = limits.slowReaderTimeoutMs ?? DEFAULT_SLOW_READER_TIMEOUT_MS;
		this.#tls = limits.tls && loadTlsCertificate(limits.tls);
		this.#current = this.#tls ? sslApp(this.#tls) : uWS.App();
		if (this.#tls) this.#logCertificate(this.#tls, 'serving TLS certificate');
		this.app = this.#recordingApp();
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

	/** The certificate served to new connections (http.tls), undefined for plain HTTP. */
	get certificate(): TlsCertificate | undefined {
		return this.#tls;
	}

	/** `https` with http.tls, else `http` (ws and wss follow). */
	get scheme(): 'http' | 'https' {
		return this.#tls ? 'https' : 'http';
	}

	/**
	 * Re-reads the certificate and key (SIGHUP). When both check out, new connections get the
	 * new certificate and open ones keep theirs (see the top of this file); otherwise this
	 * throws (a ConfigError naming the option) and the old certificate stays served.
	 */
	reloadTls(files: TlsFiles): Promise<TlsCertificate> {
		// One at a time: two swaps at once would both close the same old listen socket.
		const next = this.#reloading.then(() => this.#swapTls(files));
		this.#reloading = next.catch(() => undefined);
		return next;
	}

	async #swapTls(files: TlsFiles): Promise<TlsCertificate> {
		if (!this.#tls) throw new Error('reloadTls: this listener serves plain HTTP (no http.tls)');
		const old = this.#listenSocket;
		if (!old) throw new Error('reloadTls: not listening (shutting down?)');
		const startedMs = performance.now();
		const cert = loadTlsCertificate(files);
		const app = sslApp(cert);
		for (const register of this.#registrations) register(app);
		let socket: us_listen_socket;
		try {
			socket = await listenOn(app, this.#host, this.#port);
		} catch (err) {
			closeApp(app);
			throw err;
		}
		// From here new connections reach only the new app; the old one keeps what it accepted.
		uWS.us_listen_socket_close(old);
		this.#listenSocket = socket;
		this.#retired.push(this.#current);
		this.#current = app;
		this.#tls = cert;
		this.#logCertificate(cert, 'TLS certificate reloaded', { durationMs: Math.round((performance.now() - startedMs) * 100) / 100, replacedApps: this.#retired.length });
		return cert;
	}

	#logCertificate(cert: TlsCertificate, msg: string, extra?: Record<string, unknown>): void {
		this.#log.info({ tls: describeCertificate(cert), ...extra }, msg);
		const warning = certificateWarning(cert);
		if (warning) this.#log.warn({ tls: describeCertificate(cert) }, warning);
	}

	/** `app` as route modules see it: a route is recorded and registered on every live app. */
	#recordingApp(): TemplatedApp {
		const target = this.#current;
		const proxy: TemplatedApp = new Proxy(target, {
			get: (_target, prop) => {
				if (ROUTE_METHODS.has(prop)) {
					return (...args: unknown[]) => {
						const register = (app: TemplatedApp): void => {
							(app[prop as keyof TemplatedApp] as (...a: unknown[]) => unknown).apply(app, args);
						};
						this.#registrations.push(register);
						for (const app of [this.#current, ...this.#retired]) register(app);
						return proxy;
					};
				}
				const value: unknown = Reflect.get(this.#current, prop);
				return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(this.#current) : value;
			},
		});
		return proxy;
	}

	/** Counted requests in flight now (tests check it returns to zero), those refused, and
	 * streamed replies now open and dropped for not reading. */
	get requestStats(): { inFlight: number; rejectedBusy: number; bodyTimeouts: number; streaming: number; slowReaders: number } {
		return { inFlight: this.#inFlight, rejectedBusy: this.#rejectedBusy, bodyTimeouts: this.#bodyTimeouts, streaming: this.#streaming, slowReaders: this.#slowReaders };
	}

	/** A GET route, which answers HEAD too (without the body): load balancers probe
	 * health with HEAD, and a 404 there would take the node out of rotation. */
	get(pattern: string, handler: HttpHandler, options: HttpRouteOptions = {}): void {
		this.app.get(pattern, (res, req) => this.#serve(res, req, handler, options));
		this.app.head(pattern, (res, req) => this.#serve(res, req, handler, options));
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
					const reply = await handler({ ...info, params });
					closeFile(reply.file, info.log);
					return { ...reply, body: undefined, file: undefined };
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
		let onStreamAborted: (() => void) | undefined;
		res.onAborted(() => {
			aborted = true;
			release();
			onStreamAborted?.();
		});
		const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
		const info: HttpRequestInfo = { method, url, query, requestId, remoteAddress, body: EMPTY, header: (n) => headers.get(n.toLowerCase()) ?? '', headerNames: () => headers.keys(), log };
		let done = false;
		const logLine = (status: number, extra?: Record<string, unknown>): void => {
			const durationMs = Math.round((performance.now() - started) * 100) / 100;
			const line = { method, url, status, durationMs, ...extra };
			if (options.quiet && status < 500) log.debug(line, 'http request');
			else log.info(line, 'http request');
		};
		const finish = (handlerReply: HttpReply): void => {
			if (done) {
				closeFile(handlerReply.file, log);
				return;
			}
			done = true;
			const withHeaders = options.headers ? { ...handlerReply, headers: { ...options.headers, ...handlerReply.headers } } : handlerReply;
			// A HEAD reply never carries a body, whichever handler made it (the catch-all 404,
			// a GET or POST route): a client or proxy reading it would take the bytes for the
			// start of the next response on the connection.
			if (method === 'HEAD') closeFile(withHeaders.file, log);
			const reply = method === 'HEAD' ? { ...withHeaders, body: undefined, file: undefined } : withHeaders;
			const file = reply.file;
			if (file && file.length > 0 && !aborted) {
				// The slot stays taken until the stream ends: its bytes are still on their way.
				this.#streaming++;
				const stream = new FileReplyStream(res, file, this.#slowReaderTimeoutMs, log, (outcome, sentBytes) => {
					this.#streaming--;
					if (outcome === 'slow reader') this.#slowReaders++;
					release();
					logLine(reply.status, { bytes: sentBytes, ...(outcome !== 'complete' && { incomplete: outcome }) });
				});
				onStreamAborted = () => stream.abort();
				res.cork(() => {
					writeHead(res, reply, requestId);
					stream.start();
				});
				return;
			}
			closeFile(file, log);
			release();
			logLine(reply.status);
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
		// uSockets sets SO_REUSEPORT only on a port it is given, not on 0, and a TLS reload binds
		// a second socket to this port: so a TLS listener on port 0 takes a free port found here.
		const chosen = this.#tls && port === 0 ? await freeTcpPort(host) : port;
		const socket = await listenOn(this.#current, host, chosen);
		this.#listenSocket = socket;
		this.#host = host;
		this.#port = uWS.us_socket_local_port(socket);
		if (this.#tls && (await readSysctl('net/ipv4/tcp_migrate_req')) === '0') {
			this.#log.info({ sysctl: 'net.ipv4.tcp_migrate_req=0' }, 'a TLS reload (SIGHUP) resets connection attempts that arrive at that instant; net.ipv4.tcp_migrate_req=1 hands them to the new listener');
		}
		return this.#port;
	}

	/** Stops accepting new connections; open ones keep working until close(). */
	stopListening(): void {
		if (this.#listenSocket) {
			uWS.us_listen_socket_close(this.#listenSocket);
			this.#listenSocket = undefined;
		}
	}

	/** Stops listening and closes every open connection (also those of apps a reload replaced). */
	close(): void {
		this.stopListening();
		for (const app of [...this.#retired.splice(0), this.#current]) closeApp(app);
	}
}

function listenOn(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
	return new Promise((resolve, reject) => {
		app.listen(host, port, (socket) => {
			if (!socket) reject(new Error(`cannot listen on ${host}:${port} (address in use or not available)`));
			else resolve(socket);
		});
	});
}

/** Closes every socket of a uWS app. The binding has App.close(); this release's typings lack it. */
function closeApp(app: TemplatedApp): void {
	(app as TemplatedApp & { close(): void }).close();
}

/** An SSLApp on checked files. uWS reads them again itself; one that changed in between, or
 * that OpenSSL refuses where node did not, fails here, still naming both options. */
function sslApp(cert: TlsCertificate): TemplatedApp {
	try {
		return uWS.SSLApp({ cert_file_name: cert.certFile, key_file_name: cert.keyFile });
	} catch (err) {
		throw new ConfigError(
			`options "http.tls.certFile" and "http.tls.keyFile": uWebSockets.js could not load ${cert.certFile} and ${cert.keyFile} (${(err as Error).message})`,
			['http.tls.certFile', 'http.tls.keyFile'],
		);
	}
}

/** A sysctl's value, undefined where there is none (not Linux, an older kernel). */
async function readSysctl(name: string): Promise<string | undefined> {
	try {
		return (await readFile(`/proc/sys/${name}`, 'utf8')).trim();
	} catch {
		return undefined;
	}
}

/** A TCP port free on `host` now (the OS picks it). */
function freeTcpPort(host: string): Promise<number> {
	return new Promise((resolve, reject) => {
		const probe = net.createServer();
		probe.once('error', reject);
		probe.listen(0, host, () => {
			const { port } = probe.address() as net.AddressInfo;
			probe.close(() => resolve(port));
		});
	});
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

/** Status line and the reply's own headers (uWS adds Content-Length when the body goes). */
function writeHead(res: HttpResponse, reply: HttpReply, requestId: string): void {
	res.writeStatus(`${reply.status} ${STATUS_CODES[reply.status] ?? ''}`);
	res.writeHeader('x-request-id', requestId);
	res.writeHeader('content-type', reply.contentType ?? 'application/octet-stream');
	for (const [k, v] of Object.entries(reply.headers ?? {})) res.writeHeader(k, v);
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

function closeFile(file: HttpFileRange | undefined, log: Logger): void {
	file?.handle.close().catch((err: unknown) => log.warn({ err }, 'closing a reply file failed'));
}

type StreamOutcome = 'complete' | 'aborted' | 'slow reader' | 'read failed';

/**
 * One file range sent over one uWS response with backpressure: read a chunk, offer it with
 * tryEnd; when uWS cannot take all of it, keep the rest and offer it again from onWritable.
 * So at most one chunk is held per connection and no new read starts until it is taken.
 * Each chunk must be taken within timeoutMs of the last (a floor of 64 KiB per timeout),
 * else the connection is closed. Ends exactly once: done(outcome, bytes sent).
 */
class FileReplyStream {
	readonly #res: HttpResponse;
	readonly #file: HttpFileRange;
	readonly #timeoutMs: number;
	readonly #log: Logger;
	readonly #done: (outcome: StreamOutcome, sentBytes: number) => void;
	readonly #buffer: Buffer;
	/** The current chunk until uWS has taken all of it, and the write offset it starts at. */
	#pending: Buffer = EMPTY;
	#pendingAt = 0;
	#readBytes = 0;
	/** Bytes of the range uWS has taken (written to the socket). */
	#sentBytes = 0;
	#ended = false;
	#timer: NodeJS.Timeout | undefined;

	constructor(res: HttpResponse, file: HttpFileRange, timeoutMs: number, log: Logger, done: (outcome: StreamOutcome, sentBytes: number) => void) {
		this.#res = res;
		this.#file = file;
		this.#timeoutMs = timeoutMs;
		this.#log = log;
		this.#done = done;
		this.#buffer = Buffer.allocUnsafe(Math.min(STREAM_CHUNK_BYTES, file.length));
	}

	/** Call inside res.cork, after the head is written. */
	start(): void {
		this.#res.onWritable((offset) => this.#onWritable(offset));
		this.#timer = setTimeout(() => this.#onTimeout(), this.#timeoutMs);
		void this.#readNext();
	}

	/** The client went away (uWS onAborted): res must not be touched again. */
	abort(): void {
		this.#end('aborted');
	}

	async #readNext(): Promise<void> {
		const want = Math.min(this.#buffer.length, this.#file.length - this.#readBytes);
		let bytesRead: number;
		try {
			({ bytesRead } = await this.#file.handle.read(this.#buffer, 0, want, this.#file.start + this.#readBytes));
		} catch (err) {
			this.#fail(err);
			return;
		}
		if (this.#ended) return;
		// A file shorter than announced: the Content-Length already sent cannot be met.
		if (bytesRead === 0) {
			this.#fail(new Error(`file ended ${this.#file.length - this.#readBytes} bytes early`));
			return;
		}
		this.#readBytes += bytesRead;
		this.#res.cork(() => {
			this.#pendingAt = this.#res.getWriteOffset();
			this.#pending = this.#buffer.subarray(0, bytesRead);
			this.#offer();
		});
	}

	/** Offers what is pending; true when uWS took all of it. Inside cork or a uWS callback. */
	#offer(): boolean {
		const offset = this.#res.getWriteOffset();
		const [ok, responded] = this.#res.tryEnd(this.#pending.subarray(offset - this.#pendingAt), this.#file.length);
		if (responded) {
			this.#end('complete');
			return true;
		}
		this.#sentBytes = this.#res.getWriteOffset();
		if (!ok) return false;
		// Taken whole: the client made progress; read the next chunk.
		this.#pending = EMPTY;
		this.#timer?.refresh();
		void this.#readNext();
		return true;
	}

	#onWritable(_offset: number): boolean {
		if (this.#ended || this.#pending.length === 0) return true;
		return this.#offer();
	}

	#onTimeout(): void {
		if (this.#ended) return;
		this.#log.warn({ sentBytes: this.#sentBytes, totalBytes: this.#file.length, timeoutMs: this.#timeoutMs }, 'client not reading a streamed reply; connection closed');
		this.#close('slow reader');
	}

	#fail(err: unknown): void {
		if (this.#ended) return;
		this.#log.error({ err }, 'streamed reply failed; connection closed');
		this.#close('read failed');
	}

	/** Ends first, then closes: close() runs onAborted, which must find the stream ended. */
	#close(outcome: StreamOutcome): void {
		this.#end(outcome);
		this.#res.cork(() => this.#res.close());
	}

	#end(outcome: StreamOutcome): void {
		if (this.#ended) return;
		this.#ended = true;
		clearTimeout(this.#timer);
		this.#pending = EMPTY;
		closeFile(this.#file, this.#log);
		this.#done(outcome, outcome === 'complete' ? this.#file.length : this.#sentBytes);
	}
}
