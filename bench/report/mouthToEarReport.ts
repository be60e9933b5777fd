// Tables, headlines and report sections of the mouth-to-ear scenario.
import type { MouthToEarCondition, MouthToEarResult } from '../scenarios/mouthToEar.js';
import type { Headline } from './BenchRun.js';
import { type Cell, markdownTable, ms, num, pct, textTable } from './table.js';

const HEADERS = ['path', 'loss', 'bursts heard/sent', 'unmatched', 'm2e p50', 'm2e p99', 'm2e max', 'jitter buffer', 'JB target', 'lost', 'concealed', 'FEC packets', 'codec (speaker)'];

function rows(m: MouthToEarResult): Cell[][] {
	return m.conditions.map((c): Cell[] => [
		c.path,
		`${c.lossPercent}%`,
		c.error ? `error: ${c.error}` : `${c.burstsDetected}/${c.burstsSent}`,
		c.unmatchedOnsets,
		ms(c.mouthToEarMs?.p50, 1),
		ms(c.mouthToEarMs?.p99, 1),
		ms(c.mouthToEarMs?.max, 1),
		ms(c.listener?.jitterBufferMs, 1),
		ms(c.listener?.jitterBufferTargetMs, 1),
		pct(c.listener?.lossShare, 1),
		pct(c.listener?.concealedShare, 1),
		c.listener?.fecPacketsReceived,
		c.speaker?.codec ?? '-',
	]);
}

const COMPARISON_HEADERS = ['loss', 'Parley p50', 'direct p50', 'Parley - direct p50', 'Parley p99', 'direct p99', 'Parley - direct p99', 'goal: <= +5 ms p99', 'per burst Parley - direct p50 / p99'];

function find(m: MouthToEarResult, path: MouthToEarCondition['path'], loss: number): MouthToEarCondition | undefined {
	return m.conditions.find((c) => c.path === path && c.lossPercent === loss);
}

function signed(v: number | null): string {
	return v === null ? '-' : `${v >= 0 ? '+' : ''}${v.toFixed(1)} ms`;
}

function comparisonRows(m: MouthToEarResult): Cell[][] {
	return m.comparisons.map((x): Cell[] => {
		const a = find(m, 'parley', x.lossPercent)?.mouthToEarMs;
		const b = find(m, 'direct', x.lossPercent)?.mouthToEarMs;
		const perBurst = x.perBurstAddedMs ? `${signed(x.perBurstAddedMs.p50)} / ${signed(x.perBurstAddedMs.p99)}` : '-';
		return [`${x.lossPercent}%`, ms(a?.p50, 1), ms(b?.p50, 1), signed(x.addedP50Ms), ms(a?.p99, 1), ms(b?.p99, 1), signed(x.addedP99Ms), x.withinAddedGoal === null ? '-' : x.withinAddedGoal ? 'yes' : 'NO', perBurst];
	});
}

function p99At5(m: MouthToEarResult): string {
	const c = find(m, 'parley', 5)?.mouthToEarMs;
	if (!c) return 'not measured (5% not among the loss levels)';
	return `${ms(c.p99, 1)} (${m.p99At5PctWithinGoal ? 'within' : 'NOT within'} ${m.goals.p99At5PctMs} ms)`;
}

export function mouthToEarHeadlines(m: MouthToEarResult | undefined): Headline[] {
	if (!m) return [];
	return [
		{
			label: 'Mouth-to-ear p50 / p99, Chromium to Chromium: Parley vs direct, per uplink loss',
			value: m.options.lossPercents.map((loss) => `${loss}%: ${ms(find(m, 'parley', loss)?.mouthToEarMs?.p50, 0)}/${ms(find(m, 'parley', loss)?.mouthToEarMs?.p99, 0)} vs ${ms(find(m, 'direct', loss)?.mouthToEarMs?.p50, 0)}/${ms(find(m, 'direct', loss)?.mouthToEarMs?.p99, 0)}`).join('; '),
			path: m.path,
		},
		{ label: `Parley added mouth-to-ear p99 (goal <= ${m.goals.addedP99Ms} ms at every loss level)`, value: m.comparisons.map((x) => `${x.lossPercent}%: ${signed(x.addedP99Ms)}`).join(', '), path: m.path },
		{ label: `Mouth-to-ear p99 through Parley at 5% loss (goal <= ${m.goals.p99At5PctMs} ms)`, value: p99At5(m), path: m.path },
	];
}

export function mouthToEarTextParts(m: MouthToEarResult | undefined): string[] {
	if (!m) return [];
	return [
		`Mouth-to-ear (${m.options.durationS} s per path and loss level; load average ${m.loadAverage.before.join(' ')} before, ${m.loadAverage.after.join(' ')} after)\n${textTable(HEADERS, rows(m))}`,
		`Mouth-to-ear, Parley against direct\n${textTable(COMPARISON_HEADERS, comparisonRows(m))}\np99 through Parley at 5% loss: ${p99At5(m)}`,
	];
}

export function mouthToEarMarkdown(m: MouthToEarResult | undefined): string[] {
	if (!m) return [];
	const o = m.options;
	const fmtps = [...new Set(m.conditions.map((c) => c.speaker?.opusFmtp).filter((f): f is string => !!f))];
	const levels = (side: 'speaker' | 'listener') => m.conditions.map((c) => num(c.onsetLevel[side], 3)).join(', ');
	return [
		'## Mouth-to-ear: Chromium to Chromium, through Parley and direct, under uplink loss',
		'',
		`Path: ${m.path}. Per loss level (${o.lossPercents.map((l) => `${l}%`).join(', ')}), ${o.together ? "both paths at once from one capture track (Parley's client publishes it and the direct connection sends the same track; the listener page hears both, a detector each), so each burst is timed on both paths under the same machine load (*per burst* = Parley's latency minus direct's for the bursts heard on both), with fresh pages" : 'both paths one after the other (the order alternates from one level to the next), each with fresh pages'}: connect at 0% loss, the loss rule on, ${o.warmUpS} s warm-up (the jitter buffer adapts), then a ${o.durationS} s window. The speaker's fake microphone loops ${m.burst.burstMs} ms voiced bursts (a ${m.burst.fundamentalHz} Hz harmonic complex up to 3 kHz, 1 ms rise) every ${m.burst.gapsMs} ms, silence between. Each onset is detected in the speaker's page on its capture track and in the listener's page on the decoded remote track by the same detector: ${m.detector.method}; threshold ${m.detector.thresholdRms} RMS. *m2e* = listener onset - speaker onset (both performance.timeOrigin + performance.now(), one machine clock), per burst; a burst the listener does not hear within ${m.maxMouthToEarMs ?? 450} ms is counted as missed (*heard/sent*), a listener onset that matches no burst as *unmatched*. What the two pages' AudioContexts add (their input FIFOs, output latency) is in both stamps and cancels.`,
		'',
		'Loss: an nftables netdev table on the egress hook of the namespace end of the veth drops that share of the UDP datagrams the speaker sends, at random: the uplink (speaker -> Parley; speaker -> listener on the direct path), the same leg on both paths; TCP (signaling) untouched; on from after the connection is up (ICE and DTLS at 0%). *lost* = the listener\'s ΔpacketsLost over the speaker\'s ΔpacketsSent (getStats at both ends): the share of the speaker\'s packets that never arrived (Chromium sends mostly padding-only probing packets on the audio stream here, which mediasoup does not forward; one lost upstream is still a sequence gap at the listener, so packetsLost over packetsLost + packetsReceived would overstate the Parley path\'s loss). *jitter buffer* = ΔjitterBufferDelay / ΔjitterBufferEmittedCount over the window, *JB target* the same of jitterBufferTargetDelay; *concealed* = ΔconcealedSamples / ΔtotalSamplesReceived; *FEC packets* = ΔfecPacketsReceived.',
		'',
		`Codecs: Parley's client publishes Opus with voiceCodecOptions (mono, in-band FEC, DTX, 20 ms, no NACK; RED when both the router and the browser offer it); the direct path's answer is rewritten to ask the speaker's encoder for what Parley's speaker was told. Opus fmtp the speakers' remote descriptions carried: ${fmtps.map((f) => `\`${f}\``).join(', ') || '-'}.`,
		'',
		markdownTable(HEADERS, rows(m)),
		'',
		`Parley against direct (goal: Parley adds <= ${m.goals.addedP99Ms} ms p99 at every loss level, and p99 <= ${m.goals.p99At5PctMs} ms at 5% loss):`,
		'',
		markdownTable(COMPARISON_HEADERS, comparisonRows(m)),
		'',
		`p99 through Parley at 5% loss: ${p99At5(m)}.`,
		'',
		`Bursts' loudest 1 ms (RMS, per row): speaker ${levels('speaker')}; listener ${levels('listener')}. Load average (1/5/15 min): ${m.loadAverage.before.join(' ')} before, ${m.loadAverage.after.join(' ')} after; two browsers, the bench and Parley share the machine's cores, so a busy machine shows up as jitter-buffer growth on both paths.`,
		'',
	];
}
