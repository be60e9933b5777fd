// The load thread's side (see LoadThread.ts): publishers, their pacer and the sampled
// listeners, driven by requests from the bench's main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { FramePacer } from './FramePacer.js';
import type { LoadCall, LoadReply, LoadRequest, SampledWindow } from './loadThreadProtocol.js';
import { RtpPublisher } from './RtpPublisher.js';
import { RtpSubscriber } from './RtpSubscriber.js';

const port = parentPort;
if (!port) throw new Error('loadThreadMain runs as a worker thread (LoadThread.start)');
const { mainTimeOrigin } = workerData as { mainTimeOrigin: number };
/** This thread's performance.now() to the main thread's. */
const clockShift = performance.timeOrigin - mainTimeOrigin;

let publishers: RtpPublisher[] = [];
let subscribers: RtpSubscriber[] = [];
let pacer: FramePacer | undefined;

function closePeers(): void {
	pacer?.stop();
	pacer = undefined;
	for (const p of publishers) p.close();
	for (const s of subscribers) s.close();
	publishers = [];
	subscribers = [];
}

async function handle(call: LoadCall): Promise<{ result: unknown; transfer?: ArrayBuffer[] }> {
	switch (call.op) {
		case 'ping':
			return { result: null };
		case 'subscribers': {
			const created = await Promise.all(Array.from({ length: call.count }, () => RtpSubscriber.create({ mode: 'sample', initialSamples: call.initialSamples })));
			subscribers.push(...created);
			return { result: created.map((s) => s.port) };
		}
		case 'publishers': {
			const created = await Promise.all(call.specs.map((spec) => RtpPublisher.create(spec)));
			publishers.push(...created);
			pacer?.stop();
			pacer = new FramePacer(publishers);
			return { result: null };
		}
		case 'streams': {
			const sub = subscribers[call.subscriber];
			if (!sub) throw new Error(`no sampled listener ${call.subscriber}`);
			for (const s of call.streams) {
				const publisher = publishers[s.publisher];
				if (!publisher) throw new Error(`no publisher ${s.publisher}`);
				sub.addStream(s.ssrc, publisher);
			}
			return { result: null };
		}
		case 'pace':
			if (!pacer) throw new Error('no publishers to pace');
			if (call.on) pacer.start();
			else pacer.stop();
			return { result: null };
		case 'resetWindow':
			for (const s of subscribers) s.resetWindow();
			return { result: null };
		case 'sent':
			return { result: publishers.map((p) => p.sent) };
		case 'window': {
			const latencies = subscribers.map((s) => s.latencies().slice());
			const arrivalTimes = subscribers.map((s) => s.arrivalTimes().map((t) => t + clockShift));
			const window: SampledWindow = {
				latencies,
				arrivalTimes,
				packets: subscribers.map((s) => s.streams().reduce((n, st) => n + st.packets, 0)),
				payloadTypes: subscribers.map((s) => s.payloadTypesSeen()),
			};
			return { result: window, transfer: [...latencies, ...arrivalTimes].map((a) => a.buffer as ArrayBuffer) };
		}
		case 'closePeers':
			closePeers();
			return { result: null };
	}
}

port.on('message', (request: LoadRequest) => {
	handle(request).then(
		({ result, transfer }) => port.postMessage({ id: request.id, result } satisfies LoadReply, transfer ?? []),
		(err: unknown) => port.postMessage({ id: request.id, error: err instanceof Error ? err.message : String(err) } satisfies LoadReply),
	);
});
