// Line charts as standalone SVG, written by hand (no charting dependency in the repository):
// axes with ticks, a legend, optional log-scale x and y, dashed series and markers.

export interface Series {
	name: string;
	points: [number, number][];
	color: string;
	dashed?: boolean;
	markers?: boolean;
	/** Draw as steps (for CDFs). */
	step?: boolean;
}

export interface ChartOptions {
	title: string;
	xLabel: string;
	yLabel: string;
	series: Series[];
	xDomain?: [number, number];
	yDomain?: [number, number];
	logX?: boolean;
	/** Log-scale y (points at y <= 0 are left out). */
	logY?: boolean;
	/** Horizontal reference lines (limits). */
	hLines?: { y: number; label: string; color: string }[];
	width?: number;
	height?: number;
	yFormat?: (v: number) => string;
	xFormat?: (v: number) => string;
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

function esc(s: string): string {
	return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** "Nice" tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
	if (!(hi > lo)) return [lo];
	const raw = (hi - lo) / count;
	const mag = 10 ** Math.floor(Math.log10(raw));
	const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
	const ticks: number[] = [];
	for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toFixed(10));
	return ticks;
}

function logTicks(lo: number, hi: number): number[] {
	const ticks: number[] = [];
	for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
		for (const m of [1, 2, 5]) {
			const v = m * 10 ** e;
			if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v);
		}
	}
	return ticks;
}

function fmt(v: number): string {
	if (v === 0) return '0';
	const a = Math.abs(v);
	if (a >= 1000) return `${+(v / 1000).toFixed(1)}k`;
	if (a >= 10) return String(+v.toFixed(0));
	if (a >= 1) return String(+v.toFixed(1));
	return String(+v.toPrecision(2));
}

export function lineChart(o: ChartOptions): string {
	const W = o.width ?? 720;
	const H = o.height ?? 420;
	const m = { left: 64, right: 16, top: 40, bottom: 52 };
	const legendRows = Math.ceil(o.series.length / 3);
	const plotH = H - m.top - m.bottom - legendRows * 18;
	const plotW = W - m.left - m.right;
	const drawable = ([x, y]: [number, number]): boolean => Number.isFinite(x) && Number.isFinite(y) && (!o.logX || x > 0) && (!o.logY || y > 0);
	const all = o.series.flatMap((s) => s.points).filter(drawable);
	const xs = all.map((p) => p[0]);
	const ys = all.map((p) => p[1]);
	let [x0, x1] = o.xDomain ?? [Math.min(...xs, Infinity), Math.max(...xs, -Infinity)];
	let [y0, y1] = o.yDomain ?? [o.logY ? Math.min(...ys, Infinity) : Math.min(0, ...ys), Math.max(...ys, ...(o.hLines ?? []).map((h) => h.y * 1.1), -Infinity)];
	if (!Number.isFinite(x0) || !Number.isFinite(x1)) [x0, x1] = o.logX ? [1, 10] : [0, 1];
	if (!Number.isFinite(y0) || !Number.isFinite(y1)) [y0, y1] = o.logY ? [1, 10] : [0, 1];
	if (x1 === x0) x1 = x0 + (o.logX ? x0 : 1);
	if (y1 === y0) y1 = y0 + (o.logY ? y0 : 1);
	const lx = (x: number): number => (o.logX ? Math.log10(Math.max(x, 1e-9)) : x);
	const ly = (y: number): number => (o.logY ? Math.log10(Math.max(y, 1e-9)) : y);
	const sx = (x: number): number => m.left + ((lx(x) - lx(x0)) / (lx(x1) - lx(x0))) * plotW;
	const sy = (y: number): number => m.top + plotH - ((ly(Math.min(Math.max(y, y0), y1)) - ly(y0)) / (ly(y1) - ly(y0))) * plotH;
	const xf = o.xFormat ?? fmt;
	const yf = o.yFormat ?? fmt;
	const out: string[] = [];
	out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
	out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
	out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(o.title)}</text>`);
	// Grid and ticks.
	const xt = o.logX ? logTicks(x0, x1) : niceTicks(x0, x1);
	const yt = o.logY ? logTicks(y0, y1) : niceTicks(y0, y1);
	for (const t of xt) {
		const x = sx(t).toFixed(1);
		out.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + plotH}" stroke="#e5e5e5"/>`);
		out.push(`<text x="${x}" y="${m.top + plotH + 16}" text-anchor="middle">${esc(xf(t))}</text>`);
	}
	for (const t of yt) {
		const y = sy(t).toFixed(1);
		out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + plotW}" y2="${y}" stroke="#e5e5e5"/>`);
		out.push(`<text x="${m.left - 6}" y="${(+y + 4).toFixed(1)}" text-anchor="end">${esc(yf(t))}</text>`);
	}
	out.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
	out.push(`<text x="${m.left + plotW / 2}" y="${m.top + plotH + 36}" text-anchor="middle">${esc(o.xLabel)}</text>`);
	out.push(`<text transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
	for (const h of o.hLines ?? []) {
		if (h.y < y0 || h.y > y1) continue;
		const y = sy(h.y).toFixed(1);
		out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + plotW}" y2="${y}" stroke="${h.color}" stroke-dasharray="2 3"/>`);
		out.push(`<text x="${m.left + 4}" y="${(+y - 4).toFixed(1)}" fill="${h.color}">${esc(h.label)}</text>`);
	}
	// Series.
	out.push(`<g clip-path="url(#plot)">`);
	out.push(`<clipPath id="plot"><rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}"/></clipPath>`);
	for (const s of o.series) {
		const pts = s.points.filter(drawable);
		if (pts.length === 0) continue;
		let d = '';
		pts.forEach(([x, y], i) => {
			if (i === 0) d += `M${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
			else if (s.step) d += `H${sx(x).toFixed(1)}V${sy(y).toFixed(1)}`;
			else d += `L${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
		});
		out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
		if (s.markers) for (const [x, y] of pts) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
	}
	out.push(`</g>`);
	// Legend, three per row under the axis label.
	o.series.forEach((s, i) => {
		const col = i % 3;
		const row = Math.floor(i / 3);
		const x = m.left + col * (plotW / 3);
		const y = H - legendRows * 18 + row * 18 - 2;
		out.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
		out.push(`<text x="${x + 28}" y="${y}">${esc(s.name)}</text>`);
	});
	out.push('</svg>');
	return out.join('\n');
}
