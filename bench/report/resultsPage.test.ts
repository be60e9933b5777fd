// The published page (bench/RESULTS.md and bench/results-page/) is rendered again from the
// committed results.json: any difference means the page was edited by hand or the JSON
// replaced without regenerating it (npx tsx bench/run.ts --from bench/results-page/results.json --results-page).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { BenchRun } from './BenchRun.js';
import { compactRun, RESULTS_ASSETS, RESULTS_PAGE, renderResultsPage, shortRunNote } from './resultsPage.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const committedJson = path.join(root, RESULTS_ASSETS, 'results.json');

describe('published results page', () => {
	it('is exactly what the committed results.json renders to, charts included', () => {
		const run = JSON.parse(readFileSync(committedJson, 'utf8')) as BenchRun;
		const rendered = renderResultsPage(run);
		for (const [name, content] of rendered) {
			expect(existsSync(path.join(root, name)), `${name} is committed`).toBe(true);
			expect(readFileSync(path.join(root, name), 'utf8'), `${name} matches its render`).toBe(content);
		}
		// No stale chart left from an earlier run.
		const svgs = readdirSync(path.join(root, RESULTS_ASSETS)).filter((f) => f.endsWith('.svg'));
		expect(svgs.sort()).toEqual([...rendered.keys()].filter((k) => k.endsWith('.svg')).map((k) => path.basename(k)).sort());
	});

	it('names the commit, the machine and the command of the run, and says when the run was short', () => {
		const run = JSON.parse(readFileSync(committedJson, 'utf8')) as BenchRun;
		const page = readFileSync(path.join(root, RESULTS_PAGE), 'utf8');
		expect(page).toContain(run.versions.gitCommit!);
		expect(page).toContain(run.machine.cpuModel);
		expect(page).toContain(run.command);
		const note = shortRunNote(run);
		if (note) expect(page).toContain(note);
	});

	it('fails to match when a figure changes, and strips per-packet arrays from what it commits', () => {
		const run = JSON.parse(readFileSync(committedJson, 'utf8')) as BenchRun;
		const page = renderResultsPage(run).get(RESULTS_PAGE)!;
		const changed = structuredClone(run);
		const step = changed.capacity![0]!.steps[0]!;
		step.latencyMs.max += 1.23;
		expect(renderResultsPage(changed).get(RESULTS_PAGE)).not.toBe(page);
		const withSamples = { ...run, loss: { losslessLatencySamples: Array.from({ length: 5000 }, (_, i) => i) } } as unknown as BenchRun;
		expect((compactRun(withSamples).loss as unknown as { losslessLatencySamples: number[] }).losslessLatencySamples).toEqual([]);
	});

	it('calls a run short when a ramp found no knee for some target or measured short windows, not for its step list', () => {
		const run = JSON.parse(readFileSync(committedJson, 'utf8')) as BenchRun;
		const full = structuredClone(run);
		for (const c of full.capacity ?? []) {
			c.options.windowMs = 4000;
			c.options.steps = [1000, 2000];
			for (const t of c.summary) t.firstFailure ??= { consumers: 3000, reason: 'p99' } as unknown as NonNullable<typeof t.firstFailure>;
			for (const st of c.steps) st.otherCpu = 0;
		}
		expect(shortRunNote(full)).toBeNull();
		const noKnee = structuredClone(full);
		noKnee.capacity![0]!.summary[0]!.firstFailure = null;
		expect(shortRunNote(noKnee)).toContain('cut short');
		const shortWindows = structuredClone(full);
		shortWindows.capacity![0]!.options.windowMs = 1000;
		expect(shortRunNote(shortWindows)).toContain('1000 ms windows');
	});
});
