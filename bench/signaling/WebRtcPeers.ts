// WebRTC peers in Node (werift: ICE + DTLS + SRTP in TypeScript) that use Parley through its
// real signaling protocol, for the join figures: a publisher that streams Opus into a channel,
// and a listener that joins, receives its consumer and notes when the first audio packet
// arrives.
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket } from 'werift';
import type { RequestData, TransportInfo } from '../../server/signaling/protocol.js';
import { TestSignalingClient } from '../../test/helpers/signalingClient.js';
import { FRAME_MS, FRAME_SAMPLES } from '../audio/speech.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function peerConnection(payloadType: number, fmtp?: string): RTCPeerConnection {
	return new RTCPeerConnection({
		iceServers: [],
		iceUseIpv6: false,
		iceInterfaceAddresses: { udp4: '127.0.0.1' },
		iceAdditionalHostAddresses: ['127.0.0.1'],
		codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType, ...(fmtp ? { parameters: fmtp } : {}) })], video: [] },
		headerExtensions: { audio: [], video: [] },
	});
}

function serverSdpLines(t: TransportInfo): string[] {
	const cand = t.iceCandidates.find((c) => c.protocol === 'udp');
	if (!cand) throw new Error('no UDP ICE candidate');
	const fp = t.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256')!;
	return [
		'c=IN IP4 127.0.0.1',
		'a=rtcp-mux',
		`a=ice-ufrag:${t.iceParameters.usernameFragment}`,
		`a=ice-pwd:${t.iceParameters.password}`,
		`a=fingerprint:sha-256 ${fp.value}`,
		`a=candidate:${cand.foundation} 1 udp ${cand.priority} ${cand.address} ${cand.port} typ host`,
		'a=end-of-candidates',
	];
}

function fingerprintOf(sdp: string): { algorithm: 'sha-256'; value: string } {
	const m = /a=fingerprint:(\S+) (\S+)/.exec(sdp);
	if (!m) throw new Error('no fingerprint in SDP');
	return { algorithm: m[1] as 'sha-256', value: m[2]! };
}

async function ok<T>(reply: Promise<{ ok: true; data: T } | { ok: false; error: { code: string; message: string } }>, what: string): Promise<T> {
	const r = await reply;
	if (!r.ok) throw new Error(`${what}: ${r.error.code} ${r.error.message}`);
	return r.data;
}

/** Connects, joins `channel` (with the router's capabilities as its own). */
export async function connectAndJoin(url: string, channel: string): Promise<TestSignalingClient> {
	const { client } = await TestSignalingClient.connect(url);
	const caps = await ok(client.request('getRouterRtpCapabilities', {}), 'getRouterRtpCapabilities');
	await ok(client.request('join', { channel, rtpCapabilities: caps.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] }), 'join');
	return client;
}

export class WebRtcPublisher {
	readonly client: TestSignalingClient;
	readonly #pc: RTCPeerConnection;
	readonly #track: MediaStreamTrack;
	readonly #ssrc: number;
	readonly #frames: Uint8Array[];
	#timer: NodeJS.Timeout | undefined;
	#i = 0;

	private constructor(client: TestSignalingClient, pc: RTCPeerConnection, track: MediaStreamTrack, ssrc: number, frames: Uint8Array[]) {
		this.client = client;
		this.#pc = pc;
		this.#track = track;
		this.#ssrc = ssrc;
		this.#frames = frames;
	}

	/** Joins `channel`, publishes, and streams `frames` (looped) every 20 ms until close(). */
	static async start(url: string, channel: string, frames: Uint8Array[]): Promise<WebRtcPublisher> {
		const client = await connectAndJoin(url, channel);
		const t = await ok(client.request('createTransport', { direction: 'send' }), 'createTransport');
		const pc = peerConnection(111, 'useinbandfec=1');
		const track = new MediaStreamTrack({ kind: 'audio' });
		pc.addTransceiver(track, { direction: 'sendonly' });
		await pc.setLocalDescription(await pc.createOffer());
		for (let i = 0; i < 50 && pc.iceGatheringState !== 'complete'; i++) await sleep(100);
		const offer = pc.localDescription!.sdp;
		const mid = /a=mid:(\S+)/.exec(offer)![1]!;
		const ssrc = Number(/a=ssrc:(\d+) /.exec(offer)![1]);
		await ok(client.request('connectTransport', { transportId: t.transportId, dtlsParameters: { role: 'client', fingerprints: [fingerprintOf(offer)] } }), 'connectTransport');
		await ok(
			client.request('produce', {
				transportId: t.transportId,
				kind: 'audio',
				rtpParameters: { mid, codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } }], encodings: [{ ssrc }] },
			}),
			'produce',
		);
		const cand = t.iceCandidates.find((c) => c.protocol === 'udp')!;
		await pc.setRemoteDescription({
			type: 'answer',
			sdp: [
				'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', `a=group:BUNDLE ${mid}`, 'a=ice-lite',
				`m=audio ${cand.port} UDP/TLS/RTP/SAVPF 111`, ...serverSdpLines(t), 'a=setup:passive',
				`a=mid:${mid}`, 'a=recvonly', 'a=rtpmap:111 opus/48000/2', 'a=fmtp:111 useinbandfec=1', '',
			].join('\r\n'),
		});
		for (let i = 0; i < 100 && pc.connectionState !== 'connected'; i++) await sleep(50);
		if (pc.connectionState !== 'connected') throw new Error(`werift publisher did not connect (${pc.connectionState})`);
		const publisher = new WebRtcPublisher(client, pc, track, ssrc, frames);
		publisher.#timer = setInterval(() => publisher.#send(), FRAME_MS);
		return publisher;
	}

	#send(): void {
		const i = this.#i++;
		const header = new RtpHeader({ payloadType: 111, sequenceNumber: i & 0xffff, timestamp: (i * FRAME_SAMPLES) >>> 0, ssrc: this.#ssrc, marker: i === 0 });
		this.#track.writeRtp(new RtpPacket(header, Buffer.from(this.#frames[i % this.#frames.length]!)));
	}

	async close(): Promise<void> {
		clearInterval(this.#timer);
		this.client.close();
		await this.#pc.close();
	}
}

export interface ListenerTimings {
	/** From starting to open the WebSocket, in ms. */
	welcomeMs: number;
	joinedMs: number;
	firstAudioMs: number;
}

/** A listener that joins and waits for the first audio packet; resolves with its timings. */
export async function listenOnce(url: string, channel: string, timeoutMs = 15_000): Promise<{ timings: ListenerTimings; close: () => Promise<void> }> {
	const t0 = performance.now();
	const { client } = await TestSignalingClient.connect(url);
	const welcomeMs = performance.now() - t0;
	let pc: RTCPeerConnection | undefined;
	const close = async (): Promise<void> => {
		client.close();
		await pc?.close();
	};
	try {
		const caps = await ok(client.request('getRouterRtpCapabilities', {}), 'getRouterRtpCapabilities');
		await ok(client.request('join', { channel, rtpCapabilities: caps.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] }), 'join');
		const joinedMs = performance.now() - t0;
		const t = await ok(client.request('createTransport', { direction: 'recv' }), 'createTransport');
		const consumer = await client.waitFor('newConsumer', () => true, timeoutMs);
		const pt = consumer.rtpParameters.codecs[0]!.payloadType;
		pc = peerConnection(pt);
		let firstAudioAt = 0;
		const gotAudio = new Promise<void>((resolve) => {
			pc!.onTrack.subscribe((track) =>
				track.onReceiveRtp.subscribe(() => {
					if (!firstAudioAt) {
						firstAudioAt = performance.now();
						resolve();
					}
				}),
			);
		});
		const ssrc = consumer.rtpParameters.encodings![0]!.ssrc;
		await pc.setRemoteDescription({
			type: 'offer',
			sdp: [
				'v=0', 'o=- 2 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=ice-lite', 'a=msid-semantic: WMS *',
				`m=audio ${t.iceCandidates.find((c) => c.protocol === 'udp')!.port} UDP/TLS/RTP/SAVPF ${pt}`, ...serverSdpLines(t),
				'a=mid:0', 'a=sendonly', 'a=setup:actpass', `a=rtpmap:${pt} opus/48000/2`,
				`a=ssrc:${ssrc} cname:${consumer.rtpParameters.rtcp?.cname ?? 'parley'}`, 'a=msid:s0 t0', '',
			].join('\r\n'),
		});
		await pc.setLocalDescription(await pc.createAnswer());
		await ok(client.request('connectTransport', { transportId: t.transportId, dtlsParameters: { role: 'client', fingerprints: [fingerprintOf(pc.localDescription!.sdp)] } }), 'connectTransport');
		await ok(client.request('resumeConsumer', { consumerId: consumer.consumerId }), 'resumeConsumer');
		let timer: NodeJS.Timeout | undefined;
		await Promise.race([
			gotAudio,
			new Promise((_, reject) => {
				timer = setTimeout(() => reject(new Error('no audio packet in time')), timeoutMs);
			}),
		]).finally(() => clearTimeout(timer));
		return { timings: { welcomeMs, joinedMs, firstAudioMs: firstAudioAt - t0 }, close };
	} catch (err) {
		await close();
		throw err;
	}
}
