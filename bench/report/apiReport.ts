// Tables, headlines and the report section of the `api` scenario (the gRPC backend API).
import type { ApiResult } from '../scenarios/api.js';
import type { Headline } from './BenchRun.js';
import { type Cell, markdownTable, ms, num, textTable } from './table.js';

const FAN_OUT_HEADERS = ['subscribers', 'connections', 'events', 'commits/s', 'commit p50', 'delivery p50', 'p99', 'max', 'last subscriber p99', 'deliveries/s', 'missing', 'duplicates', 'longest event-loop stall'];
const CALL_HEADERS = ['method', 'calls', 'ok', 'errors', 'p50', 'p99', 'max'];

function fanOutRow(a: ApiResult): Cell[] {
	const f = a.fanOut;
	return [f.subscribers, f.connections, f.events, num(f.commitsPerSecond, 1), ms(f.commitMs.p50), ms(f.deliveryMs.p50, 1), ms(f.deliveryMs.p99, 1), ms(f.deliveryMs.max, 1), ms(f.lastSubscriberMs.p99, 1), num(f.deliveriesPerSecond), f.missing, f.duplicates, ms(f.eventLoopMaxStallMs, 0)];
}

function callRows(a: ApiResult): Cell[][] {
	return a.moderation.methods.map((m) => [m.method, m.calls, m.succeeded, Object.entries(m.errors).map(([k, v]) => `${k} ${v}`).join(', ') || '0', ms(m.latencyMs.p50), ms(m.latencyMs.p99), ms(m.latencyMs.max)]);
}

function loadLine(a: ApiResult): string {
	const m = a.moderation;
	return `${m.peers} publishers + ${m.listeners} listeners (${m.audio.consumers} consumers), ${num(m.issuedPerSecond)} calls/s issued (asked ${m.callRate}) for ${m.durationS} s; audio meanwhile: ${m.audio.packetsSent} RTP packets sent by the publishers, ${m.audio.packetsArrived} arrived at the ${m.listeners} listeners (the worker forwards nothing of a muted producer); longest event-loop stall of the bench process ${ms(m.eventLoopMaxStallMs, 0)}`;
}

export function apiHeadlines(a: ApiResult | undefined): Headline[] {
	if (!a) return [];
	const f = a.fanOut;
	const out: Headline[] = [
		{
			label: `SubscribeStatus fan-out, ${f.subscribers} subscribers on ${f.connections} connections: commit to delivery p50 / p99 / max`,
			value: `${ms(f.deliveryMs.p50, 1)} / ${ms(f.deliveryMs.p99, 1)} / ${ms(f.deliveryMs.max, 1)}; ${num(f.deliveriesPerSecond)} deliveries/s at ${num(f.commitsPerSecond, 1)} commits/s; missing ${f.missing}, duplicates ${f.duplicates}`,
			path: a.path,
		},
	];
	for (const m of a.moderation.methods) out.push({ label: `${m.method} under load: p50 / p99 / max`, value: `${ms(m.latencyMs.p50, 1)} / ${ms(m.latencyMs.p99, 1)} / ${ms(m.latencyMs.max, 1)} (${m.calls - m.succeeded} errors)`, path: loadLine(a) });
	return out;
}

export function apiTextParts(a: ApiResult | undefined): string[] {
	if (!a) return [];
	const errors = a.fanOut.streamErrors.length ? `\nstream errors: ${a.fanOut.streamErrors.join('; ')}` : '';
	return [`Backend API: SubscribeStatus fan-out (${a.path})\n${textTable(FAN_OUT_HEADERS, [fanOutRow(a)])}${errors}`, `Backend API: moderation calls under load (${loadLine(a)})\n${textTable(CALL_HEADERS, callRows(a))}`];
}

export function apiMarkdown(a: ApiResult | undefined): string[] {
	if (!a) return [];
	const o = a.options;
	const lines = ['## Backend API (gRPC): SubscribeStatus fan-out, moderation under load', ''];
	lines.push(
		`Path: ${a.path}. ${o.subscribers} SubscribeStatus streams with one filter (every message to one channel) over ${a.fanOut.connections} grpc-js connections; after a warm-up event seen by all of them, ${o.events} status changes (a message created, then ready, alternately) committed through the node's store at ${o.eventRate}/s. Delivery = the store's insert/update resolved (committed, with its event-log row) to the event in the subscriber's handler; *last subscriber* = until every subscriber had it; deliveries/s = deliveries / first commit to last delivery. Every subscriber must get every event once.`,
		'',
	);
	lines.push(markdownTable(FAN_OUT_HEADERS, [fanOutRow(a)]), '');
	if (a.fanOut.streamErrors.length) lines.push(`Stream errors: ${a.fanOut.streamErrors.join('; ')}`, '');
	lines.push(`Moderation: ${loadLine(a)}. ListParticipants and MuteParticipant alternate, issued open loop (no call waits for another); a mute call mutes or unmutes the next publisher in turn. Latency = call to reply.`, '');
	lines.push(markdownTable(CALL_HEADERS, callRows(a)), '');
	return lines;
}
