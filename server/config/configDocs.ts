// Renders config/README.md from the schema, so the documentation cannot drift from the code.
import { listOptions, type OptionInfo } from './loadConfig.js';

function allowed(o: OptionInfo): string {
	const s = o.jsonSchema;
	if (Array.isArray(s.enum)) return s.enum.map((v) => `\`${String(v)}\``).join(', ');
	const parts: string[] = [];
	if (typeof s.minimum === 'number') parts.push(`>= ${s.minimum}`);
	if (typeof s.maximum === 'number') parts.push(`<= ${s.maximum}`);
	if (s.type === 'integer') parts.push('integer');
	if (Array.isArray(s.anyOf)) parts.push((s.anyOf as { format?: string }[]).some((a) => a.format === 'uri') ? 'http(s) URL' : 'IPv4 or IPv6 address');
	if (typeof s.minLength === 'number' && s.minLength > 0) parts.push('non-empty');
	return parts.join(', ');
}

const cell = (text: string): string => text.replace(/\|/g, '\\|');

export function renderConfigDocs(): string {
	const rows = listOptions().map((o) => {
		const env = [o.envName, ...o.envAliases].map((e) => `\`${e}\``).join(', ');
		const def = JSON.stringify(o.jsonSchema.default);
		return `| \`${o.name}\` | ${env} | \`${def}\` | ${o.jsonSchema.unit ?? ''} | ${cell(allowed(o))} | ${cell(o.jsonSchema.description ?? '')} |`;
	});
	return [
		'# Configuration',
		'',
		'<!-- Generated from config/schema.ts by `npm run config:docs`; a test fails when this file is stale. -->',
		'',
		'Parley reads its options in this order, later ones winning:',
		'',
		'1. the defaults below (declared in [`schema.ts`](schema.ts));',
		'2. a JSON file named by `PARLEY_CONFIG` (any subset of the options, nested as in the table: `{"http": {"port": 9000}}`; see [`example.json`](example.json));',
		'3. environment variables: option `a.bC` is `PARLEY_A_B_C`; a few options also honour a conventional variable (`REDIS_URL`, `MEDIASOUP_WORKER_BIN`), which `PARLEY_*` overrides.',
		'',
		'Startup stops with exit code 78 and a message naming the option and where its value came from when a value is invalid, an option is unknown (in the file or as a `PARLEY_*` variable), or the file is not valid JSON.',
		'',
		'| Option | Environment | Default | Unit | Allowed | Meaning |',
		'|---|---|---|---|---|---|',
		...rows,
		'',
		'Other environment variables: `PARLEY_CONFIG` (config file path), `PARLEY_CACHE_DIR` (where `scripts/setup` caches the built mediasoup worker; default `~/.cache/parley`).',
		'',
	].join('\n');
}
