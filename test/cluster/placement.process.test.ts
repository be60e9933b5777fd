// Issue 7: "Two or three Parley processes on loopback with one Redis: peers joining the
// same channel through different nodes hear each other (checked by decoded audio)."
// Peer X joins channel C through node A (A becomes C's home), peer Y through node B: B
// redirects Y to A (E_REDIRECT), Y follows, and each hears the other's tone.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startNode, type NodeProcess, waitUntil } from './helpers/nodes.js';
import { VoiceBot } from './helpers/voiceBot.js';

const X_HZ = 700;
const Y_HZ = 1300;

describe('two nodes, one Redis: a join through either node reaches the channel', () => {
	let redis: TestRedis;
	let raw: Redis;
	let a: NodeProcess;
	let b: NodeProcess;
	const bots: VoiceBot[] = [];

	beforeAll(async () => {
		redis = await startRedis();
		raw = new Redis(redis.url);
		[a, b] = await Promise.all([startNode(redis.url, 'node-a'), startNode(redis.url, 'node-b')]);
	}, 60_000);

	afterAll(async () => {
		for (const bot of bots) await bot.close();
		await Promise.all([a?.stop(), b?.stop()]);
		raw?.disconnect();
		await redis?.stop();
	});

	it('both nodes are registered with their URLs and load', async () => {
		await waitUntil(async () => (await raw.zrange('parley:nodes', '0', '-1')).length === 2, 10_000, 'two nodes registered');
		const entry = JSON.parse((await raw.get('parley:node:node-a'))!) as { signalingUrl: string; load: { peers: number } };
		expect(entry.signalingUrl).toBe(a.url);
		expect(entry.load.peers).toBe(0);
		expect(await raw.pttl('parley:node:node-a')).toBeGreaterThan(0);
	});

	it('Y, entering through B, is redirected to A and both hear each other', async () => {
		const x = new VoiceBot({ name: 'x', urls: [a.url], channel: 'lobby', toneHz: X_HZ, hears: 1 });
		const y = new VoiceBot({ name: 'y', urls: [b.url], channel: 'lobby', toneHz: Y_HZ, hears: 1 });
		bots.push(x, y);
		// X first (claims the channel for A), Y then; both listen once both publish.
		const xStarted = x.start();
		await waitUntil(() => x.joins.length === 1, 10_000, 'x joined');
		expect(await raw.get('parley:channel-home:lobby')).toBe('node-a');
		await Promise.all([xStarted, y.start()]);
		expect(y.joins).toEqual([expect.objectContaining({ url: a.url, redirects: 1 })]);
		expect(y.serverUrl).toBe(a.url);
		await waitUntil(() => x.heardPackets > 100 && y.heardPackets > 100, 20_000, 'audio both ways');
		const xHeard = x.heardHz();
		const yHeard = y.heardHz();
		expect(Math.abs(xHeard - Y_HZ)).toBeLessThanOrEqual(20);
		expect(Math.abs(yHeard - X_HZ)).toBeLessThanOrEqual(20);
		// Node A's registry entry counts both peers (refreshed on its heartbeat).
		await waitUntil(async () => (JSON.parse((await raw.get('parley:node:node-a'))!) as { load: { peers: number } }).load.peers === 2, 10_000, 'load of A');
		const load = (JSON.parse((await raw.get('parley:node:node-a'))!) as { load: { peers: number; consumers: number; channels: number; workerCpu: number } }).load;
		expect(load).toMatchObject({ consumers: 2, channels: 1 });
		// Two tones forwarded: the worker is busy, but far from a full core.
		expect(load.workerCpu).toBeGreaterThanOrEqual(0);
		expect(load.workerCpu).toBeLessThan(1);
		expect((JSON.parse((await raw.get('parley:node:node-b'))!) as { load: { peers: number } }).load.peers).toBe(0);
	});

	it('on SIGTERM the home node deletes its registry entry and home claims at once', async () => {
		expect(await raw.get('parley:channel-home:lobby')).toBe('node-a');
		const stoppedAt = performance.now();
		const stopped = a.stop();
		await waitUntil(async () => (await raw.get('parley:node:node-a')) === null && (await raw.get('parley:channel-home:lobby')) === null, 5000, 'entry and claim deleted');
		const goneMs = Math.round(performance.now() - stoppedAt);
		// Well before the TTL (3000 ms) would have expired them.
		expect(goneMs).toBeLessThan(1500);
		expect(await raw.zscore('parley:nodes', 'node-a')).toBeNull();
		for (const bot of bots.splice(0)) await bot.close();
		await stopped;
		// The next join anywhere homes the channel there.
		const z = new VoiceBot({ name: 'z', urls: [b.url], channel: 'lobby', toneHz: 0, hears: 0 });
		bots.push(z);
		await z.start();
		expect(z.joins).toEqual([expect.objectContaining({ url: b.url, redirects: 0 })]);
		expect(await raw.get('parley:channel-home:lobby')).toBe('node-b');
		console.log(`SIGTERM: registry entry and home claim gone ${goneMs} ms after the signal`);
	});
});
