// Join phases: when each step of a join was reached, from starting to open the WebSocket, so
// the bench can say where a join's time goes. A sample holds one join's instants (ms from its
// start); a summary gives each phase's distribution from the start (cumulative) and what the
// phase added after the latest earlier phase of the same join (the increment; steps that run
// in parallel, such as ICE beside a signaling round trip, add nothing when they finish first).
import { type LatencySummary, summarize } from './stats.js';

export type JoinPhaseSample = Record<string, number>;

export interface JoinPhaseSummary {
	phase: string;
	/** What the phase is, for the report. */
	description: string;
	/** Joins that reached the phase. */
	count: number;
	fromConnectMs: LatencySummary;
	incrementMs: LatencySummary;
}

/** `phases`: [name, description] in the order a join passes them. */
export function summarizeJoinPhases(phases: readonly (readonly [string, string])[], samples: readonly JoinPhaseSample[]): JoinPhaseSummary[] {
	return phases.map(([phase, description], i) => {
		const cumulative: number[] = [];
		const increments: number[] = [];
		for (const sample of samples) {
			const at = sample[phase];
			if (at === undefined || !Number.isFinite(at)) continue;
			cumulative.push(at);
			let before = 0;
			for (const [earlier] of phases.slice(0, i)) {
				const t = sample[earlier];
				if (t !== undefined && Number.isFinite(t)) before = Math.max(before, t);
			}
			increments.push(Math.max(0, at - before));
		}
		return { phase, description, count: cumulative.length, fromConnectMs: summarize(cumulative), incrementMs: summarize(increments) };
	});
}
