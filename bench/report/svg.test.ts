import { describe, expect, it } from 'vitest';
import { lineChart, niceTicks } from './svg.js';

describe('lineChart', () => {
	it('draws one path per series, a legend entry each, and escapes text', () => {
		const svg = lineChart({
			title: 'Loss <vs> playable',
			xLabel: 'loss',
			yLabel: 'share',
			series: [
				{ name: 'FEC on', points: [[0, 1], [10, 0.97]], color: '#000', markers: true },
				{ name: 'FEC off', points: [[0, 1], [10, 0.9]], color: '#f00', dashed: true },
			],
			hLines: [{ y: 0.95, label: 'limit', color: '#999' }],
		});
		expect(svg.startsWith('<svg')).toBe(true);
		expect(svg.match(/<path /g)).toHaveLength(2);
		expect(svg).toContain('Loss &lt;vs&gt; playable');
		expect(svg).toContain('FEC off');
		expect(svg).not.toContain('NaN');
	});

	it('copes with empty series and log axes', () => {
		const svg = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'none', points: [], color: '#000' }], logX: true });
		expect(svg).not.toContain('NaN');
	});
});

describe('lineChart with a log y axis', () => {
	it('spaces decades evenly and leaves out points at or below zero', () => {
		const svg = lineChart({
			title: 'lost frames',
			xLabel: 'loss',
			yLabel: 'lost (%)',
			logY: true,
			yDomain: [0.01, 100],
			series: [{ name: 'RED', points: [[0, 0], [10, 0.1], [20, 1], [30, 10]], color: '#000', markers: true }],
		});
		expect(svg).not.toContain('NaN');
		// The zero point is not drawable on a log axis: three markers.
		expect(svg.match(/<circle /g)).toHaveLength(3);
		const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
		// 0.1 -> 1 -> 10: one decade each, the same distance on screen.
		expect(Math.abs(ys[0]! - ys[1]! - (ys[1]! - ys[2]!))).toBeLessThan(0.2);
		for (const tick of ['0.01', '0.1', '1', '10', '100']) expect(svg).toContain(`>${tick}</text>`);
	});
});

describe('niceTicks', () => {
	it('covers the range with round steps', () => {
		expect(niceTicks(0, 100)).toEqual([0, 20, 40, 60, 80, 100]);
		expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
	});
});
