// Issue 8, cluster part: drain to another node. Two nodes + one redis-server, a shared
// storage directory. A channel homed on A with two bots talking (entering with urls [A, B]
// and [B, A], like ParleyClient: the second is redirected to A), and on A a recording of a
// third user's tone. SIGTERM A: A exits 0 within shutdown.deadlineMs; both bots are told
// (serverShuttingDown), rejoin through B and hear each other again (decoded tone); the
// recording ends `ready` with what it received, read through B's HTTP API (metadata in
// Redis, file in the shared directory). Measured per run: SIGTERM -> exit, SIGTERM -> first
// packet of the other's tone at each bot. A new node replaces A before the next run.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { decodeFileToMono, dominantFrequency, encodeTone } from '../helpers/audio.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { publishWithWerift, streamTone } from '../../testkit/weriftPublisher.js';
import { startNode, token as recToken, waitUntil, type NodeProcess } from '../cluster/helpers/nodes.js';
import { startTalkingPair, type VoiceBot } from '../cluster/helpers/voiceBot.js';

const RUNS = Number(process.env.PARLEY_DRAIN_RUNS ?? 3);
const DEADLINE_MS = 5000;
/** Generous on purpose (shared 2-core machine); the measured figures are printed. */
const AUDIO_BACK_BOUND_MS = 10_000;
const X_HZ = 600;
const Y_HZ = 1100;
const REC_HZ = 800;

describe('drain to another node (SIGTERM of a channel home)', () => {
	let redis: TestRedis;
	let raw: Redis;
	const nodes: NodeProcess[] = [];
	const bots: VoiceBot[] = [];
	const clients: TestSignalingClient[] = [];
	const cleanups: (() => Promise<unknown>)[] = [];
	const shared = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-drain-')), 'storage');

	const start = async (id: string) => {
		const node = await startNode(redis.url, id, { PARLEY_STORAGE_DIR: shared, PARLEY_SHUTDOWN_DEADLINE_MS: String(DEADLINE_MS) });
		nodes.push(node);
		return node;
	};

	beforeAll(async () => {
		redis = await startRedis();
		raw = new Redis(redis.url);
		await Promise.all([start('drain-0'), start('drain-1')]);
	}, 60_000);

	afterAll(async () => {
		for (const c of cleanups.splice(0)) await c().catch(() => undefined);
		for (const bot of bots) await bot.close();
		for (const c of clients) c.close();
		await Promise.all(nodes.map((n) => n.stop()));
		raw?.disconnect();
		await redis?.stop();
	});

	it(`clients rejoin through the other node and hear each other within ${AUDIO_BACK_BOUND_MS} ms; the recording ends ready (${RUNS} runs)`, async () => {
		const figures: { exitMs: number; homeGoneMs: number; audioBackMs: number[]; recording: { sent: number; written: number; durationMs: number; statusAtExit: string } }[] = [];
		for (let run = 0; run < RUNS; run++) {
			const [home, other] = nodes.slice(-2) as [NodeProcess, NodeProcess];
			const channel = `drain-room-${run}`;
			const [x, y] = await startTalkingPair(home, other, channel, { names: [`dx${run}`, `dy${run}`], tonesHz: [X_HZ, Y_HZ] }, bots);
			expect(await raw.get(`parley:channel-home:${channel}`)).toBe(home.nodeId);
			expect(y.joins[0]).toMatchObject({ url: home.url, redirects: 1 });

			// The recorder: its own channel on A (so the bots hear only each other), recording
			// its own tone into the shared store.
			const recUser = `rec${run}`;
			const { client: rec } = await TestSignalingClient.connect(`${home.url}?token=${await recToken(recUser)}&v=${PROTOCOL_VERSION}`);
			clients.push(rec);
			const caps = await rec.request('getRouterRtpCapabilities', {});
			if (!caps.ok) throw new Error('caps');
			const joined = await rec.request('join', { channel: `drain-rec-${run}`, rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
			if (!joined.ok) throw new Error(`recorder join: ${joined.error.code}`);
			const publisher = await publishWithWerift(rec);
			const stream = streamTone(publisher, encodeTone(REC_HZ, 50));
			cleanups.push(async () => {
				await stream.stop();
				await publisher.close();
			});
			const sentBeforeStart = stream.sent;
			const started = await rec.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'user', userId: recUser } });
			if (!started.ok) throw new Error(`startRecording: ${started.error.code}`);
			const recId = started.data.voiceMessageId;
			const sentAfterStart = stream.sent;

			await waitUntil(() => x.heardPackets > 50 && y.heardPackets > 50 && stream.sent > 60, 15_000, 'audio before the SIGTERM');
			const before = [x.client!, y.client!, rec];
			const sentAtTerm = stream.sent;
			const termAt = performance.now();
			home.proc.child.kill('SIGTERM');
			// A leaves the registry and releases its claims first.
			const homeGone = waitUntil(async () => (await raw.get(`parley:channel-home:${channel}`)) !== home.nodeId, DEADLINE_MS, 'home claim released', 10).then(() => performance.now() - termAt);
			const exitCode = await home.proc.exited;
			const exitMs = Math.round(performance.now() - termAt);
			expect(exitCode).toBe(0);
			expect(exitMs).toBeLessThan(DEADLINE_MS + 1500);
			for (const [i, c] of before.entries()) expect(c.notifications.some((n) => n.method === 'serverShuttingDown'), `client ${i} told`).toBe(true);
			const sentAtClose = stream.sent;
			// Whether A finished the recording itself before exiting (else another node's recovery must).
			const atExit = JSON.parse((await raw.hget(`parley:vm:${recId}`, 'record'))!) as VoiceMessage;

			await waitUntil(() => x.joins.length === 2 && y.joins.length === 2, AUDIO_BACK_BOUND_MS, `rejoin (${x.attemptErrors.join('; ')} | ${y.attemptErrors.join('; ')})`);
			await waitUntil(() => x.heardPackets > 0 && y.heardPackets > 0, AUDIO_BACK_BOUND_MS, 'audio after the SIGTERM');
			const audioBackMs = [x, y].map((b) => Math.round(b.listener!.packets[0]!.atMs - termAt));
			expect(x.serverUrl).toBe(other.url);
			expect(y.serverUrl).toBe(other.url);
			expect(await raw.get(`parley:channel-home:${channel}`)).toBe(other.nodeId);
			await waitUntil(() => x.heardPackets > 60 && y.heardPackets > 60, 10_000, 'audio after the rejoin');
			expect(Math.abs(x.heardHz(50) - Y_HZ)).toBeLessThanOrEqual(20);
			expect(Math.abs(y.heardHz(50) - X_HZ)).toBeLessThanOrEqual(20);
			expect(Math.max(...audioBackMs)).toBeLessThan(AUDIO_BACK_BOUND_MS);

			// The recording, through B: ready, with everything A received up to the drain.
			const auth = { authorization: `Bearer ${await recToken(recUser)}` };
			let message: VoiceMessage | undefined;
			await waitUntil(
				async () => {
					const res = await fetch(`${other.httpBase}/voice/messages/${recId}`, { headers: auth });
					message = res.ok ? ((await res.json()) as VoiceMessage) : undefined;
					return message?.status === 'ready' || message?.status === 'failed';
				},
				15_000,
				'the recording to be ready (read through B)',
				100,
			);
			expect(message!.status, message!.failureReason).toBe('ready');
			// The counts are not part of the API's view: read them from the shared store (Redis).
			const stored = JSON.parse((await raw.hget(`parley:vm:${recId}`, 'record'))!) as VoiceMessage;
			expect(stored.status).toBe('ready');
			const written = stored.recording!.packetsWritten;
			// Everything sent between the start and the SIGTERM, and nothing after A closed the
			// recorder's session (stream.sent counts from before the recording started).
			expect(written).toBeGreaterThanOrEqual(sentAtTerm - sentAfterStart - 5);
			expect(written).toBeLessThanOrEqual(sentAtClose - sentBeforeStart + 5);
			const audio = await fetch(`${other.httpBase}/voice/messages/${recId}/audio`, { headers: auth });
			expect(audio.status).toBe(200);
			const file = path.join(path.dirname(shared), `rec-${run}.ogg`);
			writeFileSync(file, Buffer.from(await audio.arrayBuffer()));
			const decoded = decodeFileToMono(file);
			expect(Math.abs(decoded.length / 48 - message!.durationMs!)).toBeLessThanOrEqual(60);
			expect(Math.abs(decoded.length / 48 - written * 20)).toBeLessThanOrEqual(100);
			expect(Math.abs(dominantFrequency(decoded.subarray(4800)) - REC_HZ)).toBeLessThanOrEqual(10);

			figures.push({ exitMs, homeGoneMs: Math.round(await homeGone), audioBackMs, recording: { sent: sentAtTerm - sentBeforeStart, written, durationMs: message!.durationMs!, statusAtExit: atExit.status } });
			for (const c of cleanups.splice(0)) await c();
			rec.close();
			for (const bot of [x, y]) await bot.close();
			if (run < RUNS - 1) await start(`drain-${run + 2}`);
		}
		console.log(`cluster drain (deadline ${DEADLINE_MS} ms): ${JSON.stringify(figures)}`);
	}, 40_000 * RUNS);
});
