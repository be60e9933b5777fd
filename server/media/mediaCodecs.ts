// Router codecs: Opus only. Parley is a voice server; everything else is rejected at produce.
import type { types as ms } from 'mediasoup';

export interface OpusOptions {
	/** useinbandfec=1: a receiver rebuilds a lost 20 ms frame from the next packet. */
	inbandFec: boolean;
	/** usedtx=1: senders stop sending during silence. */
	dtx: boolean;
	/** NACK-based retransmission for Opus (audio RTX). */
	nack: boolean;
}

export const DEFAULT_OPUS: OpusOptions = { inbandFec: true, dtx: true, nack: false };

/** The router's single codec. Browsers honour these fmtp parameters in their SDP. */
export function routerMediaCodecs(opus: OpusOptions = DEFAULT_OPUS): ms.RouterRtpCodecCapability[] {
	const rtcpFeedback: ms.RtcpFeedback[] = [{ type: 'transport-cc' }];
	if (opus.nack) rtcpFeedback.push({ type: 'nack' });
	return [
		{
			kind: 'audio',
			mimeType: 'audio/opus',
			clockRate: 48000,
			channels: 2,
			parameters: { useinbandfec: opus.inbandFec ? 1 : 0, usedtx: opus.dtx ? 1 : 0, minptime: 10 },
			rtcpFeedback,
		},
	];
}

/** Kept for callers that only need the default codec list. */
export const ROUTER_MEDIA_CODECS: ms.RouterRtpCodecCapability[] = routerMediaCodecs();
