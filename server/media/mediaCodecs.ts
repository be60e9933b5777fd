// Router codecs: Opus, and Opus RED (RFC 2198) carrying Opus. Parley is a voice server;
// everything else is rejected at produce.
import type { types as ms } from 'mediasoup';

export interface OpusOptions {
	/** useinbandfec=1: a receiver rebuilds a lost 20 ms frame from the next packet. */
	inbandFec: boolean;
	/** usedtx=1: senders stop sending during silence. */
	dtx: boolean;
	/** NACK-based retransmission for Opus (audio RTX). */
	nack: boolean;
	/** Offer audio/red: publishers may send each frame again in later packets. */
	red: boolean;
}

export const DEFAULT_OPUS: OpusOptions = { inbandFec: true, dtx: true, nack: false, red: true };

/**
 * The router's codecs. Opus comes first, so a client that does not ask for RED sends plain
 * Opus; browsers honour the fmtp parameters in their SDP. RED needs mediasoup's Node side to
 * list audio/red (patches/mediasoup+*.patch) and the worker patch that forwards it
 * (scripts/mediasoup/mediasoup-*-opus-red.patch).
 */
export function routerMediaCodecs(opus: Partial<OpusOptions> = {}): ms.RouterRtpCodecCapability[] {
	const o = { ...DEFAULT_OPUS, ...opus };
	const rtcpFeedback: ms.RtcpFeedback[] = [{ type: 'transport-cc' }];
	if (o.nack) rtcpFeedback.push({ type: 'nack' });
	const codecs: ms.RouterRtpCodecCapability[] = [
		{
			kind: 'audio',
			mimeType: 'audio/opus',
			clockRate: 48000,
			channels: 2,
			parameters: { useinbandfec: o.inbandFec ? 1 : 0, usedtx: o.dtx ? 1 : 0, minptime: 10 },
			rtcpFeedback,
		},
	];
	if (o.red) codecs.push({ kind: 'audio', mimeType: 'audio/red', clockRate: 48000, channels: 2, rtcpFeedback });
	return codecs;
}

/** Kept for callers that only need the default codec list. */
export const ROUTER_MEDIA_CODECS: ms.RouterRtpCodecCapability[] = routerMediaCodecs();

/** Whether RTP parameters (a producer's, a consumer's) carry Opus RED. */
export function usesOpusRed(rtpParameters: { codecs: readonly { mimeType: string }[] }): boolean {
	return rtpParameters.codecs.some((c) => c.mimeType.toLowerCase() === 'audio/red');
}
