// Runtime validation of Parley's protocol (messages.ts): the zod schema of every request's
// data and of the voice-message record clients see. The server parses every request with
// these; the request data types and VoiceMessageInfo are derived from them, so there is no
// hand-written copy to keep in sync.
import { z } from 'zod';
import { CHANNEL_NAME_PATTERN, USER_ID_PATTERN, VOICE_MESSAGE_ID_PATTERN } from './patterns.js';

// ---- building blocks ------------------------------------------------------------------

/** Channel names: short, URL-safe, no path tricks. */
export const channelNameSchema = z
	.string()
	.regex(CHANNEL_NAME_PATTERN, 'channel names are 1-64 characters of A-Z a-z 0-9 . _ : - (not starting with punctuation)');

const objectId = z.string().min(1).max(64);
const shortText = z.string().max(256);
// Values are what mediasoup accepts (it refuses anything but strings and numbers later,
// where a bad value in a joiner's capabilities would only show as a silent failure to consume).
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

export const destinationSchema = z.discriminatedUnion('kind', [
	z.strictObject({ kind: z.literal('channel'), channel: channelNameSchema }),
	z.strictObject({ kind: z.literal('user'), userId: z.string().regex(USER_ID_PATTERN, 'user ids are 1-128 characters of A-Z a-z 0-9 . _ @ -') }),
]);

/** Where a voice message goes: everyone allowed in a channel, or one user. */
export type VoiceMessageDestination = z.output<typeof destinationSchema>;

export const VOICE_MESSAGE_STATUSES = ['recording', 'uploading', 'processing', 'ready', 'failed'] as const;
export type VoiceMessageStatus = (typeof VOICE_MESSAGE_STATUSES)[number];

/** A voice message as clients see it (notifications, the HTTP API, the cluster bus, the
 * event stream). Unknown fields are dropped when parsing: bus payloads are untrusted. */
export const voiceMessageInfoSchema = z.object({
	id: z.string().regex(VOICE_MESSAGE_ID_PATTERN),
	ownerId: z.string().regex(USER_ID_PATTERN),
	destination: destinationSchema,
	source: z.enum(['recording', 'upload']),
	status: z.enum(VOICE_MESSAGE_STATUSES),
	/** Why it failed, for people (status failed). */
	failureReason: z.string().max(1000).optional(),
	durationMs: z.number().nonnegative().optional(),
	sizeBytes: z.number().int().nonnegative().optional(),
	/** 100 values 0-31 from the decoded audio. */
	waveform: z.array(z.number().int().min(0).max(31)).max(100).optional(),
	/** Relative URL of the Ogg Opus file (status ready). */
	audioUrl: z.string().max(200).optional(),
	/** Uploads: the file name the client gave, and the sha256 of the file as received. */
	originalName: z.string().max(1000).optional(),
	originalSha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
	createdAt: z.number().int().nonnegative(),
});
export type VoiceMessageInfo = z.output<typeof voiceMessageInfoSchema>;

// ---- requests ----

const empty = z.strictObject({});
const transportRef = z.strictObject({ transportId: objectId });
const producerRef = z.strictObject({ producerId: objectId });

/** Request data schemas, by method. The server rejects anything else with E_BAD_REQUEST. */
export const requestSchemas = {
	/** Router capabilities (the same for every channel): load the mediasoup-client Device. */
	getRouterRtpCapabilities: empty,
	/** Enter a channel (allowed by the token). `rtpCapabilities` are the Device's.
	 * `transports`: create these WebRTC transports too (each needs its grant, as with
	 * createTransport), in parallel, and return them in the reply: no createTransport round trips. */
	join: z.strictObject({
		channel: channelNameSchema,
		rtpCapabilities: rtpCapabilitiesSchema,
		transports: z
			.array(z.enum(['send', 'recv']))
			.max(2)
			.refine((d) => new Set(d).size === d.length, 'directions must not repeat')
			.optional(),
	}),
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
	/** Record one's own producer into a voice message (needs canRecord). */
	startRecording: z.strictObject({
		producerId: objectId,
		destination: destinationSchema,
	}),
	/** Stops and finalizes; answers once the file is complete. */
	stopRecording: z.strictObject({ voiceMessageId: z.uuid() }),
} as const;

export const requestEnvelopeSchema = z.strictObject({
	id: z.number().int().min(0).max(2 ** 31 - 1),
	method: z.string().min(1).max(64),
	data: z.unknown().optional(),
});

/** Request data nests at most this deep (the deepest real request, produce, nests 6
 * levels). Loose objects pass unknown keys on to mediasoup, which clones them recursively:
 * thousands of levels, well within the message size limit, overflow its stack. */
export const MAX_DATA_DEPTH = 12;

/** True when `value` has objects or arrays nested more than `maxDepth` levels deep. */
export function exceedsDepth(value: unknown, maxDepth: number): boolean {
	const stack: [unknown, number][] = [[value, 1]];
	while (stack.length > 0) {
		const [v, depth] = stack.pop()!;
		if (v === null || typeof v !== 'object') continue;
		if (depth > maxDepth) return true;
		for (const child of Object.values(v)) stack.push([child, depth + 1]);
	}
	return false;
}

/** A signaling method's name. */
export type Method = keyof typeof requestSchemas;

export function isMethod(name: string): name is Method {
	return Object.hasOwn(requestSchemas, name);
}

