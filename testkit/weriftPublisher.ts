// A publishing peer without a browser: werift (pure-TypeScript WebRTC) speaks to Parley
// through the real signaling protocol (createTransport, connectTransport, produce) and
// sends Opus RTP over ICE + DTLS + SRTP, with full control of timestamps and losses.
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket } from 'werift';
import type { TransportInfo } from '../protocol/messages.js';
import type { TestSignalingClient } from './signalingClient.js';
import { skipStunGathering } from './weriftInternals.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CONNECT_WAIT_MS = 12_000;

export interface WeriftPublisher {
	producerId: string;
	/** From the answer being set to ICE + DTLS connected. */
	connectMs: number;
	/**
	 * Sends Opus frames paced at 20 ms. `skip(i)` drops frame i before it leaves (loss on the
	 * way to the server); `timestampOf(i)` sets its RTP timestamp (gaps = DTX silence).
	 */
	send(frames: Uint8Array[], options?: { skip?: (i: number) => boolean; timestampOf?: (i: number) => number; paceMs?: number }): Promise<number>;
	/** Writes one frame now with RTP timestamp `timestamp`, for a caller that paces frames
	 * itself (the bench's FramePacer stamps each send instant). */
	write(frame: Uint8Array, timestamp: number, marker?: boolean): void;
	close(): Promise<void>;
}

/** RTP header extension id of ssrc-audio-level when `audioLevelDbov` is given. */
const AUDIO_LEVEL_EXT_ID = 1;

/** `audioLevelDbov`: send the ssrc-audio-level header extension (RFC 6464) with this level
 * (0 loudest .. 127 silence) on every packet, so the server's speaker detection sees it.
 * Read per packet: change it on the same options object to change the level. */
/** `transport`: the send transport the join reply already carried (no createTransport then). */
export async function publishWithWerift(client: TestSignalingClient, options: { audioLevelDbov?: number; transport?: TransportInfo } = {}): Promise<WeriftPublisher> {
	let t: TransportInfo;
	if (options.transport) t = options.transport;
	else {
		const reply = await client.request('createTransport', { direction: 'send' });
		if (!reply.ok) throw new Error(`createTransport: ${reply.error.code}`);
		t = reply.data;
	}
	const pc = new RTCPeerConnection({
		iceServers: [],
		iceUseIpv6: false,
		iceInterfaceAddresses: { udp4: '127.0.0.1' },
		iceAdditionalHostAddresses: ['127.0.0.1'],
		codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111, parameters: 'useinbandfec=1;usedtx=1' })], video: [] },
		headerExtensions: { audio: [], video: [] },
	});
	const track = new MediaStreamTrack({ kind: 'audio' });
	pc.addTransceiver(track, { direction: 'sendonly' });
	skipStunGathering(pc);
	await pc.setLocalDescription(await pc.createOffer());
	// Host candidates on loopback only: gathering completes within milliseconds.
	for (let i = 0; i < 500 && pc.iceGatheringState !== 'complete'; i++) await sleep(10);
	const offer = pc.localDescription!.sdp;
	const mid = /a=mid:(\S+)/.exec(offer)![1]!;
	const ssrc = Number(/a=ssrc:(\d+) /.exec(offer)![1]);
	const fp = /a=fingerprint:(\S+) (\S+)/.exec(offer)!;
	// Sent together: the server runs them in order, one round trip for both.
	const connecting = client.request('connectTransport', {
		transportId: t.transportId,
		dtlsParameters: { role: 'client', fingerprints: [{ algorithm: fp[1] as 'sha-256', value: fp[2]! }] },
	});
	const producing = client.request('produce', {
		transportId: t.transportId,
		kind: 'audio',
		rtpParameters: {
			mid,
			codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1, usedtx: 1 } }],
			encodings: [{ ssrc }],
			...(options.audioLevelDbov !== undefined && { headerExtensions: [{ uri: 'urn:ietf:params:rtp-hdrext:ssrc-audio-level', id: AUDIO_LEVEL_EXT_ID }] }),
		},
	});
	const connected = await connecting;
	if (!connected.ok) throw new Error(`connectTransport: ${connected.error.code}`);
	const produced = await producing;
	if (!produced.ok) throw new Error(`produce: ${produced.error.code}`);
	const cand = t.iceCandidates.find((c) => c.protocol === 'udp')!;
	const msFp = t.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256')!;
	await pc.setRemoteDescription({
		type: 'answer',
		sdp: [
			'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', `a=group:BUNDLE ${mid}`, 'a=ice-lite',
			`m=audio ${cand.port} UDP/TLS/RTP/SAVPF 111`, 'c=IN IP4 127.0.0.1', 'a=rtcp-mux',
			`a=ice-ufrag:${t.iceParameters.usernameFragment}`, `a=ice-pwd:${t.iceParameters.password}`,
			`a=fingerprint:sha-256 ${msFp.value}`, 'a=setup:passive',
			`a=candidate:${cand.foundation} 1 udp ${cand.priority} ${cand.address} ${cand.port} typ host`, 'a=end-of-candidates',
			`a=mid:${mid}`, 'a=recvonly', 'a=rtpmap:111 opus/48000/2', 'a=fmtp:111 useinbandfec=1;usedtx=1', '',
		].join('\r\n'),
	});
	// ICE + DTLS take ~150 ms here (the cluster soak prints the distribution); the wait leaves
	// room for retransmitted checks and DTLS flights on a loaded machine.
	const connectStarted = performance.now();
	for (let i = 0; i < CONNECT_WAIT_MS / 10 && pc.connectionState !== 'connected'; i++) await sleep(10);
	if (pc.connectionState !== 'connected') {
		const state = `${pc.connectionState} after ${CONNECT_WAIT_MS} ms; ICE ${pc.iceConnectionState}`;
		await pc.close();
		throw new Error(`werift did not connect (${state})`);
	}
	const connectMs = Math.round(performance.now() - connectStarted);

	let seq = 1000;
	const writeRtp = (sequenceNumber: number, frame: Uint8Array, timestamp: number, marker: boolean) => {
		const level = options.audioLevelDbov;
		const extensions = level === undefined ? [] : [{ id: AUDIO_LEVEL_EXT_ID, payload: Buffer.from([0x80 | (level & 0x7f)]) }];
		track.writeRtp(new RtpPacket(new RtpHeader({ payloadType: 111, sequenceNumber, timestamp: timestamp >>> 0, ssrc, marker, extension: extensions.length > 0, extensions }), Buffer.from(frame)));
	};
	return {
		producerId: produced.data.producerId,
		connectMs,
		async send(frames, { skip = () => false, timestampOf = (i: number) => i * 960, paceMs = 20 } = {}) {
			let sent = 0;
			const started = performance.now();
			for (let i = 0; i < frames.length; i++) {
				const s = seq++ & 0xffff; // a dropped packet still used its sequence number
				if (!skip(i)) {
					writeRtp(s, frames[i]!, timestampOf(i), i === 0);
					sent++;
				}
				// Pace against the wall clock so timer drift does not accumulate.
				const wait = started + (i + 1) * paceMs - performance.now();
				if (wait > 0) await sleep(wait);
			}
			return sent;
		},
		write(frame, timestamp, marker = false) {
			writeRtp(seq++ & 0xffff, frame, timestamp, marker);
		},
		close: () => pc.close(),
	};
}

/** Sends a tone continuously (20 ms frames, one RTP timeline) until stop() is called. */
export interface ToneStream {
	/** Packets sent so far. */
	readonly sent: number;
	stop(): Promise<number>;
}

export function streamTone(publisher: { send(frames: Uint8Array[], options?: { timestampOf?: (i: number) => number }): Promise<number> }, frames: Uint8Array[]): ToneStream {
	let stopped = false;
	let sent = 0;
	let frameIndex = 0;
	const loop = (async () => {
		while (!stopped) {
			const base = frameIndex;
			// Five frames at a time so stop() takes effect within 100 ms.
			const chunk = Array.from({ length: 5 }, (_, i) => frames[(base + i) % frames.length]!);
			sent += await publisher.send(chunk, { timestampOf: (i) => (base + i) * 960 });
			frameIndex += chunk.length;
		}
	})();
	return {
		get sent() {
			return sent;
		},
		async stop() {
			stopped = true;
			await loop;
			return sent;
		},
	};
}
