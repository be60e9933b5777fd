// Loads Parley's configuration: schema defaults < JSON file (PARLEY_CONFIG) < environment.
// A bad value stops startup with a message that names the option and where it came from.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { configSchema, type OptionMeta, type ParleyConfig } from '../../config/schema.js';

/** Options that were renamed: naming the old one fails with a pointer to the new one. */
const RENAMED_OPTIONS: Record<string, string> = { 'cluster.spanAbovePeers': 'cluster.bridgeAbovePeers' };
const RENAMED_ENV: Record<string, string> = Object.fromEntries(
	Object.entries(RENAMED_OPTIONS).map(([from, to]) => [envNameOf(from.split('.')), envNameOf(to.split('.'))]),
);

/** Environment variables with the PARLEY_ prefix that are not options. */
const NON_OPTION_ENV = new Set(['PARLEY_CONFIG', 'PARLEY_CACHE_DIR']);

export class ConfigError extends Error {
	override readonly name = 'ConfigError';
	/** Dotted option names at fault (empty when the file itself is unreadable). */
	readonly options: string[];
	constructor(message: string, options: string[]) {
		super(message);
		this.options = options;
	}
}

export interface OptionInfo {
	/** Dotted name, e.g. `http.port`. */
	name: string;
	path: string[];
	envName: string;
	envAliases: string[];
	kind: 'number' | 'boolean' | 'string';
	/** JSON Schema of the option (type, default, bounds, enum, description, unit). */
	jsonSchema: Record<string, unknown> & Partial<OptionMeta>;
}

/** `http.port` -> `PARLEY_HTTP_PORT`, `media.workerBin` -> `PARLEY_MEDIA_WORKER_BIN`. */
export function envNameOf(path: string[]): string {
	return 'PARLEY_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

type JsonSchema = Record<string, unknown> & { properties?: Record<string, JsonSchema>; type?: string };

let cachedOptions: OptionInfo[] | undefined;

/** Every leaf option of the schema, in declaration order. */
export function listOptions(): OptionInfo[] {
	if (cachedOptions) return cachedOptions;
	const root = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
	const out: OptionInfo[] = [];
	const walk = (node: JsonSchema, path: string[]): void => {
		if (node.type === 'object' && node.properties) {
			for (const [key, child] of Object.entries(node.properties)) walk(child, [...path, key]);
			return;
		}
		const kind = node.type === 'integer' || node.type === 'number' ? 'number' : node.type === 'boolean' ? 'boolean' : 'string';
		out.push({
			name: path.join('.'),
			path,
			envName: envNameOf(path),
			envAliases: (node.envAliases as string[] | undefined) ?? [],
			kind,
			jsonSchema: node,
		});
	};
	walk(root, []);
	cachedOptions = out;
	return out;
}

/** Converts an environment string to the option's kind; leaves it a string when it does not
 * parse, so validation reports "expected number, received string" with the option's name. */
function fromEnv(raw: string, kind: OptionInfo['kind']): unknown {
	const text = raw.trim();
	if (kind === 'number' && /^-?\d+(\.\d+)?$/.test(text)) return Number(text);
	if (kind === 'boolean') {
		if (/^(true|1|yes|on)$/i.test(text)) return true;
		if (/^(false|0|no|off)$/i.test(text)) return false;
	}
	return kind === 'string' ? raw : text;
}

function getPath(source: Record<string, unknown>, path: string[]): unknown {
	let node: unknown = source;
	for (const key of path) {
		if (typeof node !== 'object' || node === null) return undefined;
		node = (node as Record<string, unknown>)[key];
	}
	return node;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
	let node = target;
	for (const key of path.slice(0, -1)) {
		const next = node[key];
		if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
		node = node[key] as Record<string, unknown>;
	}
	node[path[path.length - 1]!] = value;
}

export interface LoadConfigOptions {
	env?: NodeJS.ProcessEnv;
}

export function loadConfig({ env = process.env }: LoadConfigOptions = {}): ParleyConfig {
	const options = listOptions();
	const sources = new Map<string, string>();
	let input: Record<string, unknown> = {};

	const file = env.PARLEY_CONFIG;
	if (file) {
		let text: string;
		try {
			text = readFileSync(file, 'utf8');
		} catch (err) {
			throw new ConfigError(`Cannot read config file PARLEY_CONFIG=${file}: ${(err as Error).message}`, []);
		}
		try {
			const parsed: unknown = JSON.parse(text);
			if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('top level must be an object');
			input = parsed as Record<string, unknown>;
		} catch (err) {
			throw new ConfigError(`Config file ${file} is not valid JSON: ${(err as Error).message}`, []);
		}
		for (const o of options) if (getPath(input, o.path) !== undefined) sources.set(o.name, `config file ${file}`);
	}

	const known = new Set<string>(NON_OPTION_ENV);
	for (const o of options) {
		known.add(o.envName);
		// PARLEY_* wins over the generic aliases (REDIS_URL, MEDIASOUP_WORKER_BIN).
		for (const name of [...o.envAliases].reverse().concat(o.envName)) {
			const raw = env[name];
			if (raw === undefined) continue;
			// An empty alias (e.g. REDIS_URL= in a shell) means "unset", not "set to nothing".
			if (raw === '' && name !== o.envName) continue;
			setPath(input, o.path, fromEnv(raw, o.kind));
			sources.set(o.name, `env ${name}=${JSON.stringify(raw)}`);
		}
	}
	const unknownEnv = Object.keys(env).filter((k) => k.startsWith('PARLEY_') && !known.has(k));
	if (unknownEnv.length > 0) {
		throw new ConfigError(
			`Unknown configuration variable${unknownEnv.length > 1 ? 's' : ''} ${unknownEnv.map((k) => (RENAMED_ENV[k] ? `${k} (renamed ${RENAMED_ENV[k]})` : k)).join(', ')} (see config/README.md for the options)`,
			unknownEnv,
		);
	}

	const result = configSchema.safeParse(input);
	if (result.success) return result.data;
	const lines: string[] = [];
	const names: string[] = [];
	for (const issue of result.error.issues) {
		const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k].join('.')) : [issue.path.join('.')];
		for (const name of keys) {
			names.push(name);
			const from = sources.get(name);
			const what = issue.code === 'unrecognized_keys' ? (RENAMED_OPTIONS[name] ? `unknown option (renamed ${RENAMED_OPTIONS[name]})` : 'unknown option') : issue.message;
			lines.push(`  option "${name}"${from ? ` (from ${from})` : ''}: ${what}`);
		}
	}
	throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`, names);
}
