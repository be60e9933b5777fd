// The baseline: a bare mediasoup worker and router (Opus only, nothing else), the same
// worker binary Parley uses, no Parley code in the path. Parley's figures are reported as a
// ratio of this one, measured in the same run on the same machine.
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { resolveWorkerBin } from '../../server/media/workerSettings.js';
import { type ForwardingTarget, LOOPBACK, mapLimit, opusRtpParameters, plainListenOptions, remoteSrtpParameters, type Room, type RoomSpec } from './ForwardingTarget.js';

export class RawMediasoupTarget implements ForwardingTarget {
	readonly kind = 'raw-mediasoup' as const;
	readonly #worker: ms.Worker;

	private constructor(worker: ms.Worker) {
		this.#worker = worker;
	}

	static async start(): Promise<RawMediasoupTarget> {
		const worker = await mediasoup.createWorker({ logLevel: 'warn', workerBin: resolveWorkerBin(process.env.MEDIASOUP_WORKER_BIN ?? '') });
		return new RawMediasoupTarget(worker);
	}

	workerPids(): number[] {
		return [this.#worker.pid];
	}

	async buildRoom(spec: RoomSpec): Promise<Room> {
		const router = await this.#worker.createRouter({
			mediaCodecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, rtcpFeedback: spec.nack ? [{ type: 'nack' }] : [] }],
		});
		try {
			const outbound = await mapLimit(spec.listenerDestinations, 32, async (port) => {
				const t = await router.createPlainTransport(plainListenOptions(spec.srtpCryptoSuite, false));
				await t.connect({ ip: LOOPBACK, port, ...(spec.srtpCryptoSuite ? { srtpParameters: remoteSrtpParameters(spec.srtpCryptoSuite) } : {}) });
				return t;
			});
			const inbound = await mapLimit(spec.publisherSsrcs, 8, async (ssrc) => {
				const t = await router.createPlainTransport(plainListenOptions(undefined, true));
				const producer = await t.produce({ kind: 'audio', rtpParameters: opusRtpParameters(ssrc, spec.nack) });
				return { port: t.tuple.localPort, producer };
			});
			const listeners = await mapLimit(outbound, 16, async (t) => ({
				consumers: await Promise.all(
					inbound.map(async ({ producer }, publisherIndex) => {
						const c = await t.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities, enableRtx: spec.nack });
						return { ssrc: c.rtpParameters.encodings![0]!.ssrc!, publisherIndex };
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
