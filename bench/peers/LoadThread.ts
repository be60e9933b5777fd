// The capacity bench's clients on a thread of their own: the publishers (and their pacer) and
// the sampled listeners run on a worker thread, with their own event loop, as they would on
// the client machines of a real deployment.
//
// Why: Parley's JavaScript (signaling, observers, the stats rounds' replies) runs on the
// bench's main thread. With the clients on that thread too, every pause of Parley's event
// loop also held the sampled listeners' sockets unread and the publishers' next frames unsent,
// and was counted as forwarding latency; raw mediasoup, with almost no JavaScript, had none
// of it. On their own thread the clients measure what the worker delivers, and what Parley's
// Node process costs the worker shows as what it is (CPU beside the worker, stalls of the
// main thread's loop in the timeline), not as latency a listener would hear.
import { Worker } from 'node:worker_threads';
import type { LoadCall, LoadReply, PublisherSpec, SampledWindow, StreamSpec } from './loadThreadProtocol.js';

export type { PublisherSpec, SampledWindow, StreamSpec } from './loadThreadProtocol.js';

export class LoadThread {
	readonly #worker: Worker;
	readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
	#nextId = 0;
	#failed: Error | undefined;

	private constructor(worker: Worker) {
		this.#worker = worker;
		worker.on('message', (reply: LoadReply) => {
			const call = this.#pending.get(reply.id);
			if (!call) return;
			this.#pending.delete(reply.id);
			if (reply.error !== undefined) call.reject(new Error(`load thread: ${reply.error}`));
			else call.resolve(reply.result);
		});
		const fail = (err: Error): void => {
			this.#failed = err;
			for (const call of this.#pending.values()) call.reject(err);
			this.#pending.clear();
		};
		worker.on('error', fail);
		worker.on('exit', (code) => fail(new Error(`load thread exited (code ${code})`)));
	}

	/** Starts the thread (TypeScript through tsx, under tsx and under vitest alike). */
	static async start(): Promise<LoadThread> {
		// The entry is TypeScript: tsx's API loads it (a loader given in execArgv does not
		// reach a worker's entry module on Node 20).
		const entry = new URL('./loadThreadMain.ts', import.meta.url).href;
		const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ tsImport }) => tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}));`;
		const worker = new Worker(boot, {
			eval: true,
			// Arrival times are sent back on this thread's clock.
			workerData: { mainTimeOrigin: performance.timeOrigin },
		});
		const thread = new LoadThread(worker);
		await thread.#call({ op: 'ping' });
		return thread;
	}

	/** Sampled listeners (sample mode), each on its own socket: their ports. */
	subscribers(count: number, initialSamples: number): Promise<number[]> {
		return this.#call({ op: 'subscribers', count, initialSamples }) as Promise<number[]>;
	}

	/** Publishers, paced together (each on its own phase) once `pace(true)`. */
	async publishers(specs: PublisherSpec[]): Promise<void> {
		await this.#call({ op: 'publishers', specs });
	}

	/** Which publisher's frames sampled listener `subscriber` gets on which SSRC. */
	async streams(subscriber: number, streams: StreamSpec[]): Promise<void> {
		await this.#call({ op: 'streams', subscriber, streams });
	}

	async pace(on: boolean): Promise<void> {
		await this.#call({ op: 'pace', on });
	}

	/** Starts a measuring window: sampled counts and latencies from zero. */
	async resetWindow(): Promise<void> {
		await this.#call({ op: 'resetWindow' });
	}

	/** Frames each publisher has sent so far. */
	sent(): Promise<number[]> {
		return this.#call({ op: 'sent' }) as Promise<number[]>;
	}

	/** What the sampled listeners got since the window began (arrival times on this thread's clock). */
	window(): Promise<SampledWindow> {
		return this.#call({ op: 'window' }) as Promise<SampledWindow>;
	}

	/** Closes every socket the thread opened (it keeps running for the next step). */
	async closePeers(): Promise<void> {
		await this.#call({ op: 'closePeers' });
	}

	async close(): Promise<void> {
		if (!this.#failed) await this.closePeers().catch(() => undefined);
		await this.#worker.terminate();
	}

	#call(request: LoadCall): Promise<unknown> {
		if (this.#failed) return Promise.reject(this.#failed);
		const id = this.#nextId++;
		return new Promise((resolve, reject) => {
			this.#pending.set(id, { resolve, reject });
			this.#worker.postMessage({ ...request, id });
		});
	}
}
