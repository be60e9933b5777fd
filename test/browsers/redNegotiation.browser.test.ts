// How Chromium and Parley agree on Opus RED (RFC 2198), checked on the SDP, on the server's
// producer and on the packets themselves (a DirectTransport consumer inside the router):
// - the library produces with audio/red when the router offers it; the answer lists red then
//   Opus with the fmtp "<opus>/<opus>", without which Chromium sends plain Opus;
// - Chromium 156 sends one redundant block (distance 1) by default, whatever the fmtp lists
//   (seen: "111/111/111" in the answer changes nothing); the field trial
//   WebRTC-Audio-Red-For-Opus/Enabled-2/ makes it two;
// - a Chromium listener negotiates RED too; its getStats names the codec audio/opus (RED is
//   unwrapped before the decoder) and counts the copies of frames it already had as
//   packetsDiscarded;
// - opusRed: false (or a router without audio/red) publishes plain Opus.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { ParleyServer } from '../../server/ParleyServer.js';
import { launchChromium, loadClientLibrary } from '../../testkit/browsers/chromium.js';
import { hearFirstRemoteStream, trackPeerConnections } from '../../testkit/browsers/pageAudio.js';
import { RtpTap } from '../../testkit/rtpTap.js';
import { makeTempFolder, removeTempFolder } from '../../testkit/services/daemon.js';
import { writeToneWav } from '../../testkit/wav.js';
import { testConfig } from '../helpers/config.js';
import { testLogger } from '../helpers/logger.js';

const SECRET = 'red-negotiation-secret-0123456789-abcdefgh';
const TONE_HZ = 440;

interface SdpRed {
	/** Payload types of the audio m-line, in order. */
	formats: number[];
	red: number | null;
	opus: number | null;
	redFmtp: string | null;
}

/** The payload types and the red and Opus entries of an SDP's last active audio m-section (a
 * listener's receive SDP begins with the client's placeholder section, disabled). */
function sdpRed(description: string): SdpRed {
	const sdp = description.split(/^(?=m=)/m).filter((m) => m.startsWith('m=audio') && !/^a=inactive\r?$/m.test(m)).at(-1) ?? '';
	const formats = (/^m=audio \d+ \S+ ([\d ]+)$/m.exec(sdp)?.[1] ?? '').trim().split(' ').map(Number);
	const pt = (codec: string) => {
		const m = new RegExp(`^a=rtpmap:(\\d+) ${codec}/48000/2$`, 'm').exec(sdp);
		return m ? Number(m[1]) : null;
	};
	const red = pt('red');
	const redFmtp = red === null ? null : (new RegExp(`^a=fmtp:${red} (.*)$`, 'm').exec(sdp)?.[1]?.trim() ?? null);
	return { formats, red, opus: pt('opus'), redFmtp };
}

describe('Opus RED negotiation with Chromium', () => {
	let server: ParleyServer;
	/** Chromium as shipped (RED distance 1). */
	let chromium: Browser;
	/** With the field trial for distance 2. */
	let chromiumD2: Browser;
	const dir = makeTempFolder('red-negotiation');
	const key = new TextEncoder().encode(SECRET);
	let channels = 0;

	beforeAll(async () => {
		const wav = `${dir}/tone.wav`;
		writeToneWav(wav, TONE_HZ, 10);
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET }), testLogger());
		[chromium, chromiumD2] = await Promise.all([launchChromium({ fakeMicWav: wav }), launchChromium({ fakeMicWav: wav, extraArgs: ['--force-fieldtrials=WebRTC-Audio-Red-For-Opus/Enabled-2/'] })]);
	}, 60_000);

	afterAll(async () => {
		await Promise.all([chromium?.close(), chromiumD2?.close()]);
		await server?.shutdown('test end');
		removeTempFolder(dir);
	});

	/** A page with `window.client` joined to `channel` (publishing when `publish` is set, with `opusRed`). */
	async function joined(browser: Browser, name: string, channel: string, { publish, opusRed }: { publish: boolean; opusRed?: boolean }): Promise<Page> {
		const page = await browser.newPage();
		page.on('pageerror', (err) => console.error(`[${name}] ${err.message}`));
		await page.addInitScript(trackPeerConnections);
		await page.goto(`http://127.0.0.1:${server.http.port}/`);
		await loadClientLibrary(page);
		const token = await mintAccessToken({ userId: name, displayName: name, channels: ['*'], grants: { canPublish: publish, canSubscribe: true }, ttlS: 600 }, key);
		await page.evaluate(
			async ({ url, token, channel, publish, opusRed }) => {
				const w = window as unknown as Record<string, unknown> & { ParleyClient: new (o: unknown) => { connect(): Promise<unknown>; join(c: string): Promise<unknown>; publishMicrophone(): Promise<void> } };
				const client = new w.ParleyClient({ url, token, ...(opusRed !== undefined && { opusRed }) });
				w.client = client;
				await client.connect();
				await client.join(channel);
				if (publish) await client.publishMicrophone();
			},
			{ url: `ws://127.0.0.1:${server.http.port}/ws`, token, channel, publish, opusRed },
		);
		return page;
	}

	/** The local and remote SDP of the page's open connection that sends (or receives) audio. */
	function descriptions(page: Page, direction: 'sendonly' | 'recvonly'): Promise<{ local: string; remote: string }> {
		return page.evaluate((dir) => {
			const pcs = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((pc) => pc.connectionState !== 'closed' && pc.localDescription?.sdp.includes(`a=${dir}`));
			const pc = pcs.at(-1)!;
			return { local: pc.localDescription!.sdp, remote: pc.remoteDescription!.sdp };
		}, direction);
	}

	/** The only producer in `channel`, and a RED tap on it that has seen ~1 s of packets. */
	async function tapOf(channel: string): Promise<{ codecs: { mimeType: string; parameters: unknown }[]; tap: RtpTap; packetCount: number }> {
		const ch = server.channels.get(channel)!;
		const producer = [...ch.peers.values()].flatMap((p) => [...p.producers.values()])[0]!;
		const tap = await RtpTap.open(ch.router, producer.id, 'red');
		await new Promise((r) => setTimeout(r, 1000));
		const [stats] = await producer.getStats();
		return { codecs: producer.rtpParameters.codecs.map((c) => ({ mimeType: c.mimeType, parameters: c.parameters })), tap, packetCount: stats?.packetCount ?? 0 };
	}

	it('a Chromium publisher sends RED at distance 1 by default, and a Chromium listener receives RED', async () => {
		const channel = `room-${++channels}`;
		const listener = await joined(chromium, 'listener', channel, { publish: false });
		const publisher = await joined(chromium, 'publisher', channel, { publish: true });
		try {
			expect(await publisher.evaluate('window.client.producerCodecs')).toEqual(['audio/red', 'audio/opus']);
			// Chromium offers red with its Opus as blocks; the answer puts red first, Opus next, with that fmtp.
			const sent = await descriptions(publisher, 'sendonly');
			const offer = sdpRed(sent.local);
			const answer = sdpRed(sent.remote);
			console.log(`publisher offer: red ${offer.red} fmtp "${offer.redFmtp}", opus ${offer.opus}; answer formats ${answer.formats.join(' ')}, red fmtp "${answer.redFmtp}"`);
			expect(offer.redFmtp).toBe(`${offer.opus}/${offer.opus}`);
			expect(answer.formats).toEqual([offer.red, offer.opus]);
			expect(answer.redFmtp).toBe(`${offer.opus}/${offer.opus}`);

			// The server's producer: [red, opus], RED's fmtp (the browser's payload types) left out.
			const { codecs, tap, packetCount } = await tapOf(channel);
			try {
				expect(codecs.map((c) => c.mimeType)).toEqual(['audio/red', 'audio/opus']);
				expect(codecs[0]!.parameters).toEqual({});
				expect(packetCount).toBeGreaterThan(40);
				// The packets: RED with one redundant block, the frame 20 ms (960 ticks) before, its
				// blocks in the tap's own Opus payload type (the worker maps them per consumer).
				expect(tap.packets.length).toBeGreaterThan(30);
				// A packet after a hiccup in the capture (or the stream's first) may carry none.
				expect(tap.packets.every((p) => p.redOffsets !== null && p.redOffsets.length <= 1)).toBe(true);
				const one = tap.packets.filter((p) => p.redOffsets?.length === 1 && p.redOffsets[0] === 960).length;
				expect(one).toBeGreaterThanOrEqual(0.9 * tap.packets.length);
				const tapOpus = tap.codecs.indexOf('audio/opus');
				expect(tapOpus).toBe(1);
				expect(tap.malformed).toBe(0);
				console.log(`distance 1: ${tap.packets.length} RED packets, ${JSON.stringify(tap.redCoverage().distances)}, ~${Math.round(tap.packets.reduce((s, p) => s + p.payloadBytes, 0) / tap.packets.length)} payload bytes each`);
			} finally {
				tap.close();
			}

			// The listener negotiated RED: its offer lists red first with its own Opus as blocks.
			expect(await listener.evaluate(`[...window.client.peers.keys()].map((id) => window.client.peerCodecs(id))`)).toEqual([[['audio/red', 'audio/opus']]]);
			const received = sdpRed((await descriptions(listener, 'recvonly')).remote);
			expect(received.formats).toEqual([received.red, received.opus]);
			expect(received.redFmtp).toBe(`${received.opus}/${received.opus}`);
			expect(Math.abs((await hearFirstRemoteStream(listener, 20)) - TONE_HZ) / TONE_HZ).toBeLessThan(0.03);
			const inbound = await listener.evaluate(async () => {
				const out: { codec: string; packetsReceived: number; packetsDiscarded: number }[] = [];
				for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs.filter((p) => p.connectionState !== 'closed')) {
					const report = (await pc.getStats()) as unknown as Map<string, { type: string; kind?: string; codecId?: string; mimeType?: string; packetsReceived?: number; packetsDiscarded?: number }>;
					report.forEach((s) => {
						if (s.type === 'inbound-rtp' && s.kind === 'audio') out.push({ codec: report.get(s.codecId!)?.mimeType ?? '?', packetsReceived: s.packetsReceived ?? 0, packetsDiscarded: s.packetsDiscarded ?? 0 });
					});
				}
				return out;
			});
			console.log(`listener getStats: ${JSON.stringify(inbound)}`);
			expect(inbound).toHaveLength(1);
			expect(inbound[0]!.codec).toBe('audio/opus');
			// Every packet but the first brings one copy of a frame already decoded.
			expect(inbound[0]!.packetsDiscarded).toBeGreaterThan(0.8 * inbound[0]!.packetsReceived);
		} finally {
			await publisher.close();
			await listener.close();
		}
	}, 60_000);

	it('the field trial WebRTC-Audio-Red-For-Opus/Enabled-2/ makes it distance 2', async () => {
		const channel = `room-${++channels}`;
		const publisher = await joined(chromiumD2, 'publisher-d2', channel, { publish: true });
		try {
			// The answer's fmtp is the same as at distance 1: the field trial alone decides.
			expect(sdpRed((await descriptions(publisher, 'sendonly')).remote).redFmtp).toMatch(/^\d+\/\d+$/);
			const { tap } = await tapOf(channel);
			try {
				expect(tap.packets.length).toBeGreaterThan(30);
				// Two copies (the frames 40 and 20 ms back) in every packet once the encoder has
				// two frames behind it; a packet after a hiccup in the capture (a loaded machine)
				// may carry fewer, never more.
				const shapes = new Map<string, number>();
				for (const p of tap.packets) shapes.set(JSON.stringify(p.redOffsets ?? null), (shapes.get(JSON.stringify(p.redOffsets ?? null)) ?? 0) + 1);
				console.log(`distance 2: block offsets per packet ${JSON.stringify([...shapes])}`);
				const two = tap.packets.filter((p) => p.redOffsets?.length === 2 && p.redOffsets[0] === 1920 && p.redOffsets[1] === 960).length;
				expect(two, JSON.stringify([...shapes])).toBeGreaterThanOrEqual(0.9 * tap.packets.length);
				expect(tap.packets.every((p) => (p.redOffsets?.length ?? 0) <= 2)).toBe(true);
				console.log(`distance 2: ${tap.packets.length} RED packets, ~${Math.round(tap.packets.reduce((s, p) => s + p.payloadBytes, 0) / tap.packets.length)} payload bytes each`);
			} finally {
				tap.close();
			}
		} finally {
			await publisher.close();
		}
	}, 60_000);

	it('opusRed: false publishes plain Opus', async () => {
		const channel = `room-${++channels}`;
		const publisher = await joined(chromium, 'publisher-plain', channel, { publish: true, opusRed: false });
		try {
			expect(await publisher.evaluate('window.client.producerCodecs')).toEqual(['audio/opus']);
			const answer = sdpRed((await descriptions(publisher, 'sendonly')).remote);
			expect(answer.red).toBeNull();
			const { codecs, tap } = await tapOf(channel);
			try {
				expect(codecs.map((c) => c.mimeType)).toEqual(['audio/opus']);
				// The tap asked for RED but the producer has none: it gets Opus as sent.
				expect(tap.codecs).toEqual(['audio/opus']);
				expect(tap.packets.length).toBeGreaterThan(30);
				expect(tap.packets.every((p) => p.redOffsets === null)).toBe(true);
			} finally {
				tap.close();
			}
		} finally {
			await publisher.close();
		}
	}, 60_000);
});
