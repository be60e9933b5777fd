// The messages two nodes exchange over the ClusterBus to run a channel that bridges them
// (ChannelBridge.ts). Payloads come from other nodes: every one is parsed with these schemas
// before anything is done with it.
//
//   bridge.open   satellite -> home: {channel, ip, port, enableRtx, srtp}; the home node
//               connects its PipeTransport to ip:port (which must be the pipe address the
//               satellite's signed registry entry announces) and answers {ip, port, srtp,
//               events} (its own pipe end, the same rule, and the channel as it is now).
//               srtp: the SRTP parameters of the sender's pipe end, the key sealed with the
//               cluster secret (ClusterSecret.seal): Redis carries the bus in the clear.
//   bridge.sync   either way: {channel, events}: what changed since, in order.
//   bridge.close  either way: {channel, reason}: the sender dropped its end.
import { z } from 'zod';
import { channelNameSchema, rtpParametersSchema } from '../../protocol/schemas.js';

export const BRIDGE_OPEN = 'bridge.open';
export const BRIDGE_SYNC = 'bridge.sync';
export const BRIDGE_CLOSE = 'bridge.close';

/** Events per bridge.sync message; a bigger backlog is sent as several messages, in order. */
export const MAX_EVENTS_PER_MESSAGE = 200;

const objectId = z.string().min(1).max(64);

export const bridgePeerSchema = z.strictObject({
	peerId: objectId,
	userId: z.string().min(1).max(128),
	displayName: z.string().max(256),
});

export const bridgeEventSchema = z.discriminatedUnion('type', [
	/** A peer is in the channel (joined, or was there when the bridge opened). */
	z.strictObject({ type: z.literal('peerJoined'), peer: bridgePeerSchema }),
	z.strictObject({ type: z.literal('peerLeft'), peerId: objectId }),
	/** A producer of that peer now flows over the pipe: produce it with the same id. */
	z.strictObject({ type: z.literal('producer'), peerId: objectId, producerId: objectId, rtpParameters: rtpParametersSchema, paused: z.boolean() }),
	z.strictObject({ type: z.literal('producerPaused'), producerId: objectId, paused: z.boolean() }),
	z.strictObject({ type: z.literal('producerClosed'), producerId: objectId }),
]);
export type BridgeEvent = z.output<typeof bridgeEventSchema>;

const events = z.array(bridgeEventSchema).max(MAX_EVENTS_PER_MESSAGE * 50);
/** The pipe end must be an IP: mediasoup's PipeTransport.connect() takes no host names. */
const ip = z.union([z.ipv4(), z.ipv6()]);
const port = z.number().int().min(1).max(65_535);

/** mediasoup's SrtpParameters with keyBase64 sealed (ClusterSecret.seal). */
export const sealedSrtpSchema = z.strictObject({
	cryptoSuite: z.enum(['AEAD_AES_256_GCM', 'AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32']),
	sealedKey: z.string().min(1).max(512),
});
export type SealedSrtp = z.output<typeof sealedSrtpSchema>;

export const bridgeOpenSchema = z.strictObject({ channel: channelNameSchema, ip, port, enableRtx: z.boolean(), srtp: sealedSrtpSchema });
export type BridgeOpen = z.output<typeof bridgeOpenSchema>;
export const bridgeOpenReplySchema = z.strictObject({ ip, port, srtp: sealedSrtpSchema, events });
export type BridgeOpenReply = z.output<typeof bridgeOpenReplySchema>;
export const bridgeSyncSchema = z.strictObject({ channel: channelNameSchema, events: z.array(bridgeEventSchema).max(MAX_EVENTS_PER_MESSAGE) });
export type BridgeSync = z.output<typeof bridgeSyncSchema>;
export const bridgeCloseSchema = z.strictObject({ channel: channelNameSchema, reason: z.string().max(256) });
export type BridgeClose = z.output<typeof bridgeCloseSchema>;

/** Parses an untrusted payload; the error names the first bad field (it goes back to the sender). */
export function parseBridgeMessage<T extends z.ZodType>(schema: T, payload: unknown, what: string): z.output<T> {
	const parsed = schema.safeParse(payload);
	if (!parsed.success) {
		const issue = parsed.error.issues[0];
		throw new TypeError(`invalid ${what}: ${issue ? `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}` : 'invalid'}`);
	}
	return parsed.data;
}
