// Reads the Prometheus text exposition format (what GET /metrics answers) into samples.
export interface Sample {
	name: string;
	labels: Record<string, string>;
	value: number;
	/** From the family's `# TYPE` line: counter, gauge, histogram, summary or untyped. */
	type: string;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheusText(text: string): Sample[] {
	const samples: Sample[] = [];
	const types = new Map<string, string>();
	const typeOf = (name: string): string =>
		types.get(name) ?? types.get(name.replace(/_(bucket|sum|count)$/, '')) ?? 'untyped';
	for (const line of text.split('\n')) {
		const declared = /^# TYPE (\S+) (\S+)$/.exec(line);
		if (declared) types.set(declared[1]!, declared[2]!);
		if (line === '' || line.startsWith('#')) continue;
		const m = LINE.exec(line);
		if (!m) throw new Error(`not a sample line: ${line}`);
		const labels: Record<string, string> = {};
		for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
		samples.push({ name: m[1]!, labels, value: Number(m[3]), type: typeOf(m[1]!) });
	}
	return samples;
}

/** Samples of `name` whose labels include `labels`. */
export function select(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
	return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** Sum of the matching samples' values (0 when none match). */
export function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
	return select(samples, name, labels).reduce((n, s) => n + s.value, 0);
}

/** `name{a="1",b="2"}`: one key per series, labels sorted. */
export function seriesKey(s: Sample): string {
	const labels = Object.keys(s.labels)
		.sort()
		.map((k) => `${k}="${s.labels[k]}"`)
		.join(',');
	return `${s.name}{${labels}}`;
}

/** The server objects a soak expects back at zero when everyone left, from one /metrics scrape. */
export function liveServerObjects(samples: Sample[]): Record<'routers' | 'transports' | 'producers' | 'consumers' | 'channels' | 'sessions' | 'recordings' | 'transcodes', number> {
	return {
		routers: total(samples, 'parley_worker_routers'),
		transports: total(samples, 'parley_transports'),
		producers: total(samples, 'parley_producers'),
		consumers: total(samples, 'parley_consumers'),
		channels: total(samples, 'parley_channels'),
		sessions: total(samples, 'parley_signaling_connections'),
		recordings: total(samples, 'parley_voice_recordings_active'),
		transcodes: total(samples, 'parley_voice_transcodes_running') + total(samples, 'parley_voice_transcodes_queued'),
	};
}

/** GET <base>/metrics, parsed. */
export async function scrapeMetrics(base: string): Promise<Sample[]> {
	return parsePrometheusText(await (await fetch(`${base}/metrics`)).text());
}
