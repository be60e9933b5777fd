// Arrival tallies for sockets nobody reads. A UDP socket whose receive buffer is full drops
// every datagram and counts it in the `drops` column of /proc/net/udp, so once the buffer is
// full (after the warm-up), the growth of that counter is exactly what arrived. This lets
// the capacity ramp send to thousands of listeners while the bench reads only a sample.
import dgram from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';

export class UdpSink {
	readonly socket: dgram.Socket;

	private constructor(socket: dgram.Socket) {
		this.socket = socket;
	}

	/** A bound socket that is never read (paused), with the smallest receive buffer. */
	static async create(): Promise<UdpSink> {
		const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 });
		socket.bind(0, '127.0.0.1');
		await once(socket, 'listening');
		// Stop libuv from reading: without a 'message' handler Node would still drain the socket.
		// `_handle` is deprecated (DEP0112) but is the only way to a bound dgram socket's
		// recvStop(); the warning is muted for this one access.
		const muted = process.noDeprecation;
		process.noDeprecation = true;
		try {
			const handle = (socket as unknown as { _handle?: { recvStop?: () => number } })._handle;
			if (typeof handle?.recvStop !== 'function') throw new Error('cannot stop reading a dgram socket on this Node version');
			handle.recvStop();
		} finally {
			process.noDeprecation = muted;
		}
		return new UdpSink(socket);
	}

	get port(): number {
		return this.socket.address().port;
	}

	close(): void {
		this.socket.close();
	}
}

/** The `drops` counter of each local UDP port in `ports` (from /proc/net/udp). */
export function udpDropsByPort(ports: Iterable<number>): Map<number, number> {
	const wanted = new Set(ports);
	const out = new Map<number, number>();
	const lines = readFileSync('/proc/net/udp', 'utf8').split('\n');
	for (const line of lines.slice(1)) {
		const f = line.trim().split(/\s+/);
		if (f.length < 13) continue;
		const port = parseInt(f[1]!.split(':')[1]!, 16);
		if (wanted.has(port)) out.set(port, Number(f[f.length - 1]));
	}
	return out;
}

export function totalUdpDrops(ports: number[]): number {
	let sum = 0;
	for (const v of udpDropsByPort(ports).values()) sum += v;
	return sum;
}
