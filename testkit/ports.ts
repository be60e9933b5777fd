// Free ports on loopback for tests and the bench (each run starts its own listeners).
import dgram from 'node:dgram';
import net from 'node:net';

async function tcpPort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.once('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			const { port } = srv.address() as net.AddressInfo;
			srv.close(() => resolve(port));
		});
	});
}

async function udpFree(port: number): Promise<boolean> {
	return new Promise((resolve) => {
		const sock = dgram.createSocket('udp4');
		sock.once('error', () => resolve(false));
		sock.bind(port, '127.0.0.1', () => sock.close(() => resolve(true)));
	});
}

/** A port free for both TCP and UDP (mediasoup WebRtcServers listen on both). */
export async function freePort(): Promise<number> {
	for (;;) {
		const port = await tcpPort();
		if (await udpFree(port)) return port;
	}
}

/** `count` consecutive ports free for TCP and UDP, starting at the returned port. */
export async function freePortRange(count: number): Promise<number> {
	for (;;) {
		const base = await freePort();
		if (base + count > 65535) continue;
		let ok = true;
		for (let p = base + 1; p < base + count && ok; p++) {
			ok = (await udpFree(p)) && (await tcpFree(p));
		}
		if (ok) return base;
	}
}

async function tcpFree(port: number): Promise<boolean> {
	return new Promise((resolve) => {
		const srv = net.createServer();
		srv.once('error', () => resolve(false));
		srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
	});
}
