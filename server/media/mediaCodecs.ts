// Router codecs: Opus only. Parley is a voice server; everything else is rejected at produce.
import type { types as ms } from 'mediasoup';

/** Opus with in-band FEC and DTX: FEC lets a receiver rebuild a lost 20 ms frame from the
 * next packet, DTX stops sending during silence. Browsers honour these fmtp parameters. */
export const OPUS_CODEC: ms.RouterRtpCodecCapability = {
	kind: 'audio',
	mimeType: 'audio/opus',
	clockRate: 48000,
	channels: 2,
	parameters: { useinbandfec: 1, usedtx: 1, minptime: 10 },
	rtcpFeedback: [{ type: 'transport-cc' }, { type: 'nack' }],
};

export const ROUTER_MEDIA_CODECS: ms.RouterRtpCodecCapability[] = [OPUS_CODEC];
