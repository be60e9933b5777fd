// An in-process stand-in for the Parley signaling endpoint, for client unit tests: it hands
// out fake WebSocket objects, answers requests through per-method handlers (defaults fit
// mediasoup-client's FakeHandler), records every request and can push notifications and
// close sockets with any code. No network, no timers beyond a microtask.
import { testFakeParameters } from 'mediasoup-client';
import { PROTOCOL_VERSION, type Method, type NotificationName, type Notifications, type RequestData, type ResponseData } from '../../protocol/messages.js';
import type { ErrorCode, RedirectTarget } from '../../protocol/errors.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';

type Welcome = Notifications['welcome'];

/** A UUID-shaped id (the server's voice message ids are UUIDs). */
export function fakeUuid(n: number): string {
	return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export class FakeProtocolError extends Error {
	constructor(
		readonly code: ErrorCode,
		message: string = code,
		/** Sent as error.redirect (E_REDIRECT). */
		readonly redirect?: RedirectTarget,
		/** Sent as error.retryAfterMs (E_RATE_LIMIT). */
		readonly retryAfterMs?: number,
	) {
		super(message);
	}
}

export type RequestHandler<M extends Method> = (data: RequestData<M>, socket: FakeWebSocket) => ResponseData[M] | Promise<ResponseData[M]> | 'never';

export interface RecordedRequest {
	socket: FakeWebSocket;
	id: number;
	method: Method;
	data: unknown;
}

export class FakeWebSocket {
	readyState = 0;
	onmessage: ((event: { data: unknown }) => void) | null = null;
	onclose: ((event: { code: number; reason: string }) => void) | null = null;
	onopen: (() => void) | null = null;
	onerror: (() => void) | null = null;
	readonly sent: string[] = [];
	closedWith: { code: number; reason: string } | null = null;

	constructor(
		readonly url: string,
		readonly server: FakeSignalingServer,
		readonly protocols: string[] = [],
	) {}

	get params(): URLSearchParams {
		return new URL(this.url).searchParams;
	}

	send(text: string): void {
		if (this.readyState !== 1) throw new Error('send() on a socket that is not open');
		this.sent.push(text);
		void this.server.handle(this, text);
	}

	/** Client-side close. */
	close(code = 1000, reason = ''): void {
		if (this.readyState >= 2) return;
		this.closedWith = { code, reason };
		this.readyState = 3;
		queueMicrotask(() => this.onclose?.({ code, reason }));
	}

	/** Server -> client message. */
	deliver(message: unknown): void {
		if (this.readyState !== 1) return;
		this.onmessage?.({ data: typeof message === 'string' ? message : JSON.stringify(message) });
	}

	/** Server-side close (or a network drop with 1006). */
	drop(code: number, reason = ''): void {
		if (this.readyState >= 2) return;
		this.readyState = 3;
		this.onclose?.({ code, reason });
	}
}

export class FakeSignalingServer {
	readonly sockets: FakeWebSocket[] = [];
	readonly requests: RecordedRequest[] = [];
	welcome: Welcome = {
		protocolVersion: PROTOCOL_VERSION,
		serverVersion: 'test',
		userId: 'user-1',
		displayName: 'Ada',
		grants: { canPublish: true, canSubscribe: true, canRecord: false },
		channels: ['*'],
		limits: { maxMessageBytes: 65536, requestsPerSecond: 1000, requestBurst: 1000 },
	};
	/** When set, new sockets are closed with this code instead of welcomed. */
	refuseWith: { code: number; reason: string } | null = null;
	/** Peers the join response reports, per join call. */
	peersInChannel: Notifications['peerJoined'][] = [];
	/** Voice messages the default startRecording / stopRecording handlers keep, by id. */
	readonly voiceMessages = new Map<string, VoiceMessageInfo>();
	/** Called after each answer is delivered (e.g. to push notifications right after it). */
	afterResponse: ((request: RecordedRequest, socket: FakeWebSocket) => void) | null = null;
	#handlers = new Map<Method, RequestHandler<Method>>();
	#nextId = 1;

	constructor() {
		this.on('getRouterRtpCapabilities', () => ({ rtpCapabilities: testFakeParameters.generateRouterRtpCapabilities() }));
		this.on('join', (data) => ({ peerId: `peer-${this.#nextId++}`, channel: data.channel, peers: [...this.peersInChannel] }));
		this.on('createTransport', () => {
			const { id, iceParameters, iceCandidates, dtlsParameters } = testFakeParameters.generateTransportRemoteParameters();
			return { transportId: id, iceParameters, iceCandidates, dtlsParameters };
		});
		this.on('connectTransport', () => ({}));
		this.on('produce', () => ({ producerId: `producer-${this.#nextId++}` }));
		this.on('pauseProducer', () => ({}));
		this.on('resumeProducer', () => ({}));
		this.on('closeProducer', () => ({}));
		this.on('resumeConsumer', () => ({}));
		this.on('restartIce', () => ({ iceParameters: testFakeParameters.generateTransportRemoteParameters().iceParameters }));
		this.on('getTransportStats', () => ({ stats: [{ type: 'webrtc-transport' }] }));
		this.on('leave', () => ({}));
		this.on('startRecording', (data) => {
			const voiceMessageId = fakeUuid(this.#nextId++);
			this.voiceMessages.set(voiceMessageId, {
				id: voiceMessageId,
				ownerId: this.welcome.userId,
				destination: data.destination,
				source: 'recording',
				status: 'recording',
				createdAt: Date.now(),
			});
			return { voiceMessageId, maxDurationMs: 60_000 };
		});
		this.on('stopRecording', (data) => {
			const message = this.voiceMessages.get(data.voiceMessageId);
			if (!message) throw new FakeProtocolError('E_NOT_FOUND', `No recording ${data.voiceMessageId} of yours.`);
			const stopped: VoiceMessageInfo = { ...message, status: message.status === 'recording' ? 'processing' : message.status, durationMs: 2000 };
			this.voiceMessages.set(stopped.id, stopped);
			return { voiceMessage: stopped };
		});
	}

	/** Replaces the handler of one method. Throw FakeProtocolError to answer ok:false; return 'never' to not answer. */
	on<M extends Method>(method: M, handler: RequestHandler<M>): void {
		this.#handlers.set(method, handler as unknown as RequestHandler<Method>);
	}

	createWebSocket = (url: string, protocols: string[] = []): WebSocket => {
		const socket = new FakeWebSocket(url, this, protocols);
		this.sockets.push(socket);
		queueMicrotask(() => {
			if (this.refuseWith) {
				socket.drop(this.refuseWith.code, this.refuseWith.reason);
				return;
			}
			socket.readyState = 1;
			socket.onopen?.();
			socket.deliver({ method: 'welcome', data: this.welcome });
		});
		return socket as unknown as WebSocket;
	};

	get socket(): FakeWebSocket {
		const socket = this.sockets.at(-1);
		if (!socket) throw new Error('no socket yet');
		return socket;
	}

	/** Methods requested so far, in order (optionally only on one socket). */
	methods(socket?: FakeWebSocket): Method[] {
		return this.requests.filter((r) => socket === undefined || r.socket === socket).map((r) => r.method);
	}

	requestsOf<M extends Method>(method: M): RequestData<M>[] {
		return this.requests.filter((r) => r.method === method).map((r) => r.data as RequestData<M>);
	}

	notify<N extends NotificationName>(method: N, data: Notifications[N], socket: FakeWebSocket = this.socket): void {
		socket.deliver({ method, data });
	}

	async handle(socket: FakeWebSocket, text: string): Promise<void> {
		const { id, method, data } = JSON.parse(text) as { id: number; method: Method; data: unknown };
		const request: RecordedRequest = { socket, id, method, data };
		this.requests.push(request);
		await Promise.resolve();
		const handler = this.#handlers.get(method);
		try {
			if (!handler) throw new FakeProtocolError('E_UNKNOWN_METHOD');
			const result = await handler(data as RequestData<Method>, socket);
			if (result === 'never') return;
			socket.deliver({ id, ok: true, data: result });
		} catch (error) {
			if (!(error instanceof FakeProtocolError)) throw error;
			socket.deliver({ id, ok: false, error: { code: error.code, message: error.message, ...(error.redirect && { redirect: error.redirect }), ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }) } });
		}
		this.afterResponse?.(request, socket);
	}
}
