// What a voice message is: the record every part of server/voice reads and writes.
import { destinationSchema, type VoiceMessageDestination, type VoiceMessageInfo, type VoiceMessageStatus } from '../../protocol/schemas.js';

/** Who a voice message is for: everyone allowed in a channel, or one user. */
export type Destination = VoiceMessageDestination;


/** `channel:<name>` or `user:<id>` (the compact form used in tus Upload-Metadata). */
export function parseDestination(text: string): Destination | undefined {
	const m = /^(channel|user):(.+)$/.exec(text);
	if (!m) return undefined;
	const parsed = destinationSchema.safeParse(m[1] === 'channel' ? { kind: 'channel', channel: m[2] } : { kind: 'user', userId: m[2] });
	return parsed.success ? parsed.data : undefined;
}

export function formatDestination(d: Destination): string {
	return d.kind === 'channel' ? `channel:${d.channel}` : `user:${d.userId}`;
}

/** Counts kept for a recording from a live producer: what reached the server, what was written. */
export interface RecordingCounts {
	packetsReceived: number;
	packetsWritten: number;
	/** Sequence-number gaps (packets lost before the server) that repair could not close,
	 * and the frames they miss: truly missing from the file (concealed at playback). */
	gaps: number;
	packetsMissing: number;
	/** Dropped: retransmitted copies, and packets that arrived after their place was written. */
	duplicates: number;
	late: number;
	/** Received while a stop waited for open holes to be repaired, but newer than the stop:
	 * not written (received, and forwarded by mediasoup, so the cross-check still adds up). */
	packetsAfterStop?: number;
	/** Timestamp jumps beyond the longest gap filled with silence (taken as a new position). */
	timestampJumps?: number;
	/** Dropped: the media timeline ran ahead of the wall clock (packets faster than real time). */
	packetsAhead?: number;
	/** What mediasoup's recording consumer counted as sent to us (the cross-check). */
	packetsForwarded?: number;
	/** Frames of packets lost before the server, restored from RED copies in later packets. */
	framesFromRed?: number;
	/** Frames whose packet arrived behind later ones and filled its hole: NACK
	 * retransmissions (and reordered packets, which look the same without RTX). */
	framesFromRetransmission?: number;
	/** RED packets that did not parse or carried blocks that are not this stream's Opus:
	 * skipped, never written. */
	redInvalid?: number;
}

export interface VoiceMessage {
	id: string;
	ownerId: string;
	destination: Destination;
	source: 'recording' | 'upload';
	status: VoiceMessageStatus;
	/** Why it failed, for people (status failed). */
	failureReason?: string;
	durationMs?: number;
	sizeBytes?: number;
	sha256?: string;
	/** e.g. { codec: 'opus', sampleRate: 48000, channels: 1, bitrateBps: 24000 } */
	codec?: { codec: string; sampleRate: number; channels: number; bitrateBps?: number };
	/** 100 values 0-31 (Telegram's convention), from the decoded audio. */
	waveform?: number[];
	/** Upload: the client's file name and type, and the detected input format. */
	originalName?: string;
	originalType?: string;
	/** Upload: size and sha256 of the file as received, before transcoding. */
	originalSizeBytes?: number;
	originalSha256?: string;
	detectedFormat?: string;
	recording?: RecordingCounts;
	/** The node that records or converts it (cluster): recovery after a crash touches only its
	 * own, or those of a node that is gone. Never shown to clients. */
	nodeId?: string;
	/** Milliseconds since the epoch. */
	createdAt: number;
	updatedAt: number;
}

/** The client view of a message (notifications, the HTTP API, events): an allow-list, so
 * internal fields (nodeId, hashes of the stored file, packet counts) stay inside. */
export function voiceMessageInfo(m: VoiceMessage): VoiceMessageInfo {
	return {
		id: m.id,
		ownerId: m.ownerId,
		destination: m.destination,
		source: m.source,
		status: m.status,
		...(m.failureReason !== undefined && { failureReason: m.failureReason }),
		...(m.durationMs !== undefined && { durationMs: m.durationMs }),
		...(m.sizeBytes !== undefined && { sizeBytes: m.sizeBytes }),
		...(m.waveform !== undefined && { waveform: m.waveform }),
		...(m.status === 'ready' && { audioUrl: `/voice/messages/${m.id}/audio` }),
		...(m.originalName !== undefined && { originalName: m.originalName }),
		...(m.originalSha256 !== undefined && { originalSha256: m.originalSha256 }),
		createdAt: m.createdAt,
	};
}
