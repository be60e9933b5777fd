// Packet-loss feedback reaches the sender: mediasoup puts the worst loss reported by any
// listener into the Receiver Reports it sends the producer (when the producer's Opus has
// useinbandfec=1), so the sender's encoder turns FEC up for the listener that needs it.
// Plain RTP both ways: the property lives in the router, not in DTLS.
import dgram from 'node:dgram';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeTone } from '../../test/helpers/audio.js';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { isRtcp, receiverReport, reportBlocks, rtpPacket } from '../../test/helpers/rtp.js';
import { routerMediaCodecs } from './mediaCodecs.js';
import { WorkerPool } from './WorkerPool.js';
import { workerPoolOptions } from './workerSettings.js';

async function udpSocket(): Promise<dgram.Socket> {
	const s = dgram.createSocket('udp4');
	s.bind(0, '127.0.0.1');
	await once(s, 'listening');
	return s;
}

describe('loss feedback to the sender', () => {
	let pool: WorkerPool;
	const sockets: dgram.Socket[] = [];

	beforeEach(async () => {
		pool = await WorkerPool.create(workerPoolOptions(await testConfig()), testLogger());
	});

	afterEach(async () => {
		for (const s of sockets.splice(0)) s.close();
		await pool.close();
	});

	it("forwards the worst listener's fraction lost to the producer's RTCP", async () => {
		const router = await pool.createRouter({ mediaCodecs: routerMediaCodecs() });
		const ssrc = 0x1234abcd;
		const inbound = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: '127.0.0.1' }, rtcpMux: true, comedia: true });
		const producer = await inbound.produce({
			kind: 'audio',
			rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } }], encodings: [{ ssrc }] },
		});

		const listenerSock = await udpSocket();
		const senderSock = await udpSocket();
		sockets.push(listenerSock, senderSock);
		const outbound = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: '127.0.0.1' }, rtcpMux: true, comedia: false });
		await outbound.connect({ ip: '127.0.0.1', port: listenerSock.address().port });
		const consumer = await outbound.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
		const consumerSsrc = consumer.rtpParameters.encodings![0]!.ssrc!;

		let highestSeq = 0;
		let forwarded = 0;
		listenerSock.on('message', (m) => {
			if (isRtcp(m)) return;
			forwarded++;
			highestSeq = m.readUInt16BE(2);
		});
		const fractionsToSender: number[] = [];
		senderSock.on('message', (m) => {
			if (!isRtcp(m)) return;
			for (const b of reportBlocks(m)) if (b.ssrc === ssrc) fractionsToSender.push(b.fractionLost);
		});

		// 25% loss as the listener reports it (64/256); the sender itself loses nothing.
		const LISTENER_FRACTION = 64;
		const frames = encodeTone(440, 50);
		const deadline = Date.now() + 15_000;
		let seq = 0;
		while (Date.now() < deadline && !fractionsToSender.some((f) => f >= LISTENER_FRACTION - 2)) {
			for (let i = 0; i < 5; i++, seq++) {
				senderSock.send(rtpPacket(seq, seq * 960, ssrc, 111, frames[seq % frames.length]!), inbound.tuple.localPort, '127.0.0.1');
			}
			if (forwarded > 0) {
				listenerSock.send(receiverReport(0xfeed, { ssrc: consumerSsrc, fractionLost: LISTENER_FRACTION, highestSeq }), outbound.tuple.localPort, '127.0.0.1');
			}
			await new Promise((r) => setTimeout(r, 100));
		}
		expect(forwarded).toBeGreaterThan(0);
		expect(fractionsToSender.length).toBeGreaterThan(0);
		expect(Math.max(...fractionsToSender)).toBeGreaterThanOrEqual(LISTENER_FRACTION - 2);
	}, 30_000);
});
