// Issue 7: "Stop Redis mid-run: single-node channels keep flowing; readiness goes false;
// after Redis restarts, new cross-node joins work."
// Two nodes, one Redis. A channel flows on node A (two peers, each hearing the other's
// tone). Redis is killed: the audio keeps flowing (decoded), A's /readyz answers 503 with
// the redis check failing, a join to the open channel still works, a join for a new channel
// gets E_CLUSTER_UNAVAILABLE. Redis restarts (empty) on the same port: /readyz is 200 on
// both nodes again and a peer entering through B is redirected to A and hears the channel.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../protocol/messages.js';
import { decodeToMono, dominantFrequency } from '../helpers/audio.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { readyz, sleep, startNode, token, type NodeProcess, waitUntil } from './helpers/nodes.js';
import { VoiceBot } from './helpers/voiceBot.js';

const X_HZ = 900;
const Y_HZ = 1500;

async function tryJoin(node: NodeProcess, user: string, channel: string) {
	const { client } = await TestSignalingClient.connect(`${node.url}?token=${encodeURIComponent(await token(user))}&v=${PROTOCOL_VERSION}`);
	const caps = await client.request('getRouterRtpCapabilities', {});
	if (!caps.ok) throw new Error(caps.error.code);
	const reply = await client.request('join', { channel, rtpCapabilities: caps.data.rtpCapabilities as never });
	client.close();
	return reply;
}

describe('Redis stopped mid-run', () => {
	let redis: TestRedis;
	let a: NodeProcess;
	let b: NodeProcess;
	const bots: VoiceBot[] = [];

	beforeAll(async () => {
		redis = await startRedis();
		[a, b] = await Promise.all([startNode(redis.url, 'node-a'), startNode(redis.url, 'node-b')]);
	}, 60_000);

	afterAll(async () => {
		for (const bot of bots) await bot.close();
		await Promise.all([a?.stop(), b?.stop()]);
		await redis?.stop();
	});

	it('keeps the channels it hosts, reports not ready, refuses new cross-node work, and recovers', async () => {
		const x = new VoiceBot({ name: 'x', urls: [a.url], channel: 'steady', toneHz: X_HZ, hears: 1 });
		const y = new VoiceBot({ name: 'y', urls: [a.url], channel: 'steady', toneHz: Y_HZ, hears: 1 });
		bots.push(x, y);
		await Promise.all([x.start(), y.start()]);
		await waitUntil(() => x.heardPackets > 50 && y.heardPackets > 50, 15_000, 'audio before');
		expect((await readyz(a)).status).toBe(200);

		const port = redis.port;
		await redis.stop();
		const stoppedAt = performance.now();
		// Readiness goes false with the redis check failing.
		await waitUntil(async () => (await readyz(a)).status === 503, 10_000, 'readyz 503');
		const notReadyMs = Math.round(performance.now() - stoppedAt);
		const ready = await readyz(a);
		expect(ready.body.checks.redis?.ok).toBe(false);
		expect(ready.body.checks.workers?.ok).toBe(true);
		// The channel hosted here keeps flowing: packets keep coming, the tones are right.
		const before = [x.heardPackets, y.heardPackets];
		await sleep(3000);
		expect(x.heardPackets - before[0]!).toBeGreaterThan(100); // 150 sent in 3 s
		expect(y.heardPackets - before[1]!).toBeGreaterThan(100);
		expect(Math.abs(x.heardHz() - Y_HZ)).toBeLessThanOrEqual(20);
		expect(Math.abs(y.heardHz() - X_HZ)).toBeLessThanOrEqual(20);
		expect(x.joins).toHaveLength(1); // nobody had to reconnect
		expect(y.joins).toHaveLength(1);
		// A join for the open channel still works; one that needs placement is refused.
		const sameChannel = await tryJoin(a, 'late', 'steady');
		expect(sameChannel.ok).toBe(true);
		const newChannel = await tryJoin(a, 'newcomer', 'fresh');
		expect(newChannel).toMatchObject({ ok: false, error: { code: 'E_CLUSTER_UNAVAILABLE', message: 'cluster coordination (Redis) is unreachable; try again' } });
		const viaB = await tryJoin(b, 'newcomer', 'steady');
		expect(viaB).toMatchObject({ ok: false, error: { code: 'E_CLUSTER_UNAVAILABLE' } });

		// Redis comes back, empty, on the same port.
		redis = await startRedis({ port });
		const restartedAt = performance.now();
		await waitUntil(async () => (await readyz(a)).status === 200 && (await readyz(b)).status === 200, 20_000, 'readyz 200 on both');
		const readyAgainMs = Math.round(performance.now() - restartedAt);
		// A new cross-node join: through B, redirected to A (which re-claimed its channel).
		const z = new VoiceBot({ name: 'z', urls: [b.url], channel: 'steady', toneHz: 0, hears: 2 });
		bots.push(z);
		await z.start();
		const crossJoinMs = Math.round(performance.now() - restartedAt);
		expect(z.joins[0]).toMatchObject({ url: a.url, redirects: 1 });
		await waitUntil(() => z.heardPackets > 100, 10_000, 'z hears the channel');
		const fromX = z.listener!.consumers.find((c) => x.publisher && c.producerId === x.publisher.producerId)!;
		const hz = (producerId: string) => z.listener!.from(producerId).slice(-50).map((p) => p.payload);
		expect(Math.abs(dominantFrequency(decodeToMono(hz(fromX.producerId))) - X_HZ)).toBeLessThanOrEqual(20);
		const raw = new Redis(redis.url);
		expect(await raw.get('parley:channel-home:steady')).toBe('node-a');
		expect((await raw.zrange('parley:nodes', '0', '-1')).sort()).toEqual(['node-a', 'node-b']);
		raw.disconnect();
		console.log(`redis down: readyz 503 after ${notReadyMs} ms; readyz 200 on both ${readyAgainMs} ms after restart; cross-node join done ${crossJoinMs} ms after restart`);
	}, 120_000);
});
