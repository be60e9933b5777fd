// The baseline: a bare mediasoup worker and router (Opus only, nothing else; audio/red beside
// it for rooms of RED publishers), the same
// worker binary Parley uses (unless --raw-worker-bin names another), no Parley code in the
// path. Parley's figures are reported as a ratio of this one, measured in the same run on the
// same machine.
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { resolveWorkerBin } from '../../server/media/workerSettings.js';
import { consumerPayloadTypes, type ForwardingTarget, LOOPBACK, mapLimit, opusRtpParameters, plainListenOptions, remoteSrtpParameters, type Room, type RoomSpec, withoutRed } from './ForwardingTarget.js';

export class RawMediasoupTarget implements ForwardingTarget {
	readonly kind = 'raw-mediasoup' as const;
	readonly #worker: ms.Worker;

	private constructor(worker: ms.Worker) {
		this.#worker = worker;
	}

	static async start(): Promise<RawMediasoupTarget> {
		// BENCH_RAW_WORKER_BIN (--raw-worker-bin) runs the twin on another build than Parley's.
		const workerBin = process.env.BENCH_RAW_WORKER_BIN || process.env.MEDIASOUP_WORKER_BIN || '';
		const worker = await mediasoup.createWorker({ logLevel: 'warn', workerBin: resolveWorkerBin(workerBin) });
		return new RawMediasoupTarget(worker);
	}

	workerPids(): number[] {
		return [this.#worker.pid];
	}

	statsRounds(): [] {
		return [];
	}

	async buildRoom(spec: RoomSpec): Promise<Room> {
		const rtcpFeedback: ms.RtcpFeedback[] = spec.nack ? [{ type: 'nack' }] : [];
		const mediaCodecs: ms.RouterRtpCodecCapability[] = [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, rtcpFeedback }];
		if (spec.red) mediaCodecs.push({ kind: 'audio', mimeType: 'audio/red', clockRate: 48000, channels: 2, rtcpFeedback });
		const router = await this.#worker.createRouter({ mediaCodecs });
		const noRed = new Set(spec.listenersWithoutRed ?? []);
		try {
			const outbound = await mapLimit(spec.listenerDestinations, 32, async (port, i) => {
				const t = await router.createPlainTransport(plainListenOptions(spec.srtpCryptoSuite, false));
				await t.connect({ ip: LOOPBACK, port, ...(spec.srtpCryptoSuite ? { srtpParameters: remoteSrtpParameters(spec.srtpCryptoSuite) } : {}) });
				return { t, caps: noRed.has(i) ? withoutRed(router.rtpCapabilities) : router.rtpCapabilities };
			});
			const inbound = await mapLimit(spec.publisherSsrcs, 8, async (ssrc) => {
				const t = await router.createPlainTransport(plainListenOptions(undefined, true));
				const producer = await t.produce({ kind: 'audio', rtpParameters: opusRtpParameters(ssrc, spec.nack, spec.red) });
				return { port: t.tuple.localPort, producer };
			});
			const listeners = await mapLimit(outbound, 16, async ({ t, caps }) => ({
				consumers: await Promise.all(
					inbound.map(async ({ producer }, publisherIndex) => {
						const c = await t.consume({ producerId: producer.id, rtpCapabilities: caps, enableRtx: spec.nack });
						return { ssrc: c.rtpParameters.encodings![0]!.ssrc!, publisherIndex, payloadTypes: consumerPayloadTypes(c.rtpParameters) };
					}),
				),
			}));
			return { publisherPorts: inbound.map((i) => i.port), listeners, close: () => router.close() };
		} catch (err) {
			router.close();
			throw err;
		}
	}

	async close(): Promise<void> {
		this.#worker.close();
	}
}
