// Channel on a real mediasoup worker: peers are Peers whose link records what they are told;
// transports are WebRTC transports nobody connects (producing and consuming need no media).
import { once } from 'node:events';
import type { types as ms } from 'mediasoup';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RequestError } from '../../protocol/RequestError.js';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { waitUntil } from '../../test/helpers/wait.js';
import { ROUTER_MEDIA_CODECS } from '../media/mediaCodecs.js';
import { WorkerPool, type WorkerLoad } from '../media/WorkerPool.js';
import { workerPoolOptions } from '../media/workerSettings.js';
import { createLogger } from '../telemetry/logger.js';
import { Channel, type ChannelCloseKind, type ChannelOptions } from './Channel.js';
import { Peer } from './Peer.js';
import { opusParams, RecordingLink } from '../../test/helpers/peerLink.js';

const CHANNEL_OPTIONS: ChannelOptions = { maxPeers: 10, maxTransportsPerPeer: 4, maxProducersPerPeer: 2, audioLevelIntervalMs: 200, audioLevelThresholdDb: -70, enableRtx: false };

interface TestPeer {
	peer: Peer;
	link: RecordingLink;
}

interface Context {
	pool: WorkerPool;
	channel: Channel;
	/** What the channel logged (JSON lines, warn and above). */
	logLines: string[];
}

describe('Channel', () => {
	let ctx: Context;

	beforeEach(async () => {
		const pool = await WorkerPool.create(workerPoolOptions(await testConfig({ PARLEY_MEDIA_WORKERS: '1' })), testLogger());
		const logLines: string[] = [];
		const log = createLogger('warn', { write: (line: string) => void logLines.push(line) });
		const channel = await Channel.create('room', await pool.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS }), CHANNEL_OPTIONS, log);
		ctx = { pool, channel, logLines };
	});

	afterEach(async () => {
		ctx.channel.close('test end');
		await ctx.pool.close();
	});

	function join(userId: string): TestPeer {
		const link = new RecordingLink();
		const peer = new Peer({ userId, displayName: userId, grants: { canPublish: true, canSubscribe: true, canRecord: false }, rtpCapabilities: ctx.channel.router.rtpCapabilities, link });
		ctx.channel.addPeer(peer);
		return { peer, link };
	}

	const transport = (p: TestPeer, direction: 'send' | 'recv') => ctx.channel.createTransport(p.peer, direction, ctx.pool.webRtcServerFor(ctx.channel.router));

	async function produce(p: TestPeer, ssrc: number): Promise<ms.Producer> {
		const send = await transport(p, 'send');
		return ctx.channel.produce(p.peer, send.id, 'audio', opusParams(ssrc), false);
	}

	/** mediasoup objects alive on the pool's workers (counted from mediasoup's observers). */
	function load(): WorkerLoad {
		const sum: WorkerLoad = { routers: 0, transports: 0, producers: 0, consumers: 0 };
		for (const w of ctx.pool.info()) for (const k of Object.keys(sum) as (keyof WorkerLoad)[]) sum[k] += w[k];
		return sum;
	}

	it('closes and sends channelClosing to its peers when its worker dies', async () => {
		const ada = join('ada');
		const bob = join('bob');
		await transport(ada, 'recv');
		const closed = once(ctx.channel, 'closed') as Promise<[ChannelCloseKind, string]>;
		const pid = ctx.pool.info()[ctx.pool.workerIndexOf(ctx.channel.router)!]!.pid!;
		process.kill(pid, 'SIGKILL');

		expect(await closed).toEqual(['routerClosed', 'media worker lost']);
		expect(ctx.channel.closed).toBe(true);
		expect(ada.link.of('channelClosing')).toEqual([{ reason: 'media worker lost' }]);
		expect(bob.link.of('channelClosing')).toEqual([{ reason: 'media worker lost' }]);
		expect(ada.peer.closed && bob.peer.closed).toBe(true);
		expect(ada.peer.transports.size).toBe(0);
		expect(ctx.channel.peers.size).toBe(0);
	});

	it('close(reason) sends channelClosing with that reason and ends as requested', async () => {
		const ada = join('ada');
		const closed = once(ctx.channel, 'closed') as Promise<[ChannelCloseKind, string]>;
		ctx.channel.close('empty');

		expect(await closed).toEqual(['requested', 'empty']);
		expect(ada.link.of('channelClosing')).toEqual([{ reason: 'empty' }]);
		expect(ctx.channel.router.closed).toBe(true);
	});

	it('addPeer of the same user returns replaced and the old peer is closed', async () => {
		const watcher = join('cy');
		const first = join('ada');
		await transport(first, 'recv');
		const second = new Peer({ userId: 'ada', displayName: 'Ada again', grants: first.peer.grants, rtpCapabilities: first.peer.rtpCapabilities, link: new RecordingLink() });

		const { replaced, others } = ctx.channel.addPeer(second);

		expect(replaced).toBe(first.peer);
		expect(first.peer.closed).toBe(true);
		expect(first.peer.transports.size).toBe(0);
		expect([...ctx.channel.peers.keys()].sort()).toEqual([watcher.peer.id, second.id].sort());
		expect(others.map((p) => p.peerId)).toEqual([watcher.peer.id]);
		expect(watcher.link.of('peerLeft')).toEqual([{ peerId: first.peer.id }]);
		expect(watcher.link.of('peerJoined').at(-1)).toEqual(second.info());
		await waitUntil(() => load().transports === 0, 2000, 'the replaced peer transport closed');
	});

	it('a consumer created after its listener left is closed', async () => {
		const created: ms.Consumer[] = [];
		ctx.channel.router.observer.on('newtransport', (t) => t.observer.on('newconsumer', (c) => created.push(c)));
		const speaker = join('ada');
		const listener = join('bob');
		const recv = await transport(listener, 'recv');
		// The listener leaves right after the channel sent the consume request, before the
		// worker's answer can arrive (no I/O runs in between).
		const consume = recv.consume.bind(recv);
		recv.consume = ((options: Parameters<typeof recv.consume>[0]) => {
			const consumer = consume(options);
			ctx.channel.removePeer(listener.peer);
			return consumer;
		}) as typeof recv.consume;

		await produce(speaker, 1111);

		await waitUntil(() => created.length === 1, 2000, 'the consume request answered');
		expect(created[0]!.closed).toBe(true);
		expect(listener.link.of('newConsumer')).toEqual([]);
		expect(listener.peer.consumers.size).toBe(0);
		expect(load()).toMatchObject({ transports: 1, producers: 1, consumers: 0 });
	});

	it('a listener gets the score of each new consumer at once (score events come only on change)', async () => {
		const speaker = join('ada');
		const listener = join('bob');
		await transport(listener, 'recv');
		await produce(speaker, 1111);
		await waitUntil(() => listener.link.of('newConsumer').length === 1, 2000, 'the listener consumes');
		const [consumer] = listener.link.of('newConsumer');
		const scores = listener.link.of('consumerScore');
		expect(scores).toHaveLength(1);
		expect(scores[0]).toEqual({ consumerId: consumer!.consumerId, score: expect.any(Number), producerScore: expect.any(Number) });
	});

	it('closing the channel leaves no transport, producer or consumer behind', async () => {
		const ada = join('ada');
		const bob = join('bob');
		await Promise.all([transport(ada, 'recv'), transport(bob, 'recv')]);
		await Promise.all([produce(ada, 1111), produce(bob, 2222)]);
		await waitUntil(() => ada.peer.consumers.size === 1 && bob.peer.consumers.size === 1, 2000, 'each hears the other');
		const webRtcServer = ctx.pool.webRtcServerFor(ctx.channel.router);
		expect(load()).toEqual({ routers: 1, transports: 4, producers: 2, consumers: 2 });
		expect((await webRtcServer.dump()).webRtcTransportIds).toHaveLength(4);

		ctx.channel.close('test');

		expect(load()).toEqual({ routers: 0, transports: 0, producers: 0, consumers: 0 });
		for (const p of [ada.peer, bob.peer]) expect([p.transports.size, p.producers.size, p.consumers.size]).toEqual([0, 0, 0]);
		// The worker's own view (the close requests went out before these dumps).
		expect((await ctx.pool.liveWorkers()[0]!.worker.dump()).routerIds).toEqual([]);
		expect((await webRtcServer.dump()).webRtcTransportIds).toEqual([]);
	});

	it('a throwing peerLeft listener does not stop the broadcast', async () => {
		const ada = join('ada');
		const bob = join('bob');
		const heard: string[] = [];
		let emptied = false;
		ctx.channel.on('peerLeft', () => {
			throw new Error('listener bug');
		});
		ctx.channel.on('peerLeft', (p) => heard.push(p.id));
		ctx.channel.on('empty', () => (emptied = true));

		expect(() => ctx.channel.removePeer(bob.peer)).not.toThrow();
		expect(ada.link.of('peerLeft')).toEqual([{ peerId: bob.peer.id }]);
		expect(heard).toEqual([bob.peer.id]);
		expect(ctx.logLines.map((l) => JSON.parse(l) as { msg: string; event: string; err: { message: string } })).toMatchObject([{ msg: 'event listener threw', event: 'peerLeft', err: { message: 'listener bug' } }]);

		// The channel is still whole: the last peer leaving empties it.
		ctx.channel.removePeer(ada.peer);
		expect(emptied).toBe(true);
		expect(ctx.channel.peers.size).toBe(0);
	});

	it('produces Opus RED with its Opus codec, without the publisher-numbered block list, and refuses RED alone', async () => {
		const ada = join('ada');
		const send = await transport(ada, 'send');
		const opus = opusParams(1).codecs[0]!;
		// As Chromium's SDP gives it: fmtp "111/111" read as a parameter named "111/111".
		const red = { mimeType: 'audio/red', payloadType: 63, clockRate: 48000, channels: 2, parameters: { '111/111': '' } };
		const producer = await ctx.channel.produce(ada.peer, send.id, 'audio', { ...opusParams(1), codecs: [red, opus] }, false);
		expect(producer.rtpParameters.codecs.map((c) => [c.mimeType.toLowerCase(), c.parameters])).toEqual([
			['audio/red', {}],
			['audio/opus', opus.parameters],
		]);
		const alone = ctx.channel.produce(ada.peer, send.id, 'audio', { ...opusParams(2), mid: '1', codecs: [red] }, false);
		await expect(alone).rejects.toMatchObject({ code: 'E_UNSUPPORTED_MEDIA' });
	});

	it('produce on an unknown transport id throws E_NOT_FOUND', async () => {
		const ada = join('ada');
		const produced = ctx.channel.produce(ada.peer, 'no-such-transport', 'audio', opusParams(1), false);
		await expect(produced).rejects.toBeInstanceOf(RequestError);
		await expect(produced).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: 'No transport no-such-transport of yours.' });
	});
});
