// Admission control for work that spawns processes: at most maxConcurrent jobs run, at most
// maxQueued wait, anything beyond is refused at once. Without it, N simultaneous uploads
// would start N ffmpegs and the machine would thrash instead of finishing any of them.
//
// Each running job gets an AbortSignal that fires after timeoutMs (a hard deadline for the
// whole job, not per step) or on close(); jobs kill their child process when it fires. A
// job keeps its slot until its promise settles, so a killed process has been reaped before
// the next one starts.

export interface JobQueueOptions {
	maxConcurrent: number;
	maxQueued: number;
	timeoutMs: number;
	/** The errors the queue rejects or aborts with. */
	errors: { busy: () => Error; closed: () => Error; timeout: () => Error };
}

export type Job<T> = (signal: AbortSignal) => Promise<T>;

interface Waiting {
	start: () => void;
	reject: (error: Error) => void;
}

export class JobQueue {
	readonly #options: JobQueueOptions;
	readonly #running = new Set<AbortController>();
	readonly #waiting: Waiting[] = [];
	#closed = false;

	constructor(options: JobQueueOptions) {
		for (const key of ['maxConcurrent', 'timeoutMs'] as const) {
			if (!Number.isInteger(options[key]) || options[key] < 1) throw new TypeError(`${key} must be a positive integer`);
		}
		if (!Number.isInteger(options.maxQueued) || options.maxQueued < 0) throw new TypeError('maxQueued must be an integer >= 0');
		this.#options = options;
	}

	get running(): number {
		return this.#running.size;
	}

	get queued(): number {
		return this.#waiting.length;
	}

	/** Runs the job now, or after the jobs ahead of it; rejects at once when the queue is full. */
	run<T>(job: Job<T>): Promise<T> {
		if (this.#closed) return Promise.reject(this.#options.errors.closed());
		if (this.#running.size < this.#options.maxConcurrent) return this.#start(job);
		if (this.#waiting.length >= this.#options.maxQueued) return Promise.reject(this.#options.errors.busy());
		return new Promise<T>((resolve, reject) => {
			this.#waiting.push({ start: () => this.#start(job).then(resolve, reject), reject });
		});
	}

	/** Refuses new jobs, rejects waiting ones and aborts running ones (their processes are
	 * killed; their promises reject once the processes are gone). */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const waiting of this.#waiting.splice(0)) waiting.reject(this.#options.errors.closed());
		for (const controller of this.#running) controller.abort(this.#options.errors.closed());
	}

	async #start<T>(job: Job<T>): Promise<T> {
		const controller = new AbortController();
		this.#running.add(controller);
		const timer = setTimeout(() => controller.abort(this.#options.errors.timeout()), this.#options.timeoutMs);
		try {
			return await job(controller.signal);
		} finally {
			clearTimeout(timer);
			this.#running.delete(controller);
			this.#waiting.shift()?.start();
		}
	}
}
