// An in-process UDP relay that drops (and optionally delays) packets according to a loss
// model: placed between a publisher and the server, or between the server and a subscriber.
// It needs no privileges, unlike netem or nftables, and sees only loopback traffic.
//
//   side A (learned from the first packet) <-> [front socket | proxy | back socket] <-> side B (fixed target)
//
// A->B applies `forward`, B->A applies `backward`. RTCP passes untouched unless `dropRtcp`:
// the configured loss then is exactly the RTP loss the receiver sees, and feedback (NACKs,
// receiver reports) is not what is being measured.
import dgram from 'node:dgram';
import { once } from 'node:events';
import { isRtcp } from '../rtp/rtp.js';
import { type LossModel, NoLoss } from './LossModel.js';
import { type Random, seededRandom } from './random.js';

export interface DelaySpec {
	/** Fixed one-way delay. */
	delayMs: number;
	/** Extra delay drawn uniformly from [0, jitterMs] per packet (packets may reorder). */
	jitterMs: number;
}

export interface UdpLossProxyOptions {
	/** Where side B listens. */
	target: { address: string; port: number };
	forward?: LossModel;
	backward?: LossModel;
	/** Applied to both directions; none by default (latency figures stay the server's own). */
	delay?: DelaySpec;
	dropRtcp?: boolean;
	/** Seed of the jitter draws. */
	seed?: number;
}

export interface ProxyDirectionStats {
	received: number;
	dropped: number;
	forwarded: number;
}

const LOOPBACK = '127.0.0.1';

export class UdpLossProxy {
	readonly #front: dgram.Socket;
	readonly #back: dgram.Socket;
	readonly #options: UdpLossProxyOptions;
	readonly #forward: LossModel;
	readonly #backward: LossModel;
	readonly #random: Random;
	readonly #timers = new Set<NodeJS.Timeout>();
	#sideA: { address: string; port: number } | undefined;
	#closed = false;
	readonly stats = { forward: zero(), backward: zero() };

	private constructor(front: dgram.Socket, back: dgram.Socket, options: UdpLossProxyOptions) {
		this.#front = front;
		this.#back = back;
		this.#options = options;
		this.#forward = options.forward ?? new NoLoss();
		this.#backward = options.backward ?? new NoLoss();
		this.#random = seededRandom(options.seed ?? 1);
		front.on('message', (msg, rinfo) => {
			this.#sideA = { address: rinfo.address, port: rinfo.port };
			this.#relay(msg, this.#forward, this.stats.forward, this.#back, options.target);
		});
		back.on('message', (msg, rinfo) => {
			if (rinfo.port !== options.target.port || rinfo.address !== options.target.address) return;
			if (this.#sideA) this.#relay(msg, this.#backward, this.stats.backward, this.#front, this.#sideA);
		});
	}

	static async create(options: UdpLossProxyOptions): Promise<UdpLossProxy> {
		if (options.target.address !== LOOPBACK) throw new Error('the bench relays loopback traffic only');
		const [front, back] = [dgram.createSocket('udp4'), dgram.createSocket('udp4')];
		front.bind(0, LOOPBACK);
		back.bind(0, LOOPBACK);
		await Promise.all([once(front, 'listening'), once(back, 'listening')]);
		return new UdpLossProxy(front, back, options);
	}

	/** The port side A sends to. */
	get frontPort(): number {
		return this.#front.address().port;
	}

	/** The port side B sees packets come from (and replies to). */
	get backPort(): number {
		return this.#back.address().port;
	}

	#relay(msg: Buffer, model: LossModel, stats: ProxyDirectionStats, out: dgram.Socket, to: { address: string; port: number }): void {
		if (this.#closed) return;
		stats.received++;
		const rtcp = isRtcp(msg);
		if ((!rtcp || this.#options.dropRtcp) && model.drop()) {
			stats.dropped++;
			return;
		}
		stats.forwarded++;
		const d = this.#options.delay;
		const delayMs = d ? d.delayMs + d.jitterMs * this.#random() : 0;
		if (delayMs <= 0) {
			out.send(msg, to.port, to.address);
			return;
		}
		const timer = setTimeout(() => {
			this.#timers.delete(timer);
			if (!this.#closed) out.send(msg, to.port, to.address);
		}, delayMs);
		this.#timers.add(timer);
	}

	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const t of this.#timers) clearTimeout(t);
		this.#timers.clear();
		this.#front.close();
		this.#back.close();
	}
}

function zero(): ProxyDirectionStats {
	return { received: 0, dropped: 0, forwarded: 0 };
}
