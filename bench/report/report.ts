// Turns a BenchRun into the outputs: a summary table for stdout, results.json, report.md and
// SVG charts in the run's folder.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CapacityResult } from '../scenarios/capacity.js';
import type { LossConditionResult, LossSweepResult } from '../scenarios/lossSweep.js';
import type { BenchRun, Headline } from './BenchRun.js';
import { HICCUP_HEADERS, HICCUP_RATIO_LIMIT, hiccupRows, hiccupVerdict, MEMORY_HEADERS, memoryRows, timelineChart } from './capacityReport.js';
import { joinHeadlines, joinMarkdown, joinTextParts, signalingPhaseMarkdown, signalingPhaseTextParts } from './joinReport.js';
import { apiHeadlines, apiMarkdown, apiTextParts } from './apiReport.js';
import { recordingHeadlines, recordingMarkdown, recordingTextParts } from './recordingReport.js';
import { mouthToEarHeadlines, mouthToEarMarkdown, mouthToEarTextParts } from './mouthToEarReport.js';
import { isFecNackRow, redCharts, redHeadlines, redMarkdown, redTextParts } from './lossReport.js';
import { storageHeadlines, storageMarkdown, storageTextParts } from './storageReport.js';
import { lineChart, PALETTE, type Series } from './svg.js';
import { type Cell, markdownTable, ms, num, pct, textTable } from './table.js';

function transportLabel(cap: CapacityResult): string {
	const red = cap.options.red;
	if (red) return `plain RTP, RED d=${red.distance} publishers, ${red.listenersWithRed ? 'listeners with RED' : 'listeners without RED (stripped)'}`;
	if (cap.options.transport === 'plain') return 'plain RTP';
	if (cap.options.transport === 'srtp') return `SRTP ${cap.options.srtpCryptoSuite}, plain transport`;
	return 'WebRTC through signaling';
}

/** File and chart key of a ramp: one per transport, and per suite for SRTP. */
function capacityKey(cap: CapacityResult): string {
	if (cap.options.red) return cap.options.red.listenersWithRed ? 'red' : 'red-stripped';
	return cap.options.transport === 'srtp' ? `srtp-${cap.options.srtpCryptoSuite}` : cap.options.transport;
}

/** One line per ramp and target: what the before/after comparison of worker builds needs. */
function capacityOverviewRows(run: BenchRun): Cell[][] {
	return (run.capacity ?? []).flatMap((cap) =>
		cap.summary.map((s) => [transportLabel(cap), s.target, s.maxConsumersPerCore, s.firstFailure ? `${s.firstFailure.consumers}: ${s.firstFailure.failed.join('; ')}` : 'none', s.contendedFailures.join(', ') || '-', s.workerUsPerPacket === null ? null : s.workerUsPerPacket.toFixed(2), s.cpuBoundConsumersPerCore]),
	);
}
const CAPACITY_OVERVIEW_HEADERS = ['listeners', 'target', 'max consumers (p99 <= limit)', 'first failure', 'inconclusive', 'worker us/packet', 'CPU-bound consumers/core'];

export function headlines(run: BenchRun): Headline[] {
	const out: Headline[] = [];
	for (const cap of run.capacity ?? []) {
		const raw = cap.summary.find((s) => s.target === 'raw-mediasoup');
		const parley = cap.summary.find((s) => s.target === 'parley');
		const kind = transportLabel(cap);
		const describe = (s: typeof raw): string => {
			if (!s) return 'not measured';
			const contended = s.contendedFailures.length ? `; inconclusive with the machine busy at ${s.contendedFailures.join(', ')}` : '';
			if (s.maxConsumersPerCore === null) return `none passed (${s.firstFailure ? `first failure at ${s.firstFailure.consumers}: ${s.firstFailure.failed.join(', ')}` : 'no conclusive step'}${contended})`;
			const bound = s.firstFailure ? ` (fails at ${s.firstFailure.consumers}: ${s.firstFailure.failed.join(', ')}${contended})` : ` (no conclusive failure: more may be possible${contended})`;
			return `${s.maxConsumersPerCore}${bound}`;
		};
		const withParley = cap.options.targets.includes('parley');
		const withRaw = cap.options.targets.includes('raw-mediasoup');
		if (withParley) out.push({ label: `Consumers per worker core at p99 <= ${cap.options.limits.p99Ms} ms, Parley (${kind})`, value: describe(parley), path: cap.path });
		if (withRaw) out.push({ label: `Consumers per worker core at p99 <= ${cap.options.limits.p99Ms} ms, raw mediasoup (${kind})`, value: describe(raw), path: cap.path });
		if (withParley && withRaw) {
			out.push({ label: `Parley / raw mediasoup, latency knee (${kind})`, value: cap.parleyToBaseline === null ? 'no ratio: a knee was inconclusive' : `${(cap.parleyToBaseline * 100).toFixed(0)}%`, path: cap.path });
		}
		const shown = cap.summary.filter((s) => cap.options.targets.includes(s.target));
		const name = (t: string): string => (t === 'parley' ? 'Parley' : 'raw mediasoup');
		out.push({
			label: `CPU-bound consumers per worker core (${kind}): ${shown.map((s) => name(s.target)).join(' / ')}`,
			value: `${shown.map((s) => num(s.cpuBoundConsumersPerCore)).join(' / ')}${cap.parleyToBaselineCpu !== null ? ` (${(cap.parleyToBaselineCpu * 100).toFixed(0)}%)` : ''}`,
			path: `${cap.path}; worker CPU per forwarded packet, extrapolated to a full core`,
		});
		out.push({
			label: `Worker CPU per forwarded packet (${kind}): ${shown.map((s) => name(s.target)).join(' / ')}`,
			value: shown.map((s) => (s.workerUsPerPacket === null ? '-' : `${s.workerUsPerPacket.toFixed(2)} us`)).join(' / '),
			path: `${cap.path}; median over steps that kept the worker at least 20% busy without loss`,
		});
	}
	for (const cap of run.capacity ?? []) {
		const v = hiccupVerdict(cap);
		if (v) out.push({ label: `Parley / raw mediasoup, whole-window p99 and max, worst step below the knee (${transportLabel(cap)})`, value: `p99 ${v.worstP99Ratio.toFixed(2)}x, max ${v.worstMaxRatio.toFixed(2)}x (goal <= ${HICCUP_RATIO_LIMIT}x: ${v.withinGoal ? 'met' : 'not met'})`, path: cap.path });
		const parleyMemory = cap.summary.find((x) => x.target === 'parley')?.memory;
		if (parleyMemory) out.push({ label: `Memory per 1,000 consumers, Parley (${transportLabel(cap)}): Node / worker`, value: `${parleyMemory.nodeMiBPer1000Consumers.toFixed(1)} / ${parleyMemory.workerMiBPer1000Consumers.toFixed(1)} MiB (per 1,000 peers: ${parleyMemory.nodeMiBPer1000Peers.toFixed(1)} / ${parleyMemory.workerMiBPer1000Peers.toFixed(1)} MiB)`, path: cap.path });
	}
	out.push(...redCapacityHeadlines(run.capacity ?? []));
	if (run.loss) {
		for (const model of ['random', 'bursty'] as const) {
			for (const rate of [0.05, 0.1, 0.2]) {
				const on = findCondition(run.loss, model, rate, true, false);
				const off = findCondition(run.loss, model, rate, false, false);
				if (!on && !off) continue;
				out.push({
					label: `Playable share at ${rate * 100}% ${model} loss, FEC on / off (NACK off)`,
					value: `${pct(on?.playout.playableShare)} / ${pct(off?.playout.playableShare)}; speech frames ${pct(on?.playout.speechPlayableShare)} / ${pct(off?.playout.speechPlayableShare)} (ceiling ${pct(on?.ceiling ?? off?.ceiling)})`,
					path: run.loss.path,
				});
			}
		}
	}
	if (run.signaling) {
		const s = run.signaling;
		out.push({ label: 'Joins per second (WebSocket: connect, join, receive transport)', value: `${num(s.joinsPerSecond)} (join p50 ${ms(s.joinLatencyMs.p50, 1)}, p99 ${ms(s.joinLatencyMs.p99, 1)})`, path: s.path });
		out.push({
			label: 'WebSocket open to first audio packet (WebRTC listeners joining at once)',
			value: `p50 ${ms(s.firstAudio.firstAudioMs.p50, 0)}, p99 ${ms(s.firstAudio.firstAudioMs.p99, 0)} (${s.firstAudio.succeeded}/${s.firstAudio.clients})`,
			path: s.path,
		});
		const one = s.firstAudioOneAtATime;
		if (one) {
			out.push({
				label: 'WebSocket open to first audio packet (WebRTC listeners joining one at a time)',
				value: `p50 ${ms(one.firstAudioMs.p50, 0)}, p99 ${ms(one.firstAudioMs.p99, 0)} (${one.succeeded}/${one.joins})`,
				path: s.path,
			});
		}
		for (const h of s.http) for (const [label, f] of Object.entries(h.requests)) out.push({ label: `HTTP ${label}`, value: `${num(f.requestsPerSecond)} req/s, p99 ${ms(f.latencyMs.p99)}`, path: `${h.connections} keep-alive connections` });
	}
	out.push(...redHeadlines(run.loss));
	out.push(...storageHeadlines(run.storage, run.metadata));
	out.push(...joinHeadlines(run.join));
	out.push(...mouthToEarHeadlines(run.mouthToEar));
	out.push(...recordingHeadlines(run.recording));
	out.push(...apiHeadlines(run.api));
	return out;
}

/** What stripping RED costs: consumers per core with listeners without RED (the worker
 * strips) against listeners with RED (forwarded as is) and against plain Opus, per target. */
function redCapacityHeadlines(caps: CapacityResult[]): Headline[] {
	const plain = caps.find((c) => c.options.transport === 'plain' && !c.options.red);
	const red = caps.find((c) => c.options.red?.listenersWithRed === true);
	const stripped = caps.find((c) => c.options.red?.listenersWithRed === false);
	if (!stripped) return [];
	const out: Headline[] = [];
	for (const target of stripped.options.targets) {
		const of = (cap: CapacityResult | undefined) => cap?.summary.find((s) => s.target === target);
		const s = of(stripped);
		const ratio = (base: CapacityResult | undefined, pick: (x: NonNullable<ReturnType<typeof of>>) => number | null): string => {
			const b = of(base);
			const num = s ? pick(s) : null;
			const den = b ? pick(b) : null;
			return num && den ? `${((num / den) * 100).toFixed(0)}%` : '-';
		};
		const name = target === 'parley' ? 'Parley' : 'raw mediasoup';
		out.push({
			label: `RED stripping, ${name}: consumers per core, stripped / RED forwarded / plain Opus (CPU-bound; latency knee)`,
			value: `${num(s?.cpuBoundConsumersPerCore)} / ${num(of(red)?.cpuBoundConsumersPerCore)} / ${num(of(plain)?.cpuBoundConsumersPerCore)}; stripped at ${ratio(red, (x) => x.cpuBoundConsumersPerCore)} of RED forwarded, ${ratio(plain, (x) => x.cpuBoundConsumersPerCore)} of plain Opus by CPU; knees ${num(s?.maxConsumersPerCore)} / ${num(of(red)?.maxConsumersPerCore)} / ${num(of(plain)?.maxConsumersPerCore)}`,
			path: stripped.path,
		});
	}
	return out;
}

function findCondition(loss: LossSweepResult, model: string, rate: number, fec: boolean, nack: boolean): LossConditionResult | undefined {
	return loss.conditions.find((c) => isFecNackRow(c) && c.model === model && Math.abs(c.lossRate - rate) < 1e-9 && c.fec === fec && c.nack === nack);
}

function lossRows(loss: LossSweepResult): Cell[][] {
	return loss.conditions.filter(isFecNackRow).map((c) => [
		c.model,
		pct(c.lossRate, 0),
		pct(c.measuredNetworkLoss),
		c.fec ? 'on' : 'off',
		c.nack ? 'on' : 'off',
		c.playout.frames,
		c.playout.delivered,
		c.playout.deliveredAfterNack,
		c.playout.recovered,
		c.playout.concealed,
		c.playout.late,
		pct(c.playout.playableShare),
		pct(c.playout.speechPlayableShare),
		pct(c.ceiling),
		num(c.playout.quality.segmentalSnrDb, 1),
		num(c.playout.quality.snrDb, 1),
		num(c.playout.quality.recoveredSnrDb, 1),
		num(c.playout.quality.concealedSnrDb, 1),
		ms(c.latencyMs.p50),
		ms(c.latencyMs.p99),
	]);
}
const LOSS_HEADERS = ['model', 'loss', 'measured', 'FEC', 'NACK', 'frames', 'delivered', 'via NACK', 'FEC-rebuilt', 'concealed', 'late', 'playable', 'playable (speech)', 'ceiling', 'segSNR dB', 'SNR dB', 'rebuilt SNR', 'concealed SNR', 'lat p50', 'lat p99'];

function capacityRows(cap: CapacityResult): Cell[][] {
	return cap.steps.map((s) => [
		s.target,
		s.consumers,
		s.listeners,
		num(s.forwardedPps),
		ms(s.latencyMs.p50),
		ms(s.p99MedianMs),
		ms(s.latencyMs.p99),
		ms(s.latencyMs.max),
		pct(s.lossRate, 3),
		pct(s.workerCpu, 0),
		num(s.ppsPerCore),
		pct(s.benchCpu, 0),
		pct(s.serverCpu, 0),
		pct(s.otherCpu, 0),
		pct(s.nicedCpu, 0),
		s.pass ? 'pass' : `${s.contended ? 'inconclusive (machine busy)' : 'FAIL'}: ${s.failed.join('; ')}`,
	]);
}
const CAPACITY_HEADERS = ['target', 'consumers', 'listeners', 'fwd pkt/s', 'p50', 'p99 (median 1 s)', 'p99 (window)', 'max', 'loss', 'worker CPU', 'pkt/s per core', 'bench CPU', 'server JS CPU', 'other CPU', 'niced CPU', 'result'];

/** The summary printed on stdout at the end of a run. */
export function textSummary(run: BenchRun): string {
	const parts: string[] = [];
	if (run.loss) parts.push(`Loss sweep (${run.loss.path})\n${textTable(LOSS_HEADERS.slice(0, 15), lossRows(run.loss).map((r) => r.slice(0, 15)))}`, ...redTextParts(run.loss));
	for (const cap of run.capacity ?? []) {
		parts.push(`Capacity: ${cap.path}\n${textTable(CAPACITY_HEADERS, capacityRows(cap))}`);
		parts.push(`Hiccups (${transportLabel(cap)}): whole window and worst second\n${textTable(HICCUP_HEADERS, hiccupRows(cap))}`);
		const memory = memoryRows(cap);
		if (memory.length) parts.push(`Memory (${transportLabel(cap)})\n${textTable(MEMORY_HEADERS, memory)}`);
	}
	if (run.capacity?.length) parts.push(`Capacity overview (worker ${run.versions.mediasoupWorker?.srtp ?? '?'})\n${textTable(CAPACITY_OVERVIEW_HEADERS, capacityOverviewRows(run))}`);
	if (run.signaling) {
		const s = run.signaling;
		parts.push(
			`Signaling (${s.path})\n${textTable(
				['wave', 'clients', 'joined', 'joins/s', 'join p50', 'join p99', 'leaves/s', 'server CPU', 'bench CPU'],
				s.waves.map((w, i) => [i + 1, w.clients, w.joined, num(w.joinsPerSecond), ms(w.joinLatencyMs.p50, 1), ms(w.joinLatencyMs.p99, 1), num(w.leavesPerSecond), pct(w.serverCpu, 0), pct(w.benchCpu, 0)]),
			)}`,
		);
	}
	parts.push(...signalingPhaseTextParts(run.signaling));
	parts.push(...storageTextParts(run.storage, run.metadata));
	parts.push(...joinTextParts(run.join));
	parts.push(...mouthToEarTextParts(run.mouthToEar));
	parts.push(...recordingTextParts(run.recording));
	parts.push(...apiTextParts(run.api));
	parts.push(`Headline\n${textTable(['figure', 'value'], headlines(run).map((h) => [h.label, h.value]))}`);
	for (const e of run.errors) parts.push(`ERROR in ${e.scenario}: ${e.message}`);
	return parts.join('\n\n');
}

function lossChart(loss: LossSweepResult, nack: boolean, metric: 'playable' | 'segsnr'): string {
	const series: Series[] = [];
	const rows = loss.conditions.filter(isFecNackRow);
	const models = [...new Set(rows.map((c) => c.model))];
	let color = 0;
	for (const model of models) {
		for (const fec of [true, false]) {
			const pts = rows
				.filter((c) => c.model === model && c.fec === fec && c.nack === nack)
				.map((c): [number, number] => [c.lossRate * 100, metric === 'playable' ? c.playout.playableShare * 100 : c.playout.quality.segmentalSnrDb])
				.sort((a, b) => a[0] - b[0]);
			// Bursty 0% is not run: it is the random 0% point.
			const zero = rows.find((c) => c.lossRate === 0 && c.fec === fec && c.nack === nack);
			if (model === 'bursty' && zero) pts.unshift([0, metric === 'playable' ? zero.playout.playableShare * 100 : zero.playout.quality.segmentalSnrDb]);
			series.push({ name: `${model}, FEC ${fec ? 'on' : 'off'}`, points: pts, color: PALETTE[color++]!, markers: true, dashed: model === 'bursty' });
		}
		if (metric === 'playable') {
			const rates = [...new Set(rows.map((c) => c.lossRate))].sort((a, b) => a - b);
			const burst = loss.options.meanBurstLength;
			series.push({
				name: model === 'random' ? 'ceiling 1 - p^2' : `ceiling bursty (L=${burst})`,
				points: rates.map((p) => [p * 100, (model === 'random' ? 1 - p * p : 1 - p * (1 - 1 / burst)) * 100]),
				color: '#7f7f7f',
				dashed: model === 'bursty',
			});
		}
	}
	return lineChart({
		title: metric === 'playable' ? `Playable share vs packet loss (NACK ${nack ? 'on' : 'off'})` : `Segmental SNR vs lossless decode (NACK ${nack ? 'on' : 'off'})`,
		xLabel: 'packet loss (%)',
		yLabel: metric === 'playable' ? 'frames played from a packet or FEC (%)' : 'segmental SNR (dB)',
		series,
		...(metric === 'playable' ? { yDomain: [Math.min(60, ...series.flatMap((s) => s.points.map((p) => p[1]))), 100] as [number, number] } : {}),
	});
}

function latencyCdfChart(run: BenchRun): string | undefined {
	const cap = run.capacity?.find((c) => c.options.transport === 'plain' && !c.options.red) ?? run.capacity?.[0];
	const series: Series[] = [];
	if (cap) {
		const counts = [...new Set(cap.steps.map((s) => s.consumers))].sort((a, b) => a - b);
		const pick = counts.length <= 4 ? counts : [0, 1, 2, 3].map((k) => counts[Math.round((k * (counts.length - 1)) / 3)]!);
		pick.forEach((n, i) => {
			for (const target of ['parley', 'raw-mediasoup'] as const) {
				const step = cap.steps.find((s) => s.consumers === n && s.target === target);
				if (step) series.push({ name: `${target === 'parley' ? 'Parley' : 'raw'} ${n}`, points: step.latencyCdf.map(([v, q]) => [Math.max(v, 0.01), q * 100]), color: PALETTE[i]!, dashed: target !== 'parley', step: true });
			}
		});
	}
	const webrtc = run.capacity?.find((c) => c.options.transport === 'webrtc');
	const webrtcStep = webrtc?.steps.filter((s) => s.pass).sort((a, b) => b.consumers - a.consumers)[0];
	if (webrtcStep) series.push({ name: `Parley WebRTC ${webrtcStep.consumers}`, points: webrtcStep.latencyCdf.map(([v, q]) => [Math.max(v, 0.01), q * 100]), color: '#000000', step: true });
	if (run.loss && run.loss.losslessLatencySamples.length) {
		const s = [...run.loss.losslessLatencySamples].sort((a, b) => a - b);
		series.push({ name: 'loss sweep 0% (2 proxies)', points: s.map((v, i) => [Math.max(v, 0.01), ((i + 1) / s.length) * 100]), color: '#7f7f7f', step: true });
	}
	if (series.length === 0) return undefined;
	return lineChart({ title: 'Added forwarding latency, CDF (send to receive, same clock)', xLabel: 'latency (ms, log scale)', yLabel: 'packets (%)', series, logX: true, yDomain: [0, 100] });
}

function capacityChart(cap: CapacityResult, metric: 'p99' | 'cpu'): string {
	const series: Series[] = (['parley', 'raw-mediasoup'] as const).filter((t) => cap.steps.some((s) => s.target === t)).map((target, i) => ({
		name: target === 'parley' ? 'Parley' : 'raw mediasoup',
		points: cap.steps
			.filter((s) => s.target === target)
			.sort((a, b) => a.consumers - b.consumers)
			.map((s): [number, number] => [s.consumers, metric === 'p99' ? s.p99MedianMs : s.workerCpu * 100]),
		color: PALETTE[i]!,
		markers: true,
	}));
	const kind = transportLabel(cap);
	return lineChart({
		title: metric === 'p99' ? `Capacity (${kind}): p99 added latency vs consumers (clipped at ${cap.options.limits.p99Ms * 4} ms)` : `Capacity (${kind}): worker CPU vs consumers`,
		xLabel: 'consumers on one worker (publishers x listeners)',
		yLabel: metric === 'p99' ? 'p99 added latency (ms)' : 'worker CPU (% of one core)',
		series,
		hLines: metric === 'p99' ? [{ y: cap.options.limits.p99Ms, label: `${cap.options.limits.p99Ms} ms limit`, color: '#d62728' }] : [{ y: cap.options.limits.cpuShare * 100, label: 'saturation', color: '#d62728' }],
		// Past saturation p99 reaches hundreds of ms; the interesting part is around the limit.
		yDomain: metric === 'cpu' ? [0, 100] : [0, cap.options.limits.p99Ms * 4],
	});
}

/** Every file of a report (results.json, report.md, the SVG charts) by name, and the chart
 * files by key; `chartPrefix` goes in front of each chart's path in the Markdown. */
export function renderReport(run: BenchRun, chartPrefix = ''): { files: Map<string, string>; charts: Record<string, string> } {
	const files = new Map<string, string>();
	const write = (name: string, content: string): string => {
		files.set(name, content);
		return name;
	};
	write('results.json', JSON.stringify(run, null, 1));
	const charts: Record<string, string> = {};
	if (run.loss) {
		for (const nack of [...new Set(run.loss.conditions.filter(isFecNackRow).map((c) => c.nack))]) {
			charts[`loss-playable-nack-${nack ? 'on' : 'off'}`] = write(`loss-playable-nack-${nack ? 'on' : 'off'}.svg`, lossChart(run.loss, nack, 'playable'));
			charts[`loss-segsnr-nack-${nack ? 'on' : 'off'}`] = write(`loss-segsnr-nack-${nack ? 'on' : 'off'}.svg`, lossChart(run.loss, nack, 'segsnr'));
		}
		for (const [name, svg] of Object.entries(redCharts(run.loss))) charts[name] = write(`${name}.svg`, svg);
	}
	const cdf = latencyCdfChart(run);
	if (cdf) charts.cdf = write('latency-cdf.svg', cdf);
	for (const cap of run.capacity ?? []) {
		charts[`cap-${capacityKey(cap)}-p99`] = write(`capacity-${capacityKey(cap)}-p99.svg`, capacityChart(cap, 'p99'));
		charts[`cap-${capacityKey(cap)}-cpu`] = write(`capacity-${capacityKey(cap)}-cpu.svg`, capacityChart(cap, 'cpu'));
		const timeline = timelineChart(cap, transportLabel(cap));
		if (timeline) charts[`cap-${capacityKey(cap)}-timeline`] = write(`capacity-${capacityKey(cap)}-timeline.svg`, timeline);
	}
	const linked = Object.fromEntries(Object.entries(charts).map(([k, v]) => [k, `${chartPrefix}${v}`]));
	write('report.md', markdownReport(run, linked));
	return { files, charts };
}

export function writeReport(run: BenchRun, outDir: string): string[] {
	mkdirSync(outDir, { recursive: true });
	const { files } = renderReport(run);
	for (const [name, content] of files) writeFileSync(path.join(outDir, name), content);
	return [...files.keys()];
}

/** Whole-window latency and the worst second beside the knee, memory, and one step's timeline. */
export function hiccupMarkdown(cap: CapacityResult, img: (key: string, alt: string) => string): string[] {
	const lines: string[] = [];
	if (!cap.steps.some((s) => s.worstSecond !== undefined)) return lines;
	lines.push(
		`Hiccups: the knee criterion (the median of the 1-second p99s) hides single bad seconds; a listener hears them. Per step, the whole-window p99 and max, Parley's as a multiple of raw mediasoup's at the same load (goal: within ${HICCUP_RATIO_LIMIT}x below the knee), and the worst 1-second slice with what the process running Parley's JavaScript did in it: its longest event-loop stall (a 5 ms timer in that process; for the plain and SRTP ramps it is the bench process's main thread, while the publishers and sampled listeners run on a thread of their own, as clients on other machines would) and Parley's RTP stats rounds (getStats over the worker channel) that started, finished or ran in that second.`,
		'',
		markdownTable(HICCUP_HEADERS, hiccupRows(cap)),
		'',
	);
	const v = hiccupVerdict(cap);
	if (v) lines.push(`Worst Parley / raw ratio over the steps both passed (${v.atConsumers.join(', ')} consumers): whole-window p99 **${v.worstP99Ratio.toFixed(2)}x**, max **${v.worstMaxRatio.toFixed(2)}x** (${v.withinGoal ? 'within' : 'not within'} the ${HICCUP_RATIO_LIMIT}x goal).`, '');
	lines.push(img(`cap-${capacityKey(cap)}-timeline`, 'latency over one window'));
	const memory = memoryRows(cap);
	if (memory.length) {
		lines.push(
			`Memory: resident set (VmRSS) with the largest step's room built and warmed up, minus the same before any room, scaled per 1,000 consumers and per 1,000 peers (each listener consumes every publisher here, so both scale together: the two columns are one measurement). *Node* is the process running Parley's JavaScript${cap.options.transport === 'webrtc' ? ' (Parley as a child process: its RSS)' : ' (the bench process: V8 heap in use + external memory after a full GC, since its RSS keeps pages freed by earlier steps; the raw-mediasoup row is the bench\'s own and mediasoup\'s Node objects, so Parley\'s cost is the difference)'}; *worker* is the mediasoup worker (VmRSS).`,
			'',
			markdownTable(MEMORY_HEADERS, memory),
			'',
		);
	}
	return lines;
}

function markdownReport(run: BenchRun, charts: Record<string, string>): string {
	const m = run.machine;
	const v = run.versions;
	const img = (key: string, alt: string): string => (charts[key] ? `![${alt}](${charts[key]})\n` : '');
	const lines: string[] = [];
	lines.push(`# Parley bench report${run.smoke ? ' (smoke run: too short for real figures)' : ''}`, '');
	lines.push(`Run ${run.startedAt} to ${run.finishedAt} (${run.durationS.toFixed(0)} s) with \`${run.command}\`.`, '');
	lines.push('## Machine and versions', '');
	lines.push(
		markdownTable(
			['', ''],
			[
				['CPU', `${m.cpuModel}, ${m.cores} cores${m.hypervisor ? ` (${m.hypervisor} guest)` : ''}`],
				['Memory', `${m.memoryGiB} GiB`],
				['Kernel', `${m.platform} ${m.kernel}`],
				['Load average (1/5/15 min) before / after', `${m.loadAverage.join(' ')} / ${run.loadAverageAfter.join(' ')}`],
				['Bench and worker nice value', m.nice ?? 0],
				['Node', v.node],
				['mediasoup', v.mediasoup],
				['werift', v.werift],
				['@evan/opus', v.evanOpus],
				['uWebSockets.js', v.uWebSocketsJs],
				['mediasoup-worker', v.mediasoupWorker ? `${v.mediasoupWorker.path} (sha256 ${v.mediasoupWorker.sha256?.slice(0, 16) ?? '?'}; SRTP: ${v.mediasoupWorker.srtp})` : '?'],
				['Commit', `${v.gitCommit ?? '?'}${v.gitDirty ? ' (working tree had uncommitted changes)' : ''}`],
			],
		),
		'',
	);
	lines.push('## Headline', '');
	lines.push(markdownTable(['figure', 'value', 'path'], headlines(run).map((h) => [h.label, h.value, h.path])), '');
	for (const e of run.errors) lines.push(`**Scenario ${e.scenario} failed:** ${e.message}`, '');
	lines.push('## Reference points', '');
	lines.push(markdownTable(['reference', 'figure', 'note'], run.references.map((r) => [r.name, r.figure, r.note])), '');

	if (run.loss) {
		const o = run.loss.options;
		lines.push('## Loss sweep', '');
		lines.push(
			`Path: ${run.loss.path}. Speech (espeak-ng, 48 kHz) as Opus ${o.bitrateBps / 1000} kb/s, 20 ms frames, ${o.durationS} s per condition, ${(run.loss.batches ?? 1) > 1 ? `${run.loss.batches} batches of conditions streaming at once` : 'all conditions streaming at once'}; FEC/NACK grid: loss on the ${o.lossAt === 'both' ? 'uplink and downlink (split so the end-to-end rate is the one shown)' : `${o.lossAt}link`}; bursty = Gilbert-Elliott with mean burst ${o.meanBurstLength} packets; playout deadline ${o.playoutDelayMs} ms after sending (a fixed jitter buffer: later packets, retransmissions included, count as late). Encoder loss hint: ${o.packetLossHint === 'match' ? 'the condition\'s loss (at least 1%) with FEC on, 0 with FEC off' : `${o.packetLossHint}%`}. Seed ${o.seed}: FEC on and off see the same loss pattern.`,
			'',
			'Frames: *delivered* = played from their own packet in time (*via NACK* = of those, thanks to a retransmission); *FEC-rebuilt* = from the next packet\'s in-band FEC (decode_fec=1, only when that packet carries LBRR data; Opus adds none to silent frames, so some losses in pauses are concealed even with FEC on); *concealed* = packet-loss concealment. *Playable* = delivered + rebuilt; *playable (speech)* = the same over frames with speech in the lossless decode (losses in pauses are not heard; Opus puts no FEC data in them). Quality against the lossless decode of the same packets: segmental SNR (20 ms segments, clamped to [-10, 35] dB, speech segments only: every syllable weighs the same), plain SNR, and SNR over rebuilt and over concealed frames only. Latency includes the two in-process loss proxies.',
			'',
		);
		lines.push(markdownTable(LOSS_HEADERS, lossRows(run.loss)), '');
		for (const nack of ['off', 'on']) {
			lines.push(img(`loss-playable-nack-${nack}`, `playable share, NACK ${nack}`));
			lines.push(img(`loss-segsnr-nack-${nack}`, `segmental SNR, NACK ${nack}`));
		}
		lines.push(...redMarkdown(run.loss, img));
	}
	if (run.capacity?.length) {
		lines.push('## Capacity overview', '', `Worker binary: ${run.versions.mediasoupWorker?.path ?? '?'} (SRTP: ${run.versions.mediasoupWorker?.srtp ?? '?'}).`, '');
		lines.push(markdownTable(CAPACITY_OVERVIEW_HEADERS, capacityOverviewRows(run)), '');
	}
	for (const cap of run.capacity ?? []) {
		const o = cap.options;
		lines.push(`## Capacity: ${transportLabel(cap)}`, '');
		lines.push(
			`Path: ${cap.path}. ${o.publishers} publishers (Opus ${o.bitrateBps / 1000} kb/s, 50 packets/s each, staggered phases) in one room on one worker; each listener consumes every publisher, so consumers = ${o.publishers} x listeners. Each step: ${o.warmupMs} ms warm-up, then a ${o.windowMs} ms window. ${o.sampledListeners} listeners spread over creation order are read by the bench (latency = send instant to receive instant on one clock, and loss); the rest send to unread sockets whose kernel drop counters (/proc/net/udp) tally arrivals. Pass: p99 <= ${o.limits.p99Ms} ms (the median of the window's 1-second p99s, so a stall caused by other processes in one second does not decide a step; the whole-window p99 is shown too), loss <= ${pct(o.limits.lossRate, 2)}, worker < ${pct(o.limits.cpuShare, 0)} of its core. ${cap.pinned ? 'The worker was pinned to the last core and the bench to the others (taskset).' : 'No CPU pinning.'} Worker and bench CPU from /proc/<pid>/stat; *other CPU* = cores busy (from /proc/stat idle time) minus worker, bench, server and *niced CPU* (processes at a positive nice value, from /proc/stat's nice column: background jobs that yield to the bench, reported but not held against a step): other processes on a shared machine; before each window the bench waits (up to ${(o.quietWaitMs / 1000).toFixed(0)} s) until that is below ${pct(o.maxOtherCpu, 0)} of a core, and a step above it is measured again (up to ${o.contentionRetries} times, keeping the quietest); a failure still above it is *inconclusive* and does not end the ramp. A failure below saturation is measured a second time and the better of the two kept: a server limit repeats, a stall caused by another process mostly does not. *pkt/s per core* = forwarded packets/s divided by the worker's CPU share. The bench process' CPU includes Parley's JavaScript thread when Parley is the target (it runs in-process; it is not on the plain-RTP media path).`,
			'',
			cap.options.transport === 'webrtc'
				? 'WebRTC specifics: publishers and listeners are werift peers going through the real signaling (join, createTransport, connectTransport, produce, resumeConsumer); each listener has one BUNDLEd transport carrying a consumer per publisher. Sampled listeners are timed at their socket (the SRTP header is in clear), so werift\'s JavaScript decryption is not counted; the other listeners stop reading their socket once audio flows and the kernel counts what arrives. *server JS* is Parley\'s own process (signaling); the bench and Parley\'s JS share the non-worker cores.'
				: `Bench latency floor (publishers straight to the sampled sockets, no server): p50 ${ms(cap.benchFloorLatencyMs.p50)}, p99 ${ms(cap.benchFloorLatencyMs.p99)}.`,
			'',
		);
		lines.push(
			markdownTable(
				['target', 'max consumers per core (pass)', 'pkt/s per core there', 'first failure', 'inconclusive (machine busy)', 'CPU-bound consumers per core', 'worker us per packet'],
				cap.summary.map((s) => [s.target, s.maxConsumersPerCore, s.ppsPerCoreAtMax, s.firstFailure ? `${s.firstFailure.consumers}: ${s.firstFailure.failed.join('; ')}` : 'none (more may be possible)', s.contendedFailures.join(', ') || '-', s.cpuBoundConsumersPerCore, s.workerUsPerPacket === null ? null : s.workerUsPerPacket.toFixed(2)]),
			),
			'',
		);
		if (cap.parleyToBaseline !== null) lines.push(`At the latency knee Parley reaches **${(cap.parleyToBaseline * 100).toFixed(0)}%** of the raw-mediasoup baseline measured in the same run.`, '');
		if (cap.parleyToBaselineCpu !== null) lines.push(`By worker CPU per forwarded packet, Parley reaches **${(cap.parleyToBaselineCpu * 100).toFixed(0)}%** of the baseline (*CPU-bound consumers per core*: the worker's measured CPU per packet, extrapolated to a fully busy core, median over steps that kept it at least 20% busy without loss; other processes move the latency knee much more than this figure).`, '');
		lines.push(markdownTable(CAPACITY_HEADERS, capacityRows(cap)), '');
		lines.push(img(`cap-${capacityKey(cap)}-p99`, 'p99 vs consumers'), img(`cap-${capacityKey(cap)}-cpu`, 'worker CPU vs consumers'));
		lines.push(...hiccupMarkdown(cap, img));
		lines.push('Parley server settings in this path:', '', '```json', JSON.stringify(cap.server, null, 1), '```', '');
	}
	if (charts.cdf) lines.push('## Latency distribution', '', img('cdf', 'latency CDF'));
	if (run.signaling) {
		const s = run.signaling;
		const o = s.options;
		lines.push('## Signaling and HTTP', '');
		lines.push(
			`Path: ${s.path}. Storm: ${o.clients} clients open a WebSocket, get the welcome, ask for the router capabilities, join (channels of ${o.channelSize}; each wave uses new channels, so the first join of each creates its router) and create their receive transport, all at once; then all leave at once. ${o.waves} waves; joins/s = clients / (last transport reply - start). First audio: ${o.mediaClients} WebRTC listeners join a channel where a WebRTC publisher talks, at once. HTTP: ${o.httpConnections} keep-alive connections for ${o.httpDurationMs / 1000} s per endpoint, one request in flight on each (a small raw-socket client written for the bench: autocannon is not a dependency of this repository).`,
			'',
		);
		lines.push(
			markdownTable(
				['wave', 'clients', 'joined', 'failed', 'joins/s', 'join p50', 'join p99', 'join+transport p99', 'leaves/s', 'server JS CPU', 'worker CPU', 'bench CPU'],
				s.waves.map((w, i) => [i + 1, w.clients, w.joined, w.failed, num(w.joinsPerSecond), ms(w.joinLatencyMs.p50, 1), ms(w.joinLatencyMs.p99, 1), ms(w.joinAndTransportLatencyMs.p99, 1), num(w.leavesPerSecond), pct(w.serverCpu, 0), pct(w.workerCpu, 0), pct(w.benchCpu, 0)]),
			),
			'',
		);
		const f = s.firstAudio;
		lines.push(
			markdownTable(
				['WebRTC listeners', 'succeeded', 'welcome p50', 'joined p50', 'first audio p50', 'first audio p99', 'first audio max', 'bench CPU', 'server JS CPU'],
				[[f.clients, f.succeeded, ms(f.welcomeMs.p50, 1), ms(f.joinedMs.p50, 1), ms(f.firstAudioMs.p50, 0), ms(f.firstAudioMs.p99, 0), ms(f.firstAudioMs.max, 0), pct(f.benchCpu, 0), pct(f.serverCpu, 0)]],
			),
			'',
		);
		lines.push(...signalingPhaseMarkdown(s));
		if (f.errors.length) lines.push(`First-audio errors: ${f.errors.join('; ')}`, '');
		lines.push(
			markdownTable(
				['load', 'request', 'req/s', 'p50', 'p99', 'max', 'statuses', 'server JS CPU', 'bench CPU'],
				s.http.flatMap((h) => Object.entries(h.requests).map(([label, r]) => [h.name, label, num(r.requestsPerSecond), ms(r.latencyMs.p50), ms(r.latencyMs.p99), ms(r.latencyMs.max), JSON.stringify(r.statuses), pct(h.serverCpu, 0), pct(h.benchCpu, 0)])),
			),
			'',
			'With client and server sharing 2 cores, the HTTP figures are bounded by whichever of the two saturates first: compare the CPU columns.',
			'',
		);
	}
	lines.push(...storageMarkdown(run.storage, run.metadata));
	lines.push(...joinMarkdown(run.join));
	lines.push(...mouthToEarMarkdown(run.mouthToEar));
	lines.push(...recordingMarkdown(run.recording));
	lines.push(...apiMarkdown(run.api));
	return lines.join('\n');
}
