// Parley's Prometheus metrics (prom-client), in one registry per server. Names follow the
// Prometheus conventions: `parley_` prefix, base units (seconds, bytes), `_total` on counters.
// Labels are bounded sets only (worker index, direction, method, code, reason): never a
// peer, user, channel or message id, whose values grow without bound.
//
// Counts of live things (workers, channels, peers, mediasoup objects, connections, active
// recordings) are read from their owners when Prometheus scrapes, so they cannot drift.
// Events (joins, requests, uploads, transcodes) are counted through the hook objects below,
// which the owners call. RTP figures come from RtpStatsPoller (rtpStats.ts).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ChannelRegistry } from '../channels/ChannelRegistry.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { ErrorCode } from '../../protocol/errors.js';
import { isMethod } from '../../protocol/schemas.js';
import type { InvalidMessageReason, SessionEvents } from '../signaling/SignalingSession.js';
import { RATE_LIMIT_SCOPES } from '../ratelimit/rateLimits.js';
import type { TranscodeErrorCode } from '../voice/transcode/TranscodeError.js';

/** What the scrape-time gauges read. Functions, so owners created later can be named. */
export interface MetricSources {
	pool: WorkerPool;
	channels: ChannelRegistry;
	signalingConnections(): number;
	activeRecordings(): number;
	transcodeJobs(): { running: number; queued: number };
	/** With Redis: bus envelopes dropped by reason, and node registry entries ignored for a bad signature. */
	clusterDistrust?(): { droppedEnvelopes: Readonly<Record<string, number>>; forgedEntries: number } | undefined;
	/** With a SQL metadata store: voice-message events in its outbox not yet published, per target (stream, webhook). */
	voiceOutboxPending?(): Promise<Readonly<Record<string, number>>> | undefined;
}

export const INVALID_MESSAGE_REASONS: readonly InvalidMessageReason[] = ['binary', 'not_json', 'not_request', 'too_large', 'unknown_method', 'bad_data'];
export const TRANSCODE_FAILURE_REASONS: readonly (TranscodeErrorCode | 'other')[] = [
	'unknown-format',
	'no-audio',
	'decode-failed',
	'truncated',
	'too-long',
	'timeout',
	'busy',
	'closed',
	'unreadable',
	'unavailable',
	'other',
];
export type TranscodeOperation = 'transcode' | 'waveform';
export type UploadFailureStage = 'complete' | 'expired' | 'processing';
export type RecordingEndReason = 'stopped' | 'max_duration' | 'producer_closed' | 'media_closed' | 'shutdown';
export type RtpDirection = 'in' | 'out';
/** What a failed storage operation was doing: writing, syncing or renaming a file, reading it, or the metadata store. */
export type StorageOperation = 'write' | 'fsync' | 'rename' | 'read' | 'metadata';
export const STORAGE_OPERATIONS: readonly StorageOperation[] = ['write', 'fsync', 'rename', 'read', 'metadata'];
export const STORAGE_AUDIT_KINDS = ['ready_checked', 'missing', 'damaged', 'marked_failed', 'files', 'orphans', 'quarantined', 'temp_removed', 'errors'] as const;

const DIRECTIONS: readonly RtpDirection[] = ['in', 'out'];
const RECORDING_END_REASONS: readonly RecordingEndReason[] = ['stopped', 'max_duration', 'producer_closed', 'media_closed', 'shutdown'];

/** Signaling replies take from well under a millisecond (caps) to seconds (a slow worker). */
const REQUEST_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Fraction lost per stream and poll: clean links sit at 0, Opus FEC copes up to ~10-20 %. */
const FRACTION_LOST_BUCKETS = [0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1];
/** Interarrival jitter: a jitter buffer absorbs tens of ms; beyond 100 ms people notice. */
const JITTER_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5];
/** mediasoup scores are integers 0 (unusable) .. 10 (perfect). */
const SCORE_BUCKETS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const RECORDING_SECONDS_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600];
const TRANSCODE_SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];
const POLL_SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** One round of the RTP stats poller; times are performance.now() milliseconds. */
export interface StatsRound {
	startedAtMs: number;
	/** null while the round runs (or when stop() cut it short). */
	endedAtMs: number | null;
	/** Streams polled (getStats requests sent to the workers). */
	streams: number;
}

export const RECENT_STATS_ROUNDS = 64;

export class ParleyMetrics {
	readonly registry = new Registry();

	// ---- workers
	readonly workerRestarts: Counter<'worker'>;
	// ---- channels
	readonly peerJoins: Counter;
	readonly peerLeaves: Counter;
	// ---- RTP (fed by RtpStatsPoller)
	readonly rtpPackets: Counter<'direction'>;
	readonly rtpBytes: Counter<'direction'>;
	readonly rtpPacketsLost: Counter<'direction'>;
	readonly rtpNacks: Counter<'direction'>;
	readonly rtpNackPackets: Counter<'direction'>;
	readonly rtpRedPackets: Counter<'direction'>;
	readonly rtpFractionLost: Histogram<'direction'>;
	readonly rtpJitter: Histogram<'direction'>;
	readonly producerScore: Histogram;
	readonly consumerScore: Histogram;
	readonly statsPollDuration: Histogram;
	/** The latest stats rounds, newest last (at most RECENT_STATS_ROUNDS): read in-process by
	 * the bench to line latency up with what the poller did in the same second. */
	readonly recentStatsRounds: StatsRound[] = [];
	// ---- signaling
	readonly signalingRequests: Counter<'method' | 'code'>;
	readonly signalingRequestDuration: Histogram<'method'>;
	readonly signalingRateLimited: Counter;
	readonly signalingInvalidMessages: Counter<'reason'>;
	/** Refusals by the per-user and per-address limits (not the per-connection bucket). */
	readonly rateLimited: Counter<'scope'>;
	// ---- voice messages
	readonly recordingsStarted: Counter;
	readonly recordingsFinished: Counter<'reason'>;
	readonly recordingDuration: Histogram;
	readonly recordingFramesRepaired: Counter<'source'>;
	readonly recordingFramesMissing: Counter;
	readonly uploadsStarted: Counter;
	readonly uploadsCompleted: Counter;
	readonly uploadsResumed: Counter;
	readonly uploadsFailed: Counter<'stage'>;
	readonly uploadBytes: Counter;
	readonly transcodeDuration: Histogram<'operation'>;
	readonly transcodeFailures: Counter<'operation' | 'reason'>;
	readonly messagesFinished: Counter<'source' | 'status'>;
	readonly webhookDeliveries: Counter<'outcome'>;
	readonly storageBytesWritten: Counter;
	readonly storageFailures: Counter<'operation'>;
	readonly storageAuditItems: Gauge<'kind'>;

	constructor(sources: MetricSources) {
		const registers = [this.registry];
		// Standard names (process_cpu_seconds_total, nodejs_eventloop_lag_seconds, ...), so
		// stock Node.js dashboards work on them too.
		collectDefaultMetrics({ register: this.registry });

		// ---- workers ----------------------------------------------------------------------
		const { pool, channels } = sources;
		new Gauge({
			name: 'parley_workers',
			help: 'mediasoup workers this node runs (configured).',
			registers,
			collect() {
				this.set(pool.size);
			},
		});
		new Gauge({
			name: 'parley_workers_up',
			help: 'mediasoup workers currently running.',
			registers,
			collect() {
				this.set(pool.info().filter((w) => w.alive).length);
			},
		});
		this.workerRestarts = new Counter({ name: 'parley_worker_restarts_total', help: 'mediasoup workers replaced after they died.', labelNames: ['worker'], registers });
		for (const w of pool.info()) this.workerRestarts.inc({ worker: String(w.index) }, 0);
		pool.on('workerReplaced', ({ index }) => this.workerRestarts.inc({ worker: String(index) }));
		new Counter({
			name: 'parley_worker_cpu_seconds_total',
			help: 'CPU time used by each mediasoup worker process, by mode (user, system). Restarts from 0 when a worker is replaced.',
			labelNames: ['worker', 'mode'],
			registers,
			async collect() {
				const usage = await Promise.all(
					pool.liveWorkers().map(async ({ index, worker }) => ({ index, usage: await worker.getResourceUsage().catch(() => undefined) })),
				);
				this.reset();
				for (const { index, usage: u } of usage) {
					if (!u) continue;
					// getrusage times from mediasoup are in MILLISECONDS (not the seconds or
					// microseconds one might assume): Prometheus wants seconds.
					this.inc({ worker: String(index), mode: 'user' }, u.ru_utime / 1000);
					this.inc({ worker: String(index), mode: 'system' }, u.ru_stime / 1000);
				}
			},
		});
		// ---- cluster trust ---------------------------------------------------------------
		const clusterDistrust = sources.clusterDistrust;
		if (clusterDistrust) {
			new Counter({
				name: 'parley_cluster_untrusted_total',
				help: 'What this node refused from the cluster since start, by reason: bus envelopes that were malformed, bad_mac (forged, or cluster.secret differs), stale (outside the replay window), replayed, unknown_sender (not a live registered node), wrong_replier; registry_entry: node registry entries without a valid signature. Anything but 0 is worth a look.',
				labelNames: ['reason'],
				registers,
				collect() {
					const counts = clusterDistrust();
					if (!counts) return;
					this.reset();
					for (const [reason, n] of Object.entries(counts.droppedEnvelopes)) this.inc({ reason }, n);
					this.inc({ reason: 'registry_entry' }, counts.forgedEntries);
				},
			});
		}
		new Gauge({
			name: 'parley_worker_routers',
			help: 'Routers (one per channel, plus none else) on each mediasoup worker.',
			labelNames: ['worker'],
			registers,
			collect() {
				this.reset();
				for (const w of pool.info()) this.set({ worker: String(w.index) }, w.routers);
			},
		});

		// ---- channels and mediasoup objects --------------------------------------------------
		new Gauge({
			name: 'parley_channels',
			help: 'Open voice channels.',
			registers,
			collect() {
				this.set(channels.size);
			},
		});
		new Gauge({
			name: 'parley_peers',
			help: 'Peers joined to a channel.',
			registers,
			collect() {
				let peers = 0;
				for (const c of channels.channels()) peers += c.peers.size;
				this.set(peers);
			},
		});
		const poolTotal = (key: 'transports' | 'producers' | 'consumers') => pool.info().reduce((n, w) => n + w[key], 0);
		new Gauge({
			name: 'parley_transports',
			help: 'mediasoup transports on all workers (WebRTC transports of peers, plus one per running recording).',
			registers,
			collect() {
				this.set(poolTotal('transports'));
			},
		});
		new Gauge({
			name: 'parley_producers',
			help: 'mediasoup producers (audio sent by clients) on all workers.',
			registers,
			collect() {
				this.set(poolTotal('producers'));
			},
		});
		new Gauge({
			name: 'parley_consumers',
			help: 'mediasoup consumers (audio forwarded to a listener or a recording) on all workers.',
			registers,
			collect() {
				this.set(poolTotal('consumers'));
			},
		});
		this.peerJoins = new Counter({ name: 'parley_peer_joins_total', help: 'Peers that joined a channel.', registers });
		this.peerLeaves = new Counter({ name: 'parley_peer_leaves_total', help: 'Peers that left a channel (left, disconnected, replaced, or the channel closed).', registers });

		// ---- RTP -------------------------------------------------------------------------------
		const directionNote = 'direction "in": client to server (producers); "out": server to listeners (consumers).';
		const rtpCounter = (name: string, help: string) => {
			const c = new Counter({ name, help: `${help} ${directionNote}`, labelNames: ['direction'], registers });
			for (const direction of DIRECTIONS) c.inc({ direction }, 0);
			return c;
		};
		this.rtpPackets = rtpCounter('parley_rtp_packets_total', 'RTP packets.');
		this.rtpBytes = rtpCounter('parley_rtp_bytes_total', 'RTP bytes.');
		this.rtpPacketsLost = rtpCounter(
			'parley_rtp_packets_lost_total',
			'RTP packets lost: "in" as seen by the server, "out" as reported back by listeners (RTCP receiver reports).',
		);
		this.rtpNacks = rtpCounter('parley_rtp_nacks_total', 'RTCP NACK messages (retransmission requests): "in" sent by the server, "out" received from listeners.');
		this.rtpNackPackets = rtpCounter('parley_rtp_nack_packets_total', 'RTP packets asked for again in NACKs.');
		this.rtpRedPackets = rtpCounter(
			'parley_rtp_red_packets_total',
			'RTP packets of streams that carry Opus RED (RFC 2198): "in" of producers sending audio/red, "out" of consumers that negotiated it. Part of parley_rtp_packets_total.',
		);
		const perStream = 'One observation per stream each time its stats are polled.';
		this.rtpFractionLost = new Histogram({
			name: 'parley_rtp_fraction_lost',
			help: `Fraction of RTP packets lost in the last RTCP interval (0-1). ${perStream} ${directionNote}`,
			labelNames: ['direction'],
			buckets: FRACTION_LOST_BUCKETS,
			registers,
		});
		this.rtpJitter = new Histogram({
			name: 'parley_rtp_jitter_seconds',
			help: `RTP interarrival jitter (RFC 3550). ${perStream} ${directionNote}`,
			labelNames: ['direction'],
			buckets: JITTER_SECONDS_BUCKETS,
			registers,
		});
		for (const direction of DIRECTIONS) {
			this.rtpFractionLost.zero({ direction });
			this.rtpJitter.zero({ direction });
		}
		this.producerScore = new Histogram({
			name: 'parley_producer_score',
			help: `mediasoup producer score, 0 (unusable) to 10 (perfect): how well audio reaches the server. ${perStream}`,
			buckets: SCORE_BUCKETS,
			registers,
		});
		this.consumerScore = new Histogram({
			name: 'parley_consumer_score',
			help: `mediasoup consumer score, 0 (unusable) to 10 (perfect): how well audio reaches a listener. ${perStream}`,
			buckets: SCORE_BUCKETS,
			registers,
		});
		this.statsPollDuration = new Histogram({
			name: 'parley_rtp_stats_poll_duration_seconds',
			help: 'Time the getStats requests of one round of producer and consumer stats polling were in flight (a round spreads them over metrics.statsIntervalMs: this is their sum, not the spread).',
			buckets: POLL_SECONDS_BUCKETS,
			registers,
		});

		// ---- signaling -------------------------------------------------------------------------
		new Gauge({
			name: 'parley_signaling_connections',
			help: 'Open signaling WebSocket connections.',
			registers,
			collect() {
				this.set(sources.signalingConnections());
			},
		});
		this.signalingRequests = new Counter({
			name: 'parley_signaling_requests_total',
			help: 'Signaling requests answered, by method and result code (OK or an E_ code). method is "invalid" for messages that are not requests, "unknown" for methods the protocol lacks.',
			labelNames: ['method', 'code'],
			registers,
		});
		this.signalingRequestDuration = new Histogram({
			name: 'parley_signaling_request_duration_seconds',
			help: 'Time from a signaling request arriving to its reply (queueing behind the connection\'s earlier requests included).',
			labelNames: ['method'],
			buckets: REQUEST_SECONDS_BUCKETS,
			registers,
		});
		this.signalingRateLimited = new Counter({ name: 'parley_signaling_rate_limited_total', help: 'Signaling messages refused with E_RATE_LIMIT.', registers });
		this.signalingInvalidMessages = new Counter({
			name: 'parley_signaling_invalid_messages_total',
			help: 'Signaling messages rejected as invalid, by reason (binary, not_json, not_request, too_large, unknown_method, bad_data).',
			labelNames: ['reason'],
			registers,
		});
		for (const reason of INVALID_MESSAGE_REASONS) this.signalingInvalidMessages.inc({ reason }, 0);
		this.rateLimited = new Counter({
			name: 'parley_rate_limited_total',
			help: 'Requests and connections refused by the per-user and per-address limits (cluster-wide with Redis), by scope: signaling_user, signaling_ip, ws_connect_ip (new WebSockets, close 4429), voice_user, voice_ip (voice HTTP API and tus, 429).',
			labelNames: ['scope'],
			registers,
		});
		for (const scope of RATE_LIMIT_SCOPES) this.rateLimited.inc({ scope }, 0);

		// ---- voice messages --------------------------------------------------------------------
		new Gauge({
			name: 'parley_voice_recordings_active',
			help: 'Recordings of live producers running now.',
			registers,
			collect() {
				this.set(sources.activeRecordings());
			},
		});
		this.recordingsStarted = new Counter({ name: 'parley_voice_recordings_started_total', help: 'Recordings started.', registers });
		this.recordingsFinished = new Counter({
			name: 'parley_voice_recordings_finished_total',
			help: 'Recordings finished, by why they stopped (stopped, max_duration, producer_closed, media_closed, shutdown).',
			labelNames: ['reason'],
			registers,
		});
		for (const reason of RECORDING_END_REASONS) this.recordingsFinished.inc({ reason }, 0);
		this.recordingDuration = new Histogram({
			name: 'parley_voice_recording_duration_seconds',
			help: 'Length of the audio of finished recordings.',
			buckets: RECORDING_SECONDS_BUCKETS,
			registers,
		});
		this.recordingFramesRepaired = new Counter({
			name: 'parley_voice_recording_frames_repaired_total',
			help: 'Frames of finished recordings whose packet was lost before the server and that were restored anyway, by source: red (a copy in a later RED packet), retransmission (a NACK retransmission, or a reordered packet).',
			labelNames: ['source'],
			registers,
		});
		for (const source of ['red', 'retransmission'] as const) this.recordingFramesRepaired.inc({ source }, 0);
		this.recordingFramesMissing = new Counter({
			name: 'parley_voice_recording_frames_missing_total',
			help: 'Frames of finished recordings lost before the server and not restored (no RED copy or retransmission within the 500 ms hold): concealment in the file.',
			registers,
		});
		this.uploadsStarted = new Counter({ name: 'parley_voice_uploads_started_total', help: 'tus uploads created.', registers });
		this.uploadsCompleted = new Counter({ name: 'parley_voice_uploads_completed_total', help: 'tus uploads received in full and handed over for processing.', registers });
		this.uploadsResumed = new Counter({
			name: 'parley_voice_uploads_resumed_total',
			help: 'Unfinished uploads a client asked about (HEAD) to resume them after an interruption.',
			registers,
		});
		this.uploadsFailed = new Counter({
			name: 'parley_voice_uploads_failed_total',
			help: 'Uploads that failed, by stage: complete (the hand-over of the full file failed; kept for a retry), expired (never finished), processing (the audio could not become a voice message).',
			labelNames: ['stage'],
			registers,
		});
		for (const stage of ['complete', 'expired', 'processing'] as const) this.uploadsFailed.inc({ stage }, 0);
		this.uploadBytes = new Counter({ name: 'parley_voice_upload_received_bytes_total', help: 'Upload bytes received and stored (PATCH bodies).', registers });
		this.transcodeDuration = new Histogram({
			name: 'parley_voice_transcode_duration_seconds',
			help: 'Time of ffmpeg jobs, by operation (transcode: an upload to Ogg Opus; waveform), waiting in the queue included.',
			labelNames: ['operation'],
			buckets: TRANSCODE_SECONDS_BUCKETS,
			registers,
		});
		this.transcodeFailures = new Counter({
			name: 'parley_voice_transcode_failures_total',
			help: 'ffmpeg jobs that failed, by operation and reason (the TranscodeError code, or other).',
			labelNames: ['operation', 'reason'],
			registers,
		});
		for (const operation of ['transcode', 'waveform'] as const) {
			this.transcodeDuration.zero({ operation });
			for (const reason of TRANSCODE_FAILURE_REASONS) this.transcodeFailures.inc({ operation, reason }, 0);
		}
		new Gauge({
			name: 'parley_voice_transcodes_running',
			help: 'ffmpeg jobs running now.',
			registers,
			collect() {
				this.set(sources.transcodeJobs().running);
			},
		});
		new Gauge({
			name: 'parley_voice_transcodes_queued',
			help: 'ffmpeg jobs waiting for a slot.',
			registers,
			collect() {
				this.set(sources.transcodeJobs().queued);
			},
		});
		this.messagesFinished = new Counter({
			name: 'parley_voice_messages_finished_total',
			help: 'Voice messages that reached a final status, by source (recording, upload) and status (ready, failed).',
			labelNames: ['source', 'status'],
			registers,
		});
		for (const source of ['recording', 'upload'] as const) for (const status of ['ready', 'failed'] as const) this.messagesFinished.inc({ source, status }, 0);
		this.webhookDeliveries = new Counter({
			name: 'parley_voice_webhook_deliveries_total',
			help: 'Voice-message webhook attempts by outcome: delivered (2xx), retried (network error, timeout, 5xx or 429; tried again), refused (other status, final), failed (gave up after the last attempt), dropped (queue full or shutting down).',
			labelNames: ['outcome'],
			registers,
		});
		for (const outcome of ['delivered', 'retried', 'refused', 'failed', 'dropped'] as const) this.webhookDeliveries.inc({ outcome }, 0);
		const outboxPending = sources.voiceOutboxPending;
		if (outboxPending) {
			new Gauge({
				name: 'parley_voice_outbox_pending',
				help: 'Voice-message events committed to the SQL outbox and not yet published, by target (stream: parley:voice-meta, webhook). Shared by all nodes (the same table): a count that only grows means no node can publish (Redis or the receiver away).',
				labelNames: ['target'],
				registers,
				async collect() {
					// The database may be away: then the gauge is left out of this scrape rather than failing it.
					const counts = await outboxPending()?.catch(() => undefined);
					this.reset();
					if (counts) for (const [target, n] of Object.entries(counts)) this.set({ target }, n);
				},
			});
		}
		this.storageBytesWritten = new Counter({ name: 'parley_voice_storage_written_bytes_total', help: 'Bytes of voice-message files written to storage (ready messages).', registers });
		this.storageFailures = new Counter({
			name: 'parley_storage_failures_total',
			help: 'Voice-message storage operations that failed (disk full, read-only, I/O errors; metadata: the SQLite or Redis store), by operation.',
			labelNames: ['operation'],
			registers,
		});
		for (const operation of STORAGE_OPERATIONS) this.storageFailures.inc({ operation }, 0);
		this.storageAuditItems = new Gauge({
			name: 'parley_storage_audit_items',
			help: 'What the last startup storage audit found (voice.auditOnStartup), by kind: ready_checked, missing and damaged (ready messages without a good file), marked_failed, files (.ogg under storage), orphans (files no message owns), quarantined (moved to .orphans), temp_removed, errors. 0 until it ran.',
			labelNames: ['kind'],
			registers,
		});
		for (const kind of STORAGE_AUDIT_KINDS) this.storageAuditItems.set({ kind }, 0);
	}

	/** Hooks for SignalingServer / SignalingSession. */
	readonly signalingEvents: SessionEvents = {
		onRequestDone: (method, code, durationMs) => this.#requestDone(method, code, durationMs),
		onInvalidMessage: (reason) => this.signalingInvalidMessages.inc({ reason }),
	};

	#requestDone(method: string, code: ErrorCode | 'OK', durationMs: number): void {
		// The method is client text: only the protocol's own names (and "invalid") become labels.
		const label = method === 'invalid' || isMethod(method) ? method : 'unknown';
		this.signalingRequests.inc({ method: label, code });
		this.signalingRequestDuration.observe({ method: label }, durationMs / 1000);
		if (code === 'E_RATE_LIMIT') this.signalingRateLimited.inc();
	}

	/** Prometheus text exposition of every metric. */
	async exposition(): Promise<{ contentType: string; body: string }> {
		return { contentType: this.registry.contentType, body: await this.registry.metrics() };
	}
}

/** StopReason of a recording (text for people) as a bounded label value. */
export function recordingEndReason(reason: string): RecordingEndReason {
	switch (reason) {
		case 'max duration reached':
			return 'max_duration';
		case 'producer closed':
			return 'producer_closed';
		case 'media closed':
			return 'media_closed';
		case 'server shutting down':
			return 'shutdown';
		default:
			return 'stopped';
	}
}
