// A real WebRTC session against a Parley worker: werift (a pure-TypeScript WebRTC peer)
// publishes a 1 kHz Opus tone over ICE + DTLS + SRTP to a WebRtcTransport on the pool's
// WebRtcServer; a second werift peer receives it from a Consumer over DTLS + SRTP, decodes
// it and must hear 1 kHz. This is the path an offline worker build most likely breaks
// (the DTLS BIO fix, libsrtp2), which a PlainTransport test would not exercise.
import type { types as ms } from 'mediasoup';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket } from 'werift';
import { ROUTER_MEDIA_CODECS } from '../server/media/mediaCodecs.js';
import { WorkerPool } from '../server/media/WorkerPool.js';
import { workerPoolOptions } from '../server/media/workerSettings.js';
import { decodeToMono, dominantFrequency, encodeTone, rms } from './helpers/audio.js';
import { testConfig } from './helpers/config.js';
import { testLogger } from './helpers/logger.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!cond() && Date.now() < deadline) await sleep(20);
}

function peer(payloadType: number): RTCPeerConnection {
	return new RTCPeerConnection({
		iceServers: [],
		iceUseIpv6: false,
		iceInterfaceAddresses: { udp4: '127.0.0.1' },
		iceAdditionalHostAddresses: ['127.0.0.1'],
		codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType })], video: [] },
		headerExtensions: { audio: [], video: [] },
	});
}

function udpCandidate(transport: ms.WebRtcTransport): ms.IceCandidate {
	const cand = transport.iceCandidates.find((c) => c.protocol === 'udp');
	if (!cand) throw new Error('no UDP ICE candidate');
	return cand;
}

function mediasoupSdpLines(transport: ms.WebRtcTransport): string[] {
	const ice = transport.iceParameters;
	const cand = udpCandidate(transport);
	const fp = transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256')!;
	return [
		'c=IN IP4 127.0.0.1',
		'a=rtcp-mux',
		`a=ice-ufrag:${ice.usernameFragment}`,
		`a=ice-pwd:${ice.password}`,
		`a=fingerprint:sha-256 ${fp.value}`,
		`a=candidate:${cand.foundation} 1 udp ${cand.priority} ${cand.address} ${cand.port} typ host`,
		'a=end-of-candidates',
	];
}

function fingerprintOf(sdp: string): ms.DtlsFingerprint {
	const m = /a=fingerprint:(\S+) (\S+)/.exec(sdp);
	if (!m) throw new Error('no fingerprint in SDP');
	return { algorithm: m[1] as ms.FingerprintAlgorithm, value: m[2]! };
}

describe('real WebRTC (ICE + DTLS + SRTP) through a Parley worker', () => {
	let pool: WorkerPool;
	const peers: RTCPeerConnection[] = [];

	beforeEach(async () => {
		pool = await WorkerPool.create(workerPoolOptions(await testConfig()), testLogger());
	});

	afterEach(async () => {
		await Promise.all(peers.splice(0).map((p) => p.close()));
		await pool.close();
	});

	it('carries an Opus tone from a publishing peer to a listening peer', async () => {
		const router = await pool.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS });
		const webRtcServer = pool.webRtcServerFor(router);

		// Publisher: werift offers sendonly; mediasoup answers (ICE-lite, DTLS server).
		const sendTransport = await router.createWebRtcTransport({ webRtcServer });
		expect(udpCandidate(sendTransport).port).toBe(pool.info()[0]!.rtcPort);
		const pub = peer(111);
		peers.push(pub);
		const track = new MediaStreamTrack({ kind: 'audio' });
		pub.addTransceiver(track, { direction: 'sendonly' });
		await pub.setLocalDescription(await pub.createOffer());
		await until(() => pub.iceGatheringState === 'complete', 5000);
		const offer = pub.localDescription!.sdp;
		const mid = /a=mid:(\S+)/.exec(offer)![1]!;
		const ssrc = Number(/a=ssrc:(\d+) /.exec(offer)![1]);
		await sendTransport.connect({ dtlsParameters: { role: 'client', fingerprints: [fingerprintOf(offer)] } });
		const producer = await sendTransport.produce({
			kind: 'audio',
			rtpParameters: { mid, codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }], encodings: [{ ssrc }] },
		});
		await pub.setRemoteDescription({
			type: 'answer',
			sdp: [
				'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', `a=group:BUNDLE ${mid}`, 'a=ice-lite',
				`m=audio ${udpCandidate(sendTransport).port} UDP/TLS/RTP/SAVPF 111`,
				...mediasoupSdpLines(sendTransport),
				`a=mid:${mid}`, 'a=recvonly', 'a=setup:passive', 'a=rtpmap:111 opus/48000/2', '',
			].join('\r\n'),
		});

		// Listener: mediasoup offers its Consumer sendonly; werift answers and is DTLS client.
		const recvTransport = await router.createWebRtcTransport({ webRtcServer });
		const consumer = await recvTransport.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities, paused: false });
		const pt = consumer.rtpParameters.codecs[0]!.payloadType;
		const sub = peer(pt);
		peers.push(sub);
		const received: { seq: number; payload: Buffer }[] = [];
		sub.onTrack.subscribe((t) => t.onReceiveRtp.subscribe((rtp) => received.push({ seq: rtp.header.sequenceNumber, payload: rtp.payload })));
		await sub.setRemoteDescription({
			type: 'offer',
			sdp: [
				'v=0', 'o=- 2 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=ice-lite', 'a=msid-semantic: WMS *',
				`m=audio ${udpCandidate(recvTransport).port} UDP/TLS/RTP/SAVPF ${pt}`,
				...mediasoupSdpLines(recvTransport),
				'a=mid:0', 'a=sendonly', 'a=setup:actpass', `a=rtpmap:${pt} opus/48000/2`,
				`a=ssrc:${consumer.rtpParameters.encodings![0]!.ssrc} cname:${consumer.rtpParameters.rtcp!.cname}`, 'a=msid:s0 t0', '',
			].join('\r\n'),
		});
		await sub.setLocalDescription(await sub.createAnswer());
		await recvTransport.connect({ dtlsParameters: { role: 'client', fingerprints: [fingerprintOf(sub.localDescription!.sdp)] } });

		await until(() => sendTransport.dtlsState === 'connected' && recvTransport.dtlsState === 'connected', 10_000);
		expect(sendTransport.dtlsState).toBe('connected');
		expect(recvTransport.dtlsState).toBe('connected');
		expect(['connected', 'completed']).toContain(sendTransport.iceState);

		// One second of a 1 kHz tone, paced at 20 ms like a real microphone.
		const frames = encodeTone(1000, 50);
		for (let i = 0; i < frames.length; i++) {
			const header = new RtpHeader({ payloadType: 111, sequenceNumber: 1000 + i, timestamp: 960 * i, ssrc, marker: i === 0 });
			track.writeRtp(new RtpPacket(header, Buffer.from(frames[i]!)));
			await sleep(20);
		}
		await until(() => received.length >= frames.length, 3000);

		// Loopback loses nothing: every frame arrives, in order, byte for byte.
		expect(received.length).toBe(frames.length);
		received.forEach((r, i) => expect(Buffer.compare(r.payload, Buffer.from(frames[i]!)), `frame ${i}`).toBe(0));
		const audio = decodeToMono(received.map((r) => r.payload));
		expect(audio.length).toBe(50 * 960);
		// Skip the codec's first 100 ms (start-up), then the tone must be there and be 1 kHz.
		const steady = audio.subarray(4800);
		expect(rms(steady)).toBeGreaterThan(0.1);
		expect(Math.abs(dominantFrequency(steady) - 1000)).toBeLessThanOrEqual(10);

		const [producerStats] = await producer.getStats();
		expect(producerStats!.packetCount).toBe(frames.length);
		const [consumerTransportStats] = await recvTransport.getStats();
		expect(consumerTransportStats!.bytesSent).toBeGreaterThan(0);

		sendTransport.close();
		recvTransport.close();
		router.close();
		expect(pool.info()[0]).toMatchObject({ routers: 0, transports: 0, producers: 0, consumers: 0 });
	});
});
