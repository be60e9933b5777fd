// Property-based fuzz of the two public interfaces, the signaling protocol and the HTTP API,
// against a real server (real mediasoup workers, real storage). Why fast-check rather than
// more of the seeded generators in signalingFuzz/httpFuzz: its arbitraries compose from the
// protocol's own request list, each failure is replayed from a printed seed and path and
// shrunk to a small counterexample, and `numRuns` bounds the run for CI. The two older
// suites keep their own job (thousands of frames under media load, the tus racing and
// traversal cases); this one states the contract as properties:
//   - every signaling frame gets a success reply or an error whose code is in the error
//     table (protocol/errors.ts, read at run time) with the documented shape, and never
//     E_INTERNAL; a connection is only closed with a documented close code;
//   - every HTTP reply has a status documented for its route (or a generic documented one),
//     and every JSON error body carries a table code sent with that code's status;
//   - afterwards the server is up: a bystander that joined before the fuzz, whose ids the
//     fuzz aimed at, still gets correct replies, and /healthz is 200.
// Cases are generated from a fixed seed, so CI runs are the same every time; a failure prints
// the seed and the case. PARLEY_FUZZ_SEED=<n> runs another seed, FUZZ_RUNS=<n> scales the
// run counts (100 = as in CI), FUZZ_SHRINK=1 shrinks a failure to a minimal case (off by
// default: each step replays against the live server and takes long).
// Not asserted here (the connection is dropped by uWebSockets.js before any of our code runs):
// request methods it does not know (FOO, PROPFIND), and targets without a leading slash.
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CLOSE_CODES } from '../../protocol/messages.js';
import { ERROR_CODES } from '../../protocol/errors.js';
import { publishWithWerift, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import type { TestSignalingClient } from '../../testkit/signalingClient.js';
import { startHarness, waitUntil, type Harness } from './helpers/harness.js';
import { expand, frameArbitrary, httpCaseArbitrary, type FrameSpec, type HttpCase, type KnownIds } from './helpers/propertyArbitraries.js';

const SEED = process.env.PARLEY_FUZZ_SEED ? Number(process.env.PARLEY_FUZZ_SEED) : 0x0f_a57_c4e;
const SCALE = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) / 100 : 1;
const SIGNALING_RUNS = Math.round(300 * SCALE);
const HTTP_RUNS = Math.round(1000 * SCALE);
const MAX_MESSAGE_BYTES = 16_384;
const REPLY_TIMEOUT_MS = 5_000;
const METRICS_TOKEN = 'property-fuzz-metrics-token';
const STANDARD_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

const documentedCodes = (): Set<string> => new Set(Object.keys(ERROR_CODES));
const codeInfo = (code: string) => (ERROR_CODES as Record<string, { httpStatus: number; when: string }>)[code];
const ERROR_KEYS = new Set(['code', 'message', 'redirect', 'retryAfterMs']);

/** Close codes the server documents: protocol's CLOSE_CODES, plus 1009 for a frame over 4x
 * signaling.maxMessageBytes and 1006 (no close frame) over 8x (config docs). */
function documentedClose(code: number, largestFrameBytes: number): boolean {
	if ((Object.values(CLOSE_CODES) as number[]).includes(code)) return true;
	if (code === 1009) return largestFrameBytes > MAX_MESSAGE_BYTES * 4;
	if (code === 1006) return largestFrameBytes > MAX_MESSAGE_BYTES * 8;
	return false;
}

/** The id the server must answer with: the envelope's, when it is readable (a frame over
 * the size limit is refused unread). */
function replyIdOf(wire: string | Buffer): number | null {
	if (typeof wire !== 'string' || Buffer.byteLength(wire) > MAX_MESSAGE_BYTES) return null;
	let value: unknown;
	try {
		value = JSON.parse(wire);
	} catch {
		return null;
	}
	const id = value && typeof value === 'object' && !Array.isArray(value) ? (value as { id?: unknown }).id : undefined;
	return Number.isInteger(id) && (id as number) >= 0 && (id as number) < 2 ** 31 ? (id as number) : null;
}

function wireOf(spec: FrameSpec, known: KnownIds): string | Buffer {
	switch (spec.kind) {
		case 'text':
			return spec.text;
		case 'binary':
			return Buffer.from(spec.bytes);
		case 'json':
			return JSON.stringify(spec.value) ?? 'null';
		case 'request':
			return JSON.stringify({ id: spec.id, method: spec.method, data: expand(spec.data, known) });
	}
}

/** What is wrong with one message from the server, or undefined. */
function problemWith(msg: unknown): string | undefined {
	if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return 'not a JSON object';
	const m = msg as Record<string, unknown>;
	const keys = Object.keys(m).sort().join(',');
	if ('ok' in m) {
		if (m.id !== null && !(Number.isInteger(m.id) && (m.id as number) >= 0)) return 'bad reply id';
		if (m.ok === true) return keys === 'data,id,ok' && typeof m.data === 'object' && m.data !== null ? undefined : 'bad success reply';
		if (m.ok !== false || keys !== 'error,id,ok') return 'bad error envelope';
		const error = m.error as Record<string, unknown> | null;
		if (!error || typeof error !== 'object') return 'error is not an object';
		if (typeof error.code !== 'string' || !documentedCodes().has(error.code)) return `undocumented code ${String(error.code)}`;
		if (error.code === 'E_INTERNAL') return 'E_INTERNAL';
		if (typeof error.message !== 'string' || error.message.length === 0 || error.message.length > 500) return 'bad error message';
		if (Object.keys(error).some((k) => !ERROR_KEYS.has(k))) return `unknown error fields ${Object.keys(error).join(',')}`;
		if ('retryAfterMs' in error && !(Number.isFinite(error.retryAfterMs) && (error.retryAfterMs as number) >= 0)) return 'bad retryAfterMs';
		return undefined;
	}
	return typeof m.method === 'string' && keys === 'data,method' && typeof m.data === 'object' && m.data !== null ? undefined : 'bad notification';
}

/** One fuzzing connection for one generated case. */
class CaseConnection {
	readonly ws: WebSocket;
	readonly problems: string[] = [];
	readonly codes: string[] = [];
	okReplies = 0;
	readonly known: KnownIds;
	closed: { code: number; reason: string } | undefined;
	readonly #welcomed: Promise<void>;
	readonly #waiting = new Map<string, number>();
	#wake: (() => void) | undefined;

	constructor(url: string, other: Pick<KnownIds, 'otherTransport' | 'otherProducer' | 'otherPeer'>) {
		this.known = { ownTransport: [], ownProducer: [], ownConsumer: [], ownVoiceMessage: [], ...other };
		this.ws = new WebSocket(url);
		this.#welcomed = new Promise((resolve, reject) => {
			this.ws.on('message', (raw, isBinary) => {
				if (isBinary) return void this.problems.push('binary message from the server');
				let msg: Record<string, unknown>;
				try {
					msg = JSON.parse(raw.toString()) as Record<string, unknown>;
				} catch {
					return void this.problems.push(`not JSON: ${raw.toString().slice(0, 100)}`);
				}
				const problem = problemWith(msg);
				if (problem) this.problems.push(`${problem}: ${raw.toString().slice(0, 200)}`);
				if (msg.method === 'welcome') resolve();
				if ('ok' in msg) {
					const key = String(msg.id);
					const left = this.#waiting.get(key) ?? 0;
					if (left === 0) this.problems.push(`reply to nothing sent: ${raw.toString().slice(0, 200)}`);
					else this.#waiting.set(key, left - 1);
					if (msg.ok === false) this.codes.push(String((msg.error as { code?: unknown })?.code));
					else this.okReplies++;
				}
				this.#learn(msg.data);
				this.#wake?.();
			});
			this.ws.once('error', reject);
			this.ws.once('close', (code, reason) => {
				this.closed = { code, reason: reason.toString() };
				reject(new Error(`closed before welcome: ${code}`));
				this.#wake?.();
			});
		});
	}

	#learn(data: unknown): void {
		if (!data || typeof data !== 'object') return;
		const d = data as Record<string, unknown>;
		if (typeof d.transportId === 'string') this.known.ownTransport.push(d.transportId);
		if (typeof d.producerId === 'string' && !this.known.otherProducer.includes(d.producerId)) this.known.ownProducer.push(d.producerId);
		if (typeof d.consumerId === 'string') this.known.ownConsumer.push(d.consumerId);
		if (typeof d.voiceMessageId === 'string') this.known.ownVoiceMessage.push(d.voiceMessageId);
	}

	async welcomed(): Promise<void> {
		await this.#welcomed;
	}

	#outstanding(): number {
		let n = 0;
		for (const v of this.#waiting.values()) n += v;
		return n;
	}

	/** Sends one frame (its reply is awaited later, or now when not pipelined). */
	send(wire: string | Buffer): void {
		const key = String(replyIdOf(wire));
		this.#waiting.set(key, (this.#waiting.get(key) ?? 0) + 1);
		this.ws.send(wire);
	}

	/** Resolves once every frame sent has its reply, or the connection closed. */
	async drain(): Promise<void> {
		const deadline = Date.now() + REPLY_TIMEOUT_MS;
		while (this.#outstanding() > 0 && !this.closed) {
			if (Date.now() > deadline) {
				this.problems.push(`no reply within ${REPLY_TIMEOUT_MS} ms to ${this.#outstanding()} frame(s)`);
				return;
			}
			await new Promise<void>((resolve) => {
				this.#wake = resolve;
				setTimeout(resolve, 100);
			});
		}
	}
}

interface Tally {
	cases: number;
	frames: number;
	/** Success replies: how deep the fuzz got. */
	ok: number;
	codes: Record<string, number>;
	closes: Record<string, number>;
}

/** One HTTP exchange with a raw target (node:http sends the path as given). */
function exchange(port: number, c: HttpCase): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
	// With an explicit length: node:http sends a GET or DELETE body without one, and the
	// server then rightly reads the body as the next request.
	const body = c.body === undefined ? undefined : Buffer.from(c.body.replaceAll('$HUGE', 'x'.repeat(5000)));
	const headers = body ? { ...c.headers, 'content-length': String(body.length) } : c.headers;
	return new Promise((resolve, reject) => {
		const req = http.request({ host: '127.0.0.1', port, method: c.method, path: c.target, headers, agent: false, timeout: REPLY_TIMEOUT_MS }, (res) => {
			const chunks: Buffer[] = [];
			res.on('data', (d: Buffer) => chunks.push(d));
			res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
			res.on('error', reject);
		});
		req.on('timeout', () => req.destroy(new Error(`no reply within ${REPLY_TIMEOUT_MS} ms`)));
		req.on('error', reject);
		req.end(body);
	});
}

/** Success statuses each route documents; every route may also answer with a documented error. */
function successStatusesFor(pathname: string): number[] {
	if (pathname === '/healthz' || pathname === '/metrics' || pathname === '/dev/token' || pathname === '/') return [200];
	if (pathname === '/readyz') return [200];
	if (pathname === '/voice/messages') return [200];
	if (/^\/voice\/messages\/[^/]*\/audio$/.test(pathname)) return [200, 206, 304, 416];
	if (/^\/voice\/messages\/[^/]*$/.test(pathname)) return [200, 204];
	if (pathname === '/voice/uploads' || /^\/voice\/uploads\/[^/]*$/.test(pathname)) return [200, 201, 204];
	// Static files of the demo app, when it is built.
	if (/^\/[^/]+\.[a-z0-9]+$/.test(pathname)) return [200];
	return [];
}

/** A route's pattern, for the summary. */
function routeOf(pathname: string): string {
	if (/^\/voice\/messages\/[^/]*\/audio$/.test(pathname)) return '/voice/messages/:id/audio';
	if (/^\/voice\/messages\/[^/]*$/.test(pathname)) return '/voice/messages/:id';
	if (/^\/voice\/uploads\/[^/]*$/.test(pathname)) return '/voice/uploads/:id';
	return ['/healthz', '/readyz', '/metrics', '/dev/token', '/voice/uploads', '/voice/messages', '/'].includes(pathname) ? pathname : 'other';
}

/** Error statuses documented for a route: every table code's status except E_INTERNAL's,
 * the tus-only ones (their `when` says "tus:") only on the upload routes. */
function errorStatusesFor(pathname: string): Set<number> {
	const tusRoute = pathname.startsWith('/voice/uploads');
	const statuses = new Set<number>();
	for (const [code, info] of Object.entries(ERROR_CODES) as [string, { httpStatus: number; when: string }][]) {
		if (code === 'E_INTERNAL') continue;
		if (info.when.startsWith('tus:') && !tusRoute) continue;
		statuses.add(info.httpStatus);
	}
	return statuses;
}

describe('property-based fuzz of the signaling protocol and the HTTP API', () => {
	let h: Harness;
	let bystander: { client: TestSignalingClient; peerId: string; transportId: string };
	let speaker: { client: TestSignalingClient; peerId: string; publisher: WeriftPublisher };
	let rtpCapabilities: unknown;

	beforeAll(async () => {
		h = await startHarness({
			PARLEY_SIGNALING_REQUESTS_PER_SECOND: '10000',
			PARLEY_SIGNALING_REQUEST_BURST: '100000',
			PARLEY_SIGNALING_MAX_CONNECTIONS: '64',
			PARLEY_SIGNALING_MAX_CONNECTIONS_PER_USER: '0',
			PARLEY_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS: '0',
			PARLEY_CHANNELS_MAX_CHANNELS: '20',
			PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '100',
			PARLEY_METRICS_PUBLIC: 'false',
			PARLEY_METRICS_BEARER_TOKEN: METRICS_TOKEN,
		});
		// The bystanders join before the fuzz; the fuzz aims at their ids.
		const s = await h.joined('room', { userId: 'bystander-speaker' });
		speaker = { client: s.client, peerId: s.peerId, publisher: await publishWithWerift(s.client) };
		const b = await h.joined('room', { userId: 'bystander' });
		const t = await b.client.request('createTransport', { direction: 'recv' });
		if (!t.ok) throw new Error(`createTransport: ${t.error.code}`);
		bystander = { client: b.client, peerId: b.peerId, transportId: t.data.transportId };
		rtpCapabilities = b.rtpCapabilities;
	}, 30_000);

	afterAll(async () => {
		await speaker?.publisher.close();
		await h?.close();
	});

	async function bystanderIsServed(): Promise<void> {
		const caps = await bystander.client.request('getRouterRtpCapabilities', {});
		expect(caps.ok).toBe(true);
		const stats = await bystander.client.request('getTransportStats', { transportId: bystander.transportId });
		expect(stats.ok, JSON.stringify(stats)).toBe(true);
		// The speaker's producer survived every pause/close aimed at it from other connections.
		const resumed = await speaker.client.request('resumeProducer', { producerId: speaker.publisher.producerId });
		expect(resumed.ok, JSON.stringify(resumed)).toBe(true);
		const peers = [...h.server.channels.get('room')!.peers.values()].map((p) => p.userId);
		expect(peers).toEqual(expect.arrayContaining(['bystander', 'bystander-speaker']));
		expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
	}

	it(`answers ${SIGNALING_RUNS} generated request sequences with documented replies and close codes`, async () => {
		const sessionsBefore = h.server.signaling.sessionCount;
		const tally: Tally = { cases: 0, frames: 0, ok: 0, codes: {}, closes: {} };
		const other = { otherTransport: [bystander.transportId], otherProducer: [speaker.publisher.producerId], otherPeer: [bystander.peerId, speaker.peerId] };
		let user = 0;
		// Most cases start joined (to the bystanders' channel or another), so the fuzz gets
		// past E_NOT_JOINED to transports, producers and recordings.
		const firstJoin = fc.oneof({ arbitrary: fc.constantFrom('room', 'room', 'fuzz-a'), weight: 4 }, { arbitrary: fc.constant(undefined), weight: 1 });
		const property = fc.asyncProperty(firstJoin, fc.array(frameArbitrary(rtpCapabilities), { minLength: 1, maxLength: 12 }), fc.boolean(), async (channel, frames, pipelined) => {
			tally.cases++;
			const conn = new CaseConnection(h.wsUrl(await h.token({ userId: `prop-fuzz-${++user}` })), other);
			try {
				await conn.welcomed();
				if (channel !== undefined) {
					conn.send(JSON.stringify({ id: 0, method: 'join', data: { channel, rtpCapabilities } }));
					await conn.drain();
				}
				let largestFrameBytes = 0;
				for (const spec of frames) {
					if (conn.closed) break;
					const wire = wireOf(spec, conn.known);
					largestFrameBytes = Math.max(largestFrameBytes, Buffer.byteLength(wire));
					tally.frames++;
					conn.send(wire);
					if (!pipelined) await conn.drain();
				}
				await conn.drain();
				for (const code of conn.codes) tally.codes[code] = (tally.codes[code] ?? 0) + 1;
				tally.ok += conn.okReplies;
				if (conn.closed) {
					tally.closes[conn.closed.code] = (tally.closes[conn.closed.code] ?? 0) + 1;
					if (!documentedClose(conn.closed.code, largestFrameBytes)) conn.problems.push(`undocumented close ${conn.closed.code} ${conn.closed.reason}`);
				}
				expect(conn.problems).toEqual([]);
			} finally {
				conn.ws.close();
			}
		});
		const started = performance.now();
		await fc.assert(property, { seed: SEED, numRuns: SIGNALING_RUNS, endOnFailure: !process.env.FUZZ_SHRINK, verbose: 1 });
		console.log(`property fuzz, signaling (seed ${SEED}): ${JSON.stringify(tally)} in ${Math.round(performance.now() - started)} ms`);
		expect(Object.keys(Object.prototype)).toEqual([]);
		await waitUntil(() => h.server.signaling.sessionCount === sessionsBefore, 10_000, 'fuzz sessions gone');
		await bystanderIsServed();
	}, 120_000);

	it('never sends a body with a HEAD reply, whichever route answers it (found by this fuzz)', async () => {
		// A HEAD followed by a GET on one connection: the GET's reply must follow the HEAD's
		// head directly. Before, the catch-all 404 sent its JSON body, which a proxy or client
		// on the connection read as the start of the next response.
		for (const target of ['/healthz', '/readyz', '/nope', '/dev/token', '/voice/messages']) {
			const raw = await new Promise<string>((resolve, reject) => {
				let text = '';
				// The GET goes once the HEAD's reply has begun (uWebSockets.js drops a connection
				// that pipelines a request behind an async reply).
				const s = net.connect(h.server.http.port, '127.0.0.1', () => s.write(`HEAD ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
				let sentGet = false;
				s.on('data', (d: Buffer) => {
					text += d.toString();
					if (sentGet || !text.includes('\r\n\r\n')) return;
					sentGet = true;
					// A little later, so body bytes sent after the head would be in `text` first.
					setTimeout(() => s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'), 50);
				});
				s.on('end', () => resolve(text));
				s.on('error', reject);
			});
			// HEAD of a GET route answers as GET would (a HEAD health probe sees 200, not 404).
			if (target === '/healthz' || target === '/readyz') expect(raw.slice(0, 12), `HEAD ${target}`).toBe('HTTP/1.1 200');
			const headEnd = raw.indexOf('\r\n\r\n') + 4;
			expect(raw.slice(headEnd, headEnd + 12), `HEAD ${target}: ${raw.slice(0, 300)}`).toBe('HTTP/1.1 200');
		}
	});

	it(`answers ${HTTP_RUNS} generated HTTP requests with documented statuses and error codes`, async () => {
		const ada = { userId: 'ada', token: await h.token({ userId: 'ada' }) };
		const bob = await h.token({ userId: 'bob' });
		// Something of ada's to aim at: an upload id (voice message ids come from the same space).
		const created = await fetch(`${h.base}/voice/uploads`, {
			method: 'POST',
			headers: { 'tus-resumable': '1.0.0', authorization: `Bearer ${ada.token}`, 'upload-length': '100', 'upload-metadata': `destination ${Buffer.from('channel:room').toString('base64')}` },
		});
		expect(created.status).toBe(201);
		const adaUpload = created.headers.get('location')!.split('/').at(-1)!;
		const statuses: Record<string, number> = {};
		const byRoute: Record<string, Record<number, number>> = {};
		const property = fc.asyncProperty(httpCaseArbitrary({ own: () => adaUpload, tokens: [ada.token, bob, METRICS_TOKEN] }), async (c) => {
			let reply: Awaited<ReturnType<typeof exchange>>;
			try {
				reply = await exchange(h.server.http.port, c);
			} catch (err) {
				// uWebSockets.js's parser knows the standard methods only: for any other token it
				// closes the connection unanswered (as for any unparseable request), before our code.
				if (!STANDARD_METHODS.has(c.method) && (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
					statuses['closed unanswered'] = (statuses['closed unanswered'] ?? 0) + 1;
					return;
				}
				throw err;
			}
			const pathname = c.target.split('?')[0]!;
			statuses[reply.status] = (statuses[reply.status] ?? 0) + 1;
			const route = routeOf(pathname);
			byRoute[route] = { ...byRoute[route], [reply.status]: (byRoute[route]?.[reply.status] ?? 0) + 1 };
			const allowed = new Set([...successStatusesFor(pathname), ...errorStatusesFor(pathname)]);
			const what = `${c.method} ${c.target.slice(0, 120)} -> ${reply.status} ${reply.body.slice(0, 200)}`;
			expect(allowed.has(reply.status), `status not documented for the route: ${what}`).toBe(true);
			if (reply.status >= 400 && c.method !== 'HEAD' && /json/.test(String(reply.headers['content-type']))) {
				const code = (JSON.parse(reply.body) as { error?: { code?: unknown } }).error?.code;
				expect(typeof code === 'string' && documentedCodes().has(code), `undocumented error code: ${what}`).toBe(true);
				expect(codeInfo(code as string)!.httpStatus, `code sent with another status than documented: ${what}`).toBe(reply.status);
			}
		});
		const started = performance.now();
		await fc.assert(property, { seed: SEED, numRuns: HTTP_RUNS, endOnFailure: !process.env.FUZZ_SHRINK, verbose: 1 });
		console.log(`property fuzz, HTTP (seed ${SEED}): ${HTTP_RUNS} requests, statuses ${JSON.stringify(statuses)}, by route ${JSON.stringify(byRoute)} in ${Math.round(performance.now() - started)} ms`);
		await waitUntil(() => h.server.http.requestStats.inFlight === 0, 5_000, 'no request left in flight');
		await bystanderIsServed();
	}, 120_000);
});
