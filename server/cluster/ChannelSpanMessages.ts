// The messages two nodes exchange over the ClusterBus to run a channel that spans them
// (ChannelSpan.ts). Payloads come from other nodes: every one is parsed with these schemas
// before anything is done with it.
//
//   span.open   satellite -> home: {channel, ip, port, enableRtx}; the home node connects
//               its PipeTransport to ip:port and answers {ip, port, events} (its own pipe
//               end and the channel as it is now, as events).
//   span.sync   either way: {channel, events}: what changed since, in order.
//   span.close  either way: {channel, reason}: the sender dropped its end.
import { z } from 'zod';
import { channelNameSchema, rtpParametersSchema } from '../signaling/protocolSchemas.js';

export const SPAN_OPEN = 'span.open';
export const SPAN_SYNC = 'span.sync';
export const SPAN_CLOSE = 'span.close';

/** Events per span.sync message; a bigger backlog is sent as several messages, in order. */
export const MAX_EVENTS_PER_MESSAGE = 200;

const objectId = z.string().min(1).max(64);

export const spanPeerSchema = z.strictObject({
	peerId: objectId,
	userId: z.string().min(1).max(128),
	displayName: z.string().max(256),
});

export const spanEventSchema = z.discriminatedUnion('type', [
	/** A peer is in the channel (joined, or was there when the span opened). */
	z.strictObject({ type: z.literal('peerJoined'), peer: spanPeerSchema }),
	z.strictObject({ type: z.literal('peerLeft'), peerId: objectId }),
	/** A producer of that peer now flows over the pipe: produce it with the same id. */
	z.strictObject({ type: z.literal('producer'), peerId: objectId, producerId: objectId, rtpParameters: rtpParametersSchema, paused: z.boolean() }),
	z.strictObject({ type: z.literal('producerPaused'), producerId: objectId, paused: z.boolean() }),
	z.strictObject({ type: z.literal('producerClosed'), producerId: objectId }),
]);
export type SpanEvent = z.output<typeof spanEventSchema>;

const events = z.array(spanEventSchema).max(MAX_EVENTS_PER_MESSAGE * 50);
/** The pipe end must be an IP: mediasoup's PipeTransport.connect() takes no host names. */
const ip = z.union([z.ipv4(), z.ipv6()]);
const port = z.number().int().min(1).max(65_535);

export const spanOpenSchema = z.strictObject({ channel: channelNameSchema, ip, port, enableRtx: z.boolean() });
export type SpanOpen = z.output<typeof spanOpenSchema>;
export const spanOpenReplySchema = z.strictObject({ ip, port, events });
export type SpanOpenReply = z.output<typeof spanOpenReplySchema>;
export const spanSyncSchema = z.strictObject({ channel: channelNameSchema, events: z.array(spanEventSchema).max(MAX_EVENTS_PER_MESSAGE) });
export type SpanSync = z.output<typeof spanSyncSchema>;
export const spanCloseSchema = z.strictObject({ channel: channelNameSchema, reason: z.string().max(256) });
export type SpanClose = z.output<typeof spanCloseSchema>;

/** Parses an untrusted payload; the error names the first bad field (it goes back to the sender). */
export function parseSpanMessage<T extends z.ZodType>(schema: T, payload: unknown, what: string): z.output<T> {
	const parsed = schema.safeParse(payload);
	if (!parsed.success) {
		const issue = parsed.error.issues[0];
		throw new TypeError(`invalid ${what}: ${issue ? `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}` : 'invalid'}`);
	}
	return parsed.data;
}
