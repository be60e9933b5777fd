// An Opus decoder on @evan/opus's WebAssembly build, called through its raw exports because
// the package's JS API has no way to pass decode_fec=1 (rebuild a lost frame from the FEC data
// in the next packet) or a NULL packet (packet-loss concealment). One module instance is
// shared by all decoders in the process; each decoder owns its state and buffers.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { FRAME_SAMPLES, SAMPLE_RATE } from './speech.js';

interface OpusWasmExports {
	memory: WebAssembly.Memory;
	malloc(bytes: number): number;
	free(ptr: number): void;
	opus_decoder_get_size(channels: number): number;
	opus_decoder_init(ptr: number, sampleRate: number, channels: number): number;
	opus_decode(ptr: number, data: number, len: number, pcm: number, frameSize: number, decodeFec: number): number;
	opus_strerror(code: number): number;
}

let shared: OpusWasmExports | undefined;

function wasmModule(): OpusWasmExports {
	if (shared) return shared;
	const dir = path.dirname(createRequire(import.meta.url).resolve('@evan/opus/package.json'));
	// The SIMD build when the engine supports it (Node 20 does), as the package itself picks.
	const simd = WebAssembly.validate(Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 9, 1, 7, 0, 65, 0, 253, 15, 26, 11));
	const mod = new WebAssembly.Module(readFileSync(path.join(dir, 'wasm', simd ? 'simd.wasm' : 'opus.wasm')));
	const noop = (): number => 0;
	const instance = new WebAssembly.Instance(mod, {
		wasi_snapshot_preview1: { fd_seek: noop, fd_write: noop, fd_close: noop, proc_exit: noop },
		// Views over memory are made per call, so growth needs no bookkeeping here.
		env: { emscripten_notify_memory_growth: noop },
	});
	shared = instance.exports as unknown as OpusWasmExports;
	return shared;
}

/** Mono decoder at 48 kHz producing 20 ms frames. */
export class OpusWasmDecoder {
	readonly #wasm: OpusWasmExports;
	#state: number;
	readonly #input: number;
	readonly #output: number;
	static readonly MAX_PACKET_BYTES = 1500;

	constructor() {
		this.#wasm = wasmModule();
		const w = this.#wasm;
		this.#state = w.malloc(w.opus_decoder_get_size(1));
		this.#input = w.malloc(OpusWasmDecoder.MAX_PACKET_BYTES);
		this.#output = w.malloc(FRAME_SAMPLES * 2 * 6);
		this.#check(w.opus_decoder_init(this.#state, SAMPLE_RATE, 1));
	}

	/** Decodes a received packet. */
	decode(packet: Uint8Array): Int16Array {
		return this.#run(packet, 0);
	}

	/** Rebuilds the lost frame before `nextPacket` from its in-band FEC data. Only meaningful
	 * when the packet has LBRR data (`hasLbrr`); without it libopus falls back to concealment. */
	decodeFec(nextPacket: Uint8Array): Int16Array {
		return this.#run(nextPacket, 1);
	}

	/** Packet-loss concealment for one lost 20 ms frame. */
	conceal(): Int16Array {
		return this.#run(undefined, 0);
	}

	close(): void {
		if (!this.#state) return;
		this.#wasm.free(this.#state);
		this.#wasm.free(this.#input);
		this.#wasm.free(this.#output);
		this.#state = 0;
	}

	#run(packet: Uint8Array | undefined, decodeFec: 0 | 1): Int16Array {
		const w = this.#wasm;
		if (!this.#state) throw new Error('decoder closed');
		let len = 0;
		if (packet) {
			if (packet.length > OpusWasmDecoder.MAX_PACKET_BYTES) throw new RangeError('Opus packet too large');
			new Uint8Array(w.memory.buffer, this.#input, packet.length).set(packet);
			len = packet.length;
		}
		// With FEC or concealment, frame_size must be exactly the lost duration (20 ms).
		const samples = this.#check(w.opus_decode(this.#state, packet ? this.#input : 0, len, this.#output, FRAME_SAMPLES, decodeFec));
		return new Int16Array(w.memory.buffer, this.#output, samples).slice();
	}

	#check(code: number): number {
		if (code >= 0) return code;
		const w = this.#wasm;
		const bytes = new Uint8Array(w.memory.buffer, w.opus_strerror(code));
		const end = bytes.indexOf(0);
		throw new Error(`opus: ${new TextDecoder().decode(bytes.subarray(0, end < 0 ? 64 : end))}`);
	}
}
