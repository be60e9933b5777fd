// The WebSocket endpoint /ws: authenticates at upgrade (the token in the subprotocol
// `parley.token.<JWT>`, since browsers cannot set other headers on WebSockets, or in the
// query string), refuses with an application close code the
// client can act on, and hands each open socket to a SignalingSession.
import { readFileSync } from 'node:fs';
import type { types as ms } from 'mediasoup';
import type { WebSocket } from 'uWebSockets.js';
import type { ParleyConfig } from '../../config/schema.js';
import type { ChannelRegistry } from '../channels/ChannelRegistry.js';
import type { HttpServer } from '../http/HttpServer.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import { turnCredentialIssuer } from '../media/turnCredentials.js';
import type { VoiceMessageService } from '../voice/VoiceMessageService.js';
import type { Logger } from '../telemetry/logger.js';
import { inSpan, SpanKind } from '../telemetry/tracing.js';
import { tokenPolicy, type TokenPolicy } from '../auth/accessToken.js';
import { authenticate, WEBSOCKET_TOKEN } from '../auth/httpAuth.js';
import { CLOSE_CODES, PROTOCOL_VERSION, SIGNALING_SUBPROTOCOL, type Method, type Notifications } from '../../protocol/messages.js';
import { protocolError, type ErrorCode, type ProtocolError } from '../../protocol/errors.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { RequestError } from '../../protocol/RequestError.js';
import type { ChannelBridgeHook, ChannelPlacer } from '../channels/placement.js';
import { requestHandlers, undoRequest, type HandlerContext } from './requestHandlers.js';
import { SignalingSession, type SessionEvents, type SocketData } from './SignalingSession.js';
import { TokenBucket } from '../../protocol/TokenBucket.js';
import type { SignalingRateLimits } from '../ratelimit/rateLimits.js';
import { addressLimitKey, clientAddress } from '../http/clientAddress.js';
import { ConnectionQuota } from '../ratelimit/ConnectionQuota.js';

/** Frames a client may send before its welcome (while its token is checked); more closes it. */
const MAX_EARLY_FRAMES = 16;

/** Frames over this many times signaling.maxMessageBytes close the connection with 1009. */
const CLOSE_FACTOR = 4;
/** uWS's own cap, in the same unit: larger frames are cut unread, without a close frame (1006). */
const CUT_FACTOR = 8;
/** RFC 6455: the message is too big to process. */
const CLOSE_MESSAGE_TOO_BIG = 1009;

const SERVER_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface SignalingServerOptions {
	config: ParleyConfig;
	signingKey: Uint8Array;
	registry: ChannelRegistry;
	pool: WorkerPool;
	routerRtpCapabilities: ms.RtpCapabilities;
	voice: VoiceMessageService;
	isAccepting: () => boolean;
	events?: SessionEvents;
	/** Cluster: where a joined channel is served, and how it is bridged across nodes (absent on one node). */
	placement?: ChannelPlacer;
	bridge?: ChannelBridgeHook;
	/** Per-user and per-address limits beyond each connection's own bucket. */
	rateLimits?: SignalingRateLimits;
}

export class SignalingServer {
	readonly #options: SignalingServerOptions;
	readonly #log: Logger;
	readonly #sessions = new Set<SignalingSession>();
	readonly #sockets = new Set<WebSocket<SocketData>>();
	/** Open connections per user and per address (signaling.maxConnectionsPer*), this node's. */
	readonly #connectionQuota: ConnectionQuota<WebSocket<SocketData>>;
	/** signaling.allowedOrigins; empty: any origin. */
	readonly #allowedOrigins: ReadonlySet<string>;
	readonly #context: HandlerContext;
	/** Lifetime, audience and issuer rules every token must meet (auth.*), built once. */
	readonly #tokenPolicy: TokenPolicy;

	constructor(http: HttpServer, options: SignalingServerOptions, log: Logger) {
		this.#options = options;
		this.#log = log;
		this.#tokenPolicy = tokenPolicy(options.config.auth);
		this.#connectionQuota = new ConnectionQuota({ perUser: options.config.signaling.maxConnectionsPerUser, perAddress: options.config.signaling.maxConnectionsPerAddress });
		this.#allowedOrigins = new Set(
			options.config.signaling.allowedOrigins
				.split(',')
				.map((o) => o.trim().toLowerCase())
				.filter((o) => o !== ''),
		);
		this.#context = {
			registry: options.registry,
			pool: options.pool,
			routerRtpCapabilities: options.routerRtpCapabilities,
			voice: options.voice,
			voiceMaxDurationMs: options.config.voice.maxDurationMs,
			turn: turnCredentialIssuer(options.config.turn),
			...(options.placement && { placement: options.placement }),
			...(options.bridge && { bridge: options.bridge }),
		};
		const s = options.config.signaling;
		http.app.ws<SocketData>('/ws', {
			// Frames up to 4x the message limit get an E_MESSAGE_TOO_LARGE reply, up to 8x a close
			// 1009 from us. uWS cuts larger ones at their header, before buffering them, but with
			// no close frame (the client sees 1006): its cap sits above ours so 1009 is the rule.
			maxPayloadLength: s.maxMessageBytes * CUT_FACTOR,
			idleTimeout: s.idleTimeoutS,
			sendPingsAutomatically: true,
			// SignalingSession closes a lagging client at maxBufferedBytes with code 4508; this
			// is uWS's own safety net above that (typed as number here, read as a boolean).
			maxBackpressure: s.maxBufferedBytes * 2,
			closeOnBackpressureLimit: 1,
			// The upgrade is synchronous and the token is checked after it, in open(). An upgrade
			// done later (after an await) has to be corked, and uWebSockets.js (this release and
			// upstream until uNetworking/uWebSockets#1929) then misreads the new WebSocket's memory
			// as the HTTP response's state when the socket was reallocated in place, and may shut it
			// down right after open: a rare drop with "Connection: Upgrade", every time with a
			// client or proxy that sends "Connection: close" (test/cluster/asyncUpgrade.test.ts).
			upgrade: (res, req, context) => {
				const origin = req.getHeader('origin');
				if (!this.#originAllowed(origin)) {
					// Before the upgrade: a page of another site gets no socket at all (browsers
					// show the handshake failure), and nothing is allocated for it.
					const error = protocolError('E_FORBIDDEN', `Pages from origin ${JSON.stringify(origin.slice(0, 100))} may not connect to this server (signaling.allowedOrigins).`);
					res.cork(() => res.writeStatus('403 Forbidden').writeHeader('content-type', 'application/json').end(JSON.stringify({ error })));
					return;
				}
				const subprotocols = req.getHeader('sec-websocket-protocol');
				const data: SocketData = {
					query: req.getQuery() ?? '',
					subprotocols,
					remoteAddress: clientAddress(Buffer.from(res.getRemoteAddressAsText()).toString(), req.getHeader('x-forwarded-for'), options.config.http.trustProxy),
					claims: undefined,
					refusal: undefined,
					session: undefined,
					early: [],
					closed: false,
				};
				// Select `parley` when offered (a browser that offers subprotocols fails the
				// handshake unless one is selected), and never echo the token-bearing entry.
				const selected = subprotocols.split(',').some((p) => p.trim() === SIGNALING_SUBPROTOCOL) ? SIGNALING_SUBPROTOCOL : '';
				res.upgrade<SocketData>(data, req.getHeader('sec-websocket-key'), selected, req.getHeader('sec-websocket-extensions'), context);
			},
			open: (ws) => this.#onOpen(ws),
			message: (ws, message, isBinary) => {
				const data = ws.getUserData();
				if (message.byteLength > s.maxMessageBytes * CLOSE_FACTOR) {
					this.#closeTooLarge(ws, message.byteLength);
					return;
				}
				// uWS reuses the buffer after this callback returns: decode (copy) it now.
				const text = isBinary ? undefined : Buffer.from(message).toString('utf8');
				if (data.session) data.session.onMessage(text, message.byteLength);
				else if (!data.refusal) this.#holdEarly(ws, text, message.byteLength);
			},
			close: (ws, code) => this.#onClose(ws, code),
		});
	}

	get sessionCount(): number {
		return this.#sessions.size;
	}

	async #authenticate(queryString: string, subprotocols: string, remoteAddress: string): Promise<Pick<SocketData, 'claims' | 'refusal'>> {
		const refuse = (closeCode: number, code: ErrorCode, message?: string) => ({ claims: undefined, refusal: { closeCode, error: protocolError(code, message) } });
		if (!this.#options.isAccepting()) return refuse(CLOSE_CODES.SHUTTING_DOWN, 'E_SHUTTING_DOWN');
		// Before the token is verified: a flood of connections costs one bucket lookup each.
		const limited = await this.#options.rateLimits?.admitConnection(remoteAddress);
		if (limited) return { claims: undefined, refusal: { closeCode: CLOSE_CODES.OVERLOADED, error: limited } };
		// Also before the token: an address holding its share costs nothing more to refuse.
		// #admit checks again, synchronously, when the connection is counted.
		const addressFull = this.#connectionQuota.refusal(undefined, addressLimitKey(remoteAddress));
		if (addressFull) return { claims: undefined, refusal: { closeCode: CLOSE_CODES.OVERLOADED, error: addressFull } };
		const version = new URLSearchParams(queryString).get('v');
		if (version !== null && version !== String(PROTOCOL_VERSION)) {
			return refuse(CLOSE_CODES.PROTOCOL_VERSION, 'E_PROTOCOL_VERSION', `This server speaks protocol version ${PROTOCOL_VERSION}, not ${version.slice(0, 16)}.`);
		}
		try {
			return { claims: await authenticate({ query: queryString, header: (name) => (name === 'sec-websocket-protocol' ? subprotocols : '') }, this.#options.signingKey, WEBSOCKET_TOKEN, this.#tokenPolicy), refusal: undefined };
		} catch (err) {
			if (err instanceof RequestError) return refuse(CLOSE_CODES.AUTH, err.code, err.message);
			throw err;
		}
	}

	#onOpen(ws: WebSocket<SocketData>): void {
		const data = ws.getUserData();
		this.#authenticate(data.query, data.subprotocols, data.remoteAddress)
			.catch((err: unknown): Pick<SocketData, 'claims' | 'refusal'> => {
				this.#log.error({ err }, 'authentication failed unexpectedly');
				return { claims: undefined, refusal: { closeCode: CLOSE_CODES.AUTH, error: protocolError('E_INTERNAL') } };
			})
			.then((outcome) => {
				if (data.closed) return;
				data.claims = outcome.claims;
				data.refusal = outcome.refusal;
				// One write for the welcome and the answers to early frames.
				ws.cork(() => this.#admit(ws));
			});
	}

	/** Before or after the welcome: a frame this large is not read, and its sender is closed. */
	#closeTooLarge(ws: WebSocket<SocketData>, byteLength: number): void {
		const data = ws.getUserData();
		const limit = this.#options.config.signaling.maxMessageBytes * CLOSE_FACTOR;
		this.#options.events?.onInvalidMessage?.('too_large');
		const reason = `E_MESSAGE_TOO_LARGE: a frame of ${byteLength} bytes is over ${limit}`;
		if (data.session) {
			data.session.disconnect(CLOSE_MESSAGE_TOO_BIG, reason);
			return;
		}
		// Not admitted yet: the token check's answer must not welcome it.
		data.refusal = { closeCode: CLOSE_MESSAGE_TOO_BIG, error: protocolError('E_MESSAGE_TOO_LARGE', reason) };
		ws.end(CLOSE_MESSAGE_TOO_BIG, reason);
	}

	/** A client may send before its welcome; frames are kept (a few, small) until the token is
	 * checked. Bounded in count and bytes: a socket not yet admitted holds little memory. */
	#holdEarly(ws: WebSocket<SocketData>, text: string | undefined, byteLength: number): void {
		const data = ws.getUserData();
		const maxBytes = 2 * this.#options.config.signaling.maxMessageBytes;
		const heldBytes = data.early.reduce((sum, f) => sum + f.byteLength, 0);
		if (data.early.length >= MAX_EARLY_FRAMES || heldBytes + byteLength > maxBytes) {
			data.refusal = {
				closeCode: CLOSE_CODES.OVERLOADED,
				error: { code: 'E_RATE_LIMIT', message: `More than ${MAX_EARLY_FRAMES} messages or ${maxBytes} bytes before the welcome.` },
			};
			ws.end(CLOSE_CODES.OVERLOADED, `E_RATE_LIMIT: ${data.refusal.error.message}`);
			return;
		}
		data.early.push({ text, byteLength });
	}

	/** After the token check: refuses with a close code, or starts the session and welcomes it. */
	#admit(ws: WebSocket<SocketData>): void {
		const data = ws.getUserData();
		const s = this.#options.config.signaling;
		if (!data.refusal && this.#sockets.size >= s.maxConnections) {
			data.refusal = { closeCode: CLOSE_CODES.OVERLOADED, error: { code: 'E_RATE_LIMIT', message: 'This server has too many connections; try again later.' } };
		}
		if (!data.refusal && data.claims) {
			const quotaFull = this.#connectionQuota.refusal(data.claims.userId, addressLimitKey(data.remoteAddress));
			if (quotaFull) data.refusal = { closeCode: CLOSE_CODES.OVERLOADED, error: quotaFull };
		}
		if (data.refusal || !data.claims) {
			const error: ProtocolError = data.refusal?.error ?? protocolError('E_AUTH');
			// The close reason carries "CODE: message" so browsers (which see only the close
			// event for a refused socket) can tell an auth failure from a network failure.
			ws.end(data.refusal?.closeCode ?? CLOSE_CODES.AUTH, `${error.code}: ${error.message}`.slice(0, 120));
			return;
		}
		this.#sockets.add(ws);
		const claims = data.claims;
		this.#connectionQuota.add(ws, claims.userId, addressLimitKey(data.remoteAddress));
		const log = this.#log.child({ userId: claims.userId });
		const session = new SignalingSession(
			ws,
			claims,
			new TokenBucket({ ratePerSecond: s.requestsPerSecond, burst: s.requestBurst }),
			{ maxMessageBytes: s.maxMessageBytes, maxBufferedBytes: s.maxBufferedBytes, requestTimeoutMs: s.requestTimeoutMs },
			{ run: (sess, method, body) => this.#dispatch(sess, method, body), undo: (sess, method, result) => undoRequest(sess, method, result, this.#context) },
			log,
			this.#options.events,
		);
		data.session = session;
		this.#sessions.add(session);
		session.notify('welcome', {
			protocolVersion: PROTOCOL_VERSION,
			serverVersion: SERVER_VERSION,
			userId: claims.userId,
			displayName: claims.displayName,
			grants: claims.grants,
			channels: claims.channels,
			limits: { maxMessageBytes: s.maxMessageBytes, ...this.#pacing() },
			// mediasoup and mediasoup-client type the same JSON differently.
			routerRtpCapabilities: this.#context.routerRtpCapabilities as unknown as Notifications['welcome']['routerRtpCapabilities'],
		});
		for (const frame of data.early.splice(0)) session.onMessage(frame.text, frame.byteLength);
	}

	/** Browsers always send Origin on a WebSocket upgrade; one without it is no browser page
	 * (a native client, a test), and the list guards browsers against other sites' pages. */
	#originAllowed(origin: string): boolean {
		if (this.#allowedOrigins.size === 0 || origin === '') return true;
		return this.#allowedOrigins.has(origin.toLowerCase());
	}

	/** The rate a client should pace its requests at: its connection's, or its user's when lower. */
	#pacing(): { requestsPerSecond: number; requestBurst: number } {
		const s = this.#options.config.signaling;
		const user = this.#options.rateLimits?.userRule;
		return {
			requestsPerSecond: Math.min(s.requestsPerSecond, user?.ratePerSecond ?? Infinity),
			requestBurst: Math.min(s.requestBurst, user?.burst ?? Infinity),
		};
	}

	/** Runs a validated request's handler inside its span (a no-op span when tracing is off). */
	#dispatch(session: SignalingSession, method: Method, data: unknown): Promise<unknown> {
		const handler = requestHandlers[method] as (s: SignalingSession, d: unknown, c: HandlerContext) => Promise<unknown>;
		const attributes = { 'rpc.system': 'parley', 'rpc.service': 'signaling', 'rpc.method': method };
		return inSpan(
			`signaling/${method}`,
			attributes,
			async (span) => {
				try {
					await this.#options.rateLimits?.admitRequest(session.claims.userId, session.remoteAddress);
					const result = await handler(session, data, this.#context);
					span.setAttribute('parley.result_code', 'OK');
					return result;
				} catch (err) {
					span.setAttribute('parley.result_code', err instanceof RequestError ? err.code : 'E_INTERNAL');
					throw err;
				} finally {
					// After the handler, so `join` reports the channel it joined.
					const channel = session.channel?.name;
					if (channel !== undefined) span.setAttribute('parley.channel', channel);
				}
			},
			SpanKind.SERVER,
		);
	}

	#onClose(ws: WebSocket<SocketData>, code: number): void {
		const data = ws.getUserData();
		data.closed = true;
		data.early = [];
		this.#sockets.delete(ws);
		this.#connectionQuota.remove(ws);
		const session = data.session;
		if (!session) return;
		session.markClosed();
		this.#sessions.delete(session);
		const peer = session.joinedPeer;
		if (peer && session.channel) {
			session.channel.removePeer(peer);
			session.log.info({ channel: session.channel.name, peerId: peer.id, code }, 'peer disconnected');
		}
		session.peer = undefined;
		session.channel = undefined;
	}

	/** Tells every client the server is going away and closes their sockets. */
	closeAll(reconnectAfterMs: number): void {
		for (const session of this.#sessions) {
			session.notify('serverShuttingDown', { reconnectAfterMs });
			session.disconnect(CLOSE_CODES.SHUTTING_DOWN, 'E_SHUTTING_DOWN: the server is shutting down');
		}
	}

	/** Tells the connected recipients of a voice message about its new status: the sender,
	 * the addressed user, and the peers in the addressed channel. */
	deliverVoiceMessage(message: VoiceMessageInfo, reason?: string): void {
		const d = message.destination;
		for (const session of this.#sessions) {
			const userId = session.claims.userId;
			const recipient =
				userId === message.ownerId ||
				(d.kind === 'user' && userId === d.userId) ||
				(d.kind === 'channel' && session.joinedPeer !== undefined && session.channel?.name === d.channel);
			if (recipient) session.notify('voiceMessage', { message, ...(reason && { reason }) });
		}
	}

	/** Test and admin hook: drops the connections of a user without a close handshake. */
	dropUser(userId: string): number {
		let dropped = 0;
		for (const ws of this.#sockets) {
			if (ws.getUserData().claims?.userId === userId) {
				ws.close();
				dropped++;
			}
		}
		return dropped;
	}
}
