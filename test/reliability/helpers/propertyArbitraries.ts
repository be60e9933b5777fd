// fast-check arbitraries for the property-based fuzz suite (propertyFuzz.test.ts): signaling
// frames built from every request type in protocol/ and then mutated, and HTTP requests
// over every route the server registers. Ids that only exist at run time (a transport this
// connection created, the bystander's producer) are drawn as symbolic references and
// resolved when the frame is sent, so a generated case stays a plain value fast-check can
// replay and shrink.
import fc from 'fast-check';
import { requestSchemas } from '../../../protocol/schemas.js';
import type { Method } from '../../../protocol/messages.js';

export const METHODS = Object.keys(requestSchemas) as Method[];

/** An id the sender fills in at send time from what it has seen so far. */
export interface IdRef {
	$ref: 'ownTransport' | 'ownProducer' | 'ownConsumer' | 'ownVoiceMessage' | 'otherTransport' | 'otherProducer' | 'otherPeer';
}

const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];

const idRef = (kind: 'Transport' | 'Producer'): fc.Arbitrary<IdRef | string> =>
	fc.oneof(
		{ arbitrary: fc.constant<IdRef>({ $ref: `own${kind}` }), weight: 4 },
		{ arbitrary: fc.constant<IdRef>({ $ref: `other${kind}` }), weight: 3 },
		{ arbitrary: fc.constant<IdRef>({ $ref: 'otherPeer' }), weight: 1 },
		{ arbitrary: fc.oneof(fc.uuid(), fc.string({ maxLength: 70 }), fc.constantFrom('', '../../etc/passwd', 'x'.repeat(65))), weight: 1 },
	);

const unicodeText = fc.string({ unit: 'grapheme', maxLength: 80 });
const channelName = fc.oneof(
	{ arbitrary: fc.constantFrom('room', 'room', 'fuzz-a', 'fuzz-b', 'other'), weight: 6 },
	{ arbitrary: fc.constantFrom('forbidden', '../x', '', 'fuzz-'.padEnd(70, 'z'), 'room\u0000', 'ROOM'), weight: 2 },
	{ arbitrary: unicodeText, weight: 1 },
);

const fingerprint = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex').replace(/(..)(?!$)/g, '$1:').toUpperCase());

/** Valid-looking data for each method (ids symbolic); the mutations below then break it. */
function templateOf(method: Method, rtpCapabilities: unknown): fc.Arbitrary<unknown> {
	switch (method) {
		case 'getRouterRtpCapabilities':
		case 'leave':
			return fc.constant({});
		case 'join':
			return channelName.map((channel) => ({ channel, rtpCapabilities }));
		case 'createTransport':
			return fc.record({ direction: fc.constantFrom('send', 'recv') });
		case 'connectTransport':
			return fc.record({
				transportId: idRef('Transport'),
				dtlsParameters: fc.record({ role: fc.constantFrom('client', 'server', 'auto'), fingerprints: fingerprint.map((value) => [{ algorithm: 'sha-256', value }]) }),
			});
		case 'produce':
			return fc.record({
				transportId: idRef('Transport'),
				kind: fc.constantFrom('audio', 'audio', 'video', ''),
				rtpParameters: fc.record({
					mid: fc.nat(9).map(String),
					codecs: fc.tuple(fc.constantFrom('audio/opus', 'audio/opus', 'audio/PCMU', 'video/VP8'), fc.constantFrom(111, 100, 0), fc.constantFrom(48000, 48000, 8000, 90000)).map(([mimeType, payloadType, clockRate]) => [
						{ mimeType, payloadType, clockRate, channels: 2, parameters: { useinbandfec: 1 } },
					]),
					encodings: fc.nat().map((ssrc) => [{ ssrc }]),
				}),
				paused: fc.boolean(),
			});
		case 'pauseProducer':
		case 'resumeProducer':
		case 'closeProducer':
			return fc.record({ producerId: idRef('Producer') });
		case 'resumeConsumer':
			return fc.record({ consumerId: fc.oneof(fc.constant<IdRef>({ $ref: 'ownConsumer' }), idRef('Producer')) });
		case 'restartIce':
		case 'getTransportStats':
			return fc.record({ transportId: idRef('Transport') });
		case 'startRecording':
			return fc.record({
				producerId: idRef('Producer'),
				destination: fc.oneof(
					{ arbitrary: fc.constant({ kind: 'channel', channel: 'room' }), weight: 4 },
					{ arbitrary: fc.constantFrom({ kind: 'user', userId: 'someone' }, { kind: 'channel', channel: 'forbidden' }, { kind: 'user', userId: '../x' }, { kind: 'group' }), weight: 1 },
				),
			});
		case 'stopRecording':
			return fc.record({ voiceMessageId: fc.oneof(fc.constant<IdRef>({ $ref: 'ownVoiceMessage' }), fc.uuid(), fc.string({ maxLength: 40 })) });
	}
}

/** `depth` levels of arrays or objects around a leaf: past protocol's MAX_DATA_DEPTH (12). */
export const deepValue = fc.tuple(fc.integer({ min: 2, max: 3000 }), fc.boolean()).map(([depth, arrays]) => ({ $deep: depth, arrays }));

/** A string of `bytes` bytes, drawn to straddle the size limits (16 KiB, 4x, 8x). */
export const hugeString = fc.constantFrom(300, 5_000, 16_000, 17_000, 40_000, 70_000, 100_000).map((length) => ({ $huge: length }));

/** Replaces one field (at any depth) of `value`: dropped, retyped, huge, deep, unicode, prototype-named. */
function mutation(): fc.Arbitrary<{ path: number[]; op: string; replacement: unknown }> {
	return fc.record({
		path: fc.array(fc.nat(), { maxLength: 4 }),
		op: fc.constantFrom('drop', 'retype', 'retype', 'huge', 'deep', 'unicode', 'proto', 'extra'),
		replacement: fc.oneof(fc.jsonValue({ maxDepth: 3 }), hugeString, deepValue, unicodeText),
	});
}

/** Applies a mutation at a path (each step picks the n-th key of the object or array there). */
export function applyMutation(value: unknown, m: { path: number[]; op: string; replacement: unknown }): unknown {
	if (value === null || typeof value !== 'object' || m.path.length === 0 || Object.keys(value).length === 0) {
		const base: Record<string, unknown> = value !== null && typeof value === 'object' && !Array.isArray(value) ? { ...(value as Record<string, unknown>) } : {};
		const keys = Object.keys(base);
		const key = keys.length > 0 ? keys[(m.path[0] ?? 0) % keys.length]! : 'x';
		switch (m.op) {
			case 'drop':
				delete base[key];
				return base;
			case 'huge':
				base[key] = { $huge: 20_000 };
				return base;
			case 'deep':
				base[key] = { $deep: 50, arrays: false };
				return base;
			case 'unicode':
				base[key] = '\u{1F600}\u0000\uFFFF\u202E\uD800'.repeat(8);
				return base;
			case 'proto':
				Object.defineProperty(base, PROTOTYPE_KEYS[(m.path[0] ?? 0) % PROTOTYPE_KEYS.length]!, { value: m.replacement, enumerable: true, writable: true, configurable: true });
				return base;
			case 'extra':
				base[`extra${m.path.length}`] = m.replacement;
				return base;
			default:
				if (value === null || typeof value !== 'object') return m.replacement;
				base[key] = m.replacement;
				return base;
		}
	}
	const copy: Record<string, unknown> = Array.isArray(value) ? ([...value] as unknown as Record<string, unknown>) : { ...(value as Record<string, unknown>) };
	const keys = Object.keys(copy);
	const key = keys[m.path[0]! % keys.length]!;
	copy[key] = applyMutation(copy[key], { ...m, path: m.path.slice(1) });
	return copy;
}

/** What one generated signaling frame is, before its symbolic parts are expanded. */
export type FrameSpec =
	| { kind: 'text'; text: string }
	| { kind: 'binary'; bytes: Uint8Array }
	| { kind: 'json'; value: unknown }
	| { kind: 'request'; id: unknown; method: unknown; data: unknown; envelopeExtra?: Record<string, unknown> };

export function frameArbitrary(rtpCapabilities: unknown): fc.Arbitrary<FrameSpec> {
	const request = fc.constantFrom(...METHODS).chain((method) =>
		fc.record({
			method: fc.constant(method),
			template: templateOf(method, rtpCapabilities),
			mutations: fc.array(mutation(), { maxLength: 2 }),
			mutate: fc.boolean(),
			id: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 2 ** 31 - 1 }), weight: 9 }, { arbitrary: fc.constantFrom(-1, 2 ** 31, 1.5, '7', null), weight: 1 }),
		}),
	);
	return fc.oneof(
		{ arbitrary: fc.string({ maxLength: 200 }).map((text): FrameSpec => ({ kind: 'text', text })), weight: 1 },
		{ arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes): FrameSpec => ({ kind: 'binary', bytes })), weight: 1 },
		{ arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value): FrameSpec => ({ kind: 'json', value })), weight: 1 },
		{
			arbitrary: fc
				.record({ method: fc.oneof(fc.constantFrom(...PROTOTYPE_KEYS, 'JOIN', 'join ', ''), unicodeText), data: fc.jsonValue({ maxDepth: 2 }), id: fc.nat() })
				.map((r): FrameSpec => ({ kind: 'request', id: r.id, method: r.method, data: r.data })),
			weight: 1,
		},
		{
			arbitrary: request.map(
				(r): FrameSpec => ({ kind: 'request', id: r.id, method: r.method, data: r.mutate ? r.mutations.reduce((v, m) => applyMutation(v, m), r.template) : r.template }),
			),
			weight: 8,
		},
	);
}

/** Ids the sender knows at send time. */
export interface KnownIds {
	ownTransport: string[];
	ownProducer: string[];
	ownConsumer: string[];
	ownVoiceMessage: string[];
	otherTransport: string[];
	otherProducer: string[];
	otherPeer: string[];
}

/** Expands symbolic ids, huge strings and deep values into the value that goes on the wire. */
export function expand(value: unknown, known: KnownIds): unknown {
	if (value === null || typeof value !== 'object') return value;
	if (Array.isArray(value)) return value.map((v) => expand(v, known));
	const v = value as Record<string, unknown>;
	if (typeof v.$ref === 'string' && Object.keys(v).length === 1) {
		const pool = known[v.$ref as keyof KnownIds] ?? [];
		return pool.at(-1) ?? crypto.randomUUID();
	}
	// A mutation may land inside a marker and retype its number: then it is a plain object.
	const bounded = (n: unknown, max: number): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= max;
	if (bounded(v.$huge, 200_000) && Object.keys(v).length === 1) return 'A'.repeat(v.$huge);
	if (bounded(v.$deep, 5_000) && Object.keys(v).length === 2) {
		let deep: unknown = 'leaf';
		for (let i = 0; i < v.$deep; i++) deep = v.arrays ? [deep] : { d: deep };
		return deep;
	}
	const out: Record<string, unknown> = {};
	for (const key of Object.keys(v)) Object.defineProperty(out, key, { value: expand(v[key], known), enumerable: true, writable: true, configurable: true });
	return out;
}

// ---- HTTP -------------------------------------------------------------------------------

export interface HttpCase {
	method: string;
	/** Raw request target, sent as is (no client-side normalisation of dot segments). */
	target: string;
	headers: Record<string, string>;
	/** Sent as UTF-8; `$HUGE` stands for 5,000 x's (keeps printed counterexamples short). */
	body: string | undefined;
}

/** Header values a Node client can send: Latin-1 without control characters. */
const headerValue = fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e\xa0-\xff]/g, '~').trim());

export function httpCaseArbitrary(ids: { own: () => string; tokens: string[] }): fc.Arbitrary<HttpCase> {
	const id = fc.oneof(
		fc.constant('$own'),
		fc.uuid(),
		fc.constantFrom('..', '%2e%2e', '..%2F..%2Fetc%2Fpasswd', '%00', 'x'.repeat(300), '.uploads', '%C0%AE%C0%AE', ''),
		fc.string({ maxLength: 40 }).map(encodeURIComponent),
	);
	// Weighted toward the real routes so most requests get past routing.
	const path = fc.oneof(
		{ arbitrary: fc.constantFrom('/healthz', '/readyz', '/metrics', '/dev/token', '/voice/uploads', '/voice/uploads', '/voice/messages', '/'), weight: 6 },
		{ arbitrary: fc.constantFrom('/ws', '/index.html', '/nope', '//healthz', '/healthz/', '/HEALTHZ', '/voice/uploads/', '/voice//messages'), weight: 1 },
		{ arbitrary: id.map((i) => `/voice/messages/${i}`), weight: 2 },
		{ arbitrary: id.map((i) => `/voice/messages/${i}/audio`), weight: 2 },
		{ arbitrary: id.map((i) => `/voice/uploads/${i}`), weight: 4 },
		// uWebSockets.js leaves a target without its leading slash unanswered until its idle
		// timeout, before any of our code runs: not ours to assert on.
		{ arbitrary: fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)), weight: 1 },
		{ arbitrary: fc.string({ maxLength: 80 }).map((s) => `/${encodeURIComponent(s)}`), weight: 1 },
	);
	const query = fc.oneof(
		{ arbitrary: fc.constant(''), weight: 3 },
		{ arbitrary: fc.constantFrom('?channel=room', '?user=$user', '?channel=room&limit=-1', '?channel=../x', '?channel=room&before=zz', '?user=../../etc', '?channel=room&user=x', '?limit=1e9'), weight: 2 },
		{ arbitrary: fc.webQueryParameters().map((q) => `?${q}`), weight: 1 },
	);
	const auth = fc.oneof(
		{ arbitrary: fc.constantFrom(...ids.tokens).map((t) => `Bearer ${t}`), weight: 6 },
		{ arbitrary: fc.constantFrom('Bearer x.y.z', 'Basic YTpi', 'Bearer ', ''), weight: 1 },
		{ arbitrary: headerValue, weight: 1 },
	);
	const tusHeaders = fc.record(
		{
			'tus-resumable': fc.oneof({ arbitrary: fc.constant('1.0.0'), weight: 8 }, { arbitrary: fc.constantFrom('0.2.2', '1.0', ''), weight: 1 }, { arbitrary: headerValue, weight: 1 }),
			'upload-length': fc.oneof(fc.integer({ min: -5, max: 30_000_000 }).map(String), fc.integer({ min: 1, max: 4096 }).map(String), fc.constantFrom('1e3', '0x10', ' 5', '99999999999999999999', 'NaN', ''), headerValue),
			'upload-offset': fc.oneof(fc.nat(5000).map(String), fc.constantFrom('-1', '1.5', '18446744073709551616', ''), headerValue),
			'upload-metadata': fc.oneof(
				fc.constantFrom('destination Y2hhbm5lbDpyb29t', 'destination dXNlcjouLi8uLi9ldGM=', 'destination not@base64', 'destination Y2hhbm5lbDpyb29t,destination Y2hhbm5lbDpyb29t', ''),
				headerValue,
			),
			'upload-checksum': fc.oneof(fc.constantFrom('sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=', 'md5 1B2M2Y8AsgTpgAmY7PhCfg==', 'sha1 !!!'), headerValue),
			'upload-defer-length': fc.constantFrom('1', '0', 'x'),
		},
		{ requiredKeys: ['tus-resumable'] },
	);
	const otherHeaders = fc.record(
		{
			authorization: auth,
			'content-type': fc.oneof(fc.constantFrom('application/offset+octet-stream', 'application/json', 'text/plain', 'multipart/form-data; boundary=x', ''), headerValue),
			'x-forwarded-for': fc.constantFrom('203.0.113.7', '127.0.0.1', 'unknown', ''),
			forwarded: fc.constantFrom('for=203.0.113.7', 'for=127.0.0.1'),
			range: fc.oneof(fc.constantFrom('bytes=0-', 'bytes=0-1', 'bytes=-5', 'bytes=9999999-', 'bytes=5-1', 'bytes=0-1,2-3', 'items=0-1'), headerValue),
			'if-none-match': headerValue,
			'x-request-id': headerValue,
			'x-http-method-override': fc.constantFrom('DELETE', 'PATCH'),
			accept: headerValue,
		},
		{ requiredKeys: [] },
	);
	const body = fc.oneof(
		{ arbitrary: fc.constant(undefined), weight: 3 },
		{ arbitrary: fc.string({ unit: 'binary', maxLength: 300 }), weight: 2 },
		{ arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), weight: 2 },
		{
			arbitrary: fc.record({ displayName: fc.oneof(unicodeText, fc.constant('$HUGE')), channel: channelName }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
			weight: 2,
		},
	);
	return fc
		.record({
			method: fc.oneof({ arbitrary: fc.constantFrom('GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'), weight: 8 }, { arbitrary: fc.constantFrom('PUT', 'TRACE', 'PROPFIND', 'FOO'), weight: 1 }),
			// Mostly a method the route serves, so the request reaches its handler.
			routeMethod: fc.option(fc.nat(), { freq: 4 }),
			path,
			query,
			tus: tusHeaders,
			other: otherHeaders,
			body,
		})
		.map(({ method, routeMethod, path, query, tus, other, body }) => ({
			method: routeMethod === null ? method : (methodsOf(path)[routeMethod % methodsOf(path).length] ?? method),
			target: path.replace('$own', ids.own()) + query,
			headers: { ...tus, ...other },
			body,
		}));
}

/** The methods a path's route serves (empty for paths no route serves). */
function methodsOf(path: string): string[] {
	if (path === '/dev/token') return ['POST'];
	if (path === '/voice/uploads') return ['POST', 'OPTIONS'];
	if (/^\/voice\/uploads\/[^/]*$/.test(path)) return ['HEAD', 'PATCH', 'PATCH', 'DELETE', 'OPTIONS'];
	if (/^\/voice\/messages\/[^/]*$/.test(path)) return ['GET', 'DELETE'];
	if (path.startsWith('/')) return ['GET'];
	return [];
}
