// The pool of mediasoup workers: one C++ process per core, each with a WebRtcServer so a
// single UDP + TCP port pair per worker carries every WebRTC transport of that worker.
//
// Routers (channels) are placed on the least-loaded live worker. A worker that dies is
// replaced on the same ports and `workerDied` / `workerReplaced` are emitted, so the owners
// of its routers (channel registry, recordings) can rebuild them elsewhere.
import { EventEmitter } from 'node:events';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import type { Logger } from '../telemetry/logger.js';

export interface WorkerPoolOptions {
	/** Number of workers (already resolved: >= 1). */
	numWorkers: number;
	workerBin: string;
	workerLogLevel: ms.WorkerLogLevel;
	/** Local IP the WebRtcServers listen on. */
	listenIp: string;
	/** Address put in ICE candidates; undefined announces listenIp. */
	announcedAddress: string | undefined;
	/** Worker i listens on rtcPort + i (UDP and TCP). */
	rtcPort: number;
	/** Delay before retrying a failed replacement (doubles per failure, capped at 30 s). */
	respawnDelayMs: number;
}

export interface WorkerDiedEvent {
	index: number;
	pid: number;
	error: Error;
	/** Routers that were on the worker (all closed now). */
	routerIds: string[];
}

export interface WorkerReplacedEvent {
	index: number;
	pid: number;
	previousPid: number;
}

export interface WorkerPoolEvents {
	workerDied: [WorkerDiedEvent];
	workerReplaced: [WorkerReplacedEvent];
	/** A replacement attempt failed; the pool retries after a delay. */
	workerRespawnFailed: [{ index: number; error: Error; retryInMs: number }];
}

/** Live objects counted on one worker; `load` weighs them for router placement. */
export interface WorkerLoad {
	routers: number;
	transports: number;
	producers: number;
	consumers: number;
}

export interface WorkerSlotInfo extends WorkerLoad {
	index: number;
	pid: number | undefined;
	alive: boolean;
	rtcPort: number;
}

const MAX_RESPAWN_DELAY_MS = 30_000;
/** How long close() waits for worker processes to exit before it SIGKILLs them. */
const EXIT_WAIT_MS = 3000;

class WorkerSlot {
	worker: ms.Worker | undefined;
	webRtcServer: ms.WebRtcServer | undefined;
	readonly routers = new Set<ms.Router>();
	load: WorkerLoad = { routers: 0, transports: 0, producers: 0, consumers: 0 };
	respawnTimer: NodeJS.Timeout | undefined;
	failedRespawns = 0;
	constructor(
		readonly index: number,
		readonly rtcPort: number,
	) {}

	get alive(): boolean {
		return this.worker !== undefined && !this.worker.died && !this.worker.closed;
	}

	/** Consumers dominate forwarding cost for voice (one copy per listener), so they weigh most. */
	get score(): number {
		return this.load.consumers + 2 * this.load.producers + this.load.transports + 5 * this.load.routers;
	}
}

export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
	readonly #options: WorkerPoolOptions;
	readonly #log: Logger;
	readonly #slots: WorkerSlot[];
	readonly #routerSlot = new Map<string, WorkerSlot>();
	#closed = false;

	private constructor(options: WorkerPoolOptions, log: Logger) {
		super();
		this.#options = options;
		this.#log = log;
		this.#slots = Array.from({ length: options.numWorkers }, (_, i) => new WorkerSlot(i, options.rtcPort + i));
	}

	/** Starts every worker; rejects (after closing those that started) if any fails. */
	static async create(options: WorkerPoolOptions, log: Logger): Promise<WorkerPool> {
		if (options.numWorkers < 1) throw new TypeError('numWorkers must be >= 1');
		forwardMediasoupLogs(log);
		const pool = new WorkerPool(options, log);
		try {
			await Promise.all(pool.#slots.map((slot) => pool.#start(slot)));
		} catch (err) {
			await pool.close();
			throw err;
		}
		log.info(
			{ workers: options.numWorkers, pids: pool.#slots.map((s) => s.worker?.pid), rtcPorts: pool.#slots.map((s) => s.rtcPort) },
			'mediasoup workers started',
		);
		return pool;
	}

	get closed(): boolean {
		return this.#closed;
	}

	get size(): number {
		return this.#slots.length;
	}

	/** True when every slot has a live worker. */
	get healthy(): boolean {
		return !this.#closed && this.#slots.every((s) => s.alive);
	}

	info(): WorkerSlotInfo[] {
		return this.#slots.map((s) => ({ index: s.index, pid: s.worker?.pid, alive: s.alive, rtcPort: s.rtcPort, ...s.load }));
	}

	/** Live workers with their slot index (for resource-usage polling). */
	liveWorkers(): { index: number; worker: ms.Worker }[] {
		return this.#slots.filter((s) => s.alive).map((s) => ({ index: s.index, worker: s.worker! }));
	}

	/** Creates a router on the least-loaded live worker. */
	async createRouter<AppData extends ms.AppData = ms.AppData>(options: ms.RouterOptions<AppData>): Promise<ms.Router<AppData>> {
		if (this.#closed) throw new Error('worker pool is closed');
		const candidates = this.#slots.filter((s) => s.alive);
		if (candidates.length === 0) throw new Error('no live mediasoup worker');
		const slot = candidates.reduce((best, s) => (s.score < best.score ? s : best));
		const router = await slot.worker!.createRouter<AppData>(options);
		// The worker may have died while the request was in flight.
		if (router.closed) throw new Error('router closed during creation');
		this.#routerSlot.set(router.id, slot);
		return router;
	}

	/** The WebRtcServer of the worker that hosts `router` (transports must use it). */
	webRtcServerFor(router: ms.Router): ms.WebRtcServer {
		const server = this.#routerSlot.get(router.id)?.webRtcServer;
		if (!server || server.closed) throw new Error(`router ${router.id} has no live WebRtcServer`);
		return server;
	}

	/** Index of the worker slot hosting `router`, or undefined once it is gone. */
	workerIndexOf(router: ms.Router): number | undefined {
		return this.#routerSlot.get(router.id)?.index;
	}

	async #start(slot: WorkerSlot): Promise<void> {
		const o = this.#options;
		const worker = await mediasoup.createWorker({
			logLevel: o.workerLogLevel,
			logTags: ['info', 'ice', 'dtls', 'rtp', 'srtp', 'rtcp'],
			workerBin: o.workerBin,
			appData: { index: slot.index },
		});
		detachMediasoupSignalHandlers(worker);
		let webRtcServer: ms.WebRtcServer;
		try {
			const base = { ip: o.listenIp, port: slot.rtcPort, ...(o.announcedAddress ? { announcedAddress: o.announcedAddress } : {}) };
			webRtcServer = await worker.createWebRtcServer({
				listenInfos: [
					{ protocol: 'udp', ...base },
					{ protocol: 'tcp', ...base },
				],
			});
		} catch (err) {
			worker.close();
			throw new Error(`worker ${slot.index}: cannot listen on ${o.listenIp}:${slot.rtcPort} (udp+tcp): ${(err as Error).message}`);
		}
		slot.worker = worker;
		slot.webRtcServer = webRtcServer;
		slot.load = { routers: 0, transports: 0, producers: 0, consumers: 0 };
		this.#track(slot, worker);
		worker.on('died', (error) => this.#onDied(slot, worker, error));
	}

	/** Keeps the slot's load counters current from mediasoup's observer events. */
	#track(slot: WorkerSlot, worker: ms.Worker): void {
		const load = slot.load;
		worker.observer.on('newrouter', (router) => {
			load.routers++;
			slot.routers.add(router);
			router.observer.once('close', () => {
				load.routers--;
				this.#routerSlot.delete(router.id);
				// mediasoup closes a dead worker's routers before it emits 'died': keep them
				// in the set so #onDied can report which ones were lost.
				if (!worker.died) slot.routers.delete(router);
			});
			router.observer.on('newtransport', (transport) => {
				load.transports++;
				transport.observer.once('close', () => load.transports--);
				transport.observer.on('newproducer', (producer) => {
					load.producers++;
					producer.observer.once('close', () => load.producers--);
				});
				transport.observer.on('newconsumer', (consumer) => {
					load.consumers++;
					consumer.observer.once('close', () => load.consumers--);
				});
			});
		});
	}

	#onDied(slot: WorkerSlot, worker: ms.Worker, error: Error): void {
		if (slot.worker !== worker) return;
		const routerIds = [...slot.routers].map((r) => r.id);
		slot.routers.clear();
		slot.worker = undefined;
		slot.webRtcServer = undefined;
		this.#log.error({ worker: slot.index, pid: worker.pid, err: error, routers: routerIds.length }, 'mediasoup worker died');
		this.emit('workerDied', { index: slot.index, pid: worker.pid, error, routerIds });
		if (!this.#closed) this.#respawn(slot, worker.pid);
	}

	#respawn(slot: WorkerSlot, previousPid: number): void {
		this.#start(slot).then(
			() => {
				if (this.#closed) {
					slot.worker?.close();
					return;
				}
				slot.failedRespawns = 0;
				const pid = slot.worker!.pid;
				this.#log.warn({ worker: slot.index, pid, previousPid }, 'mediasoup worker replaced');
				this.emit('workerReplaced', { index: slot.index, pid, previousPid });
			},
			(error: Error) => {
				if (this.#closed) return;
				const retryInMs = Math.min(MAX_RESPAWN_DELAY_MS, this.#options.respawnDelayMs * 2 ** slot.failedRespawns);
				slot.failedRespawns++;
				this.#log.error({ worker: slot.index, err: error, retryInMs }, 'mediasoup worker replacement failed');
				this.emit('workerRespawnFailed', { index: slot.index, error, retryInMs });
				slot.respawnTimer = setTimeout(() => {
					slot.respawnTimer = undefined;
					if (!this.#closed) this.#respawn(slot, previousPid);
				}, retryInMs);
			},
		);
	}

	/** Closes every worker and waits until their processes are gone. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		const pids: number[] = [];
		for (const slot of this.#slots) {
			clearTimeout(slot.respawnTimer);
			if (slot.worker && !slot.worker.closed) {
				pids.push(slot.worker.pid);
				slot.worker.close();
			}
			slot.worker = undefined;
			slot.webRtcServer = undefined;
		}
		await waitForExit(pids, EXIT_WAIT_MS);
		this.#log.info({ pids }, 'mediasoup workers closed');
	}
}

/**
 * mediasoup closes each worker on SIGINT/SIGTERM by itself. Parley's shutdown must keep
 * workers alive while it drains (recordings still consume producers), then close them in
 * order, so those handlers are removed. `onSignal` is mediasoup's own (untyped) listener.
 */
function detachMediasoupSignalHandlers(worker: ms.Worker): void {
	const onSignal = (worker as unknown as { onSignal?: (signal: NodeJS.Signals) => void }).onSignal;
	if (typeof onSignal !== 'function') throw new Error('mediasoup changed its signal handling; review detachMediasoupSignalHandlers');
	process.removeListener('SIGINT', onSignal);
	process.removeListener('SIGTERM', onSignal);
}

/** mediasoup logs (its Node side and the workers' own lines) go to our log, not to `debug`. */
function forwardMediasoupLogs(log: Logger): void {
	mediasoup.setLogEventListeners({
		ondebug: undefined,
		onwarn: (namespace, message) => log.warn({ namespace }, message),
		onerror: (namespace, message, error) => log.error({ namespace, err: error }, message),
	});
}

function processExists(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch (err) {
		return (err as NodeJS.ErrnoException).code === 'EPERM';
	}
}

/** Waits for the processes to exit; SIGKILLs those still there after `timeoutMs`. */
async function waitForExit(pids: number[], timeoutMs: number): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	let left = pids.filter(processExists);
	while (left.length > 0 && Date.now() < deadline) {
		await new Promise((r) => setTimeout(r, 20));
		left = left.filter(processExists);
	}
	for (const pid of left) {
		try {
			process.kill(pid, 'SIGKILL');
		} catch {
			// Already gone between the check and the kill.
		}
	}
}
