// Capacity over real WebRTC through Parley's real signaling: P werift publishers and L werift
// listeners (ICE + DTLS + SRTP, one BUNDLEd transport per listener carrying P consumers)
// join a channel on a Parley node running as its own process, its worker pinned to the last
// core. This is the figure users care about; it costs the bench more than the plain-RTP ramp
// (a DTLS handshake and SRTP decryption in JavaScript per listener), so:
// - listeners join while the publishers are paused, each until ICE + DTLS are up; then all
//   but a few sampled ones stop reading their socket (`WeriftListener.silence`) and the
//   kernel counts what arrives, as with the plain ramp's sinks; the sampled ones are timed at
//   their socket (`WeriftListener.tap`), without werift's JavaScript SRTP;
// - there is no raw-mediasoup twin of this path: compare with the SRTP plain-transport ramp,
//   which has one.
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { PROTOCOL_VERSION } from '../../protocol/messages.js';
import { encodeOpusFrames } from '../audio/opusEncoding.js';
import { speechPcm } from '../audio/speech.js';
import { allCores, canPin, pin } from '../metrics/affinity.js';
import { CpuMeter, waitForQuietMachine } from '../metrics/cpu.js';
import { processRssBytes } from '../metrics/memory.js';
import { totalUdpDrops, udpDropsByPort } from '../metrics/udpDrops.js';
import { FramePacer } from '../peers/FramePacer.js';
import { ParleyProcess } from '../signaling/ParleyProcess.js';
import { WebRtcListener, WebRtcPublisher } from '../signaling/WebRtcPeers.js';
import { CAPACITY_DEFAULTS, type CapacityOptions, type CapacityResult, type CapacityStep, type IdleMemory, judgeWindow, rampCapacity } from './capacity.js';
import { mapLimit } from '../targets/ForwardingTarget.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DRAIN_MS = 200;
/** werift and mediasoup give up on ICE consent 30 s after the last answered check. */
const CONSENT_BUDGET_MS = 25_000;

export const WEBRTC_CAPACITY_DEFAULTS: CapacityOptions = {
	...CAPACITY_DEFAULTS,
	transport: 'webrtc',
	targets: ['parley'],
	steps: [1000, 2000, 2500, 3000, 4000],
	windowMs: 4000,
};

/** Listeners set up at once (each costs the bench a DTLS handshake in JavaScript). */
const SETUP_CONCURRENCY = 8;

export async function runWebRtcCapacity(options: CapacityOptions, log: (line: string) => void = () => {}): Promise<CapacityResult> {
	const o = options;
	const pcm = speechPcm();
	const frames = Array.from({ length: o.publishers }, (_, i) => encodeOpusFrames(pcm, 1500, { bitrateBps: o.bitrateBps, inbandFec: true, packetLossPercent: 5 }, i * 97));
	const jwtSecret = `bench-${Math.random().toString(36).slice(2)}-${Date.now()}-0123456789abcdef`;
	const key = new TextEncoder().encode(jwtSecret);
	const pinned = o.pin && canPin();
	const cores = allCores();
	const server = await ParleyProcess.start({ jwtSecret, env: { PARLEY_SIGNALING_MAX_CONNECTIONS: '100000' } });
	try {
		const workerPids = server.workerPids();
		if (workerPids.length !== 1) throw new Error(`expected one worker, found ${workerPids.length}`);
		if (pinned) {
			pin(process.pid, cores.slice(0, -1));
			pin(server.pid, cores.slice(0, -1));
			pin(workerPids[0]!, cores.slice(-1));
		}
		const base = `ws://127.0.0.1:${server.port}/ws`;
		const token = (user: string, channel: string, publish: boolean): Promise<string> =>
			mintAccessToken({ userId: user, channels: [channel], grants: { canPublish: publish, canSubscribe: !publish }, ttlS: 3600 }, key);
		const budget = { remainingMs: o.quietBudgetMs };
		// Parley's own process here (no GC forced: its RSS includes whatever garbage it holds).
		const idle: IdleMemory = { nodeRssBytes: processRssBytes(server.pid), workerRssBytes: processRssBytes(workerPids[0]!) };
		const { steps, summary } = await rampCapacity(
			['parley'],
			o,
			(_name, consumers, index) => measureWebRtcStep(server, workerPids[0]!, base, token, o, frames, consumers, index, budget, idle),
			log,
		);
		return {
			path: 'WebRTC (werift: ICE + DTLS + SRTP) through Parley\'s signaling, Parley as a child process',
			options: o,
			pinned,
			benchFloorLatencyMs: { count: 0, p50: NaN, p95: NaN, p99: NaN, max: NaN, mean: NaN },
			steps,
			summary,
			parleyToBaseline: null,
			parleyToBaselineCpu: null,
			server: { note: 'defaults of config/schema.ts with a loopback listener (see ParleyTarget.benchParleyEnv)' },
		};
	} finally {
		await server.stop();
		if (pinned) pin(process.pid, cores);
	}
}

async function measureWebRtcStep(
	server: ParleyProcess,
	workerPid: number,
	base: string,
	token: (user: string, channel: string, publish: boolean) => Promise<string>,
	o: CapacityOptions,
	frames: Uint8Array[][],
	consumers: number,
	index: number,
	quietBudget: { remainingMs: number },
	idle: IdleMemory,
): Promise<CapacityStep> {
	const channel = `webrtc-capacity-${index}`;
	const listenersWanted = Math.max(1, Math.round(consumers / o.publishers));
	const sampled = Math.min(o.sampledListeners, listenersWanted);
	const sampledIdx = new Set(Array.from({ length: sampled }, (_, k) => (sampled === 1 ? listenersWanted - 1 : Math.round((k * (listenersWanted - 1)) / (sampled - 1)))));
	const publishers: WebRtcPublisher[] = [];
	const listeners: WebRtcListener[] = [];
	try {
		for (let i = 0; i < o.publishers; i++) {
			publishers.push(await WebRtcPublisher.start(`${base}?token=${await token(`pub-${index}-${i}`, channel, true)}&v=${PROTOCOL_VERSION}`, channel, frames[i]!));
		}
		const byProducer = new Map(publishers.map((p) => [p.producerId, p]));
		const pacer = new FramePacer(publishers);

		// Listeners join while no audio flows (werift would decrypt every packet in JavaScript
		// meanwhile), each until ICE + DTLS are up.
		await mapLimit(Array.from({ length: listenersWanted }, (_, i) => i), SETUP_CONCURRENCY, async (i) => {
			const l = await WebRtcListener.join(`${base}?token=${await token(`listener-${index}-${i}`, channel, false)}&v=${PROTOCOL_VERSION}`, channel, o.publishers);
			listeners[i] = l;
			await l.media.connected();
		});
		// Short: from here the silenced listeners' ICE consent runs out in ~30 s.
		const quiet = await waitForQuietMachine([workerPid, server.pid], o.maxOtherCpu, Math.min(o.quietWaitMs, 8000), quietBudget);
		const silencedAt = performance.now();

		// Sampled listeners are timed at their socket; the others stop reading it.
		let latencies: Float64Array = new Float64Array(1 << 16);
		let arrivals: Float64Array = new Float64Array(1 << 16);
		let n = 0;
		let sampledPackets = 0;
		let recording = false;
		const sinkPorts: number[] = [];
		listeners.forEach((l, i) => {
			if (!sampledIdx.has(i)) {
				sinkPorts.push(l.media.silence());
				return;
			}
			const source = new Map(l.media.consumers.map((c) => [c.rtpParameters.encodings![0]!.ssrc!, byProducer.get(c.producerId)!]));
			l.media.tap((ssrc, timestamp, at) => {
				if (!recording) return;
				const pub = source.get(ssrc);
				const sentAt = pub?.sendTimeOf(pub.frameIndexOf(timestamp));
				sampledPackets++;
				if (sentAt === undefined) return;
				if (n === latencies.length) {
					const grow = (a: Float64Array): Float64Array => {
						const g = new Float64Array(a.length * 2);
						g.set(a);
						return g;
					};
					latencies = grow(latencies);
					arrivals = grow(arrivals);
				}
				latencies[n] = at - sentAt;
				arrivals[n++] = at;
			});
		});
		const sampledCount = sampledIdx.size;
		pacer.start();
		await sleep(o.warmupMs);
		pacer.stop();
		await sleep(DRAIN_MS);
		const memory = { nodeRssBytes: processRssBytes(server.pid), nodeIdleRssBytes: idle.nodeRssBytes, nodeMeasure: 'rss' as const, workerRssBytes: processRssBytes(workerPid), workerIdleRssBytes: idle.workerRssBytes, peers: listenersWanted + o.publishers };
		const warmupDrops = udpDropsByPort(sinkPorts);
		const silentPorts = sinkPorts.filter((p) => !((warmupDrops.get(p) ?? 0) > 0)).length;
		if (silentPorts > 0) throw new Error(`${silentPorts} WebRTC listeners received nothing during the warm-up`);

		const dropsBefore = totalUdpDrops(sinkPorts);
		const sentBefore = publishers.map((p) => p.sent);
		const cpu = new CpuMeter([workerPid, server.pid]);
		recording = true;
		cpu.start();
		const windowStart = performance.now();
		pacer.start();
		await sleep(o.windowMs);
		pacer.stop();
		const usage = cpu.stop();
		await sleep(DRAIN_MS);
		recording = false;
		const arrivedAtSinks = totalUdpDrops(sinkPorts) - dropsBefore;
		if (performance.now() - silencedAt > CONSENT_BUDGET_MS) {
			throw new Error('the window ended too long after the listeners were silenced: ICE consent may have lapsed');
		}
		const sentPerListener = publishers.reduce((s, p, i) => s + p.sent - sentBefore[i]!, 0);
		return judgeWindow(
			{
				target: 'parley',
				listeners: listenersWanted,
				publishers: o.publishers,
				latencies: latencies.subarray(0, n),
				arrivalTimes: arrivals.subarray(0, n),
				windowStart,
				expected: sentPerListener * listenersWanted,
				arrived: sampledPackets + arrivedAtSinks,
				sampledExpected: sentPerListener * sampledCount,
				sampledArrived: sampledPackets,
				wallS: usage.wallS,
				workerCpu: usage.processes[0]!,
				benchCpu: usage.bench,
				serverCpu: usage.processes[1]!,
				cores: usage.cores,
				nicedCpu: usage.niced,
				quietWaitMs: quiet.waitedMs,
				windowMs: o.windowMs,
				memory,
			},
			o.limits,
		);
	} finally {
		await Promise.all([...listeners.filter(Boolean), ...publishers].map((p) => p.close().catch(() => {})));
		// Let Parley close the peers before the next step measures.
		await sleep(500);
	}
}

