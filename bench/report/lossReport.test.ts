// The RED report on a synthetic sweep: every mode and placement gets its cell, the ceilings
// are drawn, and the stripping and error notes show.
import { describe, expect, it } from 'vitest';
import { coveringPackets, lossCeiling } from '../audio/playout.js';
import { conditionLegs, LOSS_SWEEP_DEFAULTS, type LossConditionResult, type LossSweepResult, sweepConditions } from '../scenarios/lossSweep.js';
import { findRedRow, redCharts, redHeadlines, redMarkdown, redTextParts } from './lossReport.js';

function syntheticSweep(errors: string[] = []): LossSweepResult {
	const o = { ...LOSS_SWEEP_DEFAULTS, nack: [false] };
	const conditions: LossConditionResult[] = sweepConditions(o).flatMap((c) => {
		const k = coveringPackets({ redDistance: c.redDistance, fec: c.fec }, o.playoutDelayMs);
		const ceiling = lossCeiling(conditionLegs(c.model, c.lossRate, c.lossAt, o.meanBurstLength), k);
		const kinds = c.redDistance === 0 ? (['opus'] as const) : c.lossAt === 'up' ? (['red', 'stripped'] as const) : (['red'] as const);
		return kinds.map((listener) => ({
			model: c.model,
			lossRate: c.lossRate,
			meanBurstLength: c.model === 'bursty' ? o.meanBurstLength : null,
			lossAt: c.lossAt,
			grid: c.grid,
			fec: c.fec,
			nack: c.nack,
			redDistance: c.redDistance,
			listener,
			packetLossHintPercent: c.hint,
			measuredNetworkLoss: c.lossRate,
			ceiling,
			coveringPackets: k,
			playout: {
				frames: 2000,
				delivered: Math.round(2000 * (1 - c.lossRate)),
				deliveredAfterNack: 0,
				late: 0,
				fromRedundancy: c.redDistance ? 100 : 0,
				recovered: c.fec ? 50 : 0,
				recoveredFromRedundantCopy: 0,
				concealed: 10,
				playableShare: ceiling - 0.001,
				playableWithoutDeadline: ceiling,
				speechFrames: 1500,
				speechPlayableShare: ceiling,
				quality: { snrDb: 20, segmentalSnrDb: 25, recoveredSnrDb: null, concealedSnrDb: null },
				longestConcealedRun: 1,
			},
			latencyMs: { count: 2000, mean: 0.4, p50: 0.3, p95: 0.6, p99: 1.2, max: 3 },
			nackStats: { nacksSent: 0, packetsAsked: 0, publisherRetransmissions: 0 },
			received: { packets: 1800, redPackets: listener === 'red' ? 1800 : 0, invalidRedPackets: 0, unexpectedPayloadType: 0 },
			proxy: { uplinkDropped: 0, downlinkDropped: 0 },
		}));
	});
	return { path: 'synthetic', options: o, conditions, losslessLatencySamples: [], errors, batches: 3, redSupport: { forwardsRed: true, detail: 'synthetic' }, server: {} };
}

describe('RED loss report', () => {
	const loss = syntheticSweep();

	it('finds a row for every mode, placement and loss, and the listener without RED on uplink loss', () => {
		for (const lossAt of loss.options.redLossAt)
			for (const mode of loss.options.redModes)
				for (const lossRate of [0.05, 0.1, 0.2, 0.3]) {
					const row = findRedRow(loss, { lossAt, model: 'random', lossRate, mode, listener: mode.redDistance ? 'red' : 'opus' });
					expect(row, `${lossAt} ${mode.redDistance}/${mode.fec} ${lossRate}`).toBeDefined();
					if (mode.redDistance && lossAt === 'up') expect(findRedRow(loss, { lossAt, model: 'random', lossRate, mode, listener: 'stripped' })).toBeDefined();
				}
		// FEC only on the downlink is the FEC/NACK grid's row.
		expect(findRedRow(loss, { lossAt: 'down', model: 'random', lossRate: 0.1, mode: { redDistance: 0, fec: true }, listener: 'opus' })?.grid).toBe('fec-nack');
	});

	it('prints 1 - p^3 for RED d=2 and 1 - p^2 for FEC only at 20% random loss', () => {
		const text = redTextParts(loss).join('\n');
		expect(text).toContain('96.00%');
		expect(text).toContain('99.20%');
		expect(text).not.toContain('NaN');
		const md = redMarkdown(loss, (key) => `![](${key}.svg)\n`).join('\n');
		expect(md).toContain('no RED (stripped)');
		expect(md).toContain('loss-red-both-bursty.svg');
		expect(redHeadlines(loss).map((h) => h.label).join('\n')).toContain('RED d=2 + FEC / FEC only');
	});

	it('draws a chart per placement and model with both ceilings', () => {
		const charts = redCharts(loss);
		expect(Object.keys(charts).sort()).toEqual(['loss-red-both-bursty', 'loss-red-both-random', 'loss-red-down-bursty', 'loss-red-down-random', 'loss-red-up-bursty', 'loss-red-up-random']);
		const svg = charts['loss-red-up-random']!;
		expect(svg).toContain('ceiling 1 - p^2');
		expect(svg).toContain('ceiling 1 - p^3');
		expect(svg).toContain('RED d=2 + FEC, no RED');
		expect(svg).not.toContain('NaN');
	});

	it('says loudly when RED was not measured', () => {
		const failed = syntheticSweep(['RED rows not measured: no RED']);
		expect(redTextParts(failed).join('\n')).toContain('ERROR in the loss sweep: RED rows not measured');
		expect(redMarkdown(failed, () => '').join('\n')).toContain('**Not a measurement:**');
	});
});
