// One Parley node: the mediasoup worker pool, the HTTP + WebSocket listener, optional
// Redis, and the ordered shutdown that ties them together.
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { ParleyConfig } from '../config/schema.js';
import { closeRedis, connectRedis, pingRedis, redactUrl } from './cluster/redisConnection.js';
import { registerHealthRoutes, type ReadinessCheck } from './http/healthRoutes.js';
import { HttpServer } from './http/HttpServer.js';
import { assertNativeUws } from './http/uws.js';
import { WorkerPool } from './media/WorkerPool.js';
import { workerPoolOptions } from './media/workerSettings.js';
import type { Logger } from './telemetry/logger.js';
import { checkStorageWritable } from './voice/storageDirectory.js';

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
	readonly storageDir: string;
	readonly #shutdownTasks = new Map<string, ShutdownTask>();
	#accepting = true;
	#shutdown: Promise<ShutdownResult> | undefined;

	private constructor(config: ParleyConfig, log: Logger, workers: WorkerPool, http: HttpServer, redis: Redis | undefined) {
		this.config = config;
		this.log = log;
		this.workers = workers;
		this.http = http;
		this.redis = redis;
		this.storageDir = path.resolve(config.storage.dir);
	}

	static async create(config: ParleyConfig, log: Logger): Promise<ParleyServer> {
		assertNativeUws();
		const workers = await WorkerPool.create(workerPoolOptions(config), log.child({ component: 'media' }));
		const redis = config.cluster.redisUrl ? connectRedis(config.cluster.redisUrl, log.child({ component: 'cluster' })) : undefined;
		const http = new HttpServer(log.child({ component: 'http' }));
		const server = new ParleyServer(config, log, workers, http, redis);
		registerHealthRoutes(http, {
			checks: server.#readinessChecks(),
			checkTimeoutMs: config.readiness.checkTimeoutMs,
			isAccepting: () => server.#accepting,
		});
		try {
			await checkStorageWritable(server.storageDir);
		} catch (err) {
			// Not fatal: live channels work without storage; /readyz reports it.
			log.warn({ err, dir: server.storageDir }, 'storage directory not writable');
		}
		try {
			await http.listen(config.http.host, config.http.port);
		} catch (err) {
			await workers.close();
			redis?.disconnect();
			throw err;
		}
		log.info(
			{
				http: `http://${config.http.host}:${http.port}`,
				storageDir: server.storageDir,
				redis: config.cluster.redisUrl ? redactUrl(config.cluster.redisUrl) : 'off',
			},
			'parley listening',
		);
		return server;
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
			{ name: 'storage', check: () => checkStorageWritable(this.storageDir) },
		];
		const redis = this.redis;
		if (redis) checks.push({ name: 'redis', check: () => pingRedis(redis) });
		return checks;
	}

	get accepting(): boolean {
		return this.#accepting;
	}

	/** Registers work to drain at shutdown (recordings, uploads, channels). */
	onShutdown(name: string, task: ShutdownTask): void {
		this.#shutdownTasks.set(name, task);
	}

	/**
	 * Stops accepting, lets registered tasks finish within shutdown.deadlineMs, then closes
	 * connections, workers and Redis. Safe to call more than once.
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
		this.http.stopListening();

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

		this.http.close();
		await this.workers.close();
		if (this.redis) await closeRedis(this.redis);
		const durationMs = Math.round(performance.now() - started);
		this.log.info({ durationMs, clean: !timedOut }, 'shutdown complete');
		return { clean: !timedOut, durationMs };
	}
}
