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

/** What trackPeerConnections saw happen to one peer connection: performance.now() of the
 * page when each was first reached. */
export interface PeerConnectionEvents {
	created: number;
	/** iceConnectionState 'checking', then 'connected' (a check succeeded both ways). */
	iceChecking?: number;
	iceConnected?: number;
	/** The DTLS transport's state 'connected' (the handshake done; SRTP keys known). */
	dtlsConnected?: number;
	/** connectionState 'connected' (ICE and DTLS). */
	connected?: number;
	/** A remote track's first 'unmute': Chromium unmutes a remote track on its first RTP packet. */
	remoteUnmuted?: number;
}

/** Runs in the page (page.addInitScript): records every RTCPeerConnection in `window.__pcs`
 * so a test can read their SDP, stats and packet counts, and when each reached its ICE, DTLS
 * and first-packet steps in `window.__pcEvents` (PeerConnectionEvents, same order). */
export function trackPeerConnections(): void {
	// No named inner functions: tsx compiles them to __name(...) calls the page does not have.
	const w = window as unknown as { __pcs: RTCPeerConnection[]; __pcEvents: Record<string, number>[] };
	w.__pcs = [];
	w.__pcEvents = [];
	const Original = window.RTCPeerConnection;
	window.RTCPeerConnection = class extends Original {
		constructor(...args: ConstructorParameters<typeof RTCPeerConnection>) {
			super(...args);
			const events: Record<string, number> = { created: performance.now() };
			w.__pcs.push(this);
			w.__pcEvents.push(events);
			this.addEventListener('iceconnectionstatechange', () => {
				if (this.iceConnectionState === 'checking') events.iceChecking ??= performance.now();
				if (this.iceConnectionState === 'connected' || this.iceConnectionState === 'completed') events.iceConnected ??= performance.now();
			});
			this.addEventListener('connectionstatechange', () => {
				if (this.connectionState === 'connected') events.connected ??= performance.now();
			});
			// The DTLS transport exists once a description set the transceiver's transport up.
			const watched = new Set<RTCDtlsTransport>();
			this.addEventListener('signalingstatechange', () => {
				for (const t of this.getTransceivers()) {
					const dtls = t.sender.transport ?? t.receiver.transport;
					if (!dtls || watched.has(dtls)) continue;
					watched.add(dtls);
					if (dtls.state === 'connected') events.dtlsConnected ??= performance.now();
					dtls.addEventListener('statechange', () => {
						if (dtls.state === 'connected') events.dtlsConnected ??= performance.now();
					});
				}
			});
			this.addEventListener('track', (event) => {
				if (!event.track.muted) events.remoteUnmuted ??= performance.now();
				else event.track.addEventListener('unmute', () => (events.remoteUnmuted ??= performance.now()), { once: true });
			});
		}
	} as typeof RTCPeerConnection;
}

/**
 * When the first RTP packet came in (inbound-rtp packetsReceived) on a peer connection created
 * after the first `knownPcs` ones (needs trackPeerConnections), polling getStats every
 * `pollMs`: performance.now() of the page, or Date.now() with `clock: 'epoch'` (to compare
 * with the test process). Chromium may answer getStats from a report up to some tens of ms
 * old, so the track's 'unmute' (PeerConnectionEvents.remoteUnmuted) is the sharper figure.
 */
export function firstRtpAt(page: Page, knownPcs = 0, { pollMs = 5, clock = 'page' }: { pollMs?: number; clock?: 'page' | 'epoch' } = {}): Promise<number> {
	return page.evaluate(
		async ({ known, poll, epoch }) => {
			const w = window as unknown as { __pcs: RTCPeerConnection[] };
			for (;;) {
				for (const pc of w.__pcs.slice(known)) {
					let received = 0;
					(await pc.getStats()).forEach((s: { type: string; packetsReceived?: number }) => {
						if (s.type === 'inbound-rtp') received += s.packetsReceived ?? 0;
					});
					if (received > 0) return epoch ? Date.now() : performance.now();
				}
				await new Promise((r) => setTimeout(r, poll));
			}
		},
		{ known: knownPcs, poll: pollMs, epoch: clock === 'epoch' },
	);
}

/** When the first RTP packet arrives on a peer connection created after the first
 * `knownPcs` ones (needs trackPeerConnections): Date.now() in the page. */
export function firstNewPacketAt(page: Page, knownPcs: number): Promise<number> {
	return firstRtpAt(page, knownPcs, { pollMs: 20, clock: 'epoch' });
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
