import dgram from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { buildNack, buildRtp } from '../rtp/rtp.js';
import { createLossModel } from './LossModel.js';
import { UdpLossProxy } from './UdpLossProxy.js';

async function socket(): Promise<dgram.Socket> {
	const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
	s.bind(0, '127.0.0.1');
	await once(s, 'listening');
	return s;
}

describe('UdpLossProxy', () => {
	const closers: (() => void)[] = [];
	afterEach(() => {
		for (const c of closers.splice(0)) c();
	});

	it('drops RTP at the configured rate one way, passes RTCP and the other way', async () => {
		const a = await socket();
		const b = await socket();
		const proxy = await UdpLossProxy.create({ target: { address: '127.0.0.1', port: b.address().port }, forward: createLossModel({ kind: 'random', lossRate: 0.2 }, 5) });
		closers.push(() => a.close(), () => b.close(), () => proxy.close());
		let rtpAtB = 0;
		let rtcpAtB = 0;
		let atA = 0;
		b.on('message', (m, rinfo) => {
			if (m[1] === 205) rtcpAtB++;
			else rtpAtB++;
			b.send(m, rinfo.port, rinfo.address); // echo back through the proxy
		});
		a.on('message', () => atA++);
		const N = 2000;
		for (let i = 0; i < N; i++) {
			a.send(buildRtp({ payloadType: 100, sequenceNumber: i, timestamp: i * 960, ssrc: 1 }, new Uint8Array(40)), proxy.frontPort, '127.0.0.1');
			if (i % 100 === 0) a.send(buildNack(1, 2, [i]), proxy.frontPort, '127.0.0.1');
			if (i % 20 === 0) await new Promise((r) => setTimeout(r, 1));
		}
		// Wait until nothing moves any more.
		let last = -1;
		while (last !== atA + rtpAtB) {
			last = atA + rtpAtB;
			await new Promise((r) => setTimeout(r, 100));
		}
		const f = proxy.stats.forward;
		expect(f.received).toBe(N + N / 100);
		expect(f.dropped / N).toBeGreaterThan(0.15);
		expect(f.dropped / N).toBeLessThan(0.25);
		expect(f.forwarded + f.dropped).toBe(f.received);
		expect(rtcpAtB).toBe(N / 100);
		expect(rtpAtB + rtcpAtB).toBe(f.forwarded);
		expect(proxy.stats.backward.dropped).toBe(0);
		expect(atA).toBe(rtpAtB + rtcpAtB);
	});

	it('delays packets by the configured amount', async () => {
		const a = await socket();
		const b = await socket();
		const proxy = await UdpLossProxy.create({ target: { address: '127.0.0.1', port: b.address().port }, delay: { delayMs: 30, jitterMs: 10 } });
		closers.push(() => a.close(), () => b.close(), () => proxy.close());
		const sentAt = performance.now();
		a.send(buildRtp({ payloadType: 100, sequenceNumber: 1, timestamp: 1, ssrc: 1 }, new Uint8Array(10)), proxy.frontPort, '127.0.0.1');
		await once(b, 'message');
		const elapsed = performance.now() - sentAt;
		expect(elapsed).toBeGreaterThanOrEqual(29);
		expect(elapsed).toBeLessThan(100);
	});
});
