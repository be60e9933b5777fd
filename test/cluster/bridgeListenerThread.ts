// One werift listener in a worker thread of its own (bridgeLatency.test.ts): with every
// listener on its own event loop, packets that reach several listeners at once are not
// timed one after the other by a shared loop. Arrival times are on the host's clock
// (timeOrigin + now), comparable across threads.
import { parentPort, workerData } from 'node:worker_threads';
import { listenWithWerift } from '../../testkit/weriftListener.js';
import { joinVia } from './bridgeNodes.js';

export interface ListenerThreadData {
	nodeId: string;
	/** The node's signaling URL (ws://host:port/ws). */
	url: string;
	channel: string;
	userId: string;
}

/** Messages to the parent: 'ready' once listening, then the arrivals when told 'stop'. */
export type ListenerThreadMessage = { type: 'ready' } | { type: 'arrivals'; arrivals: [payloadBase64: string, atMs: number][] } | { type: 'error'; message: string };

const data = workerData as ListenerThreadData;
const port = parentPort!;

try {
	const joined = await joinVia({ nodeId: data.nodeId, url: data.url }, data.channel, data.userId);
	const listener = await listenWithWerift(joined.client, 1, { timeoutMs: 10_000 });
	const arrivals: [string, number][] = [];
	let seen = listener.packets.length;
	// The listener records performance.now() of this thread; poll its list and convert.
	const origin = performance.timeOrigin;
	const drain = () => {
		for (; seen < listener.packets.length; seen++) {
			const p = listener.packets[seen]!;
			arrivals.push([p.payload.toString('base64'), origin + p.atMs]);
		}
	};
	const timer = setInterval(drain, 200);
	port.postMessage({ type: 'ready' } satisfies ListenerThreadMessage);
	port.once('message', async () => {
		clearInterval(timer);
		drain();
		port.postMessage({ type: 'arrivals', arrivals } satisfies ListenerThreadMessage);
		await listener.close();
		joined.client.close();
	});
} catch (err) {
	port.postMessage({ type: 'error', message: (err as Error).message } satisfies ListenerThreadMessage);
}
