// Generates hostile signaling frames from a seeded PRNG: junk, wrong types, huge strings,
// deep nesting, binary frames, unknown and prototype-named methods, prototype-pollution
// keys, and plausible requests in any order with ids that are ours, other peers' or made
// up. Each frame comes with the reply id it must get (null when the id is unreadable).
import { requestSchemas } from '../../../protocol/schemas.js';
import type { Method } from '../../../protocol/messages.js';
import type { Prng } from './prng.js';

export interface FuzzFrame {
	frame: string | Buffer;
	/** The id the server must answer with. */
	expectId: number | null;
	/** What made it (for the summary). */
	kind: string;
	/** The method named, for requests with a readable id. */
	method?: string;
}

/** Ids a fuzzer may use: its own, other peers', and made-up ones. */
export interface IdPool {
	transport: string[];
	producer: string[];
	consumer: string[];
	voiceMessage: string[];
}

export const METHODS = Object.keys(requestSchemas) as Method[];
const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf'];

export class SignalingFuzzer {
	readonly #rng: Prng;
	readonly #maxMessageBytes: number;
	readonly #rtpCapabilities: unknown;
	readonly own: IdPool = { transport: [], producer: [], consumer: [], voiceMessage: [] };
	readonly #shared: IdPool;
	#nextId = 1;

	constructor(rng: Prng, options: { maxMessageBytes: number; rtpCapabilities: unknown; shared: IdPool }) {
		this.#rng = rng;
		this.#maxMessageBytes = options.maxMessageBytes;
		this.#rtpCapabilities = options.rtpCapabilities;
		this.#shared = options.shared;
	}

	/** Records ids from a successful reply or a notification, for later requests. */
	learn(data: unknown): void {
		if (!data || typeof data !== 'object') return;
		const d = data as Record<string, unknown>;
		const add = (pool: keyof IdPool, value: unknown) => {
			if (typeof value !== 'string') return;
			this.own[pool].push(value);
			this.#shared[pool].push(value);
		};
		add('transport', d.transportId);
		add('producer', d.producerId);
		add('consumer', d.consumerId);
		add('voiceMessage', d.voiceMessageId);
	}

	next(): FuzzFrame {
		const r = this.#rng;
		const roll = r.next();
		if (roll < 0.04) return { frame: r.bytes(r.int(0, 300)), expectId: null, kind: 'binary' };
		if (roll < 0.08) return { frame: r.string(200), expectId: null, kind: 'not json' };
		if (roll < 0.13) return this.#value(this.#json(4), 'random json');
		if (roll < 0.17) return this.#oversize();
		if (roll < 0.21) return this.#deep();
		if (roll < 0.26) return this.#badEnvelope();
		if (roll < 0.33) return this.#request(r.chance(0.5) ? r.pick(PROTOTYPE_NAMES) : r.string(40), this.#json(2), 'unknown method');
		const method = r.pick(METHODS);
		if (roll < 0.43) return this.#request(method, this.#json(3), 'random data');
		if (roll < 0.63) return this.#request(method, this.#mutate(this.#template(method, false)), 'mutated');
		if (roll < 0.75) return this.#request(method, this.#template(method, false), 'plausible, any ids');
		// Mostly valid requests in a random order, so the fuzz reaches past the first checks.
		const likely = r.pick<Method>(['join', 'join', 'createTransport', 'createTransport', 'connectTransport', 'produce', 'produce', 'pauseProducer', 'resumeProducer', 'closeProducer', 'resumeConsumer', 'restartIce', 'getTransportStats', 'startRecording', 'startRecording', 'stopRecording', 'leave']);
		return this.#request(likely, this.#template(likely, true), 'plausible, own ids');
	}

	#request(method: unknown, data: unknown, kind: string): FuzzFrame {
		const id = this.#nextId++;
		const text = JSON.stringify({ id, method, data });
		return { ...this.#sized(text, id, kind), method: String(method) };
	}

	#value(value: unknown, kind: string): FuzzFrame {
		const text = JSON.stringify(value) ?? 'null';
		const id = value && typeof value === 'object' && !Array.isArray(value) ? validId((value as { id?: unknown }).id) : null;
		return this.#sized(text, id, kind);
	}

	/** Frames over the size limit are answered with id null. */
	#sized(text: string, id: number | null, kind: string): FuzzFrame {
		return Buffer.byteLength(text) > this.#maxMessageBytes ? { frame: text, expectId: null, kind: `${kind} (too large)` } : { frame: text, expectId: id, kind };
	}

	#oversize(): FuzzFrame {
		const r = this.#rng;
		// Over the limit, under the 4x cut-off that closes the connection.
		const size = r.int(this.#maxMessageBytes + 1, this.#maxMessageBytes * 3);
		const text = JSON.stringify({ id: this.#nextId++, method: r.pick(METHODS), data: { pad: 'x'.repeat(size) } });
		return { frame: text, expectId: null, kind: 'oversize' };
	}

	#deep(): FuzzFrame {
		const r = this.#rng;
		const depth = r.int(50, Math.floor(this.#maxMessageBytes / 2) - 100);
		const open = r.chance(0.5) ? '[' : '{"a":';
		const close = open === '[' ? ']' : '}';
		const nested = open.repeat(depth) + '1' + close.repeat(depth);
		const method = r.pick(METHODS);
		const id = this.#nextId++;
		// Nested where zod looks (data) or where it does not (a codec parameter value).
		const data = r.chance(0.5)
			? nested
			: `{"channel":"room","rtpCapabilities":{"codecs":[{"kind":"audio","mimeType":"audio/opus","clockRate":48000,"channels":2,"parameters":{"x":${nested}}}]}}`;
		return this.#sized(`{"id":${id},"method":"${method}","data":${data}}`, id, 'deep');
	}

	#badEnvelope(): FuzzFrame {
		const r = this.#rng;
		const badIds: unknown[] = [-1, 1.5, 2 ** 31, 2 ** 53, '7', null, true, [], {}, 'NaN'];
		const variants: unknown[] = [
			{ id: r.pick(badIds), method: r.pick(METHODS), data: {} },
			{ method: r.pick(METHODS), data: {} },
			{ id: this.#nextId, method: r.pick([1, null, [], {}, '', 'x'.repeat(65)]), data: {} },
			{ id: this.#nextId, method: r.pick(METHODS), data: {}, extra: 1 },
			{ id: this.#nextId, method: r.pick(METHODS), [r.pick(PROTOTYPE_NAMES)]: { polluted: true } },
		];
		const value = r.pick(variants);
		const expect = validId((value as { id?: unknown }).id);
		if (expect !== null) this.#nextId++;
		return this.#sized(JSON.stringify(value), expect, 'bad envelope');
	}

	/** Random JSON: nulls, numbers (incl. huge), strings (hostile), arrays, objects with
	 * prototype-named keys. */
	#json(depth: number): unknown {
		const r = this.#rng;
		const kind = depth <= 0 ? r.int(0, 3) : r.int(0, 5);
		switch (kind) {
			case 0:
				return r.pick([null, true, false]);
			case 1:
				return r.pick([0, -1, 1.5, 2 ** 31, -(2 ** 63), 1e308, r.int(-1000, 1000)]);
			case 2:
				return r.chance(0.1) ? 'x'.repeat(r.int(1000, 6000)) : r.string(30);
			case 3:
				return r.pick(['send', 'recv', 'audio', 'video', 'room', 'audio/opus']);
			case 4:
				return Array.from({ length: r.int(0, 4) }, () => this.#json(depth - 1));
			default: {
				const o: Record<string, unknown> = {};
				for (let i = r.int(0, 4); i > 0; i--) {
					const key = r.chance(0.3) ? r.pick(PROTOTYPE_NAMES) : r.pick(['id', 'channel', 'transportId', 'producerId', 'kind', 'data', r.string(10)]);
					// defineProperty: a literal `__proto__` key must become an own property.
					Object.defineProperty(o, key, { value: this.#json(depth - 1), enumerable: true, writable: true, configurable: true });
				}
				return o;
			}
		}
	}

	#id(pool: keyof IdPool, own: boolean): string {
		const r = this.#rng;
		if (own && this.own[pool].length > 0 && r.chance(0.85)) return r.pick(this.own[pool].slice(-4));
		if (own && pool === 'voiceMessage') return r.pick(['not-a-uuid', crypto.randomUUID()]);
		const roll = r.next();
		if (roll < 0.35 && this.own[pool].length > 0) return r.pick(this.own[pool]);
		if (roll < 0.7 && this.#shared[pool].length > 0) return r.pick(this.#shared[pool]);
		return r.pick([crypto.randomUUID(), '', '../../etc/passwd', r.string(64), 'x'.repeat(65), '00000000-0000-0000-0000-000000000000']);
	}

	#template(method: Method, valid: boolean): unknown {
		const r = this.#rng;
		const v = <T>(good: T, any: T[]): T => (valid && r.chance(0.9) ? good : r.pick(any));
		switch (method) {
			case 'getRouterRtpCapabilities':
			case 'leave':
				return {};
			case 'join':
				return { channel: r.pick(['room', 'room', 'fuzz-a', `fuzz-${r.int(0, 40)}`, 'forbidden', '../x', '']), rtpCapabilities: this.#rtpCapabilities };
			case 'createTransport':
				return { direction: r.pick(['send', 'recv']) };
			case 'connectTransport':
				return {
					transportId: this.#id('transport', valid),
					dtlsParameters: { role: r.pick(['client', 'server', 'auto']), fingerprints: [{ algorithm: 'sha-256', value: r.bytes(32).toString('hex').replace(/(..)(?!$)/g, '$1:').toUpperCase() }] },
				};
			case 'produce':
				return {
					transportId: this.#id('transport', valid),
					kind: v('audio', ['audio', 'video', '']),
					rtpParameters: {
						mid: String(r.int(0, 9)),
						codecs: [{ mimeType: v('audio/opus', ['audio/opus', 'audio/PCMU', 'video/VP8']), payloadType: v(111, [r.int(0, 127)]), clockRate: v(48000, [48000, 8000, 90000]), channels: 2, parameters: { useinbandfec: 1 } }],
						encodings: [{ ssrc: r.int(0, 0xffffffff) }],
					},
					paused: r.chance(0.5),
				};
			case 'pauseProducer':
			case 'resumeProducer':
			case 'closeProducer':
				return { producerId: this.#id('producer', valid) };
			case 'resumeConsumer':
				return { consumerId: this.#id('consumer', valid) };
			case 'restartIce':
			case 'getTransportStats':
				return { transportId: this.#id('transport', valid) };
			case 'startRecording':
				return {
					producerId: this.#id('producer', valid),
					destination: valid && r.chance(0.8) ? { kind: 'channel', channel: 'room' } : r.pick([{ kind: 'channel', channel: 'room' }, { kind: 'user', userId: 'someone' }, { kind: 'channel', channel: 'forbidden' }, { kind: 'user', userId: '../x' }]),
				};
			case 'stopRecording':
				return { voiceMessageId: this.#id('voiceMessage', valid) };
		}
	}

	#mutate(value: unknown): unknown {
		const r = this.#rng;
		if (!value || typeof value !== 'object' || r.chance(0.1)) return this.#json(2);
		const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
		const keys = Object.keys(copy);
		const op = r.int(0, 4);
		const key = keys.length > 0 ? r.pick(keys) : 'x';
		if (op === 0) delete copy[key];
		else if (op === 1) copy[key] = this.#json(2);
		else if (op === 2) Object.defineProperty(copy, r.pick(PROTOTYPE_NAMES), { value: this.#json(2), enumerable: true, writable: true, configurable: true });
		else if (op === 3) copy[key] = this.#mutate(copy[key]);
		else copy[key] = 'A'.repeat(r.int(65, 5000));
		return copy;
	}
}

function validId(id: unknown): number | null {
	return Number.isInteger(id) && (id as number) >= 0 && (id as number) < 2 ** 31 ? (id as number) : null;
}
