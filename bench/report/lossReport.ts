// The RED part of the loss sweep's report: per placement and loss, the playable share of each
// mode beside its ceiling, where the played frames came from, the added latency per mode,
// and charts of the lost share (log scale) with the ceilings drawn as lines.
import { lossCeiling } from '../audio/playout.js';
import { conditionLegs, type ListenerKind, type LossConditionResult, type LossMode, type LossPlacement, type LossSweepResult, modeLabel } from '../scenarios/lossSweep.js';
import type { Headline } from './BenchRun.js';
import { lineChart, PALETTE, type Series } from './svg.js';
import { type Cell, markdownTable, ms, num, pct, textTable } from './table.js';

/** Rows of the FEC/NACK grid (results written before the RED grid existed have no `grid`). */
export function isFecNackRow(c: LossConditionResult): boolean {
	return (c.grid ?? 'fec-nack') === 'fec-nack';
}

const PLACEMENT: Record<LossPlacement, string> = { up: 'uplink', down: 'downlink', both: 'both' };

function hasRedGrid(loss: LossSweepResult): boolean {
	return (loss.options.redModes?.length ?? 0) > 0 && loss.conditions.some((c) => c.grid === 'red');
}

/** The row of a mode at a condition: from either grid (the FEC/NACK grid's NACK-off FEC row
 * stands for FEC only where they coincide); at 0% the placement does not matter. */
export function findRedRow(loss: LossSweepResult, q: { lossAt: LossPlacement; model: string; lossRate: number; mode: LossMode; listener: ListenerKind }): LossConditionResult | undefined {
	return loss.conditions.find(
		(c) =>
			c.model === q.model &&
			Math.abs(c.lossRate - q.lossRate) < 1e-9 &&
			(q.lossRate === 0 || (c.lossAt ?? loss.options.lossAt) === q.lossAt) &&
			c.fec === q.mode.fec &&
			(c.redDistance ?? 0) === q.mode.redDistance &&
			!c.nack &&
			(c.listener ?? 'opus') === q.listener,
	);
}

const listenerOf = (m: LossMode): ListenerKind => (m.redDistance > 0 ? 'red' : 'opus');

function conditionsOf(loss: LossSweepResult): { lossAt: LossPlacement; model: string; lossRate: number }[] {
	const o = loss.options;
	const out: { lossAt: LossPlacement; model: string; lossRate: number }[] = [];
	for (const lossAt of o.redLossAt)
		for (const model of o.models)
			for (const lossRate of o.redLossRates) {
				if (lossRate === 0 && (model === 'bursty' || lossAt !== o.redLossAt[0])) continue;
				out.push({ lossAt, model, lossRate });
			}
	return out;
}

const gapPp = (c: LossConditionResult): string => `${((c.ceiling - c.playout.playableShare) * 100).toFixed(2)}`;

/** One line per condition: each mode's playable share with its ceiling, and the stripped listeners on uplink loss. */
function matrix(loss: LossSweepResult): { headers: string[]; rows: Cell[][] } {
	const modes = loss.options.redModes;
	const redModes = modes.filter((m) => m.redDistance > 0);
	const withStripped = loss.options.strippedListener && loss.options.redLossAt.includes('up');
	const headers = ['placement', 'model', 'loss', ...modes.map((m) => `${modeLabel(m)} (ceiling)`), ...(withStripped ? redModes.map((m) => `${modeLabel(m)}, no-RED listener`) : [])];
	const cell = (c: LossConditionResult | undefined): string => (c ? `${pct(c.playout.playableShare, 2)} (${pct(c.ceiling, 2)})` : '-');
	const rows = conditionsOf(loss).map(({ lossAt, model, lossRate }) => [
		lossRate === 0 ? '-' : PLACEMENT[lossAt],
		model,
		pct(lossRate, 0),
		...modes.map((mode) => cell(findRedRow(loss, { lossAt, model, lossRate, mode, listener: listenerOf(mode) }))),
		...(withStripped ? redModes.map((mode) => (lossAt === 'up' || lossRate === 0 ? cell(findRedRow(loss, { lossAt: 'up', model, lossRate, mode, listener: 'stripped' })) : '')) : []),
	]);
	return { headers, rows };
}

const DETAIL_HEADERS = ['placement', 'model', 'loss', 'measured', 'mode', 'listener', 'frames', 'own packet', 'redundant copy', 'FEC', 'FEC via copy', 'concealed', 'late', 'playable', 'ceiling', 'gap (pp)', 'no deadline', 'k', 'playable (speech)', 'segSNR dB', 'RED pkts', 'bad RED', 'lat p50', 'lat p99'];
const LISTENER: Record<ListenerKind, string> = { opus: 'Opus', red: 'RED', stripped: 'no RED (stripped)' };

function detailRows(loss: LossSweepResult): Cell[][] {
	const rows: Cell[][] = [];
	for (const q of conditionsOf(loss)) {
		for (const mode of loss.options.redModes) {
			for (const listener of mode.redDistance > 0 ? (['red', 'stripped'] as const) : (['opus'] as const)) {
				const c = findRedRow(loss, { ...q, mode, listener });
				if (!c) continue;
				const p = c.playout;
				rows.push([
					q.lossRate === 0 ? '-' : PLACEMENT[q.lossAt],
					q.model,
					pct(q.lossRate, 0),
					pct(c.measuredNetworkLoss),
					modeLabel(mode),
					LISTENER[listener],
					p.frames,
					p.delivered,
					p.fromRedundancy ?? 0,
					p.recovered,
					p.recoveredFromRedundantCopy ?? 0,
					p.concealed,
					p.late,
					pct(p.playableShare, 2),
					pct(c.ceiling, 2),
					gapPp(c),
					pct(p.playableWithoutDeadline, 2),
					c.coveringPackets,
					pct(p.speechPlayableShare, 2),
					num(p.quality.segmentalSnrDb, 1),
					c.received?.redPackets ?? 0,
					(c.received?.invalidRedPackets ?? 0) + (c.received?.unexpectedPayloadType ?? 0),
					ms(c.latencyMs.p50),
					ms(c.latencyMs.p99),
				]);
			}
		}
	}
	return rows;
}

function median(values: number[]): number {
	const s = values.filter(Number.isFinite).sort((a, b) => a - b);
	if (s.length === 0) return NaN;
	const m = s.length >> 1;
	return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const LATENCY_HEADERS = ['placement', 'mode', 'listener', 'rows', 'p50 (median over rows)', 'p99 (median over rows)', 'p50 - FEC only', 'p99 - FEC only'];

/** Added latency per mode: the medians over a placement's rows of each row's p50 and p99
 * (primary arrivals only), beside FEC only's. RED adds none when the columns of differences stay near 0. */
function latencyRows(loss: LossSweepResult): Cell[][] {
	const rows: Cell[][] = [];
	const fecOnly: LossMode = { redDistance: 0, fec: true };
	for (const lossAt of loss.options.redLossAt) {
		const of = (mode: LossMode, listener: ListenerKind): LossConditionResult[] =>
			conditionsOf(loss)
				.filter((q) => q.lossAt === lossAt || q.lossRate === 0)
				.map((q) => findRedRow(loss, { ...q, lossAt, mode, listener }))
				.filter((c): c is LossConditionResult => c !== undefined);
		const base = of(fecOnly, 'opus');
		const b50 = median(base.map((c) => c.latencyMs.p50));
		const b99 = median(base.map((c) => c.latencyMs.p99));
		for (const mode of loss.options.redModes) {
			for (const listener of mode.redDistance > 0 ? (lossAt === 'up' ? (['red', 'stripped'] as const) : (['red'] as const)) : (['opus'] as const)) {
				const cs = of(mode, listener);
				if (!cs.length) continue;
				const p50 = median(cs.map((c) => c.latencyMs.p50));
				const p99 = median(cs.map((c) => c.latencyMs.p99));
				rows.push([PLACEMENT[lossAt], modeLabel(mode), LISTENER[listener], cs.length, ms(p50), ms(p99), ms(p50 - b50), ms(p99 - b99)]);
			}
		}
	}
	return rows;
}

function ceilingLabel(model: string, k: number, burst: number): string {
	const modes = k === 1 ? 'FEC only, RED d=1' : k === 2 ? 'RED d=2, RED d=1 + FEC' : `k=${k}`;
	return model === 'random' ? `ceiling 1 - p^${k + 1} (${modes})` : `ceiling bursty L=${burst}, k=${k} (${modes})`;
}

/** Lost share (100 - playable, log scale) against loss for one placement and model: a line
 * per mode, dashed for listeners without RED, the ceilings in grey. */
function redChart(loss: LossSweepResult, lossAt: LossPlacement, model: string): string {
	const o = loss.options;
	const rates = [...new Set(o.redLossRates)].filter((r) => r > 0).sort((a, b) => a - b);
	const series: Series[] = [];
	const floor = 0.01;
	const lost = (c: LossConditionResult): number => Math.max(floor, (1 - c.playout.playableShare) * 100);
	o.redModes.forEach((mode, i) => {
		const pts = (listener: ListenerKind): [number, number][] =>
			rates.flatMap((lossRate) => {
				const c = findRedRow(loss, { lossAt, model, lossRate, mode, listener });
				return c ? [[lossRate * 100, lost(c)] as [number, number]] : [];
			});
		series.push({ name: modeLabel(mode), points: pts(listenerOf(mode)), color: PALETTE[i % PALETTE.length]!, markers: true });
		if (mode.redDistance > 0 && lossAt === 'up' && o.strippedListener) series.push({ name: `${modeLabel(mode)}, no RED`, points: pts('stripped'), color: PALETTE[i % PALETTE.length]!, dashed: true });
	});
	const ks = [...new Set(loss.conditions.filter((c) => c.grid === 'red').map((c) => c.coveringPackets))].filter((k) => k > 0).sort((a, b) => a - b);
	ks.forEach((k, j) => {
		series.push({
			name: ceilingLabel(model, k, o.meanBurstLength),
			points: rates.map((p) => [p * 100, Math.max(floor, (1 - lossCeiling(conditionLegs(model as 'random' | 'bursty', p, lossAt, o.meanBurstLength), k)) * 100)]),
			color: j === 0 ? '#7f7f7f' : '#000000',
			dashed: j > 0,
		});
	});
	return lineChart({
		title: `Frames lost vs ${model} loss on the ${PLACEMENT[lossAt]}${lossAt === 'both' ? ' legs' : ''} (FEC, RED; NACK off)`,
		xLabel: 'packet loss, end to end (%)',
		yLabel: 'frames not playable (%, log scale)',
		series,
		logY: true,
		yDomain: [floor, 100],
		yFormat: (v) => String(+v.toPrecision(2)),
	});
}

/** Charts by file name (without the extension). */
export function redCharts(loss: LossSweepResult): Record<string, string> {
	const out: Record<string, string> = {};
	if (!hasRedGrid(loss)) return out;
	for (const lossAt of loss.options.redLossAt) for (const model of loss.options.models) out[`loss-red-${lossAt}-${model}`] = redChart(loss, lossAt, model);
	return out;
}

export function redHeadlines(loss: LossSweepResult | undefined): Headline[] {
	if (!loss || !hasRedGrid(loss)) return [];
	const out: Headline[] = [];
	const best: LossMode = { redDistance: 2, fec: true };
	const fecOnly: LossMode = { redDistance: 0, fec: true };
	for (const lossAt of loss.options.redLossAt) {
		for (const lossRate of [0.1, 0.2]) {
			const red = findRedRow(loss, { lossAt, model: 'random', lossRate, mode: best, listener: 'red' });
			const fec = findRedRow(loss, { lossAt, model: 'random', lossRate, mode: fecOnly, listener: 'opus' });
			const stripped = lossAt === 'up' ? findRedRow(loss, { lossAt, model: 'random', lossRate, mode: best, listener: 'stripped' }) : undefined;
			if (!red && !fec) continue;
			out.push({
				label: `Playable share at ${lossRate * 100}% random ${PLACEMENT[lossAt]} loss: RED d=2 + FEC / FEC only${stripped ? ' / RED d=2 + FEC to a listener without RED' : ''}`,
				value: `${pct(red?.playout.playableShare, 2)} (ceiling ${pct(red?.ceiling, 2)}, ${red ? gapPp(red) : '-'} pp below; ${pct(red?.playout.playableWithoutDeadline, 2)} with no deadline) / ${pct(fec?.playout.playableShare, 2)} (ceiling ${pct(fec?.ceiling, 2)})${stripped ? ` / ${pct(stripped.playout.playableShare, 2)}` : ''}`,
				path: loss.path,
			});
		}
	}
	return out;
}

export function redTextParts(loss: LossSweepResult | undefined): string[] {
	if (!loss || !hasRedGrid(loss)) return [];
	const m = matrix(loss);
	const parts = [`Loss sweep, RED (playable share, ceiling in brackets; NACK off)\n${textTable(m.headers, m.rows)}`, `Loss sweep, RED: added latency per mode (primary arrivals)\n${textTable(LATENCY_HEADERS, latencyRows(loss))}`];
	for (const e of loss.errors ?? []) parts.push(`ERROR in the loss sweep: ${e}`);
	return parts;
}

export function redMarkdown(loss: LossSweepResult | undefined, img: (key: string, alt: string) => string): string[] {
	if (!loss || !hasRedGrid(loss)) return [];
	const o = loss.options;
	const lines: string[] = ['### RED (RFC 2198) against FEC', ''];
	for (const e of loss.errors ?? []) lines.push(`**Not a measurement:** ${e}`, '');
	lines.push(
		`Modes: ${o.redModes.map(modeLabel).join(', ')}; loss on ${o.redLossAt.map((p) => PLACEMENT[p]).join(', ')} (*both*: each leg at 1 - sqrt(1 - p), so p end to end); NACK off; the same loss pattern for every mode of a condition. A RED publisher sends each packet as RED with the previous d frames as redundant blocks (as Chromium does) and encodes with or without FEC as the mode says; *FEC only* is plain Opus with FEC. The RED listener's consumer has audio/red: it gets RED as sent and uses the blocks. On uplink loss a second listener of the same stream has no audio/red in its capabilities: the worker strips RED to plain Opus for it, and rebuilds a frame lost upstream from the next packet's redundant copy (its row is *no RED (stripped)*; it should match the RED listener, since no loss sits between the worker and it).`,
		'',
		`A frame plays from its own packet if it arrived by its deadline (${o.playoutDelayMs} ms after sending), else from a redundant copy that did (*redundant copy*: a RED block, or for the listener without RED a frame the worker rebuilt), else from the next frame's in-band FEC taken from any copy of it in time (*FEC*; *FEC via copy*: from a redundant copy of the next frame), else it is concealed. *No deadline*: the share some copy (or the next frame's FEC) reached at any time, what loss alone leaves; below it, frames were late (on a busy machine mostly the bench's own event loop, which stamps arrivals; the 0% row shows that floor). *k* = later packets that can stand in for a lost frame in time: RED d puts it in the next d packets, FEC puts its LBRR in the next frame, which travels in up to d + 1 packets, and packet i + j leaves j x 20 ms after frame i, so only j < ${o.playoutDelayMs} / 20 can make the deadline. *Ceiling* = the probability that not all of the k + 1 packets are lost: 1 - p^(k+1) for random loss (k=1: 1 - p^2 for FEC only and RED d=1; k=2: 1 - p^3 for RED d=2, and also for RED d=1 + FEC, whose next frame's copy carries the FEC); for Gilbert bursts of mean length L on one leg 1 - p (1 - 1/L)^k; on two independent legs computed exactly on the product chain. FEC can fall short of its ceiling (Opus adds no LBRR to some frames, pauses in particular); a redundant copy cannot, except for a late arrival. *RED pkts* = RED packets the listener got; *bad RED* = RED blocks or payload types it did not negotiate (must be 0).`,
		'',
	);
	const m = matrix(loss);
	lines.push(markdownTable(m.headers, m.rows), '');
	for (const lossAt of o.redLossAt) for (const model of o.models) lines.push(img(`loss-red-${lossAt}-${model}`, `frames lost, ${model} loss on the ${PLACEMENT[lossAt]}`));
	lines.push('Where each played frame came from:', '', markdownTable(DETAIL_HEADERS, detailRows(loss)), '');
	lines.push(
		'Added latency per mode, one way, over frames that arrived in their own packet (RED must add none: the primary block goes out as soon as it is encoded, and the worker forwards or strips without waiting):',
		'',
		markdownTable(LATENCY_HEADERS, latencyRows(loss)),
		'',
	);
	return lines;
}
