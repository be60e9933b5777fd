// A real, throwaway Prometheus (Debian's /usr/bin/prometheus) scraping one target on
// loopback, with its storage in a temp directory; and its HTTP query API.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../testkit/ports.js';

export const PROMETHEUS = process.env.PROMETHEUS_PATH ?? '/usr/bin/prometheus';

export interface QueryResult {
	status: 'success' | 'error';
	error?: string;
	data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

export interface TestPrometheus {
	url: string;
	/** An instant query through /api/v1/query. */
	query(promql: string): Promise<QueryResult>;
	stop(): Promise<void>;
}

export async function startPrometheus(options: { target: string; metricsPath?: string; bearerToken?: string; scrapeIntervalS?: number }): Promise<TestPrometheus> {
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-prometheus-'));
	const interval = `${options.scrapeIntervalS ?? 1}s`;
	const config = [
		'global:',
		`  scrape_interval: ${interval}`,
		`  scrape_timeout: ${interval}`,
		`  evaluation_interval: ${interval}`,
		'scrape_configs:',
		'  - job_name: parley',
		`    metrics_path: ${options.metricsPath ?? '/metrics'}`,
		...(options.bearerToken ? ['    authorization:', `      credentials: ${JSON.stringify(options.bearerToken)}`] : []),
		'    static_configs:',
		`      - targets: [${JSON.stringify(options.target)}]`,
		'',
	].join('\n');
	writeFileSync(path.join(dir, 'prometheus.yml'), config);
	const port = await freePort();
	let stderr = '';
	const child: ChildProcess = spawn(
		PROMETHEUS,
		[
			`--config.file=${path.join(dir, 'prometheus.yml')}`,
			`--storage.tsdb.path=${path.join(dir, 'data')}`,
			`--web.listen-address=127.0.0.1:${port}`,
			'--log.level=warn',
		],
		{ stdio: ['ignore', 'ignore', 'pipe'] },
	);
	child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
	const url = `http://127.0.0.1:${port}`;
	const stop = async (): Promise<void> => {
		if (child.exitCode === null && child.signalCode === null) {
			const exited = once(child, 'exit');
			child.kill('SIGTERM');
			const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
			await exited;
			clearTimeout(timer);
		}
		rmSync(dir, { recursive: true, force: true });
	};
	const deadline = Date.now() + 15_000;
	for (;;) {
		const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
		if (ready) break;
		if (child.exitCode !== null || Date.now() > deadline) {
			await stop();
			throw new Error(`prometheus did not start on ${port}:\n${stderr}`);
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	return {
		url,
		query: async (promql) => {
			const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
			return (await res.json()) as QueryResult;
		},
		stop,
	};
}
