// A listening peer without a browser: werift receives the consumers of a Parley receive
// transport over ICE + DTLS + SRTP (the server offers, werift answers as DTLS client) and
// records when each packet arrived. Pairs with weriftPublisher.ts. The bench also times
// packets straight off the socket (tap) or lets the kernel drop them (silence).
import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import type { Notifications, TransportInfo } from '../protocol/messages.js';
import type { TestSignalingClient } from './signalingClient.js';
import { skipStunGathering } from './weriftInternals.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type NewConsumer = Notifications['newConsumer'];

export interface ReceivedPacket {
	/** performance.now() at arrival. */
	atMs: number;
	producerId: string;
	seq: number;
	payload: Buffer;
}

/** performance.now() at each step of the listener's set-up (the bench's join phases). */
export interface ListenerSetupTimes {
	/** The receive transport's parameters were at hand (createTransport reply, or given). */
	transportAt: number;
	/** The expected consumers were announced (newConsumer). */
	consumersAt: number;
	/** werift's answer is set (its ICE agent starts checking). */
	answerAt: number;
	/** The connectTransport reply. */
	connectRepliedAt: number;
	/** The last resumeConsumer reply. */
	resumedAt: number;
	/** ICE, then ICE + DTLS (the peer connection's state), once reached. */
	iceConnectedAt?: number;
	dtlsConnectedAt?: number;
}

export interface WeriftListener {
	transportId: string;
	times: ListenerSetupTimes;
	consumers: NewConsumer[];
	packets: ReceivedPacket[];
	/** RTP packets received so far, from any consumer. */
	readonly packetsReceived: number;
	/** performance.now() at the first RTP packet. */
	firstAudio: Promise<number>;
	/** Packets from one producer. */
	from(producerId: string): ReceivedPacket[];
	/** Resolves once ICE and DTLS are up; rejects after `timeoutMs`. */
	connected(timeoutMs?: number): Promise<void>;
	/**
	 * Takes the socket over from werift: every RTP packet is reported (SSRC, RTP timestamp,
	 * arrival instant) straight from the wire (SRTP leaves the header in clear), and werift
	 * no longer decrypts or answers anything (`packets` stop growing). The latency figure then
	 * excludes werift's JavaScript SRTP, which a browser does natively in microseconds. ICE
	 * consent lapses after ~30 s, longer than a measuring step.
	 */
	tap(handler: (ssrc: number, timestamp: number, atMs: number) => void): void;
	/**
	 * Stops reading the socket without telling anyone: mediasoup keeps sending (werift keeps
	 * sending ICE consent checks, so for ~30 s nothing notices), the kernel drops what arrives
	 * and counts it in /proc/net/udp. Returns the socket's port for that count.
	 */
	silence(): number;
	close(): Promise<void>;
}

/** The parts of werift's dgram socket that tap() and silence() use. */
interface ListenerSocket {
	address(): { port: number };
	setRecvBufferSize(n: number): void;
	removeAllListeners(event: 'message'): void;
	on(event: 'message', listener: (msg: Buffer) => void): void;
	_handle?: { recvStop?: () => number };
}

/**
 * Creates the receive transport, waits until `expectedProducers` consumers are announced
 * (newConsumer; consumers already announced before the call count too when `since` says
 * from where to look), then connects and resumes them. Waits a little for ICE + DTLS but
 * does not insist: call connected() to.
 */
export async function listenWithWerift(
	client: TestSignalingClient,
	expectedProducers: number,
	/**
	 * iceFirst: connectTransport only once ICE is up (mediasoup-client does it the other way round).
	 * transport: the receive transport the join reply already carried (no createTransport then).
	 */
	options: { since?: number; timeoutMs?: number; iceFirst?: boolean; transport?: TransportInfo } = {},
): Promise<WeriftListener> {
	const since = options.since ?? client.notifications.length;
	let t: TransportInfo;
	if (options.transport) t = options.transport;
	else {
		const reply = await client.request('createTransport', { direction: 'recv' });
		if (!reply.ok) throw new Error(`createTransport recv: ${reply.error.code}`);
		t = reply.data;
	}
	const transportAt = performance.now();
	const announced = () => client.notifications.slice(since).filter((n) => n.method === 'newConsumer').map((n) => n.data as NewConsumer);
	await client.until(() => announced().length >= expectedProducers, options.timeoutMs ?? 5000, `${expectedProducers} newConsumer`);
	const consumers = announced().slice(0, expectedProducers);
	const consumersAt = performance.now();
	const pt = consumers[0]!.rtpParameters.codecs[0]!.payloadType;
	const pc = new RTCPeerConnection({
		iceServers: [],
		iceUseIpv6: false,
		iceInterfaceAddresses: { udp4: '127.0.0.1' },
		iceAdditionalHostAddresses: ['127.0.0.1'],
		codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: pt })], video: [] },
		headerExtensions: { audio: [], video: [] },
	});
	const times: ListenerSetupTimes = { transportAt, consumersAt, answerAt: NaN, connectRepliedAt: NaN, resumedAt: NaN };
	pc.iceConnectionStateChange.subscribe((state) => {
		if ((state === 'connected' || state === 'completed') && times.iceConnectedAt === undefined) times.iceConnectedAt = performance.now();
	});
	pc.connectionStateChange.subscribe((state) => {
		if (state === 'connected' && times.dtlsConnectedAt === undefined) times.dtlsConnectedAt = performance.now();
	});
	try {
		const packets: ReceivedPacket[] = [];
		let packetsReceived = 0;
		let firstAudioAt: (atMs: number) => void = () => {};
		const firstAudio = new Promise<number>((resolve) => (firstAudioAt = resolve));
		const producerBySsrc = new Map(consumers.map((c) => [c.rtpParameters.encodings![0]!.ssrc!, c.producerId]));
		pc.onTrack.subscribe((track) =>
			track.onReceiveRtp.subscribe((rtp) => {
				const atMs = performance.now();
				if (packetsReceived++ === 0) firstAudioAt(atMs);
				const producerId = producerBySsrc.get(rtp.header.ssrc);
				if (producerId) packets.push({ atMs, producerId, seq: rtp.header.sequenceNumber, payload: rtp.payload });
			}),
		);
		const cand = t.iceCandidates.find((c) => c.protocol === 'udp');
		if (!cand) throw new Error('no UDP ICE candidate');
		const fp = t.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256')!;
		const mids = consumers.map((c, i) => c.rtpParameters.mid ?? String(i));
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
				`a=mid:${mids[i]}`,
				'a=sendonly',
				'a=setup:actpass',
				`a=rtpmap:${pt} opus/48000/2`,
				`a=ssrc:${c.rtpParameters.encodings![0]!.ssrc} cname:${c.rtpParameters.rtcp?.cname ?? 'parley'}`,
				`a=msid:s${i} t${i}`,
			);
		});
		await pc.setRemoteDescription({ type: 'offer', sdp: [...sdp, ''].join('\r\n') });
		skipStunGathering(pc);
		// werift is the DTLS server here (mediasoup the client): as a DTLS client, werift waits
		// a fixed 100 ms before its ClientHello (RTCDtlsTransport.start in werift), which would
		// be most of a loopback join. The role is werift internals (checked at runtime); the
		// offer's setup:actpass lets either side take it.
		// mediasoup then sends its ClientHello the moment it has both the connect and ICE, and
		// a hello that arrives before werift's DTLS server exists is dropped and waits out
		// mediasoup's 100 ms retransmission timer: so the connect goes out once werift's DTLS
		// transport is 'connecting' (its server is created in the same tick).
		type WeriftDtls = { role: string; state: string; onStateChange: { subscribe(f: (state: string) => void): { unSubscribe(): void } } };
		const dtlsTransports = (pc as unknown as { dtlsTransports?: WeriftDtls[] }).dtlsTransports;
		if (!dtlsTransports?.length || typeof dtlsTransports[0]!.onStateChange?.subscribe !== 'function') {
			throw new Error('werift internals changed: no dtlsTransports with onStateChange on the peer connection');
		}
		const dtls = dtlsTransports[0]!;
		for (const d of dtlsTransports) d.role = 'server';
		// Resolves when werift's DTLS transport leaves 'new', or after 5 s (the connect then goes
		// out anyway, and a failed handshake shows as no connection below).
		const dtlsStarted = new Promise<void>((resolve) => {
			if (dtls.state !== 'new') return resolve();
			const done = (): void => {
				clearTimeout(timer);
				sub.unSubscribe();
				resolve();
			};
			const timer = setTimeout(done, 5000);
			const sub = dtls.onStateChange.subscribe((state) => {
				if (state !== 'new') done();
			});
		});
		await pc.setLocalDescription(await pc.createAnswer());
		const answer = pc.localDescription!.sdp;
		times.answerAt = performance.now();
		if (options.iceFirst) for (let i = 0; i < 100 && pc.iceConnectionState !== 'connected' && pc.iceConnectionState !== 'completed'; i++) await sleep(20);
		const m = /a=fingerprint:(\S+) (\S+)/.exec(answer)!;
		// iceFirst sends the connect after ICE, whatever werift's DTLS does (the case it tests).
		if (!options.iceFirst) await dtlsStarted;
		// The connect and every resume sent together: the server runs them in order, one
		// round trip for all of them.
		const connecting = client.request('connectTransport', {
			transportId: t.transportId,
			dtlsParameters: { role: 'server', fingerprints: [{ algorithm: m[1] as 'sha-256', value: m[2]! }] },
		});
		const resuming = Promise.all(consumers.map((c) => client.request('resumeConsumer', { consumerId: c.consumerId })));
		const connected = await connecting;
		if (!connected.ok) throw new Error(`connectTransport recv: ${connected.error.code}`);
		times.connectRepliedAt = performance.now();
		const refused = (await resuming).find((r) => !r.ok);
		if (refused && !refused.ok) throw new Error(`resumeConsumer: ${refused.error.code}`);
		times.resumedAt = performance.now();
		for (let i = 0; i < 100 && pc.connectionState !== 'connected'; i++) await sleep(20);

		/** The UDP socket of the nominated ICE pair (werift internals, checked at runtime). */
		const socket = (): ListenerSocket => {
			const connection = (pc.iceTransports[0] as unknown as { connection?: { nominated?: { protocol?: { transport?: { socket?: ListenerSocket } } } } } | undefined)?.connection;
			const found = connection?.nominated?.protocol?.transport?.socket;
			if (!found) throw new Error("werift changed: cannot find the nominated pair's UDP socket");
			return found;
		};
		return {
			transportId: t.transportId,
			times,
			consumers,
			packets,
			get packetsReceived() {
				return packetsReceived;
			},
			firstAudio,
			from: (producerId) => packets.filter((p) => p.producerId === producerId),
			async connected(timeoutMs = 10_000) {
				const deadline = performance.now() + timeoutMs;
				while (pc.connectionState !== 'connected') {
					if (performance.now() > deadline) throw new Error(`werift listener did not connect (${pc.connectionState})`);
					await sleep(20);
				}
			},
			tap(handler) {
				const s = socket();
				s.removeAllListeners('message');
				s.on('message', (msg: Buffer) => {
					const at = performance.now();
					// RFC 7983: RTP/RTCP first bytes are 128-191; RTCP packet types are 192-223.
					if (msg.length < 12 || msg[0]! < 128 || msg[0]! > 191 || (msg[1]! >= 192 && msg[1]! <= 223)) return;
					handler(msg.readUInt32BE(8), msg.readUInt32BE(4), at);
				});
			},
			silence() {
				const s = socket();
				const muted = process.noDeprecation;
				process.noDeprecation = true;
				try {
					if (typeof s._handle?.recvStop !== 'function') throw new Error('cannot stop reading a dgram socket on this Node version');
					s._handle.recvStop();
				} finally {
					process.noDeprecation = muted;
				}
				// The smallest buffer fills at once, so drops count every arrival from now on.
				s.setRecvBufferSize(1);
				return s.address().port;
			},
			close: () => pc.close(),
		};
	} catch (err) {
		await pc.close();
		throw err;
	}
}

export interface WeriftSubscriber extends WeriftListener {
	consumerId: string;
}

/** Listens to the channel's one producer (it must exist) and returns once ICE + DTLS are up. */
export async function subscribeWithWerift(client: TestSignalingClient): Promise<WeriftSubscriber> {
	const listener = await listenWithWerift(client, 1);
	try {
		await listener.connected(5000);
	} catch (err) {
		await listener.close();
		throw err;
	}
	return Object.assign(listener, { consumerId: listener.consumers[0]!.consumerId });
}
