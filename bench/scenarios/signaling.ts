// Scenario 3, signaling and HTTP load against Parley running as its own process:
// - join/leave storms: N WebSocket clients connect, join (channels of `channelSize`) with
//   their receive transport created by the join, as the client does, all at once; then all leave at once. Joins/s and per-client
//   join latency (from starting to open the WebSocket to the transport reply).
// - time to first audio: M WebRTC listeners (werift: ICE + DTLS + SRTP) join a channel where a
//   WebRTC publisher is talking, all at once; time from starting to open the WebSocket to
//   the first audio packet, and each phase of the join on the way (WERIFT_LISTENER_PHASES).
// - HTTP: keep-alive load on GET /healthz, and tus upload creation + a 16 KiB chunk.
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { encodeOpusFrames } from '../audio/opusEncoding.js';
import { speechPcm } from '../audio/speech.js';
import { CpuMeter } from '../metrics/cpu.js';
import { type LatencySummary, summarize } from '../metrics/stats.js';
import { type HttpLoadResult, httpLoad } from '../signaling/HttpLoad.js';
import { FramePacer } from '../peers/FramePacer.js';
import { ParleyProcess } from '../signaling/ParleyProcess.js';
import { type ListenerTimings, listenOnce, WebRtcPublisher, WERIFT_LISTENER_PHASES } from '../signaling/WebRtcPeers.js';
import { type JoinPhaseSummary, summarizeJoinPhases } from '../metrics/joinPhases.js';

export interface SignalingOptions {
	clients: number;
	channelSize: number;
	waves: number;
	mediaClients: number;
	/** Listeners joining one after another (each waits for the previous one's first audio). */
	sequentialMediaJoins: number;
	httpConnections: number;
	httpDurationMs: number;
	uploadChunkBytes: number;
}

export const SIGNALING_DEFAULTS: SignalingOptions = {
	clients: 200,
	channelSize: 50,
	waves: 3,
	mediaClients: 20,
	sequentialMediaJoins: 20,
	httpConnections: 32,
	httpDurationMs: 5000,
	uploadChunkBytes: 16 * 1024,
};

export interface StormWave {
	clients: number;
	joined: number;
	failed: number;
	errors: string[];
	joinsPerSecond: number;
	/** Start of WebSocket open to join reply, and to the receive-transport reply. */
	joinLatencyMs: LatencySummary;
	joinAndTransportLatencyMs: LatencySummary;
	leavesPerSecond: number;
	/** Server process (JS thread) and its worker, shares of one core, over the join storm. */
	serverCpu: number;
	workerCpu: number;
	benchCpu: number;
}

export interface SignalingResult {
	path: string;
	options: SignalingOptions;
	waves: StormWave[];
	/** Median over waves. */
	joinsPerSecond: number;
	/** Over every join of every wave. */
	joinLatencyMs: LatencySummary;
	firstAudio: {
		clients: number;
		succeeded: number;
		errors: string[];
		/** From starting to open the WebSocket: welcome, join reply, first audio packet. */
		welcomeMs: LatencySummary;
		joinedMs: LatencySummary;
		firstAudioMs: LatencySummary;
		/** Every phase of the listeners' joins (WERIFT_LISTENER_PHASES), in order. */
		phases: JoinPhaseSummary[];
		benchCpu: number;
		serverCpu: number;
	};
	/**
	 * The same join, one listener at a time: what one person joining a talking channel waits,
	 * without the bench's own werift peers (ICE, DTLS and SRTP in JavaScript, one event loop)
	 * queueing behind each other as they do when all join at once. Absent in older results.
	 */
	firstAudioOneAtATime?: {
		joins: number;
		succeeded: number;
		errors: string[];
		firstAudioMs: LatencySummary;
		phases: JoinPhaseSummary[];
	};
	http: (HttpLoadResult & { serverCpu: number; benchCpu: number })[];
}

export async function runSignaling(options: SignalingOptions, log: (line: string) => void = () => {}): Promise<SignalingResult> {
	const o = options;
	const jwtSecret = `bench-${Math.random().toString(36).slice(2)}-${Date.now()}-0123456789abcdef`;
	const key = new TextEncoder().encode(jwtSecret);
	// Rate limits stay at their defaults: a client makes 4-6 requests, far below the burst.
	const server = await ParleyProcess.start({ jwtSecret });
	const base = `ws://127.0.0.1:${server.port}/ws`;
	try {
		const tokens = await Promise.all(
			Array.from({ length: o.clients }, (_, i) => mintAccessToken({ userId: `storm-${i}`, channels: ['storm-*'], grants: { canSubscribe: true }, ttlS: 3600 }, key)),
		);
		const waves: StormWave[] = [];
		const joinSamples: number[] = [];
		for (let w = 0; w < o.waves; w++) {
			const { samples, ...wave } = await joinLeaveStorm(server, base, tokens, o.channelSize, w);
			waves.push(wave);
			joinSamples.push(...samples);
			log(
				`signaling storm ${w + 1}/${o.waves}: ${wave.joined}/${wave.clients} joined, ${wave.joinsPerSecond.toFixed(0)} joins/s, join p50 ${wave.joinLatencyMs.p50.toFixed(1)} ms p99 ${wave.joinLatencyMs.p99.toFixed(1)} ms, ${wave.leavesPerSecond.toFixed(0)} leaves/s`,
			);
		}

		// Time to first audio over WebRTC.
		const pcm = speechPcm();
		const frames = encodeOpusFrames(pcm, 500, { inbandFec: true, packetLossPercent: 5 });
		const pubToken = await mintAccessToken({ userId: 'stage-speaker', channels: ['stage'], grants: { canPublish: true, canSubscribe: true }, ttlS: 3600 }, key);
		const publisher = await WebRtcPublisher.start(`${base}?token=${pubToken}&v=${PROTOCOL_VERSION}`, 'stage', frames);
		const pacer = new FramePacer([publisher]);
		pacer.start();
		const listenerTokens = await Promise.all(
			Array.from({ length: o.mediaClients }, (_, i) => mintAccessToken({ userId: `stage-listener-${i}`, channels: ['stage'], grants: { canSubscribe: true }, ttlS: 3600 }, key)),
		);
		const cpu = new CpuMeter([server.pid]);
		cpu.start();
		const outcomes = await Promise.allSettled(listenerTokens.map((t) => listenOnce(`${base}?token=${t}&v=${PROTOCOL_VERSION}`, 'stage')));
		const mediaCpu = cpu.stop();
		const ok = outcomes.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
		const errors = outcomes.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message ?? r.reason)] : []));
		await Promise.all(ok.map((x) => x.close()));
		const sequential: ListenerTimings[] = [];
		const sequentialErrors: string[] = [];
		for (let i = 0; i < o.sequentialMediaJoins; i++) {
			const token = await mintAccessToken({ userId: `stage-sequential-${i}`, channels: ['stage'], grants: { canSubscribe: true }, ttlS: 3600 }, key);
			try {
				const joined = await listenOnce(`${base}?token=${token}&v=${PROTOCOL_VERSION}`, 'stage');
				sequential.push(joined.timings);
				await joined.close();
			} catch (err) {
				sequentialErrors.push(String((err as Error).message ?? err));
			}
		}
		pacer.stop();
		await publisher.close();
		const firstAudioOneAtATime = {
			joins: o.sequentialMediaJoins,
			succeeded: sequential.length,
			errors: [...new Set(sequentialErrors)],
			firstAudioMs: summarize(sequential.map((t) => t.firstRtpIn)),
			phases: summarizeJoinPhases(WERIFT_LISTENER_PHASES, sequential),
		};
		const firstAudio = {
			clients: o.mediaClients,
			succeeded: ok.length,
			errors: [...new Set(errors)],
			welcomeMs: summarize(ok.map((x) => x.timings.welcome)),
			joinedMs: summarize(ok.map((x) => x.timings.joined)),
			firstAudioMs: summarize(ok.map((x) => x.timings.firstRtpIn)),
			phases: summarizeJoinPhases(WERIFT_LISTENER_PHASES, ok.map((x) => x.timings)),
			benchCpu: mediaCpu.bench,
			serverCpu: mediaCpu.processes[0]!,
		};
		log(`signaling first audio: ${ok.length}/${o.mediaClients} WebRTC listeners, p50 ${firstAudio.firstAudioMs.p50.toFixed(0)} ms p99 ${firstAudio.firstAudioMs.p99.toFixed(0)} ms`);
		log(`signaling first audio phases (from connect p50/p99): ${firstAudio.phases.map((p) => `${p.phase} ${p.fromConnectMs.p50.toFixed(0)}/${p.fromConnectMs.p99.toFixed(0)}`).join(', ')}`);
		log(
			`signaling first audio, one listener at a time: ${sequential.length}/${o.sequentialMediaJoins}, p50 ${firstAudioOneAtATime.firstAudioMs.p50.toFixed(0)} ms p99 ${firstAudioOneAtATime.firstAudioMs.p99.toFixed(0)} ms`,
		);

		// HTTP load.
		const http: SignalingResult['http'] = [];
		const measure = async (run: () => Promise<HttpLoadResult>): Promise<void> => {
			const meter = new CpuMeter([server.pid]);
			meter.start();
			const result = await run();
			const u = meter.stop();
			http.push({ ...result, serverCpu: u.processes[0]!, benchCpu: u.bench });
			for (const [label, f] of Object.entries(result.requests)) {
				log(`http ${result.name}: ${label} ${f.requestsPerSecond.toFixed(0)} req/s, p50 ${f.latencyMs.p50.toFixed(2)} ms p99 ${f.latencyMs.p99.toFixed(2)} ms, statuses ${JSON.stringify(f.statuses)}`);
			}
		};
		const load = { connections: o.httpConnections, durationMs: o.httpDurationMs };
		await measure(() =>
			httpLoad('healthz', server.port, load, async (send) => {
				const r = await send({ method: 'GET', path: '/healthz' });
				if (r.status !== 200) throw new Error(`healthz ${r.status}`);
			}),
		);
		const uploader = await mintAccessToken({ userId: 'bench-uploader', channels: ['bench'], grants: { canRecord: true }, ttlS: 3600 }, key);
		const b64 = (s: string): string => Buffer.from(s).toString('base64');
		const chunk = Buffer.alloc(o.uploadChunkBytes, 7);
		const tusHeaders = { 'tus-resumable': '1.0.0', authorization: `Bearer ${uploader}` };
		await measure(() =>
			httpLoad('tus upload', server.port, load, async (send) => {
				const created = await send(
					{
						method: 'POST',
						path: '/voice/uploads',
						headers: { ...tusHeaders, 'upload-length': String(4 * chunk.length), 'upload-metadata': `destination ${b64('channel:bench')},filename ${b64('bench.ogg')},filetype ${b64('audio/ogg')}` },
					},
					'POST /voice/uploads (create)',
				);
				const location = created.headers.get('location');
				if (created.status !== 201 || !location) throw new Error(`create ${created.status}`);
				// A first chunk only: the upload stays incomplete, so no transcoding is started.
				const patched = await send(
					{ method: 'PATCH', path: new URL(location, 'http://x').pathname, headers: { ...tusHeaders, 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' }, body: chunk },
					`PATCH (${chunk.length / 1024} KiB chunk)`,
				);
				if (patched.status !== 204) throw new Error(`patch ${patched.status}`);
			}),
		);

		return {
			path: 'Parley as a child process (server/main.ts); WebSocket signaling; werift (ICE + DTLS + SRTP) for first audio; raw keep-alive HTTP/1.1 for HTTP',
			options: o,
			waves,
			joinsPerSecond: median(waves.map((w) => w.joinsPerSecond)),
			joinLatencyMs: summarize(joinSamples),
			firstAudio,
			firstAudioOneAtATime,
			http,
		};
	} finally {
		await server.stop();
	}
}

async function joinLeaveStorm(server: ParleyProcess, base: string, tokens: string[], channelSize: number, wave: number): Promise<StormWave & { samples: number[] }> {
	const cpu = new CpuMeter([server.pid, ...server.workerPids()]);
	const joinLatencies: number[] = [];
	const fullLatencies: number[] = [];
	const errors: string[] = [];
	const clients: TestSignalingClient[] = [];
	cpu.start();
	const started = performance.now();
	let lastJoined = started;
	await Promise.all(
		tokens.map(async (token, i) => {
			const t0 = performance.now();
			try {
				// As the client joins: the welcome's router capabilities, one join that creates the
				// receive transport (a server without them is asked as before).
				const { client, welcome } = await TestSignalingClient.connect(`${base}?token=${token}&v=${PROTOCOL_VERSION}`);
				clients.push(client);
				let rtpCapabilities = welcome.routerRtpCapabilities;
				if (!rtpCapabilities) {
					const caps = await client.request('getRouterRtpCapabilities', {});
					if (!caps.ok) throw new Error(caps.error.code);
					rtpCapabilities = caps.data.rtpCapabilities;
				}
				const joined = await client.request('join', { channel: `storm-${wave}-${Math.floor(i / channelSize)}`, rtpCapabilities: rtpCapabilities as RequestData<'join'>['rtpCapabilities'], transports: ['recv'] });
				if (!joined.ok) throw new Error(joined.error.code);
				joinLatencies.push(performance.now() - t0);
				if (!joined.data.transports?.recv) {
					const transport = await client.request('createTransport', { direction: 'recv' });
					if (!transport.ok) throw new Error(transport.error.code);
				}
				const done = performance.now();
				fullLatencies.push(done - t0);
				lastJoined = Math.max(lastJoined, done);
			} catch (err) {
				errors.push((err as Error).message);
			}
		}),
	);
	const usage = cpu.stop();
	const leaveStart = performance.now();
	await Promise.all(
		clients.map(async (c) => {
			try {
				await c.request('leave', {});
			} catch {
				// Counted by the join figures already.
			}
			c.close();
		}),
	);
	const leaveS = (performance.now() - leaveStart) / 1000;
	await Promise.all(clients.map((c) => c.closed));
	return {
		clients: tokens.length,
		joined: fullLatencies.length,
		failed: errors.length,
		errors: [...new Set(errors)],
		joinsPerSecond: fullLatencies.length / ((lastJoined - started) / 1000),
		joinLatencyMs: summarize(joinLatencies),
		joinAndTransportLatencyMs: summarize(fullLatencies),
		leavesPerSecond: clients.length / leaveS,
		serverCpu: usage.processes[0]!,
		workerCpu: usage.processes.slice(1).reduce((a, b) => a + b, 0),
		benchCpu: usage.bench,
		samples: joinLatencies,
	};
}

function median(values: number[]): number {
	const s = [...values].sort((a, b) => a - b);
	if (s.length === 0) return NaN;
	const m = s.length >> 1;
	return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
