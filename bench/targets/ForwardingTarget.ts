// What a capacity or loss run drives: a forwarding server (Parley, or raw mediasoup as the
// baseline) on which the bench builds rooms of plain-RTP publishers and listeners.
import type { types as ms } from 'mediasoup';
import type { StatsRound } from '../../server/metrics/metrics.js';

/** Payload type the bench's publishers use for Opus. */
export const OPUS_PAYLOAD_TYPE = 100;
/** ... and for RED (Chromium's choice). */
export const RED_PAYLOAD_TYPE = 63;

export interface RoomSpec {
	/** A unique name (a Parley channel name). */
	name: string;
	/** SSRCs of the publishers' RTP streams. */
	publisherSsrcs: number[];
	/** Where each listener's consumers send (a subscriber socket, a proxy, or a sink). */
	listenerDestinations: number[];
	/** Publishers answer NACKs (their RTP parameters offer nack feedback). */
	nack: boolean;
	/** Encrypt what listeners receive (SRTP on the plain transport), as WebRTC listeners get. */
	srtpCryptoSuite?: ms.SrtpCryptoSuite;
	/** Publishers send Opus in RED (RFC 2198): their RTP parameters add audio/red. */
	red?: boolean;
	/** Listeners (by index) whose capabilities lack audio/red: they get plain Opus, the
	 * worker stripping RED for them. The others have the router's capabilities. */
	listenersWithoutRed?: number[];
}

export interface RoomConsumer {
	ssrc: number;
	publisherIndex: number;
	/** What the consumer negotiated: Opus, and RED's payload type when it has RED. */
	payloadTypes: { opus: number; red?: number };
}

/** The consumer's Opus and (if any) RED payload types. */
export function consumerPayloadTypes(rtpParameters: ms.RtpParameters): RoomConsumer['payloadTypes'] {
	const opus = rtpParameters.codecs.find((c) => c.mimeType.toLowerCase() === 'audio/opus');
	const red = rtpParameters.codecs.find((c) => c.mimeType.toLowerCase() === 'audio/red');
	if (!opus) throw new Error('consumer without Opus');
	return red ? { opus: opus.payloadType, red: red.payloadType } : { opus: opus.payloadType };
}

/** Capabilities without audio/red: a listener that did not negotiate RED (Firefox, say). */
export function withoutRed(caps: ms.RtpCapabilities): ms.RtpCapabilities {
	return { ...caps, codecs: (caps.codecs ?? []).filter((c) => c.mimeType.toLowerCase() !== 'audio/red') };
}

export interface Room {
	/** Per publisher: the server port its RTP goes to (comedia: the server learns the source). */
	publisherPorts: number[];
	/** Per listener: its consumers (one per publisher). */
	listeners: { consumers: RoomConsumer[] }[];
	close(): void;
}

export interface ForwardingTarget {
	readonly kind: 'parley' | 'raw-mediasoup';
	/** Process ids of the mediasoup workers (for CPU accounting and pinning). */
	workerPids(): number[];
	/** Parley's latest RTP stats rounds (performance.now() times, this process); none for raw mediasoup. */
	statsRounds(): StatsRound[];
	/** Builds a room: listeners first, then publishers, then every listener consumes every publisher. */
	buildRoom(spec: RoomSpec): Promise<Room>;
	close(): Promise<void>;
}

export const LOOPBACK = '127.0.0.1';

/** A publisher's parameters: Opus, and with `red` also audio/red carrying that Opus (after
 * it, so Opus stays the media codec the encoding refers to, as a browser's offer maps). */
export function opusRtpParameters(ssrc: number, nack: boolean, red = false): ms.RtpParameters {
	const rtcpFeedback: ms.RtcpFeedback[] = nack ? [{ type: 'nack' }] : [];
	const codecs: ms.RtpCodecParameters[] = [{ mimeType: 'audio/opus', payloadType: OPUS_PAYLOAD_TYPE, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 }, rtcpFeedback }];
	if (red) codecs.push({ mimeType: 'audio/red', payloadType: RED_PAYLOAD_TYPE, clockRate: 48000, channels: 2, parameters: {}, rtcpFeedback });
	return { codecs, encodings: [{ ssrc }] };
}

/** A remote SRTP key for `connect()` (the bench never sends SRTP back, but mediasoup wants one). */
export function remoteSrtpParameters(cryptoSuite: ms.SrtpCryptoSuite): ms.SrtpParameters {
	const bytes = cryptoSuite === 'AEAD_AES_256_GCM' ? 44 : cryptoSuite === 'AEAD_AES_128_GCM' ? 28 : 30;
	const key = Buffer.alloc(bytes);
	for (let i = 0; i < bytes; i++) key[i] = (Math.random() * 256) | 0;
	return { cryptoSuite, keyBase64: key.toString('base64') };
}

export function plainListenOptions(srtp: ms.SrtpCryptoSuite | undefined, comedia: boolean): ms.PlainTransportOptions {
	return {
		listenInfo: { protocol: 'udp', ip: LOOPBACK },
		rtcpMux: true,
		comedia,
		...(srtp ? { enableSrtp: true, srtpCryptoSuite: srtp } : {}),
	};
}

/** Runs `fn` over `items` with at most `limit` in flight (keeps worker channels responsive). */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
	const out: R[] = new Array(items.length);
	let next = 0;
	const run = async (): Promise<void> => {
		while (next < items.length) {
			const i = next++;
			out[i] = await fn(items[i]!, i);
		}
	};
	await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
	return out;
}
