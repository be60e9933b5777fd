// Parley's signaling protocol, declared once: every method with its request and response
// data, every notification, error codes are in errors.ts. Request data types are derived from the zod
// schemas in schemas.ts, which the server validates with. This module has no
// runtime dependencies (type-only imports), so the browser bundle carries no zod.
//
// Wire format (JSON text frames over one WebSocket at /ws?v=<PROTOCOL_VERSION>, the access
// token offered as the subprotocol `parley.token.<JWT>` beside `parley`; `?token=<JWT>` is
// also accepted, for clients that cannot offer subprotocols):
//   request       {"id": 7, "method": "join", "data": {...}}
//   response      {"id": 7, "ok": true, "data": {...}}
//                 {"id": 7, "ok": false, "error": {"code": "E_FORBIDDEN", "message": "..."}}
//                 (id is null when the request was too malformed to read its id)
//   notification  {"method": "peerJoined", "data": {...}}
// The server's first message is the `welcome` notification, carrying PROTOCOL_VERSION.
import type { types as mc } from 'mediasoup-client';
import type { z } from 'zod';
import type { ProtocolError } from './errors.js';
import type { Method, requestSchemas, VoiceMessageInfo } from './schemas.js';

/** Bumped on any incompatible change; the client sends it as `v` and the server refuses others. */
export const PROTOCOL_VERSION = 1;

/** The WebSocket subprotocol the server selects (the client offers it beside the token). */
export const SIGNALING_SUBPROTOCOL = 'parley';
/** A subprotocol `parley.token.<JWT>` carries the access token in the upgrade's
 * Sec-WebSocket-Protocol header: browsers cannot set other headers on a WebSocket, and a
 * header stays out of URLs (proxy logs, history). A JWT's characters are all valid there. */
export const TOKEN_SUBPROTOCOL_PREFIX = 'parley.token.';

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
	/** Removed from the channel by a moderator (the backend API's RemoveParticipant): do not
	 * reconnect on your own; the close reason says why. */
	REMOVED: 4403,
} as const;

export type { Method };
export type RequestData<M extends Method> = z.input<(typeof requestSchemas)[M]>;

export interface PeerInfo {
	peerId: string;
	userId: string;
	displayName: string;
}

/** A TURN server entry as RTCPeerConnection takes it (RTCIceServer), with time-limited
 * credentials: username `<unix expiry>:<user id>`, credential an HMAC of it (turn.*). */
export interface IceServer {
	urls: string[];
	username: string;
	credential: string;
}

export interface TransportInfo {
	transportId: string;
	iceParameters: mc.IceParameters;
	iceCandidates: mc.IceCandidate[];
	dtlsParameters: mc.DtlsParameters;
	/** TURN servers to gather relay candidates from, fresh credentials each time (empty: none configured). */
	iceServers?: IceServer[];
}

/** Response data, by method. */
export interface ResponseData {
	getRouterRtpCapabilities: { rtpCapabilities: mc.RtpCapabilities };
	/** transports: those the request asked for, by direction (absent when it asked for none). */
	/** `moderation`: what a moderator decided for this user earlier in the channel's life (a
	 * mute, changed grants); it holds over the token's grants on every rejoin. */
	join: { peerId: string; channel: string; peers: PeerInfo[]; transports?: { send?: TransportInfo; recv?: TransportInfo }; moderation?: JoinModeration };
	createTransport: TransportInfo;
	connectTransport: Record<string, never>;
	produce: { producerId: string };
	pauseProducer: Record<string, never>;
	resumeProducer: Record<string, never>;
	closeProducer: Record<string, never>;
	resumeConsumer: Record<string, never>;
	/** iceServers: fresh TURN credentials (the old ones may have expired during a long call). */
	restartIce: { iceParameters: mc.IceParameters; iceServers?: IceServer[] };
	getTransportStats: { stats: unknown[] };
	leave: Record<string, never>;
	startRecording: { voiceMessageId: string; maxDurationMs: number };
	stopRecording: { voiceMessage: VoiceMessageInfo };
}

// ---- notifications --------------------------------------------------------------------

/** A moderator's standing decision for a user in a channel, told at join. */
export interface JoinModeration {
	muted?: boolean;
	grants?: Grants;
}

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
		/** The router's RTP capabilities (the same for every channel, what
		 * getRouterRtpCapabilities answers): a client can load its Device without asking. */
		routerRtpCapabilities?: mc.RtpCapabilities;
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
	/** How well one of your consumers reaches you (`score`) and how well the server receives
	 * the speaker behind it (`producerScore`), both 0-10: the two legs of that peer's voice. */
	consumerScore: { consumerId: string; score: number; producerScore: number };
	/** Dominant speaker of the channel (ActiveSpeakerObserver); null once that peer left.
	 * It is not cleared on silence: speaking indicators should follow `audioLevels`. */
	activeSpeaker: { peerId: string | null };
	/** Peers currently above the speaking threshold, throttled (dBov, -127..0). */
	audioLevels: { levels: { peerId: string; volumeDb: number }[] };
	/** The channel is going away (worker lost, server draining): rejoin. */
	channelClosing: { reason: string };
	/** A moderator muted (or unmuted) `peerId`'s audio on the server; sent to everyone in the
	 * channel, that peer included. While muted, that peer's resumeProducer is refused
	 * (E_FORBIDDEN) and new producers start paused. */
	participantMuted: { peerId: string; muted: boolean };
	/** A moderator changed your grants; without canPublish your producers were closed. */
	grantsChanged: { grants: Grants };
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
