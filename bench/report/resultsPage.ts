// The published results page: bench/RESULTS.md with its charts and the results.json it was
// rendered from in bench/results-page/, so performance engineers see figures before they
// install. One command makes all three from a run's results.json:
//   npx tsx bench/run.ts --from bench/results/<run>/results.json --results-page
// The page is a pure function of the committed JSON (resultsPage.test.ts renders it again
// and fails on any difference), so it cannot drift from what was measured.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CAPACITY_DEFAULTS } from '../scenarios/capacity.js';
import type { BenchRun } from './BenchRun.js';
import { timelineStep } from './capacityReport.js';
import { renderReport } from './report.js';

export const RESULTS_PAGE = 'bench/RESULTS.md';
export const RESULTS_ASSETS = 'bench/results-page';
const JSON_NAME = 'results.json';
const REGENERATE = `npx tsx bench/run.ts --from ${RESULTS_ASSETS}/${JSON_NAME} --results-page`;

/** Numeric arrays longer than this are per-packet samples: the page does not need them and
 * they would make the committed JSON large. */
const MAX_KEPT_ARRAY = 1000;

/** The run without per-packet sample arrays, numbers to four decimals (what is committed beside the page). */
export function compactRun(run: BenchRun): BenchRun {
	const strip = (v: unknown): unknown => {
		if (Array.isArray(v)) return v.length > MAX_KEPT_ARRAY && v.every((x) => typeof x === 'number') ? [] : v.map(strip);
		if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, strip(x)]));
		// Four decimals are more than any figure on the page shows (latency in ms: 0.1 us).
		if (typeof v === 'number' && !Number.isInteger(v) && Number.isFinite(v)) return Math.round(v * 1e4) / 1e4;
		return v;
	};
	const compact = strip(run) as BenchRun;
	// 100 ms slices are kept for the steps the timeline charts show (Parley's worst step and its raw twin) only.
	for (const cap of compact.capacity ?? []) {
		const shown = timelineStep(cap);
		for (const step of cap.steps) if (!shown || step.consumers !== shown.consumers) step.timeline = [];
	}
	return compact;
}

/** Why the page's figures may not be final: a smoke run, a run with fewer scenarios or
 * capacity steps than the full bench, or one that shared the machine with other work. */
export function shortRunNote(run: BenchRun): string | null {
	if (run.smoke) return 'This page comes from a smoke run (a few seconds per scenario): it shows what the bench reports, not real figures.';
	const missing = (['loss', 'capacity', 'signaling', 'storage', 'metadata', 'join', 'recording'] as const).filter((k) => run[k] === undefined);
	// A ramp is short when its windows were, or when it stopped before some target failed a step
	// (no knee). Step lists differ per transport and grow to the knee, so they are not compared.
	const shortRamps = (run.capacity ?? []).filter((c) => c.options.windowMs < CAPACITY_DEFAULTS.windowMs || c.summary.some((t) => !t.firstFailure));
	const busiest = Math.max(0, ...(run.capacity ?? []).flatMap((c) => c.steps.map((st) => st.otherCpu)));
	const busy = busiest > Math.min(...(run.capacity ?? []).map((c) => c.options.maxOtherCpu), Infinity);
	if (missing.length === 0 && shortRamps.length === 0 && !busy) return null;
	const parts: string[] = [];
	if (busy) parts.push(`the machine was shared: other processes used up to ${busiest.toFixed(2)} cores during capacity steps (*other CPU*; steps that failed that way are marked inconclusive)`);
	if (missing.length) parts.push(`scenarios not in this run: ${missing.join(', ')}`);
	if (shortRamps.length) parts.push(`capacity ramps cut short (${shortRamps.map((c) => `${c.options.transport}: steps ${c.options.steps.join(', ')}, ${c.options.windowMs} ms windows`).join('; ')}), so not every knee is found`);
	return `**This is a short run** (${parts.join('; ')}). The page will be regenerated from a full run on a quiet machine; until then, read the figures as Parley against raw mediasoup in the same run, not as capacity.`;
}

/** The page and its files, by path relative to the repository root. */
export function renderResultsPage(run: BenchRun): Map<string, string> {
	const { files, charts } = renderReport(run, `${path.basename(RESULTS_ASSETS)}/`);
	const out = new Map<string, string>();
	for (const name of Object.values(charts)) out.set(`${RESULTS_ASSETS}/${name}`, files.get(name)!);
	// One line: the file is regenerated whole, never edited, and stays small.
	out.set(`${RESULTS_ASSETS}/${JSON_NAME}`, `${JSON.stringify(run)}\n`);
	const report = files.get('report.md')!;
	// The report's own title line gives way to the page's.
	const body = report.slice(report.indexOf('\n') + 1).trimStart();
	const note = shortRunNote(run);
	const page = [
		'# Parley bench results',
		'',
		`Measured with the project's bench (\`bench/\`, see [bench/README.md](README.md)) at commit \`${run.versions.gitCommit ?? '?'}\`${run.versions.gitDirty ? ' (with uncommitted changes)' : ''} on ${run.machine.cpuModel} (${run.machine.cores} cores, ${run.machine.memoryGiB} GiB, ${run.machine.platform} ${run.machine.kernel}), ${run.startedAt}. Command: \`${run.command}\`.`,
		'',
		...(note ? [note, ''] : []),
		`Everything below is rendered from [${RESULTS_ASSETS.slice('bench/'.length)}/${JSON_NAME}](${path.basename(RESULTS_ASSETS)}/${JSON_NAME}) (per-packet sample arrays stripped) by \`${REGENERATE}\`; a test renders it again and fails if this page differs. To publish a new run: \`npx tsx bench/run.ts --from bench/results/<run>/results.json --results-page\`.`,
		'',
		body,
	].join('\n');
	out.set(RESULTS_PAGE, page.endsWith('\n') ? page : `${page}\n`);
	return out;
}

/** Writes the page, its charts and its JSON under `root` (the repository), replacing the old ones. */
export function writeResultsPage(run: BenchRun, root: string): string[] {
	// Through JSON first, so the page is rendered from exactly what the committed file holds (NaN becomes null).
	const files = renderResultsPage(JSON.parse(JSON.stringify(compactRun(run))) as BenchRun);
	const assets = path.join(root, RESULTS_ASSETS);
	mkdirSync(assets, { recursive: true });
	for (const old of readdirSync(assets)) if (old.endsWith('.svg')) rmSync(path.join(assets, old));
	for (const [name, content] of files) writeFileSync(path.join(root, name), content);
	return [...files.keys()];
}
