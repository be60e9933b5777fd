// Issue 8, cluster part: churn against two nodes sharing one redis-server (and one storage
// directory), as users run them (server/main.ts processes). Bots enter through a random
// node, so joins of a channel homed elsewhere are redirected (followed, as ParleyClient
// does); they publish real WebRTC audio (werift), listen, record, upload over tus through a
// random node, and leave politely or drop the socket, in a seeded random loop; the next
// session of the same user is its reconnect. Rate limits are on (user and address, every
// scope), so their buckets live in Redis during the churn.
// Afterwards, and after a warm-up that opened everything opened lazily, both nodes hold
// what they held before (mediasoup transports, producers, consumers, channels = routers,
// sessions, recordings, transcodes: /metrics), their RSS is within the stated band, and
// Redis holds only the node entries, voice-message data and the event stream: the
// channel-home claims are released after the empty-close delay, the rate-limit buckets are
// gone once they would be full again, and no voice message is stuck mid-way.
// A socket the server drops (1006, no close frame) fails the run (droppedByServer, with the
// session's timed trail). That used to happen about one run in three, right after a welcome:
// uWebSockets.js shut down sockets upgraded asynchronously inside res.cork() (the admission
// check waits for Redis here); Parley now upgrades synchronously (test/cluster/asyncUpgrade).
// A connect that is neither opened nor refused within 10 s is printed (connectHangs).
//
// Two soaks: joins redirected to the channel's home (cluster.bridgeAbovePeers at its default),
// then channels bridging both nodes (bridgeAbovePeers 2: pipes opened and torn down). CI runs
// 20 s each. A longer run of one of them:
//   PARLEY_CLUSTER_SOAK_S=600 [PARLEY_CLUSTER_SOAK_BRIDGE_ABOVE_PEERS=2] npx vitest run test/reliability/clusterSoak.process.test.ts
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { encodeTone } from '../helpers/audio.js';
import { liveServerObjects, parsePrometheusText } from '../helpers/prometheusText.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { logLine } from '../helpers/serverProcess.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { writeToneWav } from '../helpers/wav.js';
import { publishWithWerift, streamTone } from '../../testkit/weriftPublisher.js';
import { sleep, startNode, token as nodeToken, waitUntil, type NodeProcess } from '../cluster/helpers/nodes.js';
import { leaveOrDrop, listenWithoutMedia } from './helpers/harness.js';
import { Prng } from './helpers/prng.js';
import { uploadFile } from './helpers/tus.js';

const SOAK_S = Number(process.env.PARLEY_CLUSTER_SOAK_S ?? 20);
const BOTS = Number(process.env.PARLEY_CLUSTER_SOAK_BOTS ?? 6);
const CHANNELS = ['csoak-a', 'csoak-b', 'csoak-c', 'csoak-d'];
/** RSS a node may hold above its post-warm-up baseline, at the end and at its peak. */
const RSS_END_BAND_MB = 64;
const RSS_PEAK_BAND_MB = 160;
/** cluster.bridgeAbovePeers of both nodes, one soak each: undefined is its default (500), so
 * every join of a channel homed on the other node is redirected; 2 mixes redirects and bridges
 * (pipes opened and torn down). PARLEY_CLUSTER_SOAK_BRIDGE_ABOVE_PEERS runs only that one. */
const BRIDGE_VARIANTS: (string | undefined)[] = process.env.PARLEY_CLUSTER_SOAK_BRIDGE_ABOVE_PEERS !== undefined ? [process.env.PARLEY_CLUSTER_SOAK_BRIDGE_ABOVE_PEERS] : [undefined, '2'];
const MEDIA_KEYS = ['routers', 'transports', 'producers', 'consumers', 'channels', 'sessions', 'recordings', 'transcodes'] as const;
/** What Redis may hold once the churn is over (cluster README, "What Redis holds"). */
const ALLOWED_AFTER = [/^parley:node:csoak-node-[ab]$/, /^parley:nodes$/, /^parley:vm:/, /^parley:voice-meta$/];

const quantile = (xs: number[], q: number) => (xs.length === 0 ? 0 : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!);

/** A client's connect timeout (open + welcome); see connectHangs in the report. */
const CONNECT_TIMEOUT_MS = 10_000;
class ConnectHang extends Error {}
/** Longer than any session's work (1-3 s, a recording's stop, an upload) on a loaded machine. */
const SESSION_LIMIT_MS = 25_000;

type MediaFigures = Record<(typeof MEDIA_KEYS)[number], number>;

const rssMb = (pid: number) => Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);

for (const BRIDGE_ABOVE_PEERS of BRIDGE_VARIANTS) clusterSoak(BRIDGE_ABOVE_PEERS);

function clusterSoak(BRIDGE_ABOVE_PEERS: string | undefined): void {
	describe(`cluster soak: ${SOAK_S} s of churn by ${BOTS} bots over two nodes${BRIDGE_ABOVE_PEERS === undefined ? '' : `, bridging above ${BRIDGE_ABOVE_PEERS} peers`}`, () => {
		let redis: TestRedis;
		let raw: Redis;
		const nodes: NodeProcess[] = [];
		const shared = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-csoak-')), 'storage');

		beforeAll(async () => {
			redis = await startRedis();
			raw = new Redis(redis.url);
			const env = {
				PARLEY_STORAGE_DIR: shared,
				// Limits on, high enough for the bots: their buckets are the rate-limit keys checked below.
				PARLEY_SIGNALING_REQUESTS_PER_SECOND: '200',
				PARLEY_SIGNALING_REQUEST_BURST: '400',
				PARLEY_SIGNALING_USER_REQUESTS_PER_SECOND: '200',
				PARLEY_SIGNALING_USER_REQUEST_BURST: '400',
				PARLEY_SIGNALING_IP_REQUESTS_PER_SECOND: '1000',
				PARLEY_SIGNALING_IP_REQUEST_BURST: '2000',
				PARLEY_SIGNALING_IP_CONNECTIONS_PER_MINUTE: '6000',
				PARLEY_SIGNALING_IP_CONNECTION_BURST: '600',
				PARLEY_VOICE_USER_REQUESTS_PER_SECOND: '200',
				PARLEY_VOICE_USER_REQUEST_BURST: '400',
				PARLEY_VOICE_IP_REQUESTS_PER_SECOND: '1000',
				PARLEY_VOICE_IP_REQUEST_BURST: '2000',
				...(BRIDGE_ABOVE_PEERS !== undefined && { PARLEY_CLUSTER_BRIDGE_ABOVE_PEERS: BRIDGE_ABOVE_PEERS }),
			};
			nodes.push(...(await Promise.all([startNode(redis.url, 'csoak-node-a', env), startNode(redis.url, 'csoak-node-b', env)])));
		}, 60_000);

		afterAll(async () => {
			// PARLEY_SOAK_LOG_DIR=/some/dir keeps both nodes' logs (JSON lines) for a post-mortem.
			const logDir = process.env.PARLEY_SOAK_LOG_DIR;
			if (logDir) for (const n of nodes) writeFileSync(path.join(logDir, `${n.nodeId}.log`), n.proc.stdout());
			await Promise.all(nodes.map((n) => n.kill()));
			raw?.disconnect();
			await redis?.stop();
		});

		it('both nodes return to their baseline of media objects and sessions, RSS in the band, Redis back to node entries and voice data', async () => {
			const wav = path.join(path.dirname(shared), 'tone.wav');
			writeToneWav(wav, 440, 1);
			const wavBytes = readFileSync(wav);
			const tone = encodeTone(1000, 50);
			const token = (userId: string) => nodeToken(userId, { channels: CHANNELS, ttlS: 3600 });
			const workerPids = await Promise.all(nodes.map(async (n) => (await logLine(n.proc, 'mediasoup workers started')).pids as number[]));
			const pids = nodes.map((n) => n.proc.child.pid!);

			const media = async (node: NodeProcess): Promise<MediaFigures> => {
				return liveServerObjects(parsePrometheusText(await (await fetch(`${node.httpBase}/metrics`)).text()));
			};
			const quiet = (f: MediaFigures) => MEDIA_KEYS.every((k) => f[k] === 0);
			const settle = () => waitUntil(async () => (await Promise.all(nodes.map(media))).every(quiet), 20_000, 'both nodes to be idle', 200);
			const scan = async (pattern: string): Promise<string[]> => {
				const keys: string[] = [];
				let cursor = '0';
				do {
					const [next, batch] = await raw.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
					cursor = next;
					keys.push(...batch);
				} while (cursor !== '0');
				return keys.sort();
			};
			/** Keys by family (the part before the id), for the report. */
			const families = (keys: string[]) => {
				const out: Record<string, number> = {};
				for (const k of keys) {
					const family = /^parley:(node:|nodes$|channel-home:|rl:[a-z-]+:|vm:dest:|vm:status:|vm:owner:|vm:|voice-meta$)/.exec(k)?.[1] ?? k;
					out[family] = (out[family] ?? 0) + 1;
				}
				return out;
			};

			const counts = { sessions: 0, redirects: 0, bridged: 0, published: 0, listened: 0, recorded: 0, uploaded: 0, abrupt: 0, byNode: [0, 0], errors: [] as string[] };
			const recordingIds: string[] = [];
			const connectHangs: string[] = [];
			const droppedByServer: string[] = [];
			/** How long each werift publisher took to connect (ICE + DTLS). */
			const connectMs: number[] = [];
			const uploadIds: string[] = [];

			/** One session of one bot: enter through a random node, follow a redirect, do some work, go. */
			async function session(rng: Prng, userId: string, at: { mark(stage: string): void }): Promise<void> {
				let url = rng.pick(nodes).url;
				const channel = rng.pick(CHANNELS);
				let client: TestSignalingClient | undefined;
				for (let hops = 0; !client; hops++) {
					at.mark(`mint a token (test side) for ${url}`);
					const jwt = await token(userId);
					at.mark(`connect ${url}`);
					const c = await connectWithin(`${url}?token=${jwt}&v=${PROTOCOL_VERSION}`, url);
					counts.sessions++;
					// The client's port and the wall clock pair a trail with a packet capture
					// (tcpdump -i lo) when chasing the open finding below.
					at.mark(`connected from port ${(c.ws as unknown as { _socket?: { localPort?: number } })._socket?.localPort} at ${new Date().toISOString()}`);
					void c.closed.then((cl) => at.mark(`socket closed ${cl.code} ${cl.reason} at ${new Date().toISOString()}`));
					at.mark(`getRouterRtpCapabilities at ${url}`);
					const caps = await c.request('getRouterRtpCapabilities', {});
					if (!caps.ok) throw new Error(`caps ${caps.error.code}`);
					at.mark(`join ${channel} at ${url}`);
					const join = await c.request('join', { channel, rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
					if (join.ok) {
						client = c;
						break;
					}
					c.close();
					if (join.error.code !== 'E_REDIRECT' || !join.error.redirect || hops >= 3) throw new Error(`join ${join.error.code}: ${join.error.message}`);
					counts.redirects++;
					url = join.error.redirect.url;
				}
				// Notifications that end or disturb the session, in its trail (why a publisher failed).
				client.ws.on('message', (raw) => {
					const m = /"method":"(channelClosing|serverShuttingDown|peerLeft)"(.{0,120})/.exec(raw.toString());
					if (m && m[1] !== 'peerLeft') at.mark(`got ${m[1]}${m[2]}`);
				});
				const served = nodes.findIndex((n) => n.url === url);
				counts.byNode[served]! += 1;
				if ((await raw.get(`parley:channel-home:${channel}`)) !== nodes[served]!.nodeId) counts.bridged++;
				const cleanup: (() => unknown)[] = [];
				try {
					const work: Promise<unknown>[] = [];
					if (rng.chance(0.6)) {
						at.mark(`publish in ${channel} at ${url}`);
						const publisher = await publishWithWerift(client);
						connectMs.push(publisher.connectMs);
						cleanup.push(() => publisher.close());
						const stream = streamTone(publisher, tone);
						cleanup.push(() => stream.stop());
						counts.published++;
						if (rng.chance(0.4)) {
							at.mark(`startRecording in ${channel} at ${url}`);
							const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: CHANNELS[0]! } });
							if (!rec.ok) throw new Error(`startRecording ${rec.error.code}`);
							counts.recorded++;
							recordingIds.push(rec.data.voiceMessageId);
							work.push(
								sleep(rng.int(500, 2000)).then(async () => {
									const stopped = await client.request('stopRecording', { voiceMessageId: rec.data.voiceMessageId });
									if (!stopped.ok) throw new Error(`stopRecording ${stopped.error.code}`);
								}),
							);
						}
					}
					if (rng.chance(0.5)) {
						at.mark(`createTransport in ${channel} at ${url}`);
						const listener = await listenWithoutMedia(client);
						if (listener.listening) counts.listened++;
						cleanup.push(listener.stop);
					}
					if (rng.chance(0.25)) {
						const base = rng.pick(nodes).httpBase;
						work.push(uploadFile({ base, token: await token(userId) }, wavBytes, 32 * 1024, { destination: `channel:${CHANNELS[1]}`, filename: 'soak.wav' }).then((id) => {
							counts.uploaded++;
							uploadIds.push(id);
						}));
					}
					at.mark(`work in ${channel} at ${url}`);
					await Promise.all([sleep(rng.int(1000, 3000)), ...work]);
					at.mark(`leave ${channel} at ${url}`);
					if ((await leaveOrDrop(client, rng)) === 'dropped') counts.abrupt++;
				} finally {
					at.mark(`cleanup in ${channel} at ${url}`);
					for (const c of cleanup.reverse()) await c();
					if (client.ws.readyState === client.ws.OPEN) client.close();
				}
			}

			/** Connects like a client with a connect timeout: a WebSocket upgrade left unanswered is
			 * given up (and counted, see connectHangs) instead of hanging the bot. */
			async function connectWithin(fullUrl: string, url: string): Promise<TestSignalingClient> {
				let timer: NodeJS.Timeout | undefined;
				const startedAt = Date.now();
				const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ConnectHang(`${url} after ${Date.now() - startedAt} ms`)), CONNECT_TIMEOUT_MS)));
				try {
					return (await Promise.race([TestSignalingClient.connect(fullUrl), timeout])).client;
				} finally {
					clearTimeout(timer);
				}
			}

			/** A node's last warn/error log lines and stderr, for a failure message. */
			const warnings = (n: NodeProcess) => [...n.proc.stdout().split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-5), n.proc.stderr().slice(-500)];

			async function bot(rng: Prng, index: number, until: number): Promise<void> {
				while (Date.now() < until) {
					// A session that hangs (a request never answered) is an error naming where it hung,
					// not a test timeout.
					const t0 = performance.now();
					const trail: string[] = [];
					const at = { mark: (stage: string) => trail.push(`+${Math.round(performance.now() - t0)} ms ${stage}`) };
					let timer: NodeJS.Timeout | undefined;
					const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`session hung for ${SESSION_LIMIT_MS} ms: ${trail.join(', ')}; the nodes' last warnings: ${JSON.stringify(nodes.map(warnings))}`)), SESSION_LIMIT_MS)));
					await Promise.race([session(rng, `cbot-${index}`, at), hung])
						.catch((err: Error) => {
							if (err instanceof ConnectHang) connectHangs.push(`bot ${index}: ${err.message}; warnings: ${JSON.stringify(nodes.map(warnings))}`);
							// The server dropped the socket (1006) before the bot left it.
							else if (/socket closed 1006/.test(err.message) && !/ leave /.test(err.message)) droppedByServer.push(`bot ${index}: ${err.message}`);
							else counts.errors.push(`bot ${index}: ${err.message}; trail: ${trail.slice(-8).join(', ')}`);
						})
						.finally(() => clearTimeout(timer));
				}
			}

			/** Waits for the claims and buckets to go, and says how long each took. */
			const redisSettle = async (from: number) => {
				await waitUntil(async () => (await scan('parley:channel-home:*')).length === 0, 15_000, 'channel-home claims released', 100);
				const homesGoneMs = Date.now() - from;
				await waitUntil(async () => (await scan('parley:rl:*')).length === 0, 30_000, 'rate-limit buckets expired', 250);
				return { homesGoneMs, bucketsGoneMs: Date.now() - from };
			};

			// Warm-up: every kind of work once, so what opens lazily is in the baseline.
			const rng = Prng.fromEnv(0xc50a);
			await Promise.all(Array.from({ length: BOTS }, (_, i) => bot(rng.fork(), i, Date.now() + 4000)));
			await settle();
			await redisSettle(Date.now());
			const before = { media: await Promise.all(nodes.map(media)), rssMb: pids.map(rssMb), workerRssMb: workerPids.map((ps) => ps.map(rssMb)), redis: families(await scan('parley:*')) };
			const warmupErrors = counts.errors.splice(0);

			const started = Date.now();
			const peaks = pids.map(rssMb);
			let peakRl = 0;
			let peakHomes = 0;
			const rlScopes = new Set<string>();
			const sampler = setInterval(() => {
				pids.forEach((p, i) => (peaks[i] = Math.max(peaks[i]!, rssMb(p))));
			}, 1000);
			// A bucket lives only until it would be full again (milliseconds at these rates): look often.
			const keySampler = setInterval(() => {
				void scan('parley:rl:*').then((k) => {
					peakRl = Math.max(peakRl, k.length);
					for (const key of k) rlScopes.add(key.split(':')[2]!);
				});
				void scan('parley:channel-home:*').then((k) => (peakHomes = Math.max(peakHomes, k.length)));
			}, 100);
			await Promise.all(Array.from({ length: BOTS }, (_, i) => bot(rng.fork(), i, started + SOAK_S * 1000)));
			clearInterval(sampler);
			clearInterval(keySampler);
			const churnEnded = Date.now();
			const rlAtEnd = (await scan('parley:rl:*')).length;
			await settle();
			const idleMs = Date.now() - churnEnded;
			// Every voice message the churn made is finished (ready), whichever node converted it.
			const statusOf = async (id: string) => raw.hget(`parley:vm:${id}`, 'status');
			await waitUntil(async () => (await Promise.all([...recordingIds, ...uploadIds].map(statusOf))).every((s) => s === 'ready' || s === 'failed'), 20_000, 'voice messages finished', 250);
			const statuses = await Promise.all([...recordingIds, ...uploadIds].map(statusOf));
			const redisTimes = await redisSettle(churnEnded);
			const keys = await scan('parley:*');
			const after = { media: await Promise.all(nodes.map(media)), rssMb: pids.map(rssMb), workerRssMb: workerPids.map((ps) => ps.map(rssMb)), redis: families(keys) };
			const report = {
				soakS: SOAK_S,
				bridgeAbovePeers: BRIDGE_ABOVE_PEERS ?? 'default',
				bots: BOTS,
				...counts,
				errors: counts.errors.length,
				connectHangs,
				droppedByServer,
				publisherConnectMs: { p50: quantile(connectMs, 0.5), p99: quantile(connectMs, 0.99), max: Math.max(0, ...connectMs), over1s: connectMs.filter((ms) => ms > 1000).length },
				warmupErrors: warmupErrors.length,
				before,
				after,
				peakRssMb: peaks,
				redisPeak: { rl: peakRl, rlScopes: [...rlScopes].sort(), channelHome: peakHomes, rlAtEnd },
				idleMs,
				...redisTimes,
			};
			console.log(`cluster soak figures: ${JSON.stringify(report)}`);

			expect(counts.errors.slice(0, 5)).toEqual([]);
			expect(droppedByServer.slice(0, 3)).toEqual([]);
			expect(warmupErrors.slice(0, 5)).toEqual([]);
			expect(counts.published).toBeGreaterThan(0);
			expect(counts.redirects).toBeGreaterThan(0);
			expect(counts.byNode.every((n) => n > 0)).toBe(true);
			expect(statuses.filter((s) => s !== 'ready')).toEqual([]);
			for (const n of nodes) expect(n.proc.child.exitCode).toBeNull();
			for (const [i, f] of after.media.entries()) for (const k of MEDIA_KEYS) expect(f[k], `node ${i} ${k}`).toBe(0);
			// Redis: only what outlives the churn by design.
			expect(keys.filter((k) => !ALLOWED_AFTER.some((re) => re.test(k)))).toEqual([]);
			expect((await raw.zrange('parley:nodes', '0', '-1')).sort()).toEqual(nodes.map((n) => n.nodeId).sort());
			for (const status of ['recording', 'uploading', 'processing']) expect(await raw.scard(`parley:vm:status:${status}`), status).toBe(0);
			// (The ids include the warm-up's, so this is every message ever made.)
			expect(await raw.scard('parley:vm:status:ready')).toBe(statuses.length);
			expect(after.redis['vm:']).toBe(statuses.length);
			for (const [i] of nodes.entries()) {
				expect(after.rssMb[i]! - before.rssMb[i]!, `node ${i} RSS at the end`).toBeLessThan(RSS_END_BAND_MB);
				expect(peaks[i]! - before.rssMb[i]!, `node ${i} RSS peak`).toBeLessThan(RSS_PEAK_BAND_MB);
			}

			// Both leave cleanly, and take their entries with them.
			await Promise.all(nodes.map((n) => n.stop()));
			for (const n of nodes) expect(n.proc.child.exitCode).toBe(0);
			expect((await scan('parley:*')).filter((k) => !/^parley:(vm:|voice-meta$)/.test(k))).toEqual([]);
		}, SOAK_S * 1000 + 80_000);
	});
}
