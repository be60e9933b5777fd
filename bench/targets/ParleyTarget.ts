// Parley in this process (ParleyServer.create with a loopback configuration), driven through
// the bench control path: rooms are real Parley channels from the server's ChannelRegistry,
// peers are real `Peer`s added with `Channel.addPeer`, and producers are made by
// `Channel.produce`, which also creates every listener's consumers exactly as it does for
// WebRTC clients (same router codecs, RTX/NACK setting, audio observers, stats polling).
// The one difference from a browser session: the transports are PlainTransports (plain RTP,
// or SRTP without DTLS) added to the peer, because the bench cannot afford a DTLS/ICE
// stack per simulated listener. The signaling scenario covers the WebSocket + WebRTC path.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { types as ms } from 'mediasoup';
import type { ParleyConfig } from '../../config/schema.js';
import { Peer, SILENT_LINK, type TransportAppData } from '../../server/channels/Peer.js';
import { loadConfig } from '../../server/config/loadConfig.js';
import type { StatsRound } from '../../server/metrics/metrics.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { createLogger } from '../../server/telemetry/logger.js';
import { freePortRange } from '../../testkit/ports.js';
import { consumerPayloadTypes, type ForwardingTarget, LOOPBACK, mapLimit, opusRtpParameters, plainListenOptions, remoteSrtpParameters, type Room, type RoomSpec, withoutRed } from './ForwardingTarget.js';

export interface ParleyTargetOptions {
	workers: number;
	opusNack: boolean;
	/** More PARLEY_* settings (strings, as the environment gives them). */
	env?: Record<string, string>;
}

/**
 * What every in-process Parley of the bench is given: its files under `dataDir`, quiet logs (its
 * lines would interleave with the bench's tables; BENCH_SERVER_LOG_LEVEL, e.g. warn, brings them
 * back when a run needs investigating), a short shutdown, channels closed as they empty (bench
 * rooms are closed on purpose), and no per-user request rate or quotas (one bench user drives
 * load no person would). The caller adds where it listens.
 */
export function benchServerEnv(dataDir: string): Record<string, string> {
	return {
		PARLEY_LOG_LEVEL: process.env.BENCH_SERVER_LOG_LEVEL ?? 'silent',
		PARLEY_STORAGE_DIR: path.join(dataDir, 'storage'),
		PARLEY_VOICE_DATABASE_PATH: path.join(dataDir, 'parley.db'),
		PARLEY_SHUTDOWN_DEADLINE_MS: '3000',
		PARLEY_SIGNALING_USER_REQUESTS_PER_SECOND: '0',
		PARLEY_SIGNALING_MAX_CONNECTIONS_PER_USER: '0',
		PARLEY_CHANNELS_MAX_CHANNELS_PER_USER: '0',
		PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '0',
	};
}

/** Environment for a loopback-only Parley node with its data in a fresh temp directory. */
export async function benchParleyEnv(options: { workers: number; opusNack: boolean; dataDir: string; jwtSecret?: string; env?: Record<string, string> }): Promise<Record<string, string>> {
	return {
		...benchServerEnv(options.dataDir),
		PARLEY_HTTP_HOST: LOOPBACK,
		PARLEY_HTTP_PORT: '0',
		PARLEY_MEDIA_WORKERS: String(options.workers),
		PARLEY_MEDIA_LISTEN_IP: LOOPBACK,
		PARLEY_MEDIA_RTC_PORT: String(await freePortRange(options.workers)),
		PARLEY_MEDIA_OPUS_NACK: String(options.opusNack),
		PARLEY_AUTH_JWT_SECRET: options.jwtSecret ?? randomBytes(24).toString('hex'),
		PARLEY_AUTH_DEV_TOKENS: 'off',
		PARLEY_CHANNELS_MAX_PEERS: '100000',
		PARLEY_CHANNELS_MAX_CHANNELS: '100000',
		// The bench measures capacity: one bench user drives load no person would, from loopback
		// (every client), with more recordings and uploads than a person would.
		PARLEY_VOICE_USER_REQUESTS_PER_SECOND: '0',
		PARLEY_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS: '0',
		PARLEY_VOICE_MAX_RECORDINGS_PER_USER: '0',
		PARLEY_VOICE_MAX_PENDING_UPLOADS_PER_USER: '0',
		PARLEY_VOICE_MAX_STORED_BYTES_PER_USER: '0',
		PARLEY_VOICE_MAX_STORED_MESSAGES_PER_USER: '0',
		...(process.env.MEDIASOUP_WORKER_BIN ? { MEDIASOUP_WORKER_BIN: process.env.MEDIASOUP_WORKER_BIN } : {}),
		...options.env,
	};
}

export class ParleyTarget implements ForwardingTarget {
	readonly kind = 'parley' as const;
	readonly server: ParleyServer;
	readonly #dataDir: string;

	private constructor(server: ParleyServer, dataDir: string) {
		this.server = server;
		this.#dataDir = dataDir;
	}

	static async start(options: ParleyTargetOptions): Promise<ParleyTarget> {
		const dataDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-'));
		const config: ParleyConfig = loadConfig({ env: await benchParleyEnv({ ...options, dataDir }) });
		const server = await ParleyServer.create(config, createLogger(config.logLevel));
		return new ParleyTarget(server, dataDir);
	}

	get config(): ParleyConfig {
		return this.server.config;
	}

	workerPids(): number[] {
		return this.server.workers.liveWorkers().map((w) => w.worker.pid);
	}

	statsRounds(): StatsRound[] {
		return this.server.metrics?.recentStatsRounds ?? [];
	}

	async buildRoom(spec: RoomSpec): Promise<Room> {
		const channel = await this.server.channels.open(spec.name);
		try {
			const caps = channel.router.rtpCapabilities;
			if (spec.red && !caps.codecs?.some((c) => c.mimeType.toLowerCase() === 'audio/red')) throw new Error('RED publishers, but this Parley does not offer audio/red (media.opusRed off)');
			const plainCaps = withoutRed(caps);
			const noRed = new Set(spec.listenersWithoutRed ?? []);
			const addPeer = async (role: 'listener' | 'publisher', i: number, transportOptions: ms.PlainTransportOptions<TransportAppData>): Promise<{ peer: Peer; transport: ms.PlainTransport<TransportAppData> }> => {
				const peer = new Peer({
					userId: `bench-${role}-${i}`,
					displayName: `bench ${role} ${i}`,
					grants: { canPublish: role === 'publisher', canSubscribe: role === 'listener', canRecord: false },
					rtpCapabilities: role === 'listener' && noRed.has(i) ? plainCaps : caps,
					link: SILENT_LINK,
				});
				channel.addPeer(peer);
				const transport = await channel.router.createPlainTransport<TransportAppData>(transportOptions);
				// Added like the WebRtcTransport signaling would create: the channel finds it by
				// id (produce) and by direction (its receive transport for consumers).
				peer.addTransport(transport);
				return { peer, transport };
			};

			const listeners = await mapLimit(spec.listenerDestinations, 32, async (port, i) => {
				const { peer, transport } = await addPeer('listener', i, { ...plainListenOptions(spec.srtpCryptoSuite, false), appData: { peerId: '', direction: 'recv' } });
				transport.appData.peerId = peer.id;
				await transport.connect({ ip: LOOPBACK, port, ...(spec.srtpCryptoSuite ? { srtpParameters: remoteSrtpParameters(spec.srtpCryptoSuite) } : {}) });
				return peer;
			});
			const producerIndex = new Map<string, number>();
			const publisherPorts = await mapLimit(spec.publisherSsrcs, 4, async (ssrc, i) => {
				const { peer, transport } = await addPeer('publisher', i, { ...plainListenOptions(undefined, true), appData: { peerId: '', direction: 'send' } });
				transport.appData.peerId = peer.id;
				const producer = await channel.produce(peer, transport.id, 'audio', opusRtpParameters(ssrc, spec.nack, spec.red), false);
				producerIndex.set(producer.id, i);
				return transport.tuple.localPort;
			});

			// Channel.produce starts the consumers in the background, paused (a client resumes
			// each once its side exists): wait for all of them, then resume as resumeConsumer does.
			const expected = spec.publisherSsrcs.length;
			const deadline = Date.now() + 30_000 + 20 * listeners.length * expected;
			while (listeners.some((p) => p.consumers.size < expected)) {
				if (Date.now() > deadline) throw new Error('Parley did not create every consumer in time');
				await new Promise((r) => setTimeout(r, 10));
			}
			const all = listeners.flatMap((p) => [...p.consumers.values()]);
			await mapLimit(all, 64, (c) => c.resume());
			return {
				publisherPorts,
				listeners: listeners.map((p) => ({
					consumers: [...p.consumers.values()].map((c) => ({ ssrc: c.rtpParameters.encodings![0]!.ssrc!, publisherIndex: producerIndex.get(c.producerId)!, payloadTypes: consumerPayloadTypes(c.rtpParameters) })),
				})),
				close: () => channel.close('bench room done'),
			};
		} catch (err) {
			channel.close('bench room failed');
			throw err;
		}
	}

	async close(): Promise<void> {
		await this.server.shutdown('bench done');
		rmSync(this.#dataDir, { recursive: true, force: true });
	}
}
