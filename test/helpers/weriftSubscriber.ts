// A listening peer without a browser: werift receives one consumer of a Parley channel
// through the real signaling protocol (createTransport recv, newConsumer, connectTransport,
// resumeConsumer) over ICE + DTLS + SRTP, and counts the RTP packets that arrive.
import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import type { TransportInfo } from '../../protocol/messages.js';
import type { TestSignalingClient } from '../../testkit/signalingClient.js';

export interface WeriftSubscriber {
	consumerId: string;
	transportId: string;
	/** RTP packets received so far. */
	readonly packetsReceived: number;
	close(): Promise<void>;
}

/** Creates the receive transport and takes the first consumer it is offered (a producer must exist). */
export async function subscribeWithWerift(client: TestSignalingClient): Promise<WeriftSubscriber> {
	const reply = await client.request('createTransport', { direction: 'recv' });
	if (!reply.ok) throw new Error(`createTransport: ${reply.error.code}`);
	const t: TransportInfo = reply.data;
	const consumer = await client.waitFor('newConsumer');
	const codec = consumer.rtpParameters.codecs[0]!;
	const pt = codec.payloadType;
	const pc = new RTCPeerConnection({
		iceServers: [],
		iceUseIpv6: false,
		iceInterfaceAddresses: { udp4: '127.0.0.1' },
		iceAdditionalHostAddresses: ['127.0.0.1'],
		codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: pt })], video: [] },
		headerExtensions: { audio: [], video: [] },
	});
	let packetsReceived = 0;
	pc.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => packetsReceived++));
	const cand = t.iceCandidates.find((c) => c.protocol === 'udp')!;
	const fp = t.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256')!;
	const ssrc = consumer.rtpParameters.encodings![0]!.ssrc;
	await pc.setRemoteDescription({
		type: 'offer',
		sdp: [
			'v=0', 'o=- 2 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=ice-lite', 'a=msid-semantic: WMS *',
			`m=audio ${cand.port} UDP/TLS/RTP/SAVPF ${pt}`, 'c=IN IP4 127.0.0.1', 'a=rtcp-mux',
			`a=ice-ufrag:${t.iceParameters.usernameFragment}`, `a=ice-pwd:${t.iceParameters.password}`,
			`a=fingerprint:sha-256 ${fp.value}`,
			`a=candidate:${cand.foundation} 1 udp ${cand.priority} ${cand.address} ${cand.port} typ host`, 'a=end-of-candidates',
			'a=mid:0', 'a=sendonly', 'a=setup:actpass', `a=rtpmap:${pt} opus/48000/2`,
			`a=ssrc:${ssrc} cname:${consumer.rtpParameters.rtcp?.cname ?? 'parley'}`, 'a=msid:s0 t0', '',
		].join('\r\n'),
	});
	await pc.setLocalDescription(await pc.createAnswer());
	const answerFp = /a=fingerprint:(\S+) (\S+)/.exec(pc.localDescription!.sdp)!;
	const connected = await client.request('connectTransport', {
		transportId: t.transportId,
		dtlsParameters: { role: 'client', fingerprints: [{ algorithm: answerFp[1] as 'sha-256', value: answerFp[2]! }] },
	});
	if (!connected.ok) throw new Error(`connectTransport: ${connected.error.code}`);
	const resumed = await client.request('resumeConsumer', { consumerId: consumer.consumerId });
	if (!resumed.ok) throw new Error(`resumeConsumer: ${resumed.error.code}`);
	for (let i = 0; i < 100 && pc.connectionState !== 'connected'; i++) await new Promise((r) => setTimeout(r, 50));
	if (pc.connectionState !== 'connected') throw new Error(`werift subscriber did not connect (${pc.connectionState})`);
	return {
		consumerId: consumer.consumerId,
		transportId: t.transportId,
		get packetsReceived() {
			return packetsReceived;
		},
		close: () => pc.close(),
	};
}
