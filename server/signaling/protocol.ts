// Parley's signaling protocol, declared once: every method with its request and response
// data, every notification, every error code. Request data types are derived from the zod
// schemas in protocolSchemas.ts, which the server validates with. This module has no
// runtime dependencies (type-only imports), so the browser bundle carries no zod.
//
// Wire format (JSON text frames over one WebSocket at /ws?token=<JWT>&v=<PROTOCOL_VERSION>):
//   request       {"id": 7, "method": "join", "data": {...}}
//   response      {"id": 7, "ok": true, "data": {...}}
//                 {"id": 7, "ok": false, "error": {"code": "E_FORBIDDEN", "message": "..."}}
//                 (id is null when the request was too malformed to read its id)
//   notification  {"method": "peerJoined", "data": {...}}
// The server's first message is the `welcome` notification, carrying PROTOCOL_VERSION.
import type { types as mc } from 'mediasoup-client';
import type { z } from 'zod';
import type { requestSchemas } from './protocolSchemas.js';

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
	E_TOO_MANY_RECORDINGS: 'This server is recording as many voice messages as it can.',
	E_STORAGE_UNAVAILABLE: 'Voice messages cannot be stored right now (storage full or not writable).',
	E_SHUTTING_DOWN: 'The server is shutting down.',
	E_REPLACED: 'The same user joined this channel from another connection.',
	E_INTERNAL: 'Internal server error.',
	E_REDIRECT: 'This channel is served by another node; connect there (error.redirect) and join again.',
	E_CLUSTER_UNAVAILABLE: 'Cluster coordination (Redis) is unreachable; try again.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ProtocolError {
	code: ErrorCode;
	message: string;
	/** With E_REDIRECT: the node that serves the channel and its signaling URL (ws(s)://.../ws). */
	redirect?: RedirectTarget;
	/** With E_RATE_LIMIT from a user or address limit: how long to wait before retrying. */
	retryAfterMs?: number;
}

export interface RedirectTarget {
	nodeId: string;
	url: string;
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
	/** Too many connections on this node, or too many new ones from this address. */
	OVERLOADED: 4429,
} as const;

/** Channel names: short, URL-safe, no path tricks. */
export const CHANNEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** User ids (token subjects that may receive voice messages; they name storage folders). */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

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
	startRecording: { voiceMessageId: string; maxDurationMs: number };
	stopRecording: { voiceMessage: VoiceMessageInfo };
}

/** Where a voice message goes: everyone allowed in a channel, or one user. */
export type VoiceMessageDestination = { kind: 'channel'; channel: string } | { kind: 'user'; userId: string };

/** A voice message as clients see it (notifications and the HTTP API). */
export interface VoiceMessageInfo {
	id: string;
	ownerId: string;
	destination: VoiceMessageDestination;
	source: 'recording' | 'upload';
	status: 'recording' | 'uploading' | 'processing' | 'ready' | 'failed';
	failureReason?: string;
	durationMs?: number;
	sizeBytes?: number;
	/** 100 values 0-31 from the decoded audio. */
	waveform?: number[];
	/** Relative URL of the Ogg Opus file (status ready). */
	audioUrl?: string;
	/** Uploads: the file name the client gave, and the sha256 of the file as received. */
	originalName?: string;
	originalSha256?: string;
	createdAt: number;
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
	/** Dominant speaker of the channel (ActiveSpeakerObserver); null once that peer left.
	 * It is not cleared on silence: speaking indicators should follow `audioLevels`. */
	activeSpeaker: { peerId: string | null };
	/** Peers currently above the speaking threshold, throttled (dBov, -127..0). */
	audioLevels: { levels: { peerId: string; volumeDb: number }[] };
	/** The channel is going away (worker lost, server draining): rejoin. */
	channelClosing: { reason: string };
	/** The server is shutting down: reconnect, preferably after `reconnectAfterMs`. */
	serverShuttingDown: { reconnectAfterMs: number };
	/** A voice message you sent or may hear changed status (recording, processing, ready, failed). */
	voiceMessage: { message: VoiceMessageInfo; reason?: string };
}

export type NotificationName = keyof Notifications;

// ---- envelopes ------------------------------------------------------------------------

export type RequestMessage<M extends Method = Method> = { id: number; method: M; data: RequestData<M> };

export type ResponseMessage<M extends Method = Method> =
	| { id: number; ok: true; data: ResponseData[M] }
	| { id: number | null; ok: false; error: ProtocolError };

export type NotificationMessage<N extends NotificationName = NotificationName> = { method: N; data: Notifications[N] };

export function protocolError(code: ErrorCode, message: string = ERROR_CODES[code]): ProtocolError {
	return { code, message };
}
