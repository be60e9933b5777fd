// Capacity tables beside the knee: latency hiccups (whole-window p99 and max of Parley against
// raw mediasoup at the same load, and each step's worst second with what Parley did in it),
// memory per 1,000 consumers and peers, and the time-resolved latency chart of one step.
import type { CapacityResult, CapacityStep } from '../scenarios/capacity.js';
import { lineChart, PALETTE, type Series } from './svg.js';
import { type Cell, ms } from './table.js';

/** Goal of issue 20: Parley's whole-window p99 and max within this factor of raw mediasoup's. */
export const HICCUP_RATIO_LIMIT = 1.5;

const ratio = (a: number | undefined, b: number | undefined): string => (a !== undefined && b !== undefined && b > 0 ? `${(a / b).toFixed(2)}x` : '-');

function twin(cap: CapacityResult, step: CapacityStep): CapacityStep | undefined {
	const other = step.target === 'parley' ? 'raw-mediasoup' : 'parley';
	return cap.steps.find((s) => s.target === other && s.consumers === step.consumers);
}

function worstSecondCell(s: CapacityStep): string {
	const w = s.worstSecond;
	if (!w) return '-';
	return `${(w.atMs / 1000).toFixed(0)} s: p99 ${ms(w.p99Ms)}, max ${ms(w.maxMs)}`;
}

function activityCell(s: CapacityStep): string {
	const w = s.worstSecond;
	if (!w) return '-';
	const rounds = w.statsRounds.length
		? w.statsRounds.map((r) => `round of ${r.streams} from ${(r.startMs / 1000).toFixed(2)} s, ${r.durationMs === null ? 'still running' : `${r.durationMs.toFixed(0)} ms`}`).join('; ')
		: 'no stats round';
	return `loop stall ${ms(w.eventLoopMaxMs)}; rounds started ${w.statsRoundsStarted}, finished ${w.statsRoundsFinished}; ${rounds}`;
}

export function hiccupRows(cap: CapacityResult): Cell[][] {
	return [...cap.steps]
		.sort((a, b) => a.consumers - b.consumers || a.target.localeCompare(b.target))
		.map((s) => {
			const raw = s.target === 'parley' ? twin(cap, s) : undefined;
			return [
				s.target,
				s.consumers,
				ms(s.p99MedianMs),
				ms(s.latencyMs.p99),
				ms(s.latencyMs.max),
				raw ? ratio(s.latencyMs.p99, raw.latencyMs.p99) : '',
				raw ? ratio(s.latencyMs.max, raw.latencyMs.max) : '',
				worstSecondCell(s),
				activityCell(s),
			];
		});
}
export const HICCUP_HEADERS = ['target', 'consumers', 'p99 (median 1 s, the knee)', 'p99 (window)', 'max (window)', 'p99 / raw', 'max / raw', 'worst second', 'in that second (bench main thread = Parley JS)'];

function mib(bytes: number): string {
	return (bytes / 1024 / 1024).toFixed(1);
}

export function memoryRows(cap: CapacityResult): Cell[][] {
	return cap.summary
		.filter((s) => s.memory)
		.map((s) => {
			const m = s.memory!;
			const step = cap.steps.find((x) => x.target === s.target && x.consumers === m.atConsumers && x.memory);
			return [
				s.target,
				m.atConsumers,
				m.peers,
				step?.memory ? `${mib(step.memory.nodeIdleRssBytes)} -> ${mib(step.memory.nodeRssBytes)}${step.memory.nodeMeasure === 'heap+external' ? ' (heap + external)' : ' (RSS)'}` : '-',
				step?.memory ? `${mib(step.memory.workerIdleRssBytes)} -> ${mib(step.memory.workerRssBytes)}` : '-',
				m.nodeMiBPer1000Consumers.toFixed(2),
				m.workerMiBPer1000Consumers.toFixed(2),
				m.nodeMiBPer1000Peers.toFixed(2),
				m.workerMiBPer1000Peers.toFixed(2),
			];
		});
}
export const MEMORY_HEADERS = ['target', 'at consumers', 'peers', 'Node MiB (idle -> step)', 'worker RSS MiB (idle -> step)', 'Node MiB / 1,000 consumers', 'worker MiB / 1,000 consumers', 'Node MiB / 1,000 peers', 'worker MiB / 1,000 peers'];

/** Steps of both targets at the same load that passed the knee: where the hiccup goal applies. */
export function hiccupVerdict(cap: CapacityResult): { worstP99Ratio: number; worstMaxRatio: number; atConsumers: number[]; withinGoal: boolean } | null {
	const pairs = cap.steps
		.filter((s) => s.target === 'parley' && s.pass)
		.map((p) => [p, twin(cap, p)] as const)
		.filter((x): x is readonly [CapacityStep, CapacityStep] => x[1] !== undefined && x[1].pass);
	if (pairs.length === 0) return null;
	const p99 = pairs.map(([p, r]) => p.latencyMs.p99 / r.latencyMs.p99);
	const max = pairs.map(([p, r]) => p.latencyMs.max / r.latencyMs.max);
	const worstP99Ratio = Math.max(...p99);
	const worstMaxRatio = Math.max(...max);
	return { worstP99Ratio, worstMaxRatio, atConsumers: pairs.map(([p]) => p.consumers), withinGoal: worstP99Ratio <= HICCUP_RATIO_LIMIT && worstMaxRatio <= HICCUP_RATIO_LIMIT };
}

/** The step the timeline shows: Parley's passing step with the highest whole-window p99 (the
 * hiccup worth looking at), with its raw-mediasoup twin. */
export function timelineStep(cap: CapacityResult): CapacityStep | undefined {
	const parley = cap.steps.filter((s) => s.target === 'parley' && (s.timeline?.length ?? 0) > 0);
	const candidates = parley.some((s) => s.pass) ? parley.filter((s) => s.pass) : parley;
	return candidates.sort((a, b) => b.latencyMs.p99 - a.latencyMs.p99)[0];
}

export function timelineChart(cap: CapacityResult, kind: string): string | undefined {
	const step = timelineStep(cap);
	if (!step) return undefined;
	const raw = twin(cap, step);
	const seconds = (at: number) => at / 1000;
	const series: Series[] = [
		{ name: `Parley p99 per 100 ms (${step.consumers} consumers)`, points: step.timeline.map((t) => [seconds(t.atMs), t.p99Ms]), color: PALETTE[0]!, markers: true },
		{ name: 'Parley max per 100 ms', points: step.timeline.map((t) => [seconds(t.atMs), t.maxMs]), color: PALETTE[0]!, dashed: true },
	];
	if (raw?.timeline?.length) {
		series.push({ name: 'raw mediasoup p99 per 100 ms', points: raw.timeline.map((t) => [seconds(t.atMs), t.p99Ms]), color: PALETTE[1]!, markers: true });
		series.push({ name: 'raw mediasoup max per 100 ms', points: raw.timeline.map((t) => [seconds(t.atMs), t.maxMs]), color: PALETTE[1]!, dashed: true });
	}
	series.push({ name: 'bench/Parley event-loop stall (longest per 100 ms)', points: step.timeline.map((t) => [seconds(t.atMs), t.eventLoopMaxMs]), color: PALETTE[2]!, dashed: true });
	const running = step.timeline.filter((t) => t.statsRoundsRunning > 0);
	if (running.length) series.push({ name: 'Parley stats round running', points: running.map((t) => [seconds(t.atMs), 0]), color: PALETTE[3]!, markers: true });
	return lineChart({
		title: `Latency over one window (${kind}, ${step.consumers} consumers)`,
		xLabel: 'time in the measuring window (s)',
		yLabel: 'added latency / stall (ms)',
		series,
		xDomain: [0, cap.options.windowMs / 1000],
	});
}
