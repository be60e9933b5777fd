// A listening peer without a browser: werift receives the consumers of a Parley receive
// transport over ICE + DTLS + SRTP (the server offers, werift answers as DTLS client) and
// records when each packet arrived. Pairs with weriftPublisher.ts.
import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import type { Notifications, TransportInfo } from '../protocol/messages.js';
import type { TestSignalingClient } from './signalingClient.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type NewConsumer = Notifications['newConsumer'];

export interface ReceivedPacket {
	/** performance.now() at arrival. */
	atMs: number;
	producerId: string;
	seq: number;
	payload: Buffer;
}

export interface WeriftListener {
	transportId: string;
	consumers: NewConsumer[];
	packets: ReceivedPacket[];
	/** Packets from one producer. */
	from(producerId: string): ReceivedPacket[];
	close(): Promise<void>;
}

/**
 * Creates the receive transport, waits until `expectedProducers` consumers are announced
 * (newConsumer; consumers already announced before the call count too when `since` says
 * from where to look), then connects and resumes them.
 */
export async function listenWithWerift(
	client: TestSignalingClient,
	expectedProducers: number,
	/** iceFirst: connectTransport only once ICE is up (mediasoup-client does it the other way round). */
	options: { since?: number; timeoutMs?: number; iceFirst?: boolean } = {},
): Promise<WeriftListener> {
	const since = options.since ?? client.notifications.length;
	const reply = await client.request('createTransport', { direction: 'recv' });
	if (!reply.ok) throw new Error(`createTransport recv: ${reply.error.code}`);
	const t: TransportInfo = reply.data;
	const announced = () => client.notifications.slice(since).filter((n) => n.method === 'newConsumer').map((n) => n.data as NewConsumer);
	await client.until(() => announced().length >= expectedProducers, options.timeoutMs ?? 5000, `${expectedProducers} newConsumer`);
	const consumers = announced().slice(0, expectedProducers);
	const pt = consumers[0]!.rtpParameters.codecs[0]!.payloadType;
	const pc = new RTCPeerConnection({
		iceServers: [],
		iceUseIpv6: false,
		iceInterfaceAddresses: { udp4: '127.0.0.1' },
		iceAdditionalHostAddresses: ['127.0.0.1'],
		codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: pt })], video: [] },
		headerExtensions: { audio: [], video: [] },
	});
	const packets: ReceivedPacket[] = [];
	const producerBySsrc = new Map(consumers.map((c) => [c.rtpParameters.encodings![0]!.ssrc!, c.producerId]));
	pc.onTrack.subscribe((track) =>
		track.onReceiveRtp.subscribe((rtp) => {
			const producerId = producerBySsrc.get(rtp.header.ssrc);
			if (producerId) packets.push({ atMs: performance.now(), producerId, seq: rtp.header.sequenceNumber, payload: rtp.payload });
		}),
	);
	const cand = t.iceCandidates.find((c) => c.protocol === 'udp')!;
	const fp = t.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256')!;
	const mids = consumers.map((c) => c.rtpParameters.mid!);
	const sdp = ['v=0', 'o=- 2 2 IN IP4 127.0.0.1', 's=-', 't=0 0', `a=group:BUNDLE ${mids.join(' ')}`, 'a=ice-lite', 'a=msid-semantic: WMS *'];
	consumers.forEach((c, i) => {
		sdp.push(
			`m=audio ${cand.port} UDP/TLS/RTP/SAVPF ${pt}`,
			'c=IN IP4 127.0.0.1',
			'a=rtcp-mux',
			`a=ice-ufrag:${t.iceParameters.usernameFragment}`,
			`a=ice-pwd:${t.iceParameters.password}`,
			`a=fingerprint:sha-256 ${fp.value}`,
			`a=candidate:${cand.foundation} 1 udp ${cand.priority} ${cand.address} ${cand.port} typ host`,
			'a=end-of-candidates',
			`a=mid:${c.rtpParameters.mid}`,
			'a=sendonly',
			'a=setup:actpass',
			`a=rtpmap:${pt} opus/48000/2`,
			`a=ssrc:${c.rtpParameters.encodings![0]!.ssrc} cname:${c.rtpParameters.rtcp!.cname}`,
			`a=msid:s${i} t${i}`,
		);
	});
	await pc.setRemoteDescription({ type: 'offer', sdp: [...sdp, ''].join('\r\n') });
	await pc.setLocalDescription(await pc.createAnswer());
	const answer = pc.localDescription!.sdp;
	if (options.iceFirst) for (let i = 0; i < 100 && pc.iceConnectionState !== 'connected' && pc.iceConnectionState !== 'completed'; i++) await sleep(20);
	const m = /a=fingerprint:(\S+) (\S+)/.exec(answer)!;
	const connected = await client.request('connectTransport', {
		transportId: t.transportId,
		dtlsParameters: { role: 'client', fingerprints: [{ algorithm: m[1] as 'sha-256', value: m[2]! }] },
	});
	if (!connected.ok) throw new Error(`connectTransport recv: ${connected.error.code}`);
	for (const c of consumers) {
		const resumed = await client.request('resumeConsumer', { consumerId: c.consumerId });
		if (!resumed.ok) throw new Error(`resumeConsumer: ${resumed.error.code}`);
	}
	for (let i = 0; i < 100 && pc.connectionState !== 'connected'; i++) await sleep(20);
	return {
		transportId: t.transportId,
		consumers,
		packets,
		from: (producerId) => packets.filter((p) => p.producerId === producerId),
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
