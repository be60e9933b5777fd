// Issue 7: the extra latency of a cross-node hop. One publisher P on node A (the channel's
// home), two listeners on A (LA1, LA2) and one on node B (LB, the channel bridges to B):
// werift peers, each listener in a worker thread of its own (its own event loop, so packets
// arriving together are not timed one after the other), all on one host clock. For every
// RTP packet of P (matched by its Opus payload: noise, so unique per frame), hop = arrival
// at LB - arrival at LA1: what the pipe (A's worker -> B's worker over UDP) and B's router
// add. LA2 - LA1 is the floor of the method (two listeners on the same router).
// Figures are printed and written to server/cluster/README.md by hand; the assertions are
// generous bounds for a shared machine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Encoder } from '@evan/opus';
import { FRAME_SAMPLES, SAMPLE_RATE } from '../helpers/audio.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { publishWithWerift, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { Worker } from 'node:worker_threads';
import type { ListenerThreadData, ListenerThreadMessage } from './bridgeListenerThread.js';
import { joinVia, startNode, type JoinedClient, type NodeProcess } from './bridgeNodes.js';

const PACKETS = Number(process.env.PARLEY_BRIDGE_LATENCY_PACKETS ?? 3000);
/** Faster than real time (20 ms) so a few thousand packets take seconds; small packets,
 * so the load stays far below what the workers or werift need to queue them. */
const PACE_MS = 5;

/** Opus frames of quiet noise: every payload differs, so packets can be matched across listeners. */
function noiseFrames(count: number): Uint8Array[] {
	const encoder = new Encoder({ channels: 2, sample_rate: SAMPLE_RATE, application: 'audio' });
	encoder.bitrate = 32_000;
	const frames: Uint8Array[] = [];
	for (let f = 0; f < count; f++) {
		const pcm = new Int16Array(FRAME_SAMPLES * 2);
		for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round((Math.random() - 0.5) * 4000);
		frames.push(encoder.encode(pcm).slice());
	}
	return frames;
}

function percentile(sorted: number[], p: number): number {
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

describe('latency of a cross-node hop', () => {
	let redis: TestRedis;
	let a: NodeProcess;
	let b: NodeProcess;
	const clients: JoinedClient[] = [];
	let publisher: WeriftPublisher | undefined;
	const threads: Worker[] = [];

	beforeAll(async () => {
		redis = await startRedis();
		[a, b] = await Promise.all([startNode(redis.url, 'lat-a'), startNode(redis.url, 'lat-b')]);
	}, 60_000);

	afterAll(async () => {
		await publisher?.close();
		for (const t of threads) await t.terminate();
		for (const c of clients) c.client.close();
		await Promise.all([a?.stop(), b?.stop()]);
		await redis?.stop();
	});

	it(`measures satellite minus home arrival over ${PACKETS} packets`, async () => {
		const p = await joinVia(a, 'lat', 'p');
		clients.push(p);
		publisher = await publishWithWerift(p.client);
		const listeners = [
			{ node: a, userId: 'la1' },
			{ node: a, userId: 'la2' },
			{ node: b, userId: 'lb' },
		].map(({ node, userId }) => {
			const data: ListenerThreadData = { nodeId: node.nodeId, url: node.url, channel: 'lat', userId };
			// Node 20 does not pass `--import tsx` loader hooks to worker threads: register them inside.
			const script = new URL('./bridgeListenerThread.ts', import.meta.url).href;
			const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(script)}); })`;
			const worker = new Worker(boot, { eval: true, workerData: data });
			threads.push(worker);
			const next = () =>
				new Promise<ListenerThreadMessage>((resolve, reject) => {
					worker.once('message', resolve);
					worker.once('error', reject);
				});
			return { worker, next, ready: next() };
		});
		for (const l of listeners) {
			const m = await l.ready;
			if (m.type !== 'ready') throw new Error(`listener thread: ${m.type === 'error' ? m.message : m.type}`);
		}

		const frames = noiseFrames(PACKETS);
		const key = (payload: Uint8Array) => Buffer.from(payload).toString('base64');
		const count = new Map<string, number>();
		for (const f of frames) count.set(key(f), (count.get(key(f)) ?? 0) + 1);
		const unique = new Set([...count].filter(([, n]) => n === 1).map(([k]) => k));
		// Warm-up: consumers resumed and ICE/DTLS settled before the measured packets.
		await publisher.send(noiseFrames(50), { paceMs: 20 });
		const sent = await publisher.send(frames, { paceMs: PACE_MS, timestampOf: (i) => (i + 50) * 960 });
		await new Promise((r) => setTimeout(r, 1000));

		const arrivals = await Promise.all(
			listeners.map(async (l) => {
				const reply = l.next();
				l.worker.postMessage('stop');
				const m = await reply;
				if (m.type !== 'arrivals') throw new Error(`listener thread: ${m.type === 'error' ? m.message : m.type}`);
				return new Map(m.arrivals.filter(([k]) => unique.has(k)));
			}),
		);
		const [at1, at2, atB] = arrivals as [Map<string, number>, Map<string, number>, Map<string, number>];
		const hop: number[] = [];
		const floor: number[] = [];
		for (const [k, t1] of at1) {
			const tB = atB.get(k);
			const t2 = at2.get(k);
			if (tB !== undefined) hop.push(tB - t1);
			if (t2 !== undefined) floor.push(t2 - t1);
		}
		hop.sort((x, y) => x - y);
		floor.sort((x, y) => x - y);
		const figures = {
			sent,
			uniquePayloads: unique.size,
			received: { la1: at1.size, la2: at2.size, lb: atB.size },
			hopMs: { p50: round2(percentile(hop, 50)), p90: round2(percentile(hop, 90)), p99: round2(percentile(hop, 99)), max: round2(hop.at(-1)!) },
			sameNodeFloorMs: { p50: round2(percentile(floor, 50)), p99: round2(percentile(floor, 99)) },
		};
		console.log(`cross-node hop (arrival at satellite listener - at home listener): ${JSON.stringify(figures)}`);

		// Nearly every packet made it both ways (loopback; a busy machine may drop a few).
		expect(unique.size).toBeGreaterThan(PACKETS * 0.95);
		expect(hop.length).toBeGreaterThan(unique.size * 0.95);
		// The hop costs something, and not much: bounds wide enough for a shared CI machine.
		expect(percentile(hop, 50)).toBeGreaterThan(-5);
		expect(percentile(hop, 50)).toBeLessThan(20);
		expect(percentile(hop, 99)).toBeLessThan(100);
	});
});
