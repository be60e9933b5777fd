// Turns the media options of the config into concrete WorkerPool settings: worker count,
// the worker binary (checked before use), and the address announced in ICE candidates.
import { accessSync, constants, statSync } from 'node:fs';
import os from 'node:os';
import * as mediasoup from 'mediasoup';
import type { ParleyConfig } from '../../config/schema.js';
import type { WorkerPoolOptions } from './WorkerPool.js';

export class WorkerBinaryError extends Error {
	override readonly name = 'WorkerBinaryError';
}

/** Option value, else MEDIASOUP_WORKER_BIN (mediasoup's own default covers it), else the
 * binary scripts/setup links into node_modules/mediasoup/worker/out/Release. */
export function resolveWorkerBin(configured: string): string {
	const bin = configured || mediasoup.workerBin;
	try {
		if (!statSync(bin).isFile()) throw new Error('not a regular file');
		accessSync(bin, constants.X_OK);
	} catch (err) {
		throw new WorkerBinaryError(
			`mediasoup-worker binary not usable at ${bin} (${(err as Error).message}). Run ./scripts/setup to build it, or set media.workerBin / MEDIASOUP_WORKER_BIN.`,
		);
	}
	return bin;
}

/** Listen addresses that mean every interface: something else must be announced. */
export const WILDCARDS = new Set(['0.0.0.0', '::']);

/** First non-internal IPv4 address of this host, or 127.0.0.1. */
export function primaryIPv4(): string {
	for (const addrs of Object.values(os.networkInterfaces())) {
		for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
	}
	return '127.0.0.1';
}

export function resolveAnnouncedAddress(listenIp: string, configured: string): string | undefined {
	if (configured) return configured;
	return WILDCARDS.has(listenIp) ? primaryIPv4() : undefined;
}

export function workerPoolOptions(config: ParleyConfig): WorkerPoolOptions {
	const m = config.media;
	return {
		numWorkers: m.workers > 0 ? m.workers : os.availableParallelism(),
		workerBin: resolveWorkerBin(m.workerBin),
		workerLogLevel: m.workerLogLevel,
		listenIp: m.listenIp,
		announcedAddress: resolveAnnouncedAddress(m.listenIp, m.announcedAddress),
		rtcPort: m.rtcPort,
		respawnDelayMs: m.workerRespawnDelayMs,
	};
}
