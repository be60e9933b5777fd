// What the capacity bench's main thread and its load thread (LoadThread.ts) say to each
// other: one request, one reply with the same id.

export interface PublisherSpec {
	ssrc: number;
	payloadType: number;
	frames: Uint8Array[];
	target: { address: string; port: number };
	red?: { payloadType: number; distance: number };
}

/** One consumer a sampled listener receives: its SSRC and the publisher whose frames it carries. */
export interface StreamSpec {
	ssrc: number;
	publisher: number;
}

export interface SampledWindow {
	/** Per sampled listener: added latency of each packet (ms), in arrival order. */
	latencies: Float64Array[];
	/** Per sampled listener: when each arrived, on the main thread's performance.now() clock. */
	arrivalTimes: Float64Array[];
	/** Per sampled listener: packets that arrived. */
	packets: number[];
	/** Per sampled listener: RTP payload types seen. */
	payloadTypes: number[][];
}

export type LoadCall =
	| { op: 'ping' }
	| { op: 'subscribers'; count: number; initialSamples: number }
	| { op: 'publishers'; specs: PublisherSpec[] }
	| { op: 'streams'; subscriber: number; streams: StreamSpec[] }
	| { op: 'pace'; on: boolean }
	| { op: 'resetWindow' }
	| { op: 'sent' }
	| { op: 'window' }
	| { op: 'closePeers' };

export type LoadRequest = LoadCall & { id: number };

export interface LoadReply {
	id: number;
	result?: unknown;
	error?: string;
}
