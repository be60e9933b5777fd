// A small HTTP/1.1 keep-alive load generator on raw TCP sockets, because autocannon is not a
// dependency of this repository (and cannot be added from bench/). Like autocannon it keeps
// N connections busy, one request in flight on each, and records status codes and latency.
// Responses are parsed just enough: status line, headers, Content-Length or chunked body.
import net from 'node:net';
import { type LatencySummary, summarize } from '../metrics/stats.js';

export interface HttpRequestSpec {
	method: string;
	path: string;
	headers?: Record<string, string>;
	body?: Buffer;
}

export interface HttpResponse {
	status: number;
	headers: Map<string, string>;
	body: Buffer;
}

/** One keep-alive connection; `request` resolves with the next response. */
export class KeepAliveConnection {
	readonly #socket: net.Socket;
	#buffer: Buffer = Buffer.alloc(0);
	#pending: { resolve: (r: HttpResponse) => void; reject: (e: Error) => void } | undefined;
	#closed = false;

	private constructor(socket: net.Socket) {
		this.#socket = socket;
		socket.setNoDelay(true);
		socket.on('data', (d: Buffer) => {
			this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, d]) : d;
			this.#parse();
		});
		const fail = (err: Error): void => {
			this.#closed = true;
			this.#pending?.reject(err);
			this.#pending = undefined;
		};
		socket.on('error', fail);
		socket.on('close', () => fail(new Error('connection closed')));
	}

	static connect(port: number): Promise<KeepAliveConnection> {
		return new Promise((resolve, reject) => {
			const socket = net.connect(port, '127.0.0.1', () => resolve(new KeepAliveConnection(socket)));
			socket.once('error', reject);
		});
	}

	get closed(): boolean {
		return this.#closed;
	}

	request(spec: HttpRequestSpec): Promise<HttpResponse> {
		if (this.#closed) return Promise.reject(new Error('connection closed'));
		if (this.#pending) return Promise.reject(new Error('one request at a time'));
		const body = spec.body ?? Buffer.alloc(0);
		const headers = { host: '127.0.0.1', 'content-length': String(body.length), ...spec.headers };
		const head = `${spec.method} ${spec.path} HTTP/1.1\r\n${Object.entries(headers)
			.map(([k, v]) => `${k}: ${v}\r\n`)
			.join('')}\r\n`;
		return new Promise((resolve, reject) => {
			this.#pending = { resolve, reject };
			this.#socket.write(body.length ? Buffer.concat([Buffer.from(head), body]) : head);
		});
	}

	#parse(): void {
		if (!this.#pending) return;
		const end = this.#buffer.indexOf('\r\n\r\n');
		if (end < 0) return;
		const lines = this.#buffer.subarray(0, end).toString('latin1').split('\r\n');
		const status = Number(lines[0]!.split(' ')[1]);
		const headers = new Map<string, string>();
		for (const l of lines.slice(1)) {
			const c = l.indexOf(':');
			if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
		}
		let body: Buffer;
		let consumed: number;
		const start = end + 4;
		if (headers.get('transfer-encoding')?.toLowerCase() === 'chunked') {
			const chunks: Buffer[] = [];
			let off = start;
			for (;;) {
				const lineEnd = this.#buffer.indexOf('\r\n', off);
				if (lineEnd < 0) return;
				const size = parseInt(this.#buffer.subarray(off, lineEnd).toString('latin1'), 16);
				if (this.#buffer.length < lineEnd + 2 + size + 2) return;
				if (size === 0) {
					consumed = lineEnd + 4;
					break;
				}
				chunks.push(this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
				off = lineEnd + 2 + size + 2;
			}
			body = Buffer.concat(chunks);
		} else {
			const length = Number(headers.get('content-length') ?? 0);
			if (this.#buffer.length < start + length) return;
			body = this.#buffer.subarray(start, start + length);
			consumed = start + length;
		}
		this.#buffer = this.#buffer.subarray(consumed);
		const p = this.#pending;
		this.#pending = undefined;
		p.resolve({ status, headers, body });
	}

	close(): void {
		this.#closed = true;
		this.#socket.destroy();
	}
}

export interface HttpRequestFigures {
	requests: number;
	requestsPerSecond: number;
	statuses: Record<string, number>;
	latencyMs: LatencySummary;
}

export interface HttpLoadResult {
	name: string;
	connections: number;
	durationS: number;
	/** Script runs that threw (connection errors, unexpected statuses). */
	errors: number;
	/** Per request label (e.g. "GET /healthz", "POST create", "PATCH chunk"). */
	requests: Record<string, HttpRequestFigures>;
}

export type SendRequest = (spec: HttpRequestSpec, label?: string) => Promise<HttpResponse>;

/**
 * Keeps `connections` connections busy for `durationMs`. `script` runs repeatedly on each
 * connection and issues its requests through `send`, which times and counts each by label.
 */
export async function httpLoad(
	name: string,
	port: number,
	options: { connections: number; durationMs: number },
	script: (send: SendRequest) => Promise<void>,
): Promise<HttpLoadResult> {
	const byLabel = new Map<string, { latencies: number[]; statuses: Record<string, number> }>();
	let errors = 0;
	const open: KeepAliveConnection[] = [];
	const connect = async (): Promise<KeepAliveConnection> => {
		const c = await KeepAliveConnection.connect(port);
		open.push(c);
		return c;
	};
	const initial = await Promise.all(Array.from({ length: options.connections }, connect));
	const started = performance.now();
	const deadline = started + options.durationMs;
	try {
		await Promise.all(
			initial.map(async (conn) => {
				let c = conn;
				const send: SendRequest = async (spec, label = `${spec.method} ${spec.path}`) => {
					const t = performance.now();
					const r = await c.request(spec);
					let entry = byLabel.get(label);
					if (!entry) byLabel.set(label, (entry = { latencies: [], statuses: {} }));
					entry.latencies.push(performance.now() - t);
					entry.statuses[r.status] = (entry.statuses[r.status] ?? 0) + 1;
					return r;
				};
				while (performance.now() < deadline) {
					try {
						await script(send);
					} catch {
						errors++;
						if (c.closed) c = await connect();
					}
				}
			}),
		);
	} finally {
		for (const c of open) c.close();
	}
	const durationS = (performance.now() - started) / 1000;
	const requests: Record<string, HttpRequestFigures> = {};
	for (const [label, e] of byLabel) {
		requests[label] = { requests: e.latencies.length, requestsPerSecond: e.latencies.length / durationS, statuses: e.statuses, latencyMs: summarize(e.latencies) };
	}
	return { name, connections: options.connections, durationS, errors, requests };
}
