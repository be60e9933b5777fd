// Scenario `join`: how soon a person who joins a channel is heard, over each network path a
// browser may be left with (testkit/reachability/ReachabilityLab.ts): direct UDP to the media
// port, mediasoup's ICE-TCP candidate with every UDP datagram dropped, relay-only through
// coturn (TURN over UDP) with UDP to the media port dropped, and relay-only through coturn over
// TCP with every UDP datagram dropped. Real Chromium in a network
// namespace of the bench's own (root needed), Parley and coturn on the host end of a veth pair;
// nothing leaves the machine.
// - join time: from connect() in the speaker's page (WebSocket open, join, transports, ICE,
//   DTLS, produce) to the first RTP packet at a listener already in the channel (both pages in
//   one browser: one clock). Each join is a fresh listener and speaker in a channel of its own.
// - round trip of the selected candidate pair (the browser's ICE consent checks), per path: the
//   relay's added latency is its round trip minus the direct one. On a veth pair both are
//   well under a millisecond, so this is coturn's own cost per packet, not a network's.
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { netAdminUnavailable } from '../../testkit/netns.js';
import { NETWORK_PATHS, ReachabilityLab, type NetworkPath, type PathInfo } from '../../testkit/reachability/ReachabilityLab.js';
import { type JoinPhaseSample, type JoinPhaseSummary, summarizeJoinPhases } from '../metrics/joinPhases.js';
import { type LatencySummary, summarize } from '../metrics/stats.js';
import { benchServerEnv } from '../targets/ParleyTarget.js';

export interface JoinTimeOptions {
	paths: NetworkPath[];
	/** Joins measured per path. */
	joinsPerPath: number;
	/** Joins per path made first and not counted. */
	warmUpJoins: number;
}

export const JOIN_DEFAULTS: JoinTimeOptions = { paths: [...NETWORK_PATHS], joinsPerPath: 10, warmUpJoins: 1 };

export interface JoinPathResult {
	path: NetworkPath;
	joins: number;
	failed: number;
	errors: string[];
	joinMs: LatencySummary;
	/** The joins made first and not counted (ms, in order): what a fresh browser page and path pay once. */
	warmUpJoinMs?: number[];
	/** The pair the speaker's send transport selected, e.g. `relay/udp (relay over udp)`. */
	selectedPair: string;
	/** Round trip of the speaker's selected pair (ms), over the joins that had one. */
	roundTripMs: LatencySummary | null;
	/** Dominant frequency the listeners heard (Hz, median). */
	heardHz: number | null;
	/** Where the joins' time went (CHROMIUM_JOIN_PHASES), in order. */
	phases: JoinPhaseSummary[];
}

/**
 * A Chromium join's phases (the speaker's client.joinTimings and send connection, the
 * listener's joinTimings and recv connection, the first packet in), from the speaker's
 * connect(). The listener's receive connection comes up when it joins, before the speaker
 * connects (its phases are negative), so the speaker's join is what the time is spent on.
 */
export const CHROMIUM_JOIN_PHASES = [
	['listener.recvConnectRequested', "listener, ahead: recv transport 'connect' (placeholder receiver)"],
	['listener.recv.iceConnected', 'listener, ahead: recv connection ICE connected'],
	['listener.recv.dtlsConnected', 'listener, ahead: recv connection DTLS connected'],
	['socketCreated', 'speaker: WebSocket created (connect())'],
	['wsOpen', 'speaker: WebSocket open'],
	['welcome', 'speaker: welcome (router capabilities)'],
	['micRequested', 'speaker: publishMicrophone() called (getUserMedia)'],
	['deviceLoaded', 'speaker: mediasoup-client Device loaded'],
	['micOpened', 'speaker: microphone track (getUserMedia resolved)'],
	['joinReplied', 'speaker: join reply (with both transports)'],
	['transportsCreated', 'speaker: transports set up in the browser'],
	['sendConnectRequested', "speaker: send transport 'connect' (connectTransport sent, not waited for)"],
	['produceRequested', "speaker: send transport 'produce' (produce sent)"],
	['send.iceConnected', 'speaker: send connection ICE connected'],
	['send.dtlsConnected', 'speaker: send connection DTLS connected'],
	['sendConnectReplied', 'speaker: connectTransport reply'],
	['listener.newConsumer', 'listener: newConsumer notification'],
	['produced', 'speaker: produce reply (microphone published)'],
	['listener.firstTrack', 'listener: consumer created in the browser (resumeConsumer sent with it)'],
	['listener.firstConsumerResumed', 'listener: resumeConsumer reply'],
	['firstRtpIn', "listener: first RTP packet in (remote track 'unmute', or the getStats poll if earlier)"],
	['firstRtpInPolled', 'listener: first RTP packet in, as getStats shows it (polled every 5 ms)'],
] as const;

export interface JoinTimeResult {
	options: JoinTimeOptions;
	path: string;
	toneHz: number;
	paths: JoinPathResult[];
	/** Median round trip through the relay minus the direct one (ms). */
	relayAddedRoundTripMs: number | null;
}

const TONE_HZ = 1000;

function pairLabel(p: PathInfo | undefined): string {
	if (!p) return 'none';
	return `${p.candidateType}/${p.protocol}${p.relayProtocol ? ` (relay over ${p.relayProtocol})` : ''}`;
}

export async function runJoinTime(options: JoinTimeOptions, log: (line: string) => void): Promise<JoinTimeResult> {
	const why = netAdminUnavailable();
	if (why) throw new Error(`join: ${why}`);
	const dataDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-join-'));
	const lab = await ReachabilityLab.start({
		env: benchServerEnv(dataDir),
		jwtSecret: `bench-join-${process.pid}-0123456789abcdef0123456789`,
		turnSecret: `bench-turn-${process.pid}-0123456789abcdef0123456789`,
		toneHz: TONE_HZ,
	});
	try {
		const results: JoinPathResult[] = [];
		for (const p of options.paths) {
			const joins: number[] = [];
			const roundTrips: number[] = [];
			const heard: number[] = [];
			const phaseSamples: JoinPhaseSample[] = [];
			const errors: string[] = [];
			const warmUps: number[] = [];
			let selected: PathInfo | undefined;
			// Joins first that are not counted: the first over a path pays for what the browser and
			// the server set up once (a TCP listener's first accept, coturn's first allocation).
			for (let i = -options.warmUpJoins; i < options.joinsPerPath; i++) {
				try {
					const r = await lab.call(p);
					if (i < 0) {
						warmUps.push(r.joinMs);
						continue;
					}
					joins.push(r.joinMs);
					phaseSamples.push(r.phases);
					if (r.frequencyHz !== null) heard.push(r.frequencyHz);
					const send = r.speaker.find((x) => x.direction === 'send');
					selected ??= send;
					if (typeof send?.roundTripMs === 'number') roundTrips.push(send.roundTripMs);
				} catch (err) {
					if (i >= 0) errors.push((err as Error).message);
				}
			}
			const result: JoinPathResult = {
				path: p,
				joins: joins.length,
				failed: errors.length,
				errors: [...new Set(errors)],
				joinMs: summarize(joins),
				warmUpJoinMs: warmUps,
				selectedPair: pairLabel(selected),
				roundTripMs: roundTrips.length ? summarize(roundTrips) : null,
				heardHz: heard.length ? summarize(heard).p50 : null,
				phases: summarizeJoinPhases(CHROMIUM_JOIN_PHASES, phaseSamples),
			};
			results.push(result);
			log(`join ${p}: ${result.joins} joins, p50 ${result.joinMs.p50.toFixed(0)} ms, p95 ${result.joinMs.p95.toFixed(0)} ms, p99 ${result.joinMs.p99.toFixed(0)} ms, max ${result.joinMs.max.toFixed(0)} ms, pair ${result.selectedPair}, round trip p50 ${result.roundTripMs?.p50.toFixed(2) ?? '-'} ms${result.failed ? `, ${result.failed} failed` : ''}`);
		}
		const rtt = (p: NetworkPath) => results.find((r) => r.path === p)?.roundTripMs?.p50;
		const relay = rtt('turn-relay');
		const direct = rtt('direct-udp');
		return {
			options,
			path: 'Chromium (network namespace, veth) -> Parley (1 worker) -> Chromium; TURN: coturn 4.6 (UDP and TCP) on the host end',
			toneHz: TONE_HZ,
			paths: results,
			relayAddedRoundTripMs: relay !== undefined && direct !== undefined ? relay - direct : null,
		};
	} finally {
		await lab.close();
		rmSync(dataDir, { recursive: true, force: true });
	}
}
