// Opus RED (RFC 2198) through the patched mediasoup worker, plain RTP both ways: a producer
// publishing RED (payload type 63, its Opus at 111, as Chromium numbers them), a listener
// that negotiated RED and one that did not. The RED listener gets the packets with the
// block payload types mapped to the router's Opus; the other gets each primary block as
// plain Opus, and the frames of packets lost before the worker rebuilt from the redundant
// blocks of the next packet that arrived. The C++ side is covered by the worker's own
// tests ("[red]", scripts/mediasoup/README.md); this is the end-to-end proof CI runs.
import dgram from 'node:dgram';
import { once } from 'node:events';
import type { types as ms } from 'mediasoup';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { routerMediaCodecs } from '../../server/media/mediaCodecs.js';
import { buildRedPayload, isRedParseError, parseRedPayload, type RedPayload } from '../../server/media/redPayload.js';
import { WorkerPool } from '../../server/media/WorkerPool.js';
import { workerPoolOptions } from '../../server/media/workerSettings.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';
import { isRtcp, rtpPacket } from '../helpers/rtp.js';

const PUBLISHER_RED_PT = 63;
const PUBLISHER_OPUS_PT = 111;
const FRAME_TS = 960;
const SSRC = 0x5eed0001;
/** Far from 0 so that the test would see a sequence number or timestamp that wrapped. */
const FIRST_SEQ = 65_530;
const FIRST_TS = 0xffff_f000;

/** The encoded frame number n: an Opus-looking TOC byte (20 ms CELT, code 0), n, and a
 * length that varies with n, so that every frame is distinct and byte-exact checks mean
 * something. */
function frame(n: number): Uint8Array {
	const out = new Uint8Array(20 + (n % 7));
	out[0] = 0xf8;
	out[1] = n & 0xff;
	out[2] = (n >> 8) & 0xff;
	for (let i = 3; i < out.length; i++) out[i] = (n * 31 + i) & 0xff;
	return out;
}

/** Which frame a payload is (by its bytes), or -1. */
function frameNumber(payload: Uint8Array): number {
	if (payload.length < 3) return -1;
	const n = payload[1]! | (payload[2]! << 8);
	return Buffer.from(frame(n)).equals(Buffer.from(payload)) ? n : -1;
}

/** RED payload of packet n at the given distance, as a browser builds it (oldest block first). */
function redPayloadOf(n: number, distance: number): Uint8Array {
	const redundant = [];
	for (let back = Math.min(distance, n); back >= 1; back--) {
		redundant.push({ payloadType: PUBLISHER_OPUS_PT, timestampOffset: back * FRAME_TS, data: frame(n - back) });
	}
	return buildRedPayload({ payloadType: PUBLISHER_OPUS_PT, data: frame(n) }, redundant);
}

interface ReceivedRtp {
	payloadType: number;
	seq: number;
	timestamp: number;
	marker: boolean;
	payload: Uint8Array;
}

function parseRtp(m: Buffer): ReceivedRtp {
	const csrcCount = m[0]! & 0x0f;
	let off = 12 + 4 * csrcCount;
	if (m[0]! & 0x10) off += 4 + 4 * m.readUInt16BE(off + 2);
	let end = m.length;
	if (m[0]! & 0x20) end -= m[m.length - 1]!;
	return {
		payloadType: m[1]! & 0x7f,
		seq: m.readUInt16BE(2),
		timestamp: m.readUInt32BE(4),
		marker: (m[1]! & 0x80) !== 0,
		payload: new Uint8Array(m.subarray(off, end)),
	};
}

async function udpSocket(): Promise<dgram.Socket> {
	const s = dgram.createSocket('udp4');
	s.bind(0, '127.0.0.1');
	await once(s, 'listening');
	return s;
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

interface Listener {
	consumer: ms.Consumer;
	received: ReceivedRtp[];
}

describe('Opus RED through the worker', () => {
	let pool: WorkerPool;
	let router: ms.Router;
	let producerTransport: ms.PlainTransport;
	let sender: dgram.Socket;
	let red: Listener;
	let plain: Listener;
	let routerOpusPt: number;
	let routerRedPt: number;
	let producer: ms.Producer;
	let otherPool: WorkerPool | undefined;
	const sockets: dgram.Socket[] = [];

	async function listen(rtpCapabilities: ms.RtpCapabilities, producerId: string, on: ms.Router = router): Promise<Listener> {
		const sock = await udpSocket();
		sockets.push(sock);
		const transport = await on.createPlainTransport({ listenInfo: { protocol: 'udp', ip: '127.0.0.1' }, rtcpMux: true, comedia: false });
		await transport.connect({ ip: '127.0.0.1', port: sock.address().port });
		const consumer = await transport.consume({ producerId, rtpCapabilities });
		const received: ReceivedRtp[] = [];
		sock.on('message', (m) => {
			if (!isRtcp(m)) received.push(parseRtp(m));
		});
		return { consumer, received };
	}

	function send(seq: number, timestamp: number, payloadType: number, payload: Uint8Array): void {
		sender.send(rtpPacket(seq, timestamp, SSRC, payloadType, payload), producerTransport.tuple.localPort, '127.0.0.1');
	}

	/** Sends RED packets 0..count-1 (distance 2) but the dropped ones, paced like a slow burst. */
	async function sendRed(count: number, dropped: readonly number[], distance = 2): Promise<void> {
		for (let n = 0; n < count; n++) {
			if (!dropped.includes(n)) send(FIRST_SEQ + n, FIRST_TS + n * FRAME_TS, PUBLISHER_RED_PT, redPayloadOf(n, distance));
			await new Promise((r) => setTimeout(r, 3));
		}
	}

	/** Checks the plain listener's packets: plain Opus, each payload a whole frame, and seq and
	 * timestamp those of its frame (up to the consumer's constant offsets). Returns the frames. */
	function plainFrames(): number[] {
		const frames = plain.received.map((p) => frameNumber(p.payload));
		expect(frames.every((n) => n >= 0), 'every payload is exactly one frame').toBe(true);
		expect(new Set(plain.received.map((p) => p.payloadType))).toEqual(new Set([routerOpusPt]));
		const first = plain.received[0]!;
		const n0 = frames[0]!;
		for (const [i, p] of plain.received.entries()) {
			const n = frames[i]!;
			expect((p.seq - first.seq) & 0xffff, `seq of frame ${n}`).toBe((n - n0) & 0xffff);
			expect((p.timestamp - first.timestamp) >>> 0, `timestamp of frame ${n}`).toBe(((n - n0) * FRAME_TS) >>> 0);
		}
		return frames;
	}

	beforeEach(async () => {
		pool = await WorkerPool.create(workerPoolOptions(await testConfig()), testLogger());
		router = await pool.createRouter({ mediaCodecs: routerMediaCodecs({ red: true }) });
		const caps = router.rtpCapabilities.codecs!;
		routerOpusPt = caps.find((c) => c.mimeType.toLowerCase() === 'audio/opus')!.preferredPayloadType!;
		routerRedPt = caps.find((c) => c.mimeType.toLowerCase() === 'audio/red')!.preferredPayloadType!;
		producerTransport = await router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: '127.0.0.1' }, rtcpMux: true, comedia: true });
		producer = await producerTransport.produce({
			kind: 'audio',
			rtpParameters: {
				// RED first, as Chromium offers it when the remote side does.
				codecs: [
					{ mimeType: 'audio/red', payloadType: PUBLISHER_RED_PT, clockRate: 48000, channels: 2, parameters: { 'sprop-maxcapturerate': 48000 } },
					{ mimeType: 'audio/opus', payloadType: PUBLISHER_OPUS_PT, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } },
				],
				encodings: [{ ssrc: SSRC }],
			},
		});
		sender = await udpSocket();
		sockets.push(sender);
		red = await listen(router.rtpCapabilities, producer.id);
		plain = await listen(opusOnlyCapabilities(router), producer.id);
	});

	function opusOnlyCapabilities(r: ms.Router): ms.RtpCapabilities {
		return { codecs: r.rtpCapabilities.codecs!.filter((c) => c.mimeType.toLowerCase() === 'audio/opus'), headerExtensions: r.rtpCapabilities.headerExtensions };
	}

	afterEach(async () => {
		for (const s of sockets.splice(0)) s.close();
		await pool.close();
		await otherPool?.close();
		otherPool = undefined;
	});

	it('negotiates RED only with the listener that has it', () => {
		expect(routerOpusPt).not.toBe(PUBLISHER_OPUS_PT);
		expect(red.consumer.rtpParameters.codecs.map((c) => c.mimeType.toLowerCase())).toContain('audio/red');
		expect(plain.consumer.rtpParameters.codecs.map((c) => c.mimeType.toLowerCase())).toEqual(['audio/opus']);
	});

	it("forwards RED with the router's Opus in its blocks, and the primary block as plain Opus", async () => {
		const COUNT = 20;
		await sendRed(COUNT, []);
		await waitFor(() => red.received.length >= COUNT && plain.received.length >= COUNT, 10_000);

		expect(red.received).toHaveLength(COUNT);
		for (const [i, p] of red.received.entries()) {
			expect(p.payloadType).toBe(routerRedPt);
			const parsed = parseRedPayload(p.payload);
			if (isRedParseError(parsed)) throw new Error(`RED listener got an invalid RED payload: ${parsed.error}`);
			const r: RedPayload = parsed;
			expect([...r.redundant.map((b) => b.payloadType), r.primary.payloadType]).toEqual(Array(r.redundant.length + 1).fill(routerOpusPt));
			expect(frameNumber(r.primary.data)).toBe(i);
			// Otherwise unchanged: the same blocks, offsets and bytes the publisher sent.
			const sent = parseRedPayload(redPayloadOf(i, 2)) as RedPayload;
			expect(r.redundant.map((b) => [b.timestampOffset, frameNumber(b.data)])).toEqual(sent.redundant.map((b) => [b.timestampOffset, frameNumber(b.data)]));
		}
		const seqs = red.received.map((p) => p.seq);
		for (let i = 1; i < seqs.length; i++) expect((seqs[i]! - seqs[i - 1]!) & 0xffff).toBe(1);

		expect(plain.received).toHaveLength(COUNT);
		expect(plainFrames()).toEqual([...Array(COUNT).keys()]);
		// The marker bit is the packet's own (none set here).
		expect(plain.received.some((p) => p.marker)).toBe(false);
	});

	it('gives the plain listener every frame when 1 and then 2 packets in a row were lost', async () => {
		const COUNT = 30;
		const dropped = [5, 12, 13, 20];
		await sendRed(COUNT, dropped);
		await waitFor(() => plain.received.length >= COUNT && red.received.length >= COUNT - dropped.length, 10_000);
		// Late extras would show up here: give them a moment.
		await new Promise((r) => setTimeout(r, 200));

		expect(plainFrames()).toEqual([...Array(COUNT).keys()]);
		// The RED listener gets what arrived, as it arrived (its own decoder uses the blocks).
		expect(red.received).toHaveLength(COUNT - dropped.length);
	});

	it('leaves exactly one gap when 3 packets in a row were lost at distance 2', async () => {
		const COUNT = 20;
		await sendRed(COUNT, [8, 9, 10]);
		await waitFor(() => plain.received.length >= COUNT - 1, 10_000);
		await new Promise((r) => setTimeout(r, 200));

		expect(plainFrames()).toEqual([...Array(COUNT).keys()].filter((n) => n !== 8));
	});

	it('recovers across the 16-bit sequence number wrap', async () => {
		// Packets 5 and 6 have sequence numbers 65535 and 0, and the RTP timestamp wraps
		// just before them (between 4 and 5): lose both.
		const COUNT = 12;
		await sendRed(COUNT, [5, 6]);
		await waitFor(() => plain.received.length >= COUNT, 10_000);

		expect(plainFrames()).toEqual([...Array(COUNT).keys()]);
	});

	it('pipes RED to another router as is; its listeners get RED, or plain Opus with lost frames recovered', async () => {
		// As between Parley nodes: a PipeTransport consumer on this router, a pipe producer on
		// a router of another worker (a pipe within one worker would reuse the producer's id).
		otherPool = await WorkerPool.create(workerPoolOptions(await testConfig()), testLogger());
		const otherRouter = await otherPool.createRouter({ mediaCodecs: routerMediaCodecs({ red: true }) });
		const { pipeProducer } = await router.pipeToRouter({ producerId: producer.id, router: otherRouter });
		const otherOpusPt = otherRouter.rtpCapabilities.codecs!.find((c) => c.mimeType.toLowerCase() === 'audio/opus')!.preferredPayloadType!;
		const redThere = await listen(otherRouter.rtpCapabilities, pipeProducer!.id, otherRouter);
		const plainThere = await listen(opusOnlyCapabilities(otherRouter), pipeProducer!.id, otherRouter);

		const COUNT = 20;
		const dropped = [7, 14, 15];
		await sendRed(COUNT, dropped);
		await waitFor(() => plainThere.received.length >= COUNT && redThere.received.length >= COUNT - dropped.length, 10_000);
		await new Promise((r) => setTimeout(r, 200));

		// The pipe carried RED unchanged (no recovery on the way): the far RED listener sees the gaps.
		const redPrimaries = redThere.received.map((p) => {
			const parsed = parseRedPayload(p.payload);
			if (isRedParseError(parsed)) throw new Error(`invalid RED payload: ${parsed.error}`);
			expect([...parsed.redundant.map((b) => b.payloadType), parsed.primary.payloadType].every((pt) => pt === otherOpusPt)).toBe(true);
			return frameNumber(parsed.primary.data);
		});
		expect(redPrimaries).toEqual([...Array(COUNT).keys()].filter((n) => !dropped.includes(n)));
		// The far plain listener: every frame, the lost ones from the redundant blocks.
		const frames = plainThere.received.map((p) => frameNumber(p.payload));
		expect(frames).toEqual([...Array(COUNT).keys()]);
		expect(new Set(plainThere.received.map((p) => p.payloadType))).toEqual(new Set([otherOpusPt]));
		const first = plainThere.received[0]!;
		for (const [i, p] of plainThere.received.entries()) {
			expect((p.seq - first.seq) & 0xffff).toBe(i);
			expect((p.timestamp - first.timestamp) >>> 0).toBe((i * FRAME_TS) >>> 0);
		}
	});

	it('passes padding-only packets on the RED payload type to consumers, which drop them without a gap in their sequence numbers', async () => {
		// Chromium probes bandwidth with padding-only packets on its audio SSRC, in the send
		// codec's payload type (RED). Were they discarded before the consumers, each would be a
		// hole in every listener's sequence numbers (counted as loss, NACKed, never filled).
		const COUNT = 20;
		const PADDING_AFTER = 9;
		const padding = (seq: number, timestamp: number) => {
			const p = rtpPacket(seq, timestamp, SSRC, PUBLISHER_RED_PT, Uint8Array.from([0, 0, 0, 4]));
			p[0]! |= 0x20; // P: the last byte counts the padding bytes
			return p;
		};
		for (let n = 0; n < COUNT; n++) {
			const seq = FIRST_SEQ + n + (n > PADDING_AFTER ? 2 : 0);
			send(seq, FIRST_TS + n * FRAME_TS, PUBLISHER_RED_PT, redPayloadOf(n, 2));
			if (n === PADDING_AFTER) {
				for (const extra of [1, 2]) sender.send(padding(seq + extra, FIRST_TS + n * FRAME_TS), producerTransport.tuple.localPort, '127.0.0.1');
			}
			await new Promise((r) => setTimeout(r, 3));
		}
		await waitFor(() => red.received.length >= COUNT && plain.received.length >= COUNT, 10_000);
		await new Promise((r) => setTimeout(r, 200));

		expect(plainFrames()).toEqual([...Array(COUNT).keys()]);
		expect(red.received).toHaveLength(COUNT);
		const seqs = red.received.map((p) => p.seq);
		for (let i = 1; i < seqs.length; i++) expect((seqs[i]! - seqs[i - 1]!) & 0xffff, `RED listener seq step at ${i}`).toBe(1);
	});

	it('drops malformed RED packets for every listener; the next good packet goes through', async () => {
		const malformed: [string, Uint8Array][] = [
			// F=1 header cut short.
			['truncated header chain', Uint8Array.from([0x80 | PUBLISHER_OPUS_PT, 0x0f, 0x00])],
			// Only F=1 headers, no final one.
			['no primary header', Uint8Array.from([0x80 | PUBLISHER_OPUS_PT, 0x0f, 0x00, 0x02, 0x80 | PUBLISHER_OPUS_PT, 0x0f, 0x00, 0x02])],
			// A redundant block of 200 bytes in a 30-byte payload.
			['length past the end', Uint8Array.from([0x80 | PUBLISHER_OPUS_PT, 0x0f, 0x00, 200, PUBLISHER_OPUS_PT, ...frame(999).subarray(0, 25)])],
			// A block whose payload type is not the producer's Opus (a listener could not map it).
			['foreign block payload type', buildRedPayload({ payloadType: PUBLISHER_OPUS_PT, data: frame(998) }, [{ payloadType: 112, timestampOffset: 960, data: frame(997) }])],
			['foreign primary payload type', buildRedPayload({ payloadType: 0, data: frame(996) })],
		];
		// Good packets 0..2, then each malformed one in a packet of its own (sequence numbers
		// 3..7, timestamps of frames 3..7), then good packets 8..10.
		const GOOD_BEFORE = 3;
		for (let n = 0; n < GOOD_BEFORE; n++) send(FIRST_SEQ + n, FIRST_TS + n * FRAME_TS, PUBLISHER_RED_PT, redPayloadOf(n, 2));
		for (const [i, [, payload]] of malformed.entries()) {
			const n = GOOD_BEFORE + i;
			send(FIRST_SEQ + n, FIRST_TS + n * FRAME_TS, PUBLISHER_RED_PT, payload);
		}
		const firstGoodAfter = GOOD_BEFORE + malformed.length;
		const COUNT = firstGoodAfter + 3;
		for (let n = firstGoodAfter; n < COUNT; n++) send(FIRST_SEQ + n, FIRST_TS + n * FRAME_TS, PUBLISHER_RED_PT, redPayloadOf(n, 2));
		await waitFor(() => red.received.length >= GOOD_BEFORE + 3 && plain.received.length >= GOOD_BEFORE + 3, 10_000);
		await new Promise((r) => setTimeout(r, 200));

		// The RED listener: the good packets only.
		const redPrimaries = red.received.map((p) => {
			const parsed = parseRedPayload(p.payload);
			return isRedParseError(parsed) ? -1 : frameNumber(parsed.primary.data);
		});
		expect(redPrimaries).toEqual([0, 1, 2, firstGoodAfter, firstGoodAfter + 1, firstGoodAfter + 2]);
		// The plain listener: the good frames, and those of the malformed packets' places
		// that the next good packet's blocks carry (frames 6 and 7), nothing else.
		expect(plainFrames()).toEqual([0, 1, 2, firstGoodAfter - 2, firstGoodAfter - 1, firstGoodAfter, firstGoodAfter + 1, firstGoodAfter + 2]);
		for (const [reason, payload] of malformed) {
			for (const l of [red, plain]) expect(l.received.some((p) => Buffer.from(p.payload).equals(Buffer.from(payload))), reason).toBe(false);
		}
	});
});
