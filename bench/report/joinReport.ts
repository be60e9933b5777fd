// Tables, headlines and report sections of the join-time scenario.
import type { JoinPhaseSummary } from '../metrics/joinPhases.js';
import type { JoinTimeResult } from '../scenarios/joinTime.js';
import type { SignalingResult } from '../scenarios/signaling.js';
import type { Headline } from './BenchRun.js';
import { type Cell, markdownTable, ms, num, textTable } from './table.js';

const HEADERS = ['path', 'joins', 'failed', 'join p50', 'join p95', 'join p99', 'join max', 'selected pair', 'round trip p50', 'heard Hz'];

function rows(j: JoinTimeResult): Cell[][] {
	return j.paths.map((p): Cell[] => [p.path, p.joins, p.failed, ms(p.joinMs.p50, 0), ms(p.joinMs.p95, 0), ms(p.joinMs.p99, 0), ms(p.joinMs.max, 0), p.selectedPair, ms(p.roundTripMs?.p50, 2), num(p.heardHz)]);
}

export function joinHeadlines(j: JoinTimeResult | undefined): Headline[] {
	if (!j) return [];
	return [
		{ label: 'Join time (connect() to first audio at a listener), Chromium: direct UDP / ICE-TCP / TURN relay over UDP / over TCP', value: j.paths.map((p) => `${p.path} p50 ${ms(p.joinMs.p50, 0)}, p99 ${ms(p.joinMs.p99, 0)}`).join(' / '), path: j.path },
		{ label: 'Round trip added by the TURN relay (relay minus direct, median)', value: ms(j.relayAddedRoundTripMs, 2), path: j.path },
	];
}

export function joinTextParts(j: JoinTimeResult | undefined): string[] {
	if (!j) return [];
	return [
		`Join time (${j.path}; ${j.options.joinsPerPath} joins per path)\n${textTable(HEADERS, rows(j))}\nrelay added round trip: ${ms(j.relayAddedRoundTripMs, 2)}`,
		...j.paths.filter((p) => p.phases?.length).map((p) => `Join phases, Chromium, ${p.path}\n${textTable(PHASE_HEADERS, phaseRows(p.phases))}`),
	];
}

export function joinMarkdown(j: JoinTimeResult | undefined): string[] {
	if (!j) return [];
	const errors = j.paths.flatMap((p) => p.errors.map((e) => `${p.path}: ${e}`));
	return [
		'## Join time: direct UDP, ICE-TCP, TURN relay',
		'',
		`Path: ${j.path}. Per path, ${j.options.joinsPerPath} joins after ${j.options.warmUpJoins} not counted; each join is a fresh listener page, then a fresh speaker page (fake microphone: a ${j.toneHz} Hz tone) in a channel of their own. *join* = from connect() in the speaker's page (WebSocket, join, transports, ICE, DTLS, produce) to the first RTP packet at the listener, both pages in one browser (one clock): the listener's remote track unmuting (Chromium unmutes it on the first packet), or a getStats poll every 5 ms seeing a packet if that is earlier (getStats answers from a report up to tens of ms old, so the poll alone reads late; *firstRtpInPolled* shows by how much). The paths: *direct-udp* no firewall; *ice-tcp* every UDP datagram dropped in the namespace (nftables), so ICE settles on mediasoup's TCP candidate; *turn-relay* UDP to the media ports dropped and relayOnly (iceTransportPolicy relay), through coturn over UDP with credentials Parley minted; *turn-tcp* every UDP datagram dropped and relayOnly, through coturn over TCP. *round trip* = currentRoundTripTime of the speaker's selected candidate pair (ICE consent checks); the relay's added round trip is the relay's median minus the direct one's.`,
		'',
		markdownTable(HEADERS, rows(j)),
		'',
		`Relay added round trip (median): ${ms(j.relayAddedRoundTripMs, 2)}.`,
		'',
		...(j.paths.some((p) => p.warmUpJoinMs?.length) ? [`Joins not counted (the first over each path): ${j.paths.map((p) => `${p.path} ${(p.warmUpJoinMs ?? []).map((x) => ms(x, 0)).join(', ') || '-'}`).join('; ')}.`, ''] : []),
		...j.paths.filter((p) => p.phases?.length).flatMap((p) => [`Join phases, ${p.path}: from the speaker's connect() (its WebSocket created), both pages' clocks made one. ${PHASE_NOTE}`, '', markdownTable(PHASE_HEADERS, phaseRows(p.phases)), '']),
		...(errors.length ? [`Errors: ${errors.join('; ')}`, ''] : []),
	];
}

// ---- join phases (where a join's time goes) ---------------------------------------------

const PHASE_HEADERS = ['phase', 'what', 'joins', 'from connect p50', 'from connect p99', 'increment p50', 'increment p99'];

function phaseRows(phases: JoinPhaseSummary[]): Cell[][] {
	return phases.map((p): Cell[] => [p.phase, p.description, p.count, ms(p.fromConnectMs.p50, 1), ms(p.fromConnectMs.p99, 1), ms(p.incrementMs.p50, 1), ms(p.incrementMs.p99, 1)]);
}

const PHASE_NOTE =
	'*from connect* = from starting to open the WebSocket to the phase; *increment* = what the phase added after the latest earlier phase of the same join (0 when it finished while an earlier one was still running: ICE beside a signaling round trip).';

export function signalingPhaseTextParts(s: SignalingResult | undefined): string[] {
	const phases = s?.firstAudio.phases;
	const one = s?.firstAudioOneAtATime;
	return [
		...(phases?.length ? [`First audio, join phases of ${s!.firstAudio.succeeded} werift listeners joining at once\n${textTable(PHASE_HEADERS, phaseRows(phases))}`] : []),
		...(one?.phases.length ? [`First audio, join phases of ${one.succeeded} werift listeners joining one at a time\n${textTable(PHASE_HEADERS, phaseRows(one.phases))}`] : []),
	];
}

export function signalingPhaseMarkdown(s: SignalingResult | undefined): string[] {
	const phases = s?.firstAudio.phases;
	const one = s?.firstAudioOneAtATime;
	return [
		...(phases?.length ? [`First audio, join phases of the ${s!.firstAudio.succeeded} werift listeners (joining at once). ${PHASE_NOTE}`, '', markdownTable(PHASE_HEADERS, phaseRows(phases)), ''] : []),
		...(one?.phases.length
			? [
					`First audio, join phases of ${one.succeeded} werift listeners joining one at a time (each after the previous one heard audio and left): what one person joining waits, without the bench's own werift peers (JavaScript ICE, DTLS and SRTP on one event loop) queueing behind each other.`,
					'',
					markdownTable(PHASE_HEADERS, phaseRows(one.phases)),
					'',
				]
			: []),
	];
}
