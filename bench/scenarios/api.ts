// Scenario `api`: the gRPC backend API (server/api/) of a real Parley node (ParleyTarget:
// ParleyServer.create in the bench process, api.grpc on, SQLite metadata with its event log).
//
// SubscribeStatus fan-out: `subscribers` SubscribeStatus streams with one filter (every
// message sent to one channel), spread over `connections` grpc-js channels (each its own
// HTTP/2 connection, as a fleet of backend processes would hold them). Then `events` status
// changes committed through the node's voice-message store at `eventRate` per second, the
// way the upload pipeline commits them: a message created (processing), then the same message
// ready, and so on. Per event and subscriber: the time from the commit (the store's insert or
// update resolved: the transaction and its event-log row are committed) to the event reaching
// the subscriber's stream handler. Every subscriber must get every event exactly once: missing
// and duplicate deliveries are counted.
//
// Moderation under load: a channel with `peers` publishers (real Peers with producers, sending
// paced Opus RTP) and `listeners` listeners consuming every publisher, and ListParticipants and
// MuteParticipant calls (alternately; a mute call mutes or unmutes the next publisher in turn)
// issued open loop at `callRate` per second in total for `durationS`: per method p50/p99/max
// from the call to its reply, and the errors by gRPC status. Audio keeps flowing meanwhile
// (arrivals at the listeners are counted).
//
// Server, worker-facing JavaScript and the gRPC clients share the bench process (and its event
// loop), as in the other in-process scenarios: the figures include the clients' own decoding.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { ProtoGrpcType as ChannelsProto } from '../../protocol/grpc/generated/channels.js';
import type { ListParticipantsResponse__Output } from '../../protocol/grpc/generated/parley/v1/ListParticipantsResponse.js';
import type { ChannelServiceClient } from '../../protocol/grpc/generated/parley/v1/ChannelService.js';
import type { VoiceMessageServiceClient } from '../../protocol/grpc/generated/parley/v1/VoiceMessageService.js';
import type { VoiceMessageStatusEvent__Output } from '../../protocol/grpc/generated/parley/v1/VoiceMessageStatusEvent.js';
import type { ProtoGrpcType as VoiceMessagesProto } from '../../protocol/grpc/generated/voice_messages.js';
import { mintApiToken } from '../../server/api/apiAuth.js';
import { loadApiPackage } from '../../server/api/GrpcApiServer.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { encodeOpusFrames } from '../audio/opusEncoding.js';
import { speechPcm } from '../audio/speech.js';
import { EventLoopProbe } from '../metrics/eventLoop.js';
import { type LatencySummary, summarize } from '../metrics/stats.js';
import { totalUdpDrops, UdpSink } from '../metrics/udpDrops.js';
import { FramePacer } from '../peers/FramePacer.js';
import { RtpPublisher } from '../peers/RtpPublisher.js';
import { LOOPBACK, OPUS_PAYLOAD_TYPE } from '../targets/ForwardingTarget.js';
import { ParleyTarget } from '../targets/ParleyTarget.js';

export interface ApiOptions {
	/** SubscribeStatus streams held at once. */
	subscribers: number;
	/** grpc-js channels (HTTP/2 connections) the streams are spread over. */
	connections: number;
	/** Status changes committed (creates and ready updates, alternately). */
	events: number;
	/** Status changes committed per second. */
	eventRate: number;
	/** How long after the last commit every delivery must have arrived. */
	drainTimeoutMs: number;
	/** Publishers in the moderated channel (each a participant with a producer). */
	peers: number;
	/** Listeners in it, each consuming every publisher. */
	listeners: number;
	/** ListParticipants + MuteParticipant calls per second, in total (half each). */
	callRate: number;
	durationS: number;
}

export const API_DEFAULTS: ApiOptions = {
	subscribers: 1000,
	connections: 4,
	events: 200,
	eventRate: 20,
	drainTimeoutMs: 30_000,
	peers: 50,
	listeners: 5,
	callRate: 200,
	durationS: 10,
};

export interface FanOutResult {
	subscribers: number;
	connections: number;
	events: number;
	/** Commits per second achieved (the schedule asked for eventRate). */
	commitsPerSecond: number;
	/** How long the store's insert/update took (the commit itself). */
	commitMs: LatencySummary;
	/** Commit to delivery, over every (event, subscriber) pair delivered. */
	deliveryMs: LatencySummary;
	/** Commit to the moment the last subscriber had the event, per event. */
	lastSubscriberMs: LatencySummary;
	expectedDeliveries: number;
	delivered: number;
	missing: number;
	duplicates: number;
	/** Events delivered to subscribers per second: deliveries / (first commit to last delivery). */
	deliveriesPerSecond: number;
	/** Streams that ended with an error before the end. */
	streamErrors: string[];
	/** Time to open every stream and see the warm-up event on all of them. */
	setupMs: number;
	/** The bench process's (server and clients) longest event-loop stall while measuring. */
	eventLoopMaxStallMs: number;
}

export interface CallFigure {
	method: 'ListParticipants' | 'MuteParticipant';
	calls: number;
	succeeded: number;
	/** Failed calls by gRPC status name. */
	errors: Record<string, number>;
	latencyMs: LatencySummary;
}

export interface ModerationResult {
	peers: number;
	listeners: number;
	/** Calls per second asked for and achieved (issued over the window). */
	callRate: number;
	issuedPerSecond: number;
	durationS: number;
	methods: CallFigure[];
	/** Participants ListParticipants returned (median). */
	participantsListed: number;
	/** The bench process's (server and clients) longest event-loop stall over the window. */
	eventLoopMaxStallMs: number;
	/** RTP packets the publishers sent (each forwarded to every listener unless muted) and the listeners' sockets got during the window. */
	audio: { packetsSent: number; packetsArrived: number; consumers: number };
}

export interface ApiResult {
	path: string;
	options: ApiOptions;
	fanOut: FanOutResult;
	moderation: ModerationResult;
}

const API_KEY = { id: 'bench', secret: 'bench-api-secret-of-enough-length-0123456789' };
const FANOUT_CHANNEL = 'api-bench-fanout';
const MODERATED_CHANNEL = 'api-bench-moderated';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type ApiPackage = ChannelsProto & VoiceMessagesProto;

export async function runApi(options: ApiOptions, log: (line: string) => void = () => {}): Promise<ApiResult> {
	const o = options;
	const target = await ParleyTarget.start({
		workers: 1,
		opusNack: false,
		env: {
			PARLEY_API_GRPC_ENABLED: 'true',
			PARLEY_API_GRPC_PORT: '0',
			PARLEY_API_KEYS: `${API_KEY.id}:${API_KEY.secret}`,
			// One bench key drives the load of a whole backend fleet.
			PARLEY_API_REQUESTS_PER_SECOND: '100000',
			PARLEY_API_REQUEST_BURST: '100000',
		},
	});
	try {
		const api = target.server.api;
		if (!api) throw new Error('the gRPC API did not start');
		const address = `${LOOPBACK}:${api.port}`;
		const pkg = grpc.loadPackageDefinition(loadApiPackage()) as unknown as ApiPackage;
		const token = await mintApiToken({ keyId: API_KEY.id, secret: API_KEY.secret, grant: { channels: ['*'], operations: ['*'] }, ttlS: 600 });
		const metadata = new grpc.Metadata();
		metadata.set('authorization', `Bearer ${token}`);
		// A local subchannel pool per client: each is its own HTTP/2 connection (grpc-js would
		// otherwise share one connection between clients of the same address).
		const channelOptions = { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 4 << 20 };
		const fanOut = await measureFanOut(target, o, () => new pkg.parley.v1.VoiceMessageService(address, grpc.credentials.createInsecure(), channelOptions), metadata, log);
		log(`api fan-out: ${fanOut.subscribers} subscribers on ${fanOut.connections} connections, ${fanOut.events} events: delivery p50 ${fanOut.deliveryMs.p50.toFixed(1)} ms p99 ${fanOut.deliveryMs.p99.toFixed(1)} ms max ${fanOut.deliveryMs.max.toFixed(1)} ms, ${fanOut.deliveriesPerSecond.toFixed(0)} deliveries/s, missing ${fanOut.missing}, duplicates ${fanOut.duplicates}`);
		const moderation = await measureModeration(target, o, new pkg.parley.v1.ChannelService(address, grpc.credentials.createInsecure(), channelOptions), metadata);
		for (const m of moderation.methods) log(`api ${m.method}: ${m.succeeded}/${m.calls} ok, p50 ${m.latencyMs.p50.toFixed(1)} ms p99 ${m.latencyMs.p99.toFixed(1)} ms max ${m.latencyMs.max.toFixed(1)} ms`);
		return {
			path: `ParleyServer in the bench process (api.grpc on, SQLite metadata and event log, 1 worker) <- grpc-js clients in the same process over loopback h2c (${o.connections} connections for the streams, 1 for the unary calls); status changes committed through the node's voice-message store`,
			options: o,
			fanOut,
			moderation,
		};
	} finally {
		await target.close();
	}
}

async function measureFanOut(target: ParleyTarget, o: ApiOptions, newClient: () => VoiceMessageServiceClient, metadata: grpc.Metadata, log: (line: string) => void): Promise<FanOutResult> {
	const store = target.server.voiceStore;
	const feed = target.server.voiceStatusFeed;
	const clients = Array.from({ length: Math.max(1, Math.min(o.connections, o.subscribers)) }, newClient);
	/** Per subscriber: the arrival instant of each event (key: message id + sequence). */
	const arrivals: Map<string, number>[] = Array.from({ length: o.subscribers }, () => new Map());
	let duplicates = 0;
	let lastArrival = 0;
	const streamErrors: string[] = [];
	const warmUpId = randomUUID();
	let warmedUp = 0;
	let onWarm: () => void = () => {};
	const warm = new Promise<void>((resolve) => (onWarm = resolve));
	const setupStarted = performance.now();
	const calls = arrivals.map((got, i) => {
		const client = clients[i % clients.length]!;
		const call = client.SubscribeStatus({ filter: { destination: `channel:${FANOUT_CHANNEL}` } }, metadata);
		call.on('data', (e: VoiceMessageStatusEvent__Output) => {
			const now = performance.now();
			const id = e.message?.id ?? '';
			if (id === warmUpId) {
				if (++warmedUp === o.subscribers) onWarm();
				return;
			}
			const key = `${id}:${e.sequence}`;
			if (got.has(key)) duplicates++;
			else got.set(key, now);
			lastArrival = now;
		});
		call.on('error', (err: grpc.ServiceError) => {
			if (err.code !== grpc.status.CANCELLED) streamErrors.push(`subscriber ${i}: ${grpc.status[err.code]} ${err.details}`);
		});
		return call;
	});
	try {
		// Every stream has taken its start position once the feed counts it; the warm-up event
		// then proves each one delivers before anything is timed.
		await until(() => feed.subscribers >= o.subscribers, 60_000, () => `${feed.subscribers}/${o.subscribers} SubscribeStatus streams open`);
		const base = Date.now();
		const message = (id: string): VoiceMessage => ({ id, ownerId: 'bench-owner', destination: { kind: 'channel', channel: FANOUT_CHANNEL }, source: 'upload', status: 'processing', originalName: 'memo.ogg', originalType: 'audio/ogg', originalSizeBytes: 48_000, detectedFormat: 'ogg', nodeId: target.server.config.cluster?.nodeId ?? 'bench', createdAt: base, updatedAt: base });
		await store.insert(message(warmUpId));
		await Promise.race([warm, until(() => streamErrors.length > 0, 60_000, () => `${warmedUp}/${o.subscribers} subscribers got the warm-up event`).then(() => Promise.reject(new Error(streamErrors[0])))]);
		const setupMs = performance.now() - setupStarted;
		log(`api fan-out: ${o.subscribers} streams open and delivering after ${setupMs.toFixed(0)} ms`);

		// The commits: create, then ready, per message; paced against the clock.
		const committed = new Map<string, number>();
		const commitTimes: number[] = [];
		const probe = new EventLoopProbe();
		probe.start();
		const intervalMs = 1000 / o.eventRate;
		const started = performance.now();
		let current = '';
		for (let i = 0; i < o.events; i++) {
			const due = started + i * intervalMs;
			const wait = due - performance.now();
			if (wait > 0) await sleep(wait);
			const t0 = performance.now();
			if (i % 2 === 0) {
				current = randomUUID();
				await store.insert(message(current));
				committed.set(`${current}:1`, performance.now());
			} else {
				const updated = await store.update(current, { status: 'ready', durationMs: 3_000, sizeBytes: 12_000, codec: { codec: 'opus', sampleRate: 48_000, channels: 1, bitrateBps: 32_000 } });
				if (!updated) throw new Error('the status update found no message');
				committed.set(`${current}:2`, performance.now());
			}
			commitTimes.push(performance.now() - t0);
		}
		const commitWallS = (performance.now() - started) / 1000;
		const expected = committed.size * o.subscribers;
		const deliveredCount = () => arrivals.reduce((n, m) => n + m.size, 0);
		try {
			await until(() => deliveredCount() >= expected || streamErrors.length > 0, o.drainTimeoutMs, () => 'drain');
		} catch {
			// Reported as missing deliveries below.
		}
		await sleep(200); // a duplicate arriving late is counted too
		const eventLoopMaxStallMs = Math.max(0, ...probe.stop().map((x) => x.delayMs));

		const latencies: number[] = [];
		const lastPerEvent: number[] = [];
		let delivered = 0;
		for (const [key, at] of committed) {
			let last = -Infinity;
			let all = true;
			for (const got of arrivals) {
				const t = got.get(key);
				if (t === undefined) {
					all = false;
					continue;
				}
				delivered++;
				latencies.push(t - at);
				if (t > last) last = t;
			}
			if (all) lastPerEvent.push(last - at);
		}
		const firstCommit = Math.min(...committed.values());
		return {
			subscribers: o.subscribers,
			connections: clients.length,
			events: committed.size,
			commitsPerSecond: committed.size / commitWallS,
			commitMs: summarize(commitTimes),
			deliveryMs: summarize(latencies),
			lastSubscriberMs: summarize(lastPerEvent),
			expectedDeliveries: expected,
			delivered,
			missing: expected - delivered,
			duplicates,
			deliveriesPerSecond: delivered / ((lastArrival - firstCommit) / 1000),
			streamErrors: streamErrors.slice(0, 5),
			setupMs,
			eventLoopMaxStallMs,
		};
	} finally {
		for (const c of calls) c.cancel();
		for (const c of clients) c.close();
	}
}

async function measureModeration(target: ParleyTarget, o: ApiOptions, client: ChannelServiceClient, metadata: grpc.Metadata): Promise<ModerationResult> {
	const pcm = speechPcm();
	const frames = Array.from({ length: o.peers }, (_, i) => encodeOpusFrames(pcm, Math.ceil((o.durationS + 5) * 50), { bitrateBps: 32_000, inbandFec: true }, i * 97));
	const sinks = await Promise.all(Array.from({ length: o.listeners }, () => UdpSink.create()));
	const ssrcs = Array.from({ length: o.peers }, (_, i) => 0x30000000 + i);
	const room = await target.buildRoom({ name: MODERATED_CHANNEL, publisherSsrcs: ssrcs, listenerDestinations: sinks.map((s) => s.port), nack: false });
	const publishers = await Promise.all(ssrcs.map((ssrc, i) => RtpPublisher.create({ ssrc, payloadType: OPUS_PAYLOAD_TYPE, frames: frames[i]!, target: { address: LOOPBACK, port: room.publisherPorts[i]! } })));
	const pacer = new FramePacer(publishers);
	try {
		pacer.start();
		const callOptions = (): grpc.CallOptions => ({ deadline: Date.now() + 10_000 });
		const list = (): Promise<ListParticipantsResponse__Output> =>
			new Promise((resolve, reject) => client.ListParticipants({ channel: MODERATED_CHANNEL }, metadata, callOptions(), (err, res) => (err ? reject(err) : resolve(res!))));
		const setMuted = (peerId: string, mute: boolean): Promise<unknown> =>
			new Promise((resolve, reject) => client.MuteParticipant({ channel: MODERATED_CHANNEL, participant: { peerId }, muted: mute }, metadata, callOptions(), (err, res) => (err ? reject(err) : resolve(res))));
		const first = await list();
		const speakers = first.participants.filter((p) => p.userId.startsWith('bench-publisher-')).map((p) => p.peerId);
		if (speakers.length !== o.peers) throw new Error(`ListParticipants listed ${speakers.length} publishers, expected ${o.peers}`);
		await sleep(500); // audio flowing to every listener before the window
		const sinkPorts = sinks.map((s) => s.port);
		const arrivedBefore = totalUdpDrops(sinkPorts);
		const sentBefore = publishers.reduce((n, p) => n + p.sent, 0);

		const figures = { ListParticipants: newFigure('ListParticipants'), MuteParticipant: newFigure('MuteParticipant') };
		const samples: Record<CallFigure['method'], number[]> = { ListParticipants: [], MuteParticipant: [] };
		const listed: number[] = [];
		const muted = new Map<string, boolean>();
		const pending: Promise<void>[] = [];
		const total = Math.round(o.callRate * o.durationS);
		const intervalMs = 1000 / o.callRate;
		const probe = new EventLoopProbe();
		probe.start();
		const started = performance.now();
		let nextMute = 0;
		for (let i = 0; i < total; i++) {
			const wait = started + i * intervalMs - performance.now();
			if (wait > 0) await sleep(wait);
			const method: CallFigure['method'] = i % 2 === 0 ? 'ListParticipants' : 'MuteParticipant';
			const figure = figures[method];
			figure.calls++;
			const t0 = performance.now();
			let call: Promise<unknown>;
			if (method === 'ListParticipants') {
				call = list().then((r) => listed.push(r.participants.length));
			} else {
				const peerId = speakers[nextMute++ % speakers.length]!;
				const mute = !muted.get(peerId);
				muted.set(peerId, mute);
				call = setMuted(peerId, mute);
			}
			pending.push(
				call.then(
					() => {
						samples[method].push(performance.now() - t0);
						figure.succeeded++;
					},
					(err: grpc.ServiceError) => {
						const name = grpc.status[err.code] ?? String(err.code);
						figure.errors[name] = (figure.errors[name] ?? 0) + 1;
					},
				),
			);
		}
		const issuedS = (performance.now() - started) / 1000;
		await Promise.all(pending);
		const eventLoopMaxStallMs = Math.max(0, ...probe.stop().map((x) => x.delayMs));
		const packetsSent = publishers.reduce((n, p) => n + p.sent, 0) - sentBefore;
		const packetsArrived = totalUdpDrops(sinkPorts) - arrivedBefore;
		listed.sort((a, b) => a - b);
		return {
			peers: o.peers,
			listeners: o.listeners,
			callRate: o.callRate,
			issuedPerSecond: total / issuedS,
			durationS: o.durationS,
			methods: (['ListParticipants', 'MuteParticipant'] as const).map((m) => ({ ...figures[m], latencyMs: summarize(samples[m]) })),
			participantsListed: listed[listed.length >> 1] ?? 0,
			eventLoopMaxStallMs,
			audio: { packetsSent, packetsArrived, consumers: room.listeners.reduce((n, l) => n + l.consumers.length, 0) },
		};
	} finally {
		pacer.stop();
		client.close();
		room.close();
		for (const p of publishers) p.close();
		for (const s of sinks) s.close();
	}
}

function newFigure(method: CallFigure['method']): Omit<CallFigure, 'latencyMs'> {
	return { method, calls: 0, succeeded: 0, errors: {} };
}

async function until(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
	const deadline = performance.now() + timeoutMs;
	while (!done()) {
		if (performance.now() > deadline) throw new Error(`timed out: ${what()}`);
		await sleep(5);
	}
}
