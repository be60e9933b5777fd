// Parley's signaling protocol, declared once: every method with its request and response
// data, every notification, every error code. The server validates requests with these
// schemas; the browser client and the bench import the same types. Browser-safe: depends
// only on zod and on mediasoup-client's types.
//
// Wire format (JSON text frames over one WebSocket at /ws?token=<JWT>&v=<PROTOCOL_VERSION>):
//   request       {"id": 7, "method": "join", "data": {...}}
//   response      {"id": 7, "ok": true, "data": {...}}
//                 {"id": 7, "ok": false, "error": {"code": "E_FORBIDDEN", "message": "..."}}
//                 (id is null when the request was too malformed to read its id)
//   notification  {"method": "peerJoined", "data": {...}}
// The server's first message is the `welcome` notification, carrying PROTOCOL_VERSION.
import type { types as mc } from 'mediasoup-client';
import { z } from 'zod';

/** Bumped on any incompatible change; the client sends it as `v` and the server refuses others. */
export const PROTOCOL_VERSION = 1;

/** Stable error codes with the sentence clients show when they have nothing better. */
export const ERROR_CODES = {
	E_BAD_REQUEST: 'The request is malformed or its data is invalid.',
	E_UNKNOWN_METHOD: 'No such method.',
	E_MESSAGE_TOO_LARGE: 'The message exceeds the size limit.',
	E_RATE_LIMIT: 'Too many requests; slow down.',
	E_AUTH: 'The access token is missing, invalid or expired.',
	E_PROTOCOL_VERSION: 'The client speaks a protocol version this server does not.',
	E_FORBIDDEN: 'The access token does not grant this.',
	E_NOT_JOINED: 'Join a channel first.',
	E_ALREADY_JOINED: 'Already in a channel; leave it first.',
	E_NOT_FOUND: 'No such transport, producer or consumer of yours.',
	E_UNSUPPORTED_MEDIA: 'Only Opus audio can be produced.',
	E_INVALID_STATE: 'The request does not fit the current state.',
	E_CHANNEL_FULL: 'The channel has reached its peer limit.',
	E_TOO_MANY_CHANNELS: 'This server has reached its channel limit.',
	E_TOO_MANY_TRANSPORTS: 'Transport limit per peer reached.',
	E_TOO_MANY_PRODUCERS: 'Producer limit per peer reached.',
	E_SHUTTING_DOWN: 'The server is shutting down.',
	E_REPLACED: 'The same user joined this channel from another connection.',
	E_INTERNAL: 'Internal server error.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ProtocolError {
	code: ErrorCode;
	message: string;
}

/** WebSocket close codes Parley uses (4000-4999 are for applications). */
export const CLOSE_CODES = {
	/** Token invalid or expired: reconnecting with the same token will not help. */
	AUTH: 4401,
	/** Protocol version mismatch. */
	PROTOCOL_VERSION: 4400,
	/** The same user joined the same channel elsewhere. */
	REPLACED: 4409,
	/** The server is shutting down: reconnect (elsewhere) after a delay. */
	SHUTTING_DOWN: 4503,
	/** Too slow to read its messages (backpressure limit). */
	SLOW_CONSUMER: 4508,
	/** Too many connections on this node. */
	OVERLOADED: 4429,
} as const;

// ---- building blocks ------------------------------------------------------------------

/** Channel names: short, URL-safe, no path tricks. */
export const channelNameSchema = z
	.string()
	.regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'channel names are 1-64 characters of A-Z a-z 0-9 . _ : - (not starting with punctuation)');

const objectId = z.string().min(1).max(64);
const shortText = z.string().max(256);
const codecParameters = z.record(z.string().max(64), z.union([z.string().max(256), z.number()])).optional();
const rtcpFeedback = z.array(z.looseObject({ type: z.string().max(32), parameter: z.string().max(32).optional() })).max(16).optional();

const rtpCodecCapability = z.looseObject({
	kind: z.enum(['audio', 'video']),
	mimeType: z.string().max(64),
	preferredPayloadType: z.number().int().min(0).max(127).optional(),
	clockRate: z.number().int().positive(),
	channels: z.number().int().min(1).max(8).optional(),
	parameters: codecParameters,
	rtcpFeedback,
});

const headerExtensionCapability = z.looseObject({
	kind: z.enum(['audio', 'video']),
	uri: z.string().max(256),
	preferredId: z.number().int().min(1).max(255),
	preferredEncrypt: z.boolean().optional(),
	direction: z.string().max(16).optional(),
});

export const rtpCapabilitiesSchema = z.looseObject({
	codecs: z.array(rtpCodecCapability).max(64).optional(),
	headerExtensions: z.array(headerExtensionCapability).max(64).optional(),
});

export const dtlsParametersSchema = z.looseObject({
	role: z.enum(['auto', 'client', 'server']).optional(),
	fingerprints: z
		.array(z.strictObject({ algorithm: z.enum(['sha-1', 'sha-224', 'sha-256', 'sha-384', 'sha-512']), value: z.string().max(256) }))
		.min(1)
		.max(8),
});

export const rtpParametersSchema = z.looseObject({
	mid: z.string().max(32).optional(),
	codecs: z
		.array(
			z.looseObject({
				mimeType: z.string().max(64),
				payloadType: z.number().int().min(0).max(127),
				clockRate: z.number().int().positive(),
				channels: z.number().int().min(1).max(8).optional(),
				parameters: codecParameters,
				rtcpFeedback,
			}),
		)
		.min(1)
		.max(8),
	headerExtensions: z
		.array(z.looseObject({ uri: z.string().max(256), id: z.number().int().min(1).max(255), encrypt: z.boolean().optional() }))
		.max(16)
		.optional(),
	encodings: z.array(z.looseObject({ ssrc: z.number().int().min(0).max(0xffffffff).optional(), dtx: z.boolean().optional() })).max(4).optional(),
	rtcp: z.looseObject({ cname: z.string().max(128).optional(), reducedSize: z.boolean().optional() }).optional(),
});

// ---- requests -------------------------------------------------------------------------

const empty = z.strictObject({});
const transportRef = z.strictObject({ transportId: objectId });
const producerRef = z.strictObject({ producerId: objectId });

/** Request data schemas, by method. The server rejects anything else with E_BAD_REQUEST. */
export const requestSchemas = {
	/** Router capabilities (the same for every channel): load the mediasoup-client Device. */
	getRouterRtpCapabilities: empty,
	/** Enter a channel (allowed by the token). `rtpCapabilities` are the Device's. */
	join: z.strictObject({ channel: channelNameSchema, rtpCapabilities: rtpCapabilitiesSchema }),
	/** A WebRTC transport: `send` to publish (needs canPublish), `recv` to listen (canSubscribe). */
	createTransport: z.strictObject({ direction: z.enum(['send', 'recv']) }),
	connectTransport: z.strictObject({ transportId: objectId, dtlsParameters: dtlsParametersSchema }),
	/** Publish audio on a send transport (Opus only). */
	produce: z.strictObject({ transportId: objectId, kind: z.string().max(16), rtpParameters: rtpParametersSchema, paused: z.boolean().optional() }),
	/** Mute: the server stops forwarding and tells listeners (consumerPaused). */
	pauseProducer: producerRef,
	resumeProducer: producerRef,
	closeProducer: producerRef,
	/** Consumers start paused; resume once the client-side consumer exists. */
	resumeConsumer: z.strictObject({ consumerId: objectId }),
	restartIce: transportRef,
	getTransportStats: transportRef,
	leave: empty,
} as const;

export type Method = keyof typeof requestSchemas;
export type RequestData<M extends Method> = z.input<(typeof requestSchemas)[M]>;

export interface PeerInfo {
	peerId: string;
	userId: string;
	displayName: string;
}

export interface TransportInfo {
	transportId: string;
	iceParameters: mc.IceParameters;
	iceCandidates: mc.IceCandidate[];
	dtlsParameters: mc.DtlsParameters;
}

/** Response data, by method. */
export interface ResponseData {
	getRouterRtpCapabilities: { rtpCapabilities: mc.RtpCapabilities };
	join: { peerId: string; channel: string; peers: PeerInfo[] };
	createTransport: TransportInfo;
	connectTransport: Record<string, never>;
	produce: { producerId: string };
	pauseProducer: Record<string, never>;
	resumeProducer: Record<string, never>;
	closeProducer: Record<string, never>;
	resumeConsumer: Record<string, never>;
	restartIce: { iceParameters: mc.IceParameters };
	getTransportStats: { stats: unknown[] };
	leave: Record<string, never>;
}

// ---- notifications --------------------------------------------------------------------

export interface Grants {
	canPublish: boolean;
	canSubscribe: boolean;
	canRecord: boolean;
}

/** Notification data, by name (server to client). */
export interface Notifications {
	/** First message on every connection. */
	welcome: {
		protocolVersion: number;
		serverVersion: string;
		userId: string;
		displayName: string;
		grants: Grants;
		/** Channels the token allows: exact names, or prefixes ending in `*`. */
		channels: string[];
		/** Limits the client should respect. */
		limits: { maxMessageBytes: number; requestsPerSecond: number; requestBurst: number };
	};
	peerJoined: PeerInfo;
	peerLeft: { peerId: string };
	/** A new remote audio source to consume (created paused; call resumeConsumer). */
	newConsumer: {
		consumerId: string;
		producerId: string;
		peerId: string;
		kind: 'audio';
		rtpParameters: mc.RtpParameters;
		producerPaused: boolean;
	};
	consumerClosed: { consumerId: string };
	/** The remote producer was muted (or the consumer paused by the server). */
	consumerPaused: { consumerId: string };
	consumerResumed: { consumerId: string };
	/** Transmission quality of one of your producers as the server receives it (0-10). */
	producerScore: { producerId: string; score: number };
	/** Dominant speaker of the channel (null when nobody is speaking). */
	activeSpeaker: { peerId: string | null };
	/** Peers currently above the speaking threshold, throttled (dBov, -127..0). */
	audioLevels: { levels: { peerId: string; volumeDb: number }[] };
	/** The channel is going away (worker lost, server draining): rejoin. */
	channelClosing: { reason: string };
	/** The server is shutting down: reconnect, preferably after `reconnectAfterMs`. */
	serverShuttingDown: { reconnectAfterMs: number };
}

export type NotificationName = keyof Notifications;

// ---- envelopes ------------------------------------------------------------------------

export const requestEnvelopeSchema = z.strictObject({
	id: z.number().int().min(0).max(2 ** 31 - 1),
	method: z.string().min(1).max(64),
	data: z.unknown().optional(),
});

export type RequestMessage<M extends Method = Method> = { id: number; method: M; data: RequestData<M> };

export type ResponseMessage<M extends Method = Method> =
	| { id: number; ok: true; data: ResponseData[M] }
	| { id: number | null; ok: false; error: ProtocolError };

export type NotificationMessage<N extends NotificationName = NotificationName> = { method: N; data: Notifications[N] };

export function isMethod(name: string): name is Method {
	return Object.hasOwn(requestSchemas, name);
}

export function protocolError(code: ErrorCode, message: string = ERROR_CODES[code]): ProtocolError {
	return { code, message };
}
