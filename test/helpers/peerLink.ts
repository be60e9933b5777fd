// For tests that drive channels without signaling: a PeerLink that records what the peer is
// told, and the RTP parameters of an Opus producer.
import type { types as ms } from 'mediasoup';
import type { NotificationName, Notifications } from '../../protocol/messages.js';
import type { PeerLink } from '../../server/channels/Peer.js';

export class RecordingLink implements PeerLink {
	readonly seen: { name: NotificationName; data: unknown }[] = [];
	readonly disconnects: { code: number; reason: string }[] = [];
	notify<N extends NotificationName>(name: N, data: Notifications[N]): void {
		this.seen.push({ name, data });
	}
	disconnect(code: number, reason: string): void {
		this.disconnects.push({ code, reason });
	}
	/** What the peer was told as `name`, in order. */
	of<N extends NotificationName>(name: N): Notifications[N][] {
		return this.seen.filter((n) => n.name === name).map((n) => n.data as Notifications[N]);
	}
}

/** An Opus producer's RTP parameters with in-band FEC and DTX, as browsers send them. */
export const opusParams = (ssrc: number): ms.RtpParameters => ({
	mid: '0',
	codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1, usedtx: 1 } }],
	encodings: [{ ssrc }],
});
