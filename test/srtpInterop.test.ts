// SRTP as the mediasoup worker does it, against an independent implementation (Node's
// crypto, test/helpers/srtp.ts), for every suite mediasoup offers, both ways: the worker
// encrypts what a consumer sends and the test decrypts it; the test encrypts what a producer
// receives and the worker decrypts it, forwarding nothing whose tag is wrong. The worker's
// libsrtp is built from source on OpenSSL (scripts/mediasoup/); a build whose ciphers only
// agree with themselves would pass mediasoup-to-mediasoup checks but not this one.
import dgram from 'node:dgram';
import { once } from 'node:events';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeToMono, dominantFrequency, encodeTone } from './helpers/audio.js';
import { isRtcp, rtpPacket } from './helpers/rtp.js';
import { masterKeyLength, SrtpContext, type SrtpSuite } from './helpers/srtp.js';

const SUITES: SrtpSuite[] = ['AEAD_AES_256_GCM', 'AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'];
const OPUS_PT = 100;
const PACKETS = 50;
const TONE_HZ = 440;
const LOOPBACK = '127.0.0.1';
const MEDIA_CODECS: ms.RouterRtpCodecCapability[] = [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }];
const OPUS_PARAMS = (ssrc: number): ms.RtpParameters => ({
	codecs: [{ mimeType: 'audio/opus', payloadType: OPUS_PT, clockRate: 48000, channels: 2 }],
	encodings: [{ ssrc }],
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function udpSocket(): Promise<{ socket: dgram.Socket; port: number; rtp: Buffer[] }> {
	const socket = dgram.createSocket('udp4');
	const rtp: Buffer[] = [];
	socket.on('message', (m) => {
		if (!isRtcp(m)) rtp.push(m);
	});
	socket.bind(0, LOOPBACK);
	await once(socket, 'listening');
	return { socket, port: socket.address().port, rtp };
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!cond() && Date.now() < deadline) await sleep(20);
}

const payloadOf = (packet: Buffer): Buffer => {
	let off = 12 + 4 * (packet[0]! & 0x0f);
	if (packet[0]! & 0x10) off += 4 + 4 * packet.readUInt16BE(off + 2);
	return packet.subarray(off);
};

describe('SRTP interop: mediasoup worker vs an independent implementation', () => {
	let worker: ms.Worker;
	let router: ms.Router;
	const frames = encodeTone(TONE_HZ, PACKETS);

	beforeAll(async () => {
		worker = await mediasoup.createWorker({ logLevel: 'error' });
		router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
	});

	afterAll(() => {
		worker?.close();
	});

	for (const suite of SUITES) {
		it(`${suite}: the worker encrypts, Node decrypts the same Opus`, async () => {
			const sender = await udpSocket();
			const listener = await udpSocket();
			const inbound = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: LOOPBACK }, rtcpMux: true, comedia: true });
			const outbound = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: LOOPBACK }, rtcpMux: true, comedia: false, enableSrtp: true, srtpCryptoSuite: suite });
			try {
				const producer = await inbound.produce({ kind: 'audio', rtpParameters: OPUS_PARAMS(0x1000) });
				// Our key for what we would send back; the worker encrypts with its own (srtpParameters).
				await outbound.connect({ ip: LOOPBACK, port: listener.port, srtpParameters: { cryptoSuite: suite, keyBase64: Buffer.alloc(masterKeyLength(suite), 7).toString('base64') } });
				const local = outbound.srtpParameters!;
				expect(local.cryptoSuite).toBe(suite);
				await outbound.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
				for (let i = 0; i < PACKETS; i++) {
					sender.socket.send(rtpPacket(1000 + i, 960 * i, 0x1000, OPUS_PT, frames[i]!), inbound.tuple.localPort, LOOPBACK);
					await sleep(2);
				}
				await waitFor(() => listener.rtp.length >= PACKETS);
				expect(listener.rtp.length).toBe(PACKETS);

				const rx = new SrtpContext(suite, Buffer.from(local.keyBase64, 'base64'));
				const decrypted = listener.rtp.map((p) => rx.unprotect(p));
				// Ciphertext is not the plaintext: the packets really were encrypted.
				expect(payloadOf(listener.rtp[0]!).subarray(0, frames[0]!.length).equals(Buffer.from(frames[0]!))).toBe(false);
				// One sender, one worker thread, loopback: packets arrive in the order they were sent.
				const payloads = decrypted.map(payloadOf);
				payloads.forEach((p, i) => expect(p.equals(Buffer.from(frames[i]!)), `packet ${i}`).toBe(true));
				expect(Math.abs(dominantFrequency(decodeToMono(payloads)) - TONE_HZ)).toBeLessThanOrEqual(10);

				// A flipped bit in a received packet fails our check: the check is not vacuous.
				const tampered = Buffer.from(listener.rtp[PACKETS - 1]!);
				tampered[tampered.length - 1]! ^= 1;
				expect(() => new SrtpContext(suite, Buffer.from(local.keyBase64, 'base64')).unprotect(tampered)).toThrow();
			} finally {
				inbound.close();
				outbound.close();
				sender.socket.close();
				listener.socket.close();
			}
		});

		it(`${suite}: Node encrypts, the worker decrypts and drops forged packets`, async () => {
			const sender = await udpSocket();
			const listener = await udpSocket();
			const inbound = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: LOOPBACK }, rtcpMux: true, comedia: true, enableSrtp: true, srtpCryptoSuite: suite });
			const outbound = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: LOOPBACK }, rtcpMux: true, comedia: false });
			try {
				const key = Buffer.from(Array.from({ length: masterKeyLength(suite) }, (_, i) => (i * 37 + 11) & 0xff));
				await inbound.connect({ srtpParameters: { cryptoSuite: suite, keyBase64: key.toString('base64') } });
				const producer = await inbound.produce({ kind: 'audio', rtpParameters: OPUS_PARAMS(0x2000) });
				await outbound.connect({ ip: LOOPBACK, port: listener.port });
				await outbound.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
				const tx = new SrtpContext(suite, key);
				let forged = 0;
				for (let i = 0; i < PACKETS; i++) {
					const srtp = tx.protect(rtpPacket(2000 + i, 960 * i, 0x2000, OPUS_PT, frames[i]!));
					sender.socket.send(srtp, inbound.tuple.localPort, LOOPBACK);
					if (i % 10 === 5) {
						// A forged packet (next sequence number, flipped ciphertext bit) must not get through.
						const forgery = Buffer.from(tx.protect(rtpPacket(2000 + PACKETS + i, 960 * i, 0x2000, OPUS_PT, frames[i]!)));
						forgery[20]! ^= 0x40;
						sender.socket.send(forgery, inbound.tuple.localPort, LOOPBACK);
						forged++;
					}
					await sleep(2);
				}
				await waitFor(() => listener.rtp.length >= PACKETS);
				await sleep(200);
				expect(forged).toBe(5);
				expect(listener.rtp.length).toBe(PACKETS);
				const got = new Set(listener.rtp.map((p) => payloadOf(p).toString('hex')));
				for (const f of frames) expect(got.has(Buffer.from(f).toString('hex'))).toBe(true);
				const stats = await producer.getStats();
				expect(stats[0]?.packetCount).toBe(PACKETS);
			} finally {
				inbound.close();
				outbound.close();
				sender.socket.close();
				listener.socket.close();
			}
		});
	}

	it('leaves no transport behind', async () => {
		const dump = await router.dump();
		expect(dump.transportIds).toEqual([]);
	});
});
