// Whether the mediasoup worker the bench runs forwards Opus RED: a stock 3.27 worker aborts
// on a RED producer (it looks for an RTX 'apt' on it) or discards RED packets at the
// producer, and only the worker built with scripts/mediasoup's RED patch forwards RED to
// listeners that have it and strips it for the rest. Probed on a throwaway worker of the
// same binary, so a crash costs nothing; RED rows are only measured when it passes.
import dgram from 'node:dgram';
import { once } from 'node:events';
import * as mediasoup from 'mediasoup';
import { buildRedPayload } from '../../server/media/redPayload.js';
import { resolveWorkerBin } from '../../server/media/workerSettings.js';
import { buildRtp, parseRtp } from '../rtp/rtp.js';
import { LOOPBACK, OPUS_PAYLOAD_TYPE, opusRtpParameters, plainListenOptions, RED_PAYLOAD_TYPE, withoutRed } from './ForwardingTarget.js';

export interface RedSupport {
	forwardsRed: boolean;
	/** What happened, for the report. */
	detail: string;
}

/** Sends a few RED packets through a RED producer to a RED consumer and a plain one. */
export async function probeRedSupport(): Promise<RedSupport> {
	const worker = await mediasoup.createWorker({ logLevel: 'none', workerBin: resolveWorkerBin(process.env.MEDIASOUP_WORKER_BIN ?? '') });
	let died = false;
	worker.on('died', () => {
		died = true;
	});
	const sockets: dgram.Socket[] = [];
	try {
		const router = await worker.createRouter({
			mediaCodecs: [
				{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
				{ kind: 'audio', mimeType: 'audio/red', clockRate: 48000, channels: 2 },
			],
		});
		const listen = async (): Promise<{ socket: dgram.Socket; got: { red: number; opus: number } }> => {
			const socket = dgram.createSocket('udp4');
			sockets.push(socket);
			socket.bind(0, LOOPBACK);
			await once(socket, 'listening');
			return { socket, got: { red: 0, opus: 0 } };
		};
		const redListener = await listen();
		const plainListener = await listen();
		const consumerFor = async (l: { socket: dgram.Socket; got: { red: number; opus: number } }, caps: mediasoup.types.RtpCapabilities, producerId: string): Promise<void> => {
			const t = await router.createPlainTransport(plainListenOptions(undefined, false));
			await t.connect({ ip: LOOPBACK, port: l.socket.address().port });
			const c = await t.consume({ producerId, rtpCapabilities: caps });
			const red = c.rtpParameters.codecs.find((x) => x.mimeType.toLowerCase() === 'audio/red')?.payloadType;
			const opus = c.rtpParameters.codecs.find((x) => x.mimeType.toLowerCase() === 'audio/opus')?.payloadType;
			l.socket.on('message', (msg) => {
				const rtp = parseRtp(msg);
				if (rtp?.payloadType === red) l.got.red++;
				else if (rtp?.payloadType === opus) l.got.opus++;
			});
		};
		const inbound = await router.createPlainTransport(plainListenOptions(undefined, true));
		const producer = await inbound.produce({ kind: 'audio', rtpParameters: opusRtpParameters(0x5eed, false, true) });
		await consumerFor(redListener, router.rtpCapabilities, producer.id);
		await consumerFor(plainListener, withoutRed(router.rtpCapabilities), producer.id);
		const sender = dgram.createSocket('udp4');
		sockets.push(sender);
		const frame = (i: number): Uint8Array => Uint8Array.of(0x48, i & 0xff, 0x11, 0x22);
		for (let i = 0; i < 10; i++) {
			const payload = buildRedPayload({ payloadType: OPUS_PAYLOAD_TYPE, data: frame(i) }, i > 0 ? [{ payloadType: OPUS_PAYLOAD_TYPE, timestampOffset: 960, data: frame(i - 1) }] : []);
			sender.send(buildRtp({ payloadType: RED_PAYLOAD_TYPE, sequenceNumber: 100 + i, timestamp: 5000 + i * 960, ssrc: 0x5eed, marker: i === 0 }, payload), inbound.tuple.localPort, LOOPBACK);
			await new Promise((r) => setTimeout(r, 10));
		}
		await new Promise((r) => setTimeout(r, 200));
		if (died) return { forwardsRed: false, detail: 'the worker died on a RED producer (a worker without the RED patch)' };
		const ok = redListener.got.red > 0 && plainListener.got.opus > 0 && plainListener.got.red === 0;
		return {
			forwardsRed: ok,
			detail: `of 10 RED packets, the RED listener got ${redListener.got.red} RED, the listener without RED ${plainListener.got.opus} Opus and ${plainListener.got.red} RED${ok ? '' : ' (a worker without the RED patch discards RED)'}`,
		};
	} catch (err) {
		return { forwardsRed: false, detail: died ? 'the worker died on a RED producer (a worker without the RED patch)' : `RED producer failed: ${(err as Error).message}` };
	} finally {
		for (const s of sockets) s.close();
		if (!worker.closed) worker.close();
	}
}
