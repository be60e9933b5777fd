// Tables, headlines and report sections of the join-time scenario.
import type { JoinTimeResult } from '../scenarios/joinTime.js';
import type { Headline } from './BenchRun.js';
import { type Cell, markdownTable, ms, num, textTable } from './table.js';

const HEADERS = ['path', 'joins', 'failed', 'join p50', 'join p95', 'join max', 'selected pair', 'round trip p50', 'heard Hz'];

function rows(j: JoinTimeResult): Cell[][] {
	return j.paths.map((p): Cell[] => [p.path, p.joins, p.failed, ms(p.joinMs.p50, 0), ms(p.joinMs.p95, 0), ms(p.joinMs.max, 0), p.selectedPair, ms(p.roundTripMs?.p50, 2), num(p.heardHz)]);
}

export function joinHeadlines(j: JoinTimeResult | undefined): Headline[] {
	if (!j) return [];
	return [
		{ label: 'Join time (connect() to first audio at a listener), Chromium: direct UDP / ICE-TCP / TURN relay over UDP / over TCP', value: j.paths.map((p) => `${p.path} p50 ${ms(p.joinMs.p50, 0)}`).join(' / '), path: j.path },
		{ label: 'Round trip added by the TURN relay (relay minus direct, median)', value: ms(j.relayAddedRoundTripMs, 2), path: j.path },
	];
}

export function joinTextParts(j: JoinTimeResult | undefined): string[] {
	return j ? [`Join time (${j.path}; ${j.options.joinsPerPath} joins per path)\n${textTable(HEADERS, rows(j))}\nrelay added round trip: ${ms(j.relayAddedRoundTripMs, 2)}`] : [];
}

export function joinMarkdown(j: JoinTimeResult | undefined): string[] {
	if (!j) return [];
	const errors = j.paths.flatMap((p) => p.errors.map((e) => `${p.path}: ${e}`));
	return [
		'## Join time: direct UDP, ICE-TCP, TURN relay',
		'',
		`Path: ${j.path}. Per path, ${j.options.joinsPerPath} joins after ${j.options.warmUpJoins} not counted; each join is a fresh listener page, then a fresh speaker page (fake microphone: a ${j.toneHz} Hz tone) in a channel of their own. *join* = from connect() in the speaker's page (WebSocket, join, transports, ICE, DTLS, produce) to the first RTP packet at the listener, both pages in one browser (one clock). The paths: *direct-udp* no firewall; *ice-tcp* every UDP datagram dropped in the namespace (nftables), so ICE settles on mediasoup's TCP candidate; *turn-relay* UDP to the media ports dropped and relayOnly (iceTransportPolicy relay), through coturn over UDP with credentials Parley minted; *turn-tcp* every UDP datagram dropped and relayOnly, through coturn over TCP. *round trip* = currentRoundTripTime of the speaker's selected candidate pair (ICE consent checks); the relay's added round trip is the relay's median minus the direct one's.`,
		'',
		markdownTable(HEADERS, rows(j)),
		'',
		`Relay added round trip (median): ${ms(j.relayAddedRoundTripMs, 2)}.`,
		'',
		...(errors.length ? [`Errors: ${errors.join('; ')}`, ''] : []),
	];
}
