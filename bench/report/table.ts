// Plain-text and Markdown tables from the same rows.

export type Cell = string | number | null | undefined;

function text(c: Cell): string {
	if (c === null || c === undefined) return '-';
	return typeof c === 'number' ? String(c) : c;
}

/** Columns padded to width, numbers right-aligned (for stdout). */
export function textTable(headers: string[], rows: Cell[][]): string {
	const cells = [headers, ...rows.map((r) => r.map(text))];
	const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
	const numeric = headers.map((_, i) => rows.every((r) => typeof r[i] === 'number' || r[i] === null || r[i] === undefined || /^[-\d.,%x]+( ms)?$/.test(text(r[i]))));
	const line = (r: string[]): string => r.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
	return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function markdownTable(headers: string[], rows: Cell[][]): string {
	const esc = (s: string): string => s.replace(/\|/g, '\\|');
	return [`| ${headers.map(esc).join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map((c) => esc(text(c))).join(' | ')} |`)].join('\n');
}

export function pct(v: number | null | undefined, digits = 1): string {
	return v === null || v === undefined || !Number.isFinite(v) ? '-' : `${(v * 100).toFixed(digits)}%`;
}

export function ms(v: number | null | undefined, digits = 2): string {
	return v === null || v === undefined || !Number.isFinite(v) ? '-' : `${v.toFixed(digits)} ms`;
}

export function num(v: number | null | undefined, digits = 0): string {
	return v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}
