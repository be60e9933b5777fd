// What a browser test or the bench measures inside a page: the dominant frequency of a
// stream (Web Audio AnalyserNode), the peer connections the page made, when the first RTP
// packet arrived. Run through playwright's page.evaluate, so each function is self-contained.
import type { Page } from 'playwright-core';

export interface Spectrum {
	/** Strongest frequency (Hz) over the window and its mean level (dBFS). */
	frequencyHz: number;
	levelDb: number;
}

/**
 * Measures, with a Web Audio AnalyserNode in the page, the stream the page left in
 * `window.__spectrumStream` (set it with page.evaluate first): `windows` snapshots 50 ms apart,
 * power summed per bin. One place for the in-page measurement every browser test uses.
 */
export function measureStreamInPage(page: Page, windows = 30): Promise<Spectrum> {
	return page.evaluate(async (n) => {
		const stream = (window as unknown as { __spectrumStream: MediaStream }).__spectrumStream;
		const ctx = new AudioContext();
		await ctx.resume();
		const analyser = ctx.createAnalyser();
		analyser.fftSize = 8192;
		analyser.smoothingTimeConstant = 0;
		ctx.createMediaStreamSource(stream).connect(analyser);
		const bins = new Float32Array(analyser.frequencyBinCount);
		const power = new Float64Array(analyser.frequencyBinCount);
		for (let i = 0; i < n; i++) {
			await new Promise((r) => setTimeout(r, 50));
			analyser.getFloatFrequencyData(bins);
			for (let k = 0; k < bins.length; k++) power[k]! += 10 ** (bins[k]! / 10);
		}
		let best = 1;
		for (let k = 2; k < power.length; k++) if (power[k]! > power[best]!) best = k;
		await ctx.close();
		return { frequencyHz: (best * ctx.sampleRate) / analyser.fftSize, levelDb: 10 * Math.log10(power[best]! / n) };
	}, windows);
}

/** Runs in the page (page.addInitScript): records every RTCPeerConnection in `window.__pcs`
 * so a test can read their SDP, stats and packet counts. */
export function trackPeerConnections(): void {
	const w = window as unknown as { __pcs: RTCPeerConnection[] };
	w.__pcs = [];
	const Original = window.RTCPeerConnection;
	window.RTCPeerConnection = class extends Original {
		constructor(...args: ConstructorParameters<typeof RTCPeerConnection>) {
			super(...args);
			w.__pcs.push(this);
		}
	} as typeof RTCPeerConnection;
}

/** When the first RTP packet arrives on a peer connection created after the first
 * `knownPcs` ones (needs trackPeerConnections): Date.now() in the page. */
export function firstNewPacketAt(page: Page, knownPcs: number): Promise<number> {
	return page.evaluate(async (known) => {
		const w = window as unknown as { __pcs: RTCPeerConnection[] };
		for (;;) {
			for (const pc of w.__pcs.slice(known)) {
				let received = 0;
				(await pc.getStats()).forEach((s: { type: string; packetsReceived?: number }) => {
					if (s.type === 'inbound-rtp') received += s.packetsReceived ?? 0;
				});
				if (received > 0) return Date.now();
			}
			await new Promise((r) => setTimeout(r, 20));
		}
	}, knownPcs);
}

/** Strongest frequency (Hz) of the first remote stream of the page's `window.client`
 * (a ParleyClient), measured over `windows` analyser windows; waits up to 10 s for a stream. */
export async function hearFirstRemoteStream(page: Page, windows = 20): Promise<number> {
	await page.evaluate(async () => {
		const client = (window as unknown as { client: { remoteStreams(): Map<string, MediaStream> } }).client;
		const deadline = Date.now() + 10_000;
		while (client.remoteStreams().size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
		(window as unknown as { __spectrumStream: MediaStream }).__spectrumStream = [...client.remoteStreams().values()][0]!;
	});
	return (await measureStreamInPage(page, windows)).frequencyHz;
}
