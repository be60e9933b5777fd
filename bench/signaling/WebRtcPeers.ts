// WebRTC peers in Node (werift: ICE + DTLS + SRTP in TypeScript) that use Parley through its
// real signaling protocol, for the join figures: a publisher that streams Opus into a channel,
// and a listener that joins, receives its consumer and notes when the first audio packet
// arrives.
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket } from 'werift';
import type { Notifications, RequestData, TransportInfo } from '../../protocol/messages.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { FRAME_SAMPLES } from '../audio/speech.js';

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

/** Connects, joins `channel` (with the router's capabilities as its own); notes when the
 * welcome and the join reply arrived (performance.now()). */
export async function connectAndJoin(url: string, channel: string): Promise<{ client: TestSignalingClient; welcomeAt: number; joinedAt: number }> {
	const { client } = await TestSignalingClient.connect(url);
	const welcomeAt = performance.now();
	try {
		const caps = await ok(client.request('getRouterRtpCapabilities', {}), 'getRouterRtpCapabilities');
		await ok(client.request('join', { channel, rtpCapabilities: caps.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] }), 'join');
	} catch (err) {
		client.close();
		throw err;
	}
	return { client, welcomeAt, joinedAt: performance.now() };
}

/**
 * A WebRTC publisher through signaling. It sends one frame per `sendNext()` (drive it with a
 * FramePacer), stamps each frame's send instant, and implements StreamSource so listeners
 * can turn an arriving RTP timestamp back into a send time.
 */
export class WebRtcPublisher {
	readonly client: TestSignalingClient;
	readonly producerId: string;
	readonly #pc: RTCPeerConnection;
	readonly #track: MediaStreamTrack;
	readonly #ssrc: number;
	readonly #frames: Uint8Array[];
	readonly #sendTimes = new Float64Array(1 << 15);
	readonly #sendFrame = new Int32Array(1 << 15).fill(-1);
	#i = 0;

	private constructor(client: TestSignalingClient, producerId: string, pc: RTCPeerConnection, track: MediaStreamTrack, ssrc: number, frames: Uint8Array[]) {
		this.client = client;
		this.producerId = producerId;
		this.#pc = pc;
		this.#track = track;
		this.#ssrc = ssrc;
		this.#frames = frames;
	}

	/** Joins `channel` and publishes; sends nothing until sendNext() is called. */
	static async start(url: string, channel: string, frames: Uint8Array[]): Promise<WebRtcPublisher> {
		const { client } = await connectAndJoin(url, channel);
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
		const { producerId } = await ok(
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
		return new WebRtcPublisher(client, producerId, pc, track, ssrc, frames);
	}

	/** Frames sent so far. */
	get sent(): number {
		return this.#i;
	}

	sendNext(): void {
		const i = this.#i++;
		const header = new RtpHeader({ payloadType: 111, sequenceNumber: i & 0xffff, timestamp: (i * FRAME_SAMPLES) >>> 0, ssrc: this.#ssrc, marker: i === 0 });
		const slot = i % this.#sendTimes.length;
		this.#sendFrame[slot] = i;
		this.#sendTimes[slot] = performance.now();
		this.#track.writeRtp(new RtpPacket(header, Buffer.from(this.#frames[i % this.#frames.length]!)));
	}

	frameIndexOf(timestamp: number): number {
		return (timestamp >>> 0) / FRAME_SAMPLES;
	}

	sendTimeOf(i: number): number | undefined {
		const slot = i % this.#sendTimes.length;
		return i >= 0 && this.#sendFrame[slot] === i ? this.#sendTimes[slot] : undefined;
	}

	async close(): Promise<void> {
		this.client.close();
		await this.#pc.close();
	}
}

/** The parts of werift's dgram socket the bench uses. */
interface ListenerSocket {
	address(): { port: number };
	setRecvBufferSize(n: number): void;
	removeAllListeners(event: 'message'): void;
	on(event: 'message', listener: (msg: Buffer) => void): void;
	_handle?: { recvStop?: () => number };
}

export interface ListenerConsumer {
	consumerId: string;
	producerId: string;
	ssrc: number;
}

/**
 * A WebRTC listener through signaling: joins, creates its receive transport, waits for one
 * consumer per expected producer, answers an offer with one audio section per consumer
 * (BUNDLE), connects DTLS, resumes every consumer. `firstAudio` resolves at the first packet.
 */
export class WebRtcListener {
	readonly client: TestSignalingClient;
	readonly consumers: ListenerConsumer[];
	readonly firstAudio: Promise<number>;
	/** performance.now() when the welcome and the join reply arrived. */
	readonly welcomeAt: number;
	readonly joinedAt: number;
	readonly #pc: RTCPeerConnection;

	private constructor(joined: { client: TestSignalingClient; welcomeAt: number; joinedAt: number }, pc: RTCPeerConnection, consumers: ListenerConsumer[]) {
		this.client = joined.client;
		this.welcomeAt = joined.welcomeAt;
		this.joinedAt = joined.joinedAt;
		this.#pc = pc;
		this.consumers = consumers;
		this.firstAudio = new Promise((resolve) => {
			let first = 0;
			pc.onTrack.subscribe((track) =>
				track.onReceiveRtp.subscribe((rtp) => {
					const at = performance.now();
					if (!first) resolve((first = at));
				}),
			);
		});
	}

	static async join(url: string, channel: string, expectedConsumers: number, timeoutMs = 15_000): Promise<WebRtcListener> {
		const joined = await connectAndJoin(url, channel);
		const client = joined.client;
		let pc: RTCPeerConnection | undefined;
		try {
			const t = await ok(client.request('createTransport', { direction: 'recv' }), 'createTransport');
			await client.until(() => client.notifications.filter((n) => n.method === 'newConsumer').length >= expectedConsumers, timeoutMs, `${expectedConsumers} consumers`);
			const offered = client.notifications.filter((n) => n.method === 'newConsumer').map((n) => n.data as Notifications['newConsumer']);
			const pt = offered[0]!.rtpParameters.codecs[0]!.payloadType;
			pc = peerConnection(pt);
			const listener = new WebRtcListener(
				joined,
				pc,
				offered.map((c) => ({ consumerId: c.consumerId, producerId: c.producerId, ssrc: c.rtpParameters.encodings![0]!.ssrc! })),
			);
			const port = t.iceCandidates.find((c) => c.protocol === 'udp')!.port;
			const mids = offered.map((c, i) => c.rtpParameters.mid ?? String(i));
			const sections = offered.flatMap((c, i) => [
				`m=audio ${port} UDP/TLS/RTP/SAVPF ${pt}`, ...serverSdpLines(t),
				`a=mid:${mids[i]}`, 'a=sendonly', 'a=setup:actpass', `a=rtpmap:${pt} opus/48000/2`,
				`a=ssrc:${c.rtpParameters.encodings![0]!.ssrc} cname:${c.rtpParameters.rtcp?.cname ?? 'parley'}`, `a=msid:s${i} t${i}`,
			]);
			await pc.setRemoteDescription({
				type: 'offer',
				sdp: ['v=0', 'o=- 2 2 IN IP4 127.0.0.1', 's=-', 't=0 0', `a=group:BUNDLE ${mids.join(' ')}`, 'a=ice-lite', 'a=msid-semantic: WMS *', ...sections, ''].join('\r\n'),
			});
			await pc.setLocalDescription(await pc.createAnswer());
			await ok(client.request('connectTransport', { transportId: t.transportId, dtlsParameters: { role: 'client', fingerprints: [fingerprintOf(pc.localDescription!.sdp)] } }), 'connectTransport');
			for (const c of offered) await ok(client.request('resumeConsumer', { consumerId: c.consumerId }), 'resumeConsumer');
			return listener;
		} catch (err) {
			client.close();
			await pc?.close();
			throw err;
		}
	}

	/** Resolves once ICE and DTLS are up (media can flow as soon as a publisher sends). */
	async connected(timeoutMs = 10_000): Promise<void> {
		const deadline = performance.now() + timeoutMs;
		while (this.#pc.connectionState !== 'connected') {
			if (performance.now() > deadline) throw new Error(`WebRTC listener did not connect (${this.#pc.connectionState})`);
			await sleep(20);
		}
	}

	/** The UDP socket of the nominated ICE pair (werift internals, checked at runtime). */
	#socket(): ListenerSocket {
		const connection = (this.#pc.iceTransports[0] as unknown as { connection?: { nominated?: { protocol?: { transport?: { socket?: ListenerSocket } } } } } | undefined)?.connection;
		const socket = connection?.nominated?.protocol?.transport?.socket;
		if (!socket) throw new Error("werift changed: cannot find the nominated pair's UDP socket");
		return socket;
	}

	/**
	 * Takes the socket over from werift: every RTP packet is reported (SSRC, RTP timestamp,
	 * arrival instant) straight from the wire (SRTP leaves the header in clear), and werift
	 * no longer decrypts or answers anything. The latency figure then excludes werift's
	 * JavaScript SRTP, which a browser does natively in microseconds. ICE consent lapses
	 * after ~30 s, longer than a measuring step.
	 */
	tap(handler: (ssrc: number, timestamp: number, atMs: number) => void): void {
		const socket = this.#socket();
		socket.removeAllListeners('message');
		socket.on('message', (msg: Buffer) => {
			const at = performance.now();
			// RFC 7983: RTP/RTCP first bytes are 128-191; RTCP packet types are 192-223.
			if (msg.length < 12 || msg[0]! < 128 || msg[0]! > 191 || (msg[1]! >= 192 && msg[1]! <= 223)) return;
			handler(msg.readUInt32BE(8), msg.readUInt32BE(4), at);
		});
	}

	/**
	 * Stops reading the socket without telling anyone: mediasoup keeps sending (werift keeps
	 * sending ICE consent checks, so for ~30 s nothing notices), the kernel drops what arrives
	 * and counts it in /proc/net/udp. Returns the socket's port for that count.
	 */
	silence(): number {
		const socket = this.#socket();
		const muted = process.noDeprecation;
		process.noDeprecation = true;
		try {
			if (typeof socket._handle?.recvStop !== 'function') throw new Error('cannot stop reading a dgram socket on this Node version');
			socket._handle.recvStop();
		} finally {
			process.noDeprecation = muted;
		}
		// The smallest buffer fills at once, so drops count every arrival from now on.
		socket.setRecvBufferSize(1);
		return socket.address().port;
	}

	async close(): Promise<void> {
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

/** A listener that joins a channel with one publisher and waits for the first audio packet. */
export async function listenOnce(url: string, channel: string, timeoutMs = 15_000): Promise<{ timings: ListenerTimings; close: () => Promise<void> }> {
	const t0 = performance.now();
	const listener = await WebRtcListener.join(url, channel, 1, timeoutMs);
	let timer: NodeJS.Timeout | undefined;
	try {
		const firstAudioAt = await Promise.race([
			listener.firstAudio,
			new Promise<number>((_, reject) => {
				timer = setTimeout(() => reject(new Error('no audio packet in time')), timeoutMs);
			}),
		]);
		return {
			timings: { welcomeMs: listener.welcomeAt - t0, joinedMs: listener.joinedAt - t0, firstAudioMs: firstAudioAt - t0 },
			close: () => listener.close(),
		};
	} catch (err) {
		await listener.close();
		throw err;
	} finally {
		clearTimeout(timer);
	}
}
