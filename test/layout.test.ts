// The README's Layout section is the map of the tree: it must name every folder of the
// server and every part the import rules (.dependency-cruiser.cjs) order, so neither can
// drift from the code without this failing.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const readme = readFileSync('README.md', 'utf8');
const layoutStart = readme.indexOf('## Layout');
const layoutEnd = readme.indexOf('\n## ', layoutStart + 1);
const layout = readme.slice(layoutStart, layoutEnd === -1 ? undefined : layoutEnd);
const rows = layout.split('\n');
/** The table row naming `part` (written with or without a trailing slash). */
const rowOf = (part: string): number => rows.findIndex((line) => line.startsWith('|') && (line.includes(`\`${part}\``) || line.includes(`\`${part}/\``)));
const named = new Set([...layout.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\/$/, '')));

describe('README Layout', () => {
	it('names every folder under server/ and every top-level part', () => {
		const folders = readdirSync('server').filter((f) => statSync(`server/${f}`).isDirectory()).map((f) => `server/${f}`);
		const topLevel = ['protocol', 'client', 'bench', 'testkit', 'test', 'grafana', 'scripts', 'config'];
		const missing = [...folders, ...topLevel].filter((f) => !named.has(f));
		expect(missing).toEqual([]);
		// And nothing it names as a server folder is gone.
		const stale = [...named].filter((n) => /^server\/[a-z]+$/.test(n) && !folders.includes(n));
		expect(stale).toEqual([]);
	});

	it('shows the layers in the order the import rules enforce', () => {
		const require = createRequire(import.meta.url);
		const { forbidden } = require('../.dependency-cruiser.cjs') as { forbidden: { name: string; from: { path?: string } }[] };
		// The rule of layer i forbids importing the layers above it; its `from` names layer i's parts.
		const layers = forbidden
			.filter((r) => /^layer-\d+-not-up$/.test(r.name))
			.map((r) => r.from.path!.replace(/^\^\(/, '').replace(/\)$/, '').split('|').map((p) => p.replace(/\\\\?\./g, '.').replace(/\$$/, '').replace(/\/$/, '')));
		expect(layers.length).toBeGreaterThan(5);
		let lastRow = -1;
		for (const parts of layers) {
			for (const part of parts) {
				const row = rowOf(part);
				expect(row, `${part} is in the README's layer table`).toBeGreaterThan(-1);
				expect(row, `${part} is not above a layer the rules put higher`).toBeGreaterThanOrEqual(lastRow);
			}
			lastRow = Math.max(...parts.map(rowOf));
		}
	});
});
