// One Parley node: the composition root. It builds the parts in the order of the layers
// (telemetry, media, Redis, HTTP, domains, signaling, metrics), hands each its ports, and
// owns the lifecycle: every resource goes on one Teardown as it is acquired, so a failed
// start and shutdown close them in the same (reverse) order.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import * as mediasoup from 'mediasoup';
import { Gauge, type Registry } from 'prom-client';
import type { ParleyConfig } from '../config/schema.js';
import { ConfigError } from './config/loadConfig.js';
import { closeRedis, connectRedis, pingRedis, redactUrl } from './redis/redisConnection.js';
import { ClusterNode } from './cluster/ClusterNode.js';
import { RedisVoiceMessageStore } from './voice/store/RedisVoiceMessageStore.js';
import { VoiceEventStream } from './voice/store/VoiceEventStream.js';
import { VoiceMessageNotifier } from './voice/VoiceMessageNotifier.js';
import { VoiceWebhooks } from './voice/VoiceWebhooks.js';
import { createOutboxRelay } from './voice/outbox/createOutboxRelay.js';
import type { OutboxRelay } from './voice/outbox/OutboxRelay.js';
import type { VoiceEventListener } from './voice/voiceEvents.js';
import { registerHealthRoutes, type ReadinessCheck } from './http/healthRoutes.js';
import { HttpServer } from './http/HttpServer.js';
import { assertNativeUws } from './http/uws.js';
import { WorkerPool } from './media/WorkerPool.js';
import { workerPoolOptions } from './media/workerSettings.js';
import { resolveAnnouncedAddress } from './media/workerSettings.js';
import type { Logger } from './telemetry/logger.js';
import { ChannelRegistry } from './channels/ChannelRegistry.js';
import { routerMediaCodecs } from './media/mediaCodecs.js';
import { signingKey, tokenPolicy } from './auth/accessToken.js';
import { AudioUrlSigner } from './auth/audioUrl.js';
import { registerDevTokenRoute } from './auth/devTokenRoute.js';
import { SignalingServer } from './signaling/SignalingServer.js';
import { GrpcApiServer } from './api/GrpcApiServer.js';
import { voiceMessageGrpcService } from './api/VoiceMessageGrpcService.js';
import { eventGrpcService } from './api/EventGrpcService.js';
import { RoomEventLog, withRecordingEvents } from './events/RoomEventLog.js';
import { roomEventWebhooks } from './events/roomEventWebhooks.js';
import { createChannelService } from './api/ChannelGrpcService.js';
import { ChannelOperations } from './api/ChannelOperations.js';
import { CHANNEL_HOME_PREFIX } from './cluster/ChannelPlacement.js';
import { channelAllowed } from './auth/accessToken.js';
import { apiKeyList } from '../config/schema.js';
import { createRateLimits } from './ratelimit/rateLimits.js';
import { registerStaticFiles } from './http/staticFiles.js';
import type { LocalVoiceStorage } from './voice/files/VoiceStorage.js';
import type { S3VoiceStorage } from './voice/files/S3VoiceStorage.js';
import { createVoiceStorage } from './voice/files/createVoiceStorage.js';
import { StorageAudit, type StorageAuditReport } from './voice/files/StorageAudit.js';
import { VoiceRecovery } from './voice/VoiceRecovery.js';
import { Teardown } from './Teardown.js';
import { type VoiceMessageStore } from './voice/store/VoiceMessageStore.js';
import { SqlVoiceMessageStore } from './voice/store/SqlVoiceMessageStore.js';
import { VoiceStatusFeed } from './voice/VoiceStatusFeed.js';
import { VoiceMessageService } from './voice/VoiceMessageService.js';
import { TusUploadServer } from './voice/upload/TusUploadServer.js';
import { S3UploadStore } from './voice/upload/S3UploadStore.js';
import { createS3Location } from './voice/files/s3Client.js';
import { AudioTranscoder } from './voice/transcode/AudioTranscoder.js';
import { registerVoiceRoutes } from './voice/voiceRoutes.js';
import { ParleyMetrics } from './metrics/metrics.js';
import { registerMetricsRoute, startMetricsListener } from './metrics/metricsEndpoint.js';
import { channelStreams, RtpStatsPoller } from './metrics/rtpStats.js';
import { startTracing } from './telemetry/tracing.js';
import { instrumentAudioTools, instrumentVoiceMessageStore, instrumentVoiceStorage, recordStorageAudit, uploadEvents, voiceMessageEvents } from './metrics/voiceMetrics.js';

/** The built demo app (scripts/setup runs `npm run build:client`). */
const DEMO_APP_DIR = new URL('../client/dist/', import.meta.url).pathname;
/** Partial uploads, under storage.dir. User ids never start with a dot, so this cannot
 * collide with a user's folder. */
const UPLOADS_SUBDIR = '.uploads';
/** With storage.backend s3 the partial uploads are in the bucket; a complete one is assembled
 * here (node-local) for its conversion. */
const UPLOADS_WORK_SUBDIR = '.uploads-work';

/** Where complete uploads wait for their conversion (`<id>.part`, and the voice service's
 * `<id>.part.accepted` link that its recovery and the storage audit look for). */
function uploadFilesDir(config: ParleyConfig, storageDir: string): string {
	return path.join(storageDir, config.storage.backend === 's3' ? UPLOADS_WORK_SUBDIR : UPLOADS_SUBDIR);
}
/** How long clients are asked to wait before reconnecting when this node shuts down. */
const RECONNECT_AFTER_SHUTDOWN_MS = 1000;

/** Work that must finish (or be cut off at the deadline) before workers close. */
export type ShutdownTask = (deadline: AbortSignal) => Promise<void>;

export interface ShutdownResult {
	/** False when some task was still running at the deadline. */
	clean: boolean;
	durationMs: number;
}

export class ParleyServer {
	readonly config: ParleyConfig;
	readonly log: Logger;
	readonly workers: WorkerPool;
	readonly http: HttpServer;
	readonly redis: Redis | undefined;
	/** This node's id (cluster.nodeId, or <hostname>-<pid>-<random>): names it in the cluster
	 * and on the voice messages it records. */
	readonly nodeId: string;
	readonly storageDir: string;
	readonly channels: ChannelRegistry;
	readonly signaling: SignalingServer;
	readonly voiceStore: VoiceMessageStore;
	/** The SQL metadata store and its outbox (metadata.url, or SQLite alone); undefined with the Redis store. */
	readonly metadata: SqlVoiceMessageStore | undefined;
	/** Status subscriptions over the durable event log (the backend API's SubscribeStatus). */
	readonly voiceStatusFeed: VoiceStatusFeed;
	readonly voice: VoiceMessageService;
	readonly uploads: TusUploadServer;
	/** Where voice-message files live (storage.backend): the directory, or the bucket. */
	readonly storage: LocalVoiceStorage | S3VoiceStorage;
	/** The startup storage audit's report, once it ran (undefined when voice.auditOnStartup is off). */
	storageAudit: Promise<StorageAuditReport> | undefined;
	readonly transcoder: AudioTranscoder;
	/** Undefined when metrics.enabled is false. */
	readonly metrics: ParleyMetrics | undefined;
	readonly #statsPoller: RtpStatsPoller | undefined;
	/** The backend API (api.grpc.enabled); undefined when off. */
	readonly api: GrpcApiServer | undefined;
	/** The separate /metrics listener (metrics.port), if any. */
	#metricsHttp: HttpServer | undefined;
	/** Everything this node holds, in the order it was acquired. */
	readonly #teardown: Teardown;
	readonly #shutdownTasks = new Map<string, ShutdownTask>();
	#accepting = true;
	#shutdown: Promise<ShutdownResult> | undefined;
	/** This node's part in the cluster (with Redis). */
	readonly #cluster: ClusterNode | undefined;
	/** The API's channel operations; serves other nodes' forwarded calls once the cluster is up. */
	readonly #channelOperations: ChannelOperations;
	/** Voice-message notifications: this node's sessions, or every node's over the cluster bus. */
	readonly #voiceNotifier: VoiceMessageNotifier;
	/** Signed webhooks of voice-message lifecycle events (voice.webhookUrl). */
	readonly #webhooks: VoiceWebhooks | undefined;
	/** Room and participant events of the cluster (EventService, webhooks). */
	readonly roomEvents: RoomEventLog;
	/** With the SQL store: publishes its outbox to the stream and the webhook. */
	readonly #outboxRelay: OutboxRelay | undefined;
	/** Finishing the voice messages a crash left unfinished (this node's, a lost node's). */
	readonly #voiceRecovery: VoiceRecovery;

	private constructor(config: ParleyConfig, log: Logger, workers: WorkerPool, http: HttpServer, redis: Redis | undefined, teardown: Teardown, metadata: OpenedMetadata) {
		this.#teardown = teardown;
		this.config = config;
		this.log = log;
		this.workers = workers;
		this.http = http;
		this.redis = redis;
		this.storageDir = path.resolve(config.storage.dir);
		const mediaCodecs = routerMediaCodecs({ inbandFec: config.media.opusInbandFec, dtx: config.media.opusDtx, nack: config.media.opusNack, red: config.media.opusRed });
		this.channels = new ChannelRegistry(
			workers,
			{ ...config.channels, enableRtx: config.media.opusNack, mediaCodecs },
			log.child({ component: 'channels' }),
		);
		const metrics = config.metrics.enabled
			? new ParleyMetrics({
					pool: workers,
					channels: this.channels,
					signalingConnections: () => this.signaling.sessionCount,
					activeRecordings: () => this.voice.activeRecordings,
					transcodeJobs: () => ({ running: this.transcoder.running, queued: this.transcoder.queued }),
					...(config.cluster.redisUrl && {
						clusterDistrust: () => {
							const cluster = this.#cluster;
							return cluster?.started ? { droppedEnvelopes: cluster.bus.droppedEnvelopes, forgedEntries: cluster.registry.forgedEntries } : undefined;
						},
					}),
					...(metadata.store && { voiceOutboxPending: () => this.#outboxRelay?.pending() }),
				})
			: undefined;
		this.metrics = metrics;
		if (metrics && http.certificate) tlsCertificateGauges(metrics.registry, http);
		if (metrics) {
			this.channels.on('peerJoined', () => metrics.peerJoins.inc());
			this.channels.on('peerLeft', () => metrics.peerLeaves.inc());
			this.#statsPoller = new RtpStatsPoller(metrics, {
				intervalMs: config.metrics.statsIntervalMs,
				maxPerRound: config.metrics.statsMaxPerRound,
				streams: () => channelStreams(this.channels.channels()),
			});
		}
		this.nodeId = metadata.nodeId;
		// The in-memory webhook queue serves the Redis store only: the SQL store's events go
		// out through its outbox (the relay, below), durable across crashes.
		this.#webhooks = config.voice.webhookUrl && !metadata.store
			? new VoiceWebhooks({
					url: config.voice.webhookUrl,
					secret: config.voice.webhookSecret,
					maxAttempts: config.voice.webhookMaxAttempts,
					timeoutMs: config.voice.webhookTimeoutMs,
					maxQueued: config.voice.webhookQueue,
					log: log.child({ component: 'webhooks' }),
					...(metrics && { onOutcome: (outcome) => metrics.webhookDeliveries.inc({ outcome }) }),
				})
			: undefined;
		const webhooks = this.#webhooks;
		// Room events: the webhook of the node where they happen (its own queue; voice.webhookRoomEvents).
		const roomHooks = roomEventWebhooks(config, log.child({ component: 'webhooks' }), metrics && ((outcome) => metrics.webhookDeliveries.inc({ outcome })));
		this.roomEvents = new RoomEventLog({ nodeId: this.nodeId, retention: config.api.eventRetention, log: log.child({ component: 'events' }), ...(roomHooks && { onLocalEvent: (e) => roomHooks.enqueue(e) }) });
		this.roomEvents.observe(this.channels);
		const roomEvents = this.roomEvents;
		const onEvent: VoiceEventListener | undefined = webhooks && ((event) => void webhooks.enqueue(event));
		// SQL (metadata.url, or SQLite alone), opened by create(); with Redis and no
		// metadata.url, the Redis store (each change lands on parley:voice-meta in the same step).
		this.metadata = metadata.store;
		this.#outboxRelay =
			metadata.store &&
			createOutboxRelay(config, {
				outbox: metadata.store,
				nodeId: this.nodeId,
				redis,
				log: log.child({ component: 'outbox' }),
				...(metrics && { onWebhookOutcome: (outcome) => metrics.webhookDeliveries.inc({ outcome }) }),
			});
		const relay = this.#outboxRelay;
		// The Redis store appends to the stream in the script that commits (no relay); it is also
		// that store's event log.
		const eventStream = metadata.store ? undefined : new VoiceEventStream(redis!, { maxLen: config.cluster.eventStreamMaxLen });
		// Status subscriptions (backend API) read the durable event log: the outbox, or the stream.
		const statusFeed = new VoiceStatusFeed({ log: metadata.store ?? eventStream!, pollMs: config.metadata.outboxPollMs, logger: log.child({ component: 'voice-status' }) });
		this.voiceStatusFeed = statusFeed;
		// A commit of this node wakes its relay and its subscribers at once (others' commits are
		// found by polling).
		metadata.events.listener = relay
			? () => {
					relay.wake();
					statusFeed.notify();
				}
			: onEvent;
		if (relay) {
			relay.start();
			// Closed after everything pushed later (uploads, HTTP, transcoder, recovery: what
			// produces events) and before the store; what it cannot send in time stays in the outbox.
			teardown.push('outbox relay', (deadline) => relay.close(deadline));
		}
		this.voiceStore =
			metadata.store ??
			new RedisVoiceMessageStore(redis!, {
				nodeId: this.nodeId,
				onEvent: (event) => {
					onEvent?.(event);
					statusFeed.notify();
				},
				events: eventStream!,
			});
		this.#voiceNotifier = new VoiceMessageNotifier((info, reason) => this.signaling.deliverVoiceMessage(info, reason), log.child({ component: 'voice' }));
		const storage = createVoiceStorage(config.storage, log.child({ component: 'storage' }));
		this.storage = storage;
		if (storage.backend === 's3') teardown.push('voice storage', async () => storage.client.destroy());
		this.transcoder = new AudioTranscoder({
			maxConcurrent: config.voice.transcodeConcurrency,
			maxQueued: config.voice.transcodeQueue,
			timeoutMs: config.voice.transcodeTimeoutMs,
			bitrateBps: config.voice.opusBitrateBps,
			maxDurationMs: config.voice.maxDurationMs,
		});
		teardown.push('transcoder', () => this.transcoder.close());
		// Closed after what serves requests through it (uploads), before the transcoder.
		teardown.push('http', () => http.close());
		// Ends status subscriptions before the servers that carry them close.
		teardown.push('voice status feed', async () => statusFeed.close());
		// Failed disk and metadata operations of voice messages are counted
		// (parley_storage_failures_total).
		if (metrics) this.voiceStore = instrumentVoiceMessageStore(this.voiceStore, metrics);
		const countedStorage = metrics ? instrumentVoiceStorage(storage, metrics) : storage;
		this.voice = new VoiceMessageService({
			store: this.voiceStore,
			storage: countedStorage,
			tools: metrics ? instrumentAudioTools(this.transcoder, metrics) : this.transcoder,
			notify: (info, reason) => this.#voiceNotifier.notify(info, reason),
			// The readiness checks of the stores a spooled message waits for.
			probeStores: async () => {
				await this.storage.checkWritable();
				await this.metadata?.ping();
			},
			maxDurationMs: config.voice.maxDurationMs,
			maxConcurrentRecordings: config.voice.maxConcurrentRecordings,
			maxRecordingsPerUser: config.voice.maxRecordingsPerUser,
			maxStoredBytesPerUser: config.voice.maxStoredBytesPerUser,
			maxStoredMessagesPerUser: config.voice.maxStoredMessagesPerUser,
			recordingCheckpointMs: config.voice.recordingCheckpointMs,
			uploadsDir: uploadFilesDir(config, this.storageDir),
			nodeId: this.nodeId,
			log: log.child({ component: 'voice' }),
			// Metrics count recordings; room events tell backends of them.
			events: withRecordingEvents(metrics && voiceMessageEvents(metrics), roomEvents),
		});
		this.#voiceRecovery = new VoiceRecovery({ service: this.voice, lostNodeGraceMs: 2 * config.cluster.nodeTtlMs, log: log.child({ component: 'voice' }) });
		this.#cluster = redis
			? new ClusterNode({
					config,
					nodeId: this.nodeId,
					redis,
					channels: this.channels,
					workers,
					mediaAddress: resolveAnnouncedAddress(config.media.listenIp, config.media.announcedAddress) ?? config.media.listenIp,
					// With http.tls and no cluster.publicUrl, redirects point at https://.
					scheme: http.scheme,
					log: log.child({ component: 'cluster' }),
				})
			: undefined;
		const cluster = this.#cluster;
		const key = signingKey(config.auth.jwtSecret);
		const policy = tokenPolicy(config.auth);
		if (!config.auth.jwtSecret) log.warn('auth.jwtSecret is empty: tokens are signed with a random per-process key');
		// Per user and per address; in Redis (shared by all nodes) when the node has it.
		const rateLimits = createRateLimits(config, redis, log.child({ component: 'rate-limits' }), metrics && ((scope) => metrics.rateLimited.inc({ scope })));
		this.signaling = new SignalingServer(
			http,
			{
				config,
				signingKey: key,
				registry: this.channels,
				pool: workers,
				routerRtpCapabilities: mediasoup.ortc.generateRouterRtpCapabilities(mediaCodecs),
				voice: this.voice,
				isAccepting: () => this.#accepting,
				...(metrics && { events: metrics.signalingEvents }),
				...(cluster && { placement: cluster.placement, bridge: cluster.bridge }),
				rateLimits: rateLimits.signaling,
			},
			log.child({ component: 'signaling' }),
		);
		// The API's channel calls run where the channel is: here, or on its home over the bus.
		const channelOperations = new ChannelOperations({
			channels: this.channels,
			nodeId: this.nodeId,
			covers: channelAllowed,
			log: log.child({ component: 'api' }),
			...(cluster &&
				redis && {
					cluster: {
						get bus() {
							return cluster.bus;
						},
						homeOf: async (channel: string) => (await redis.get(CHANNEL_HOME_PREFIX + channel)) ?? undefined,
						homesOf: async (channels: string[]) => (await redis.mget(...channels.map((c) => CHANNEL_HOME_PREFIX + c))).map((h) => h ?? undefined),
						liveNodeIds: async () => (await cluster.registry.liveNodes()).map((n) => n.nodeId),
						requestTimeoutMs: config.cluster.requestTimeoutMs,
					},
				}),
		});
		this.#channelOperations = channelOperations;
		this.api = config.api.grpc.enabled
			? new GrpcApiServer({
					host: config.api.grpc.host,
					port: config.api.grpc.port,
					maxMessageBytes: config.api.grpc.maxMessageBytes,
					...(config.api.grpc.tls.certFile && { tls: config.api.grpc.tls }),
					keys: apiKeyList(config.api.keys).filter((k) => k !== undefined),
					maxTokenLifetimeS: config.api.maxTokenLifetimeS,
					rateLimit: { ratePerSecond: config.api.requestsPerSecond, burst: config.api.requestBurst },
					services: [
						createChannelService({ operations: channelOperations }),
						voiceMessageGrpcService({ store: this.voiceStore, feed: statusFeed, remove: (id) => this.voice.removeById(id) }),
						eventGrpcService({ events: roomEvents }),
					],
					log: log.child({ component: 'api' }),
				})
			: undefined;
		registerVoiceRoutes(http, { store: this.voiceStore, storage: countedStorage, service: this.voice, signingKey: key, tokenPolicy: policy, rateLimits: rateLimits.http, audioUrls: new AudioUrlSigner(key, config.auth.audioUrlTtlS) });
		// storage.backend s3: partial uploads are staged in the bucket, so any node resumes them.
		const uploadsS3 = config.storage.backend === 's3' ? createS3Location(config.storage.s3) : undefined;
		if (uploadsS3) teardown.push('upload store', () => uploadsS3.client.destroy());
		this.uploads = new TusUploadServer(http, {
			basePath: '/voice/uploads',
			...(uploadsS3
				? { store: new S3UploadStore({ location: uploadsS3, workDir: uploadFilesDir(config, this.storageDir), log: log.child({ component: 'uploads' }) }) }
				: { dir: path.join(this.storageDir, UPLOADS_SUBDIR) }),
			maxSizeBytes: config.voice.maxUploadBytes,
			maxPendingPerUser: config.voice.maxPendingUploadsPerUser,
			storedQuota: async (ownerId, adding) => (await this.voice.storedQuota(ownerId, adding)).refusal,
			expiryMs: config.voice.uploadExpiryMs,
			signingKey: key,
			tokenPolicy: policy,
			onComplete: async (upload) => {
				await this.voice.acceptUpload(upload);
			},
			log: log.child({ component: 'uploads' }),
			...(metrics && { events: uploadEvents(metrics) }),
			rateLimits: rateLimits.http,
		});
		teardown.push('uploads', () => this.uploads.close());
		const hooks = this.#webhooks;
		// After the shutdown tasks (finishing recordings produce events), within what is left of the deadline.
		if (hooks) teardown.push('webhooks', (deadline) => hooks.close(deadline));
		if (roomHooks) teardown.push('room event webhooks', (deadline) => roomHooks.close(deadline));
		if (metrics && config.metrics.port === 0) registerMetricsRoute(http, metrics, { bearerToken: config.metrics.bearerToken, anonymous: config.metrics.public });
		registerDevTokenRoute(
			http,
			{ mode: config.auth.devTokens, ttlS: config.auth.devTokenTtlS, signingKey: key, maxBodyBytes: config.http.maxBodyBytes, trustProxy: config.http.trustProxy, listenHost: config.http.host, policy },
			log.child({ component: 'auth' }),
		);
		// In order: recordings are finalized while their producers still exist, then clients
		// are told to go, then channels (routers) close, then post-processing drains (a slow
		// or stuck transcode must not keep clients from hearing that the node is going).
		this.onShutdown('voice and signaling', async () => {
			await this.voice.stopRecordings('server shutting down');
			this.signaling.closeAll(RECONNECT_AFTER_SHUTDOWN_MS);
			this.channels.closeAll('server shutting down');
			await this.voice.drainProcessing();
		});
	}

	/** This node's part in the cluster (bus, node registry, placement); undefined without Redis. */
	get cluster(): ClusterNode | undefined {
		return this.#cluster;
	}

	static async create(config: ParleyConfig, log: Logger): Promise<ParleyServer> {
		// What this server writes is newer than this: older temp files are leftovers.
		const startedAtMs = Date.now();
		assertNativeUws();
		// First: a bad http.tls file stops the start (exit 78) before anything else is started.
		const http = new HttpServer(log.child({ component: 'http' }), {
			maxConcurrentRequests: config.http.maxConcurrentRequests,
			bodyTimeoutMs: config.http.bodyTimeoutMs,
			slowReaderTimeoutMs: config.http.slowReaderTimeoutMs,
			...(config.http.tls.certFile && { tls: config.http.tls }),
		});
		const teardown = new Teardown(log);
		let server: ParleyServer | undefined;
		try {
			// First, so spans of startup work (recovering recordings) are exported too, and
			// last to close, so spans of the shutdown itself are exported as well.
			const tracing = await startTracing(config.telemetry, log.child({ component: 'telemetry' }));
			if (tracing) teardown.push('tracing', () => tracing.shutdown());
			const workers = await WorkerPool.create(workerPoolOptions(config), log.child({ component: 'media' }));
			teardown.push('workers', () => workers.close());
			const redis = config.cluster.redisUrl ? connectRedis(config.cluster.redisUrl, log.child({ component: 'cluster' })) : undefined;
			if (redis) teardown.push('redis', () => closeRedis(redis));
			const metadata = await openMetadata(config, Boolean(redis));
			if (metadata.store) teardown.push('voice store', () => metadata.store!.close());
			server = new ParleyServer(config, log, workers, http, redis, teardown, metadata);
			await server.#start(startedAtMs, tracing?.tracesUrl);
			return server;
		} catch (err) {
			if (server) server.#accepting = false;
			await teardown.closeAll(AbortSignal.timeout(config.shutdown.deadlineMs));
			throw err;
		}
	}

	/** Routes, recovery, the listeners and the cluster, in that order. */
	async #start(startedAtMs: number, tracesUrl: string | undefined): Promise<void> {
		const { config, log, http, redis } = this;
		registerStaticFiles(http, DEMO_APP_DIR);
		registerHealthRoutes(http, {
			checks: this.#readinessChecks(),
			checkTimeoutMs: config.readiness.checkTimeoutMs,
			cacheMs: config.readiness.cacheMs,
			isAccepting: () => this.#accepting,
		});
		// Before recovery reads any file: a bad S3 bucket, key or secret stops the start (exit 78).
		await this.#checkStorage();
		this.#teardown.push('voice recovery', () => this.#voiceRecovery.close());
		// Redis may be away at startup: the node still serves live channels (not ready) and
		// recovers the shared store's unfinished messages once Redis answers.
		const cluster = this.#cluster;
		if (cluster) this.#voiceRecovery.startShared((nodeId) => cluster.isNodeRegistered(nodeId));
		else await this.#voiceRecovery.recoverLocal();
		await http.listen(config.http.host, config.http.port);
		const api = this.api;
		if (api) {
			// Closed before the channels and voice it serves (pushed after them). The status feed
			// closes first, so open SubscribeStatus streams end at once (UNAVAILABLE, resumable)
			// instead of holding the close until its deadline.
			const feed = this.voiceStatusFeed;
			const roomEvents = this.roomEvents;
			this.#teardown.push('grpc api', (deadline) => {
				feed.close();
				void roomEvents.close();
				return api.close(deadline);
			});
			await api.listen();
		}
		if (this.metrics && config.metrics.port !== 0) {
			const host = config.metrics.host || config.http.host;
			const metricsHttp = await startMetricsListener(host, config.metrics.port, this.metrics, config.metrics.bearerToken, log.child({ component: 'metrics' }));
			this.#metricsHttp = metricsHttp;
			this.#teardown.push('metrics listener', () => metricsHttp.close());
		}
		if (cluster) {
			this.#teardown.push('cluster', () => cluster.close());
			await cluster.start(http.port);
			this.#channelOperations.serve(cluster.bus);
			await this.#voiceNotifier.attach(cluster.bus);
			await this.roomEvents.attachBus(cluster.bus);
			this.#voiceRecovery.watch(cluster.registry);
		}
		const poller = this.#statsPoller;
		if (poller) {
			poller.start();
			this.#teardown.push('stats poller', () => poller.stop());
		}
		if (config.voice.auditOnStartup) this.#startStorageAudit(startedAtMs);
		log.info(
			{
				http: `${http.scheme}://${config.http.host}:${http.port}`,
				storageDir: this.storageDir,
				redis: config.cluster.redisUrl ? redactUrl(config.cluster.redisUrl) : 'off',
				metrics: this.metrics ? (this.#metricsHttp ? `http://${config.metrics.host || config.http.host}:${this.#metricsHttp.port}/metrics` : '/metrics') : 'off',
				traces: tracesUrl ?? 'off',
			},
			'parley listening',
		);
	}

	/** Storage that S3 says is misconfigured (missing bucket, unknown key, wrong secret) is a
	 * ConfigError naming the option; otherwise storage that cannot be written now is not fatal
	 * (live channels work without it, and S3 may be back in a moment): logged, /readyz reports it. */
	async #checkStorage(): Promise<void> {
		const storage = this.storage;
		if (storage.backend === 's3') {
			const away = await storage.verifyConfig();
			if (away) this.log.warn({ err: away, endpoint: this.config.storage.s3.endpoint || 'AWS', bucket: storage.bucket }, 'S3 storage not reachable at startup; voice messages wait in the work folder until it is');
			return;
		}
		try {
			await storage.checkWritable();
		} catch (err) {
			this.log.warn({ err, dir: this.storageDir }, 'storage directory not writable');
		}
	}

	#readinessChecks(): ReadinessCheck[] {
		const checks: ReadinessCheck[] = [
			{
				name: 'workers',
				check: async () => {
					if (this.workers.healthy) return;
					const down = this.workers.info().filter((w) => !w.alive).map((w) => w.index);
					throw new Error(`mediasoup worker(s) ${down.join(', ')} not running`);
				},
			},
			{ name: 'storage', check: () => this.storage.checkWritable() },
		];
		const redis = this.redis;
		if (redis) checks.push({ name: 'redis', check: () => pingRedis(redis) });
		const metadata = this.metadata;
		if (metadata) checks.push({ name: 'metadata', check: () => metadata.ping() });
		return checks;
	}

	/** Checks in the background that voice-message metadata and files agree (StorageAudit);
	 * shutdown stops it where it is. */
	#startStorageAudit(startedAtMs: number): void {
		const abort = new AbortController();
		const metrics = this.metrics;
		const audit = StorageAudit.run({
			store: this.voiceStore,
			storage: this.storage,
			uploadsDir: uploadFilesDir(this.config, this.storageDir),
			shared: Boolean(this.config.cluster.redisUrl),
			hashAll: this.config.voice.auditHashAll,
			startedAtMs,
			signal: abort.signal,
			log: this.log.child({ component: 'storage-audit' }),
		}).then((report) => {
			if (metrics) recordStorageAudit(metrics, report);
			return report;
		});
		this.storageAudit = audit;
		this.onShutdown('storage audit', async () => {
			abort.abort();
			await audit;
		});
	}

	get accepting(): boolean {
		return this.#accepting;
	}

	/**
	 * SIGHUP: re-reads http.tls.certFile and keyFile. New connections get the new certificate,
	 * open ones (and their calls) stay; a file that does not check out leaves the old
	 * certificate served and is logged naming the option. Never throws: a bad renewal must not
	 * end a running node. True when the new certificate is served.
	 */
	async reloadTls(): Promise<boolean> {
		const files = this.config.http.tls;
		if (!files.certFile) {
			this.log.info('no http.tls configured: nothing to reload');
			return false;
		}
		try {
			await this.http.reloadTls(files);
			return true;
		} catch (err) {
			const served = this.http.certificate;
			this.log.error(
				{ err, options: err instanceof ConfigError ? err.options : [], served: served && { subject: served.subject, notAfter: served.notAfter.toISOString(), fingerprint256: served.fingerprint256 } },
				`TLS reload failed, still serving the previous certificate: ${(err as Error).message}`,
			);
			return false;
		}
	}

	/** Registers work to drain at shutdown (recordings, uploads, channels). */
	onShutdown(name: string, task: ShutdownTask): void {
		this.#shutdownTasks.set(name, task);
	}

	/**
	 * Stops accepting, lets registered tasks finish within shutdown.deadlineMs, then closes
	 * everything create() acquired, newest first. Safe to call more than once.
	 */
	shutdown(reason: string): Promise<ShutdownResult> {
		this.#shutdown ??= this.#runShutdown(reason);
		return this.#shutdown;
	}

	async #runShutdown(reason: string): Promise<ShutdownResult> {
		const started = performance.now();
		const deadlineMs = this.config.shutdown.deadlineMs;
		this.log.info({ reason, deadlineMs, tasks: [...this.#shutdownTasks.keys()] }, 'shutting down');
		this.#accepting = false;
		this.api?.drain();
		this.#statsPoller?.stop();
		this.http.stopListening();
		// First, so other nodes take this node's channels over while its clients reconnect.
		await this.#cluster?.leave().catch((err: unknown) => this.log.warn({ err }, 'leaving the cluster failed'));

		const deadline = AbortSignal.timeout(deadlineMs);
		const pending = new Set(this.#shutdownTasks.keys());
		const tasks = [...this.#shutdownTasks].map(async ([name, task]) => {
			try {
				await task(deadline);
			} catch (err) {
				this.log.error({ err, task: name }, 'shutdown task failed');
			} finally {
				pending.delete(name);
			}
		});
		let timer: NodeJS.Timeout | undefined;
		const timedOut = await Promise.race([
			Promise.all(tasks).then(() => false),
			new Promise<boolean>((resolve) => {
				timer = setTimeout(() => resolve(true), deadlineMs);
			}),
		]);
		clearTimeout(timer);
		if (timedOut) this.log.warn({ unfinished: [...pending] }, 'shutdown deadline reached');
		// What create() acquired, newest first (the same order a failed start uses).
		await this.#teardown.closeAll(deadline);
		const durationMs = Math.round(performance.now() - started);
		this.log.info({ durationMs, clean: !timedOut }, 'shutdown complete');
		return { clean: !timedOut, durationMs };
	}
}

/** The served certificate (http.tls) as metrics: seconds to its notAfter (alert well before 0),
 * and its identity as labels of an info gauge, so a dashboard shows a reload took effect. */
function tlsCertificateGauges(registry: Registry, http: HttpServer): void {
	new Gauge({
		name: 'parley_tls_certificate_expiry_seconds',
		help: 'Seconds until the TLS certificate served to new connections expires (negative: expired). Renew and send SIGHUP well before 0.',
		registers: [registry],
		collect() {
			const cert = http.certificate;
			if (cert) this.set((cert.notAfter.getTime() - Date.now()) / 1000);
		},
	});
	new Gauge({
		name: 'parley_tls_certificate_info',
		help: 'The TLS certificate served to new connections (1, with its subject, issuer, notAfter and SHA-256 fingerprint as labels); changes on a SIGHUP reload.',
		labelNames: ['subject', 'issuer', 'not_after', 'fingerprint_sha256'],
		registers: [registry],
		collect() {
			const cert = http.certificate;
			this.reset();
			if (cert) this.set({ subject: cert.subject, issuer: cert.issuer, not_after: cert.notAfter.toISOString(), fingerprint_sha256: cert.fingerprint256 }, 1);
		},
	});
}

/** cluster.nodeId, else new on every start (hostname and pid for people, random bits so ids never repeat), so a
 * restarted node never inherits what the process it replaces owned. Only characters the
 * cluster accepts in ids. */
interface OpenedMetadata {
	nodeId: string;
	store: SqlVoiceMessageStore | undefined;
	/** Where the SQL store sends events after each commit (set once webhooks exist). */
	events: { listener?: VoiceEventListener };
}

/** The SQL store at metadata.url, or at sqlite:<voice.databasePath> on a node without Redis;
 * none (the Redis store) with Redis and no metadata.url. Migrations run here, before the node serves. */
async function openMetadata(config: ParleyConfig, withRedis: boolean): Promise<OpenedMetadata> {
	const nodeId = nodeIdOf(config.cluster);
	const events: OpenedMetadata['events'] = {};
	const url = config.metadata.url || (withRedis ? '' : `sqlite:${config.voice.databasePath}`);
	const store = url ? await SqlVoiceMessageStore.open(url, { nodeId, poolSize: config.metadata.poolSize, onEvent: (e) => events.listener?.(e) }) : undefined;
	return { nodeId, store, events };
}

function nodeIdOf(cluster: { nodeId?: string }): string {
	if (cluster.nodeId) return cluster.nodeId;
	const host = os.hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 60) || 'node';
	return `${host}-${process.pid}-${randomBytes(2).toString('hex')}`;
}
