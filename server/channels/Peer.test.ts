// Peer on a real mediasoup router: what it owns, how it finds it, and that it lets go.
import type { types as ms } from 'mediasoup';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RequestError } from '../../protocol/RequestError.js';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { waitUntil } from '../../test/helpers/wait.js';
import { ROUTER_MEDIA_CODECS } from '../media/mediaCodecs.js';
import { WorkerPool } from '../media/WorkerPool.js';
import { workerPoolOptions } from '../media/workerSettings.js';
import { Peer, SILENT_LINK, type PeerTransport, type TransportAppData, type TransportDirection } from './Peer.js';

interface Context {
	pool: WorkerPool;
	router: ms.Router;
	peer: Peer;
}

const opusParams: ms.RtpParameters = {
	mid: '0',
	codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1, usedtx: 1 } }],
	encodings: [{ ssrc: 1111 }],
};

describe('Peer', () => {
	let ctx: Context;

	beforeEach(async () => {
		const pool = await WorkerPool.create(workerPoolOptions(await testConfig({ PARLEY_MEDIA_WORKERS: '1' })), testLogger());
		const router = await pool.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS });
		const peer = new Peer({ userId: 'ada', displayName: 'Ada', grants: { canPublish: true, canSubscribe: true, canRecord: false }, rtpCapabilities: router.rtpCapabilities, link: SILENT_LINK });
		ctx = { pool, router, peer };
	});

	afterEach(async () => {
		ctx.peer.close();
		ctx.router.close();
		await ctx.pool.close();
	});

	const appData = (direction: TransportDirection): TransportAppData => ({ peerId: ctx.peer.id, direction });
	const webRtcTransport = (direction: TransportDirection) => ctx.router.createWebRtcTransport<TransportAppData>({ webRtcServer: ctx.pool.webRtcServerFor(ctx.router), appData: appData(direction) });
	const plainTransport = (direction: TransportDirection) => ctx.router.createPlainTransport<TransportAppData>({ listenInfo: { protocol: 'udp', ip: '127.0.0.1' }, appData: appData(direction) });

	/** E_NOT_FOUND with the message the client sees. */
	function expectNotFound(lookup: () => unknown, message: string): void {
		let thrown: unknown;
		try {
			lookup();
		} catch (err) {
			thrown = err;
		}
		expect(thrown).toBeInstanceOf(RequestError);
		expect(thrown).toMatchObject({ code: 'E_NOT_FOUND', message });
	}

	it('transport(id) of an unknown id throws E_NOT_FOUND', () => {
		expectNotFound(() => ctx.peer.transport('nope'), 'No transport nope of yours.');
	});

	it('producer(id) and consumer(id) of unknown ids throw E_NOT_FOUND', () => {
		expectNotFound(() => ctx.peer.producer('nope'), 'No producer nope of yours.');
		expectNotFound(() => ctx.peer.consumer('nope'), 'No consumer nope of yours.');
	});

	it('finds an added transport by id, and forgets it once it closes', async () => {
		const t = await webRtcTransport('send');
		ctx.peer.addTransport(t);
		expect(ctx.peer.transport(t.id)).toBe(t);
		expect(ctx.peer.webRtcTransport(t.id)).toBe(t);

		t.close();

		expect(ctx.peer.transports.size).toBe(0);
		expectNotFound(() => ctx.peer.transport(t.id), `No transport ${t.id} of yours.`);
	});

	it('takes a plain transport, which webRtcTransport(id) does not answer for', async () => {
		const t = await plainTransport('recv');
		ctx.peer.addTransport(t);

		expect(ctx.peer.recvTransport).toBe(t);
		expect(ctx.peer.transport(t.id)).toBe(t);
		expectNotFound(() => ctx.peer.webRtcTransport(t.id), `No transport ${t.id} of yours.`);
	});

	/** Both transports added to the peer, a producer on `send` and its consumer on `recv`, added too. */
	async function producerAndConsumer(send: PeerTransport, recv: PeerTransport): Promise<{ producer: ms.Producer; consumer: ms.Consumer }> {
		ctx.peer.addTransport(send);
		ctx.peer.addTransport(recv);
		const producer = await send.produce({ kind: 'audio', rtpParameters: opusParams });
		const consumer = await recv.consume({ producerId: producer.id, rtpCapabilities: ctx.router.rtpCapabilities });
		ctx.peer.addProducer(producer);
		ctx.peer.addConsumer(consumer);
		return { producer, consumer };
	}

	it('forgets a producer and its consumer when the producer closes', async () => {
		const { producer, consumer } = await producerAndConsumer(await webRtcTransport('send'), await webRtcTransport('recv'));
		expect(ctx.peer.producer(producer.id)).toBe(producer);
		expect(ctx.peer.consumer(consumer.id)).toBe(consumer);

		producer.close();

		expect(ctx.peer.producers.size).toBe(0);
		// The consumer hears of it from the worker (producerclose).
		await waitUntil(() => consumer.closed, 2000, 'the consumer closed');
		expect([ctx.peer.consumers.size, ctx.peer.transports.size]).toEqual([0, 2]);
	});

	it('close() closes its transports, and with them their producers and consumers', async () => {
		const send = await webRtcTransport('send');
		const recv = await plainTransport('recv');
		const { producer, consumer } = await producerAndConsumer(send, recv);

		ctx.peer.close();

		expect([send.closed, recv.closed, producer.closed, consumer.closed]).toEqual([true, true, true, true]);
		expect([ctx.peer.transports.size, ctx.peer.producers.size, ctx.peer.consumers.size]).toEqual([0, 0, 0]);
		expect(ctx.pool.info()[0]).toMatchObject({ transports: 0, producers: 0, consumers: 0 });
	});

	it('closes what is added after it closed, and refuses it', async () => {
		const t = await webRtcTransport('send');
		ctx.peer.close();

		expect(() => ctx.peer.addTransport(t)).toThrow(/is closed/);
		expect(t.closed).toBe(true);
		expect(ctx.peer.transports.size).toBe(0);
	});
});
