// The Grafana dashboards against a real Prometheus: Debian's prometheus scrapes a Parley
// server (metrics not public, the default: Prometheus sends the bearer token) that has
// served a channel with real RTP (werift publisher and listener), a recording, uploads good
// and bad, a resumed upload and bad signaling. Then EVERY PromQL expression of EVERY
// dashboard panel runs through Prometheus's HTTP API and must return at least one series: a
// panel that queries a metric the server does not export (or a typo) fails here.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Upload } from 'tus-js-client';
import { afterAll, describe, expect, it } from 'vitest';
import { ParleyServer } from '../server/ParleyServer.js';
import { mintAccessToken } from '../server/auth/accessToken.js';
import { PROTOCOL_VERSION, type Grants, type RequestData } from '../protocol/messages.js';
import { encodeTone } from './helpers/audio.js';
import { testConfig } from './helpers/config.js';
import { testLogger } from './helpers/logger.js';
import { startPrometheus, type TestPrometheus } from './helpers/prometheus.js';
import { TestSignalingClient } from '../testkit/signalingClient.js';
import { writeToneWav } from './helpers/wav.js';
import { publishWithWerift, type WeriftPublisher } from '../testkit/weriftPublisher.js';
import { subscribeWithWerift, type WeriftSubscriber } from '../testkit/weriftListener.js';

const GRAFANA_DIR = new URL('../grafana/', import.meta.url).pathname;
const DASHBOARDS_DIR = path.join(GRAFANA_DIR, 'dashboards');
const SECRET = 'dashboards-test-secret-0123456789-abcdefg';
const METRICS_TOKEN = 'prometheus-scrape-token';
const key = new TextEncoder().encode(SECRET);

interface Target {
	expr?: string;
	refId: string;
	datasource?: { type: string; uid: string };
}
interface Panel {
	type: string;
	title: string;
	datasource?: { type: string; uid: string };
	targets?: Target[];
	panels?: Panel[];
}
interface Dashboard {
	title: string;
	uid: string;
	panels: Panel[];
	templating?: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

function dashboards(): { file: string; dashboard: Dashboard }[] {
	return readdirSync(DASHBOARDS_DIR)
		.filter((f) => f.endsWith('.json'))
		.map((file) => ({ file, dashboard: JSON.parse(readFileSync(path.join(DASHBOARDS_DIR, file), 'utf8')) as Dashboard }));
}

/** Every panel, rows' nested panels included (collapsed rows keep theirs inside). */
function allPanels(panels: Panel[]): Panel[] {
	return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** What Grafana substitutes before a query reaches Prometheus (the test scrapes every second). */
function grafanaToPromQL(expr: string): string {
	return expr
		.replaceAll('$__rate_interval', '1m')
		.replaceAll('$__interval', '5s')
		.replaceAll('$__range', '5m')
		.replaceAll('${instance}', '.*')
		.replaceAll('$instance', '.*');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Grafana dashboards on a real Prometheus', () => {
	let server: ParleyServer | undefined;
	let prometheus: TestPrometheus | undefined;
	const closers: (() => unknown)[] = [];

	afterAll(async () => {
		for (const close of closers.splice(0).reverse()) await close();
		await prometheus?.stop();
		await server?.shutdown('test end');
	});

	it('the provisioning points at the dashboards and the datasource they use', () => {
		const provider = readFileSync(path.join(GRAFANA_DIR, 'provisioning/dashboards/parley.yaml'), 'utf8');
		const providerPath = /^\s*path:\s*(\S+)\s*$/m.exec(provider)?.[1];
		expect(providerPath).toBe('${GF_PATHS_PROVISIONING}/../dashboards');
		expect(path.resolve(GRAFANA_DIR, 'provisioning', '../dashboards')).toBe(path.resolve(DASHBOARDS_DIR));
		const datasource = readFileSync(path.join(GRAFANA_DIR, 'provisioning/datasources/parley-prometheus.yaml'), 'utf8');
		const uid = /^\s*uid:\s*(\S+)\s*$/m.exec(datasource)?.[1];
		expect(/^\s*type:\s*prometheus\s*$/m.test(datasource)).toBe(true);
		const list = dashboards();
		expect(list.length).toBeGreaterThan(0);
		for (const { file, dashboard } of list) {
			expect(dashboard.uid, file).toMatch(/^[a-z0-9-]+$/);
			for (const panel of allPanels(dashboard.panels)) {
				if (panel.type === 'row') continue;
				expect(panel.datasource?.uid, `${file}: ${panel.title}`).toBe(uid);
				expect(panel.targets?.length ?? 0, `${file}: ${panel.title} has no query`).toBeGreaterThan(0);
				for (const t of panel.targets ?? []) expect(t.datasource?.uid ?? uid, `${file}: ${panel.title} ${t.refId}`).toBe(uid);
			}
		}
	});

	it('every PromQL expression of every panel returns at least one series', async () => {
		server = await ParleyServer.create(
			await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_METRICS_STATS_INTERVAL_MS: '250', PARLEY_METRICS_BEARER_TOKEN: METRICS_TOKEN, PARLEY_METRICS_PUBLIC: 'false' }),
			testLogger(),
		);
		const port = server.http.port;
		prometheus = await startPrometheus({ target: `127.0.0.1:${port}`, bearerToken: METRICS_TOKEN });
		const prom = prometheus;

		const join = async (userId: string, grants: Partial<Grants>) => {
			const token = await mintAccessToken({ userId, channels: ['room'], grants, ttlS: 600 }, key);
			const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
			closers.push(() => client.close());
			const caps = await client.request('getRouterRtpCapabilities', {});
			if (!caps.ok) throw new Error('caps');
			const joined = await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
			if (!joined.ok) throw new Error(`join: ${joined.error.code}`);
			return { client, token };
		};

		// A channel with real traffic: Alice speaks (and records herself), Bob listens.
		const alice = await join('alice', { canPublish: true, canRecord: true });
		const publisher: WeriftPublisher = await publishWithWerift(alice.client);
		closers.push(() => publisher.close());
		const bob = await join('bob', { canSubscribe: true });
		const listener: WeriftSubscriber = await subscribeWithWerift(bob.client);
		closers.push(() => listener.close());
		const recording = await alice.client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
		if (!recording.ok) throw new Error(`startRecording: ${recording.error.code}`);
		await publisher.send(encodeTone(1000, 150));
		const stopped = await alice.client.request('stopRecording', { voiceMessageId: recording.data.voiceMessageId });
		expect(stopped.ok).toBe(true);
		await alice.client.waitFor('voiceMessage', (d) => d.message.id === recording.data.voiceMessageId && d.message.status === 'ready', 15_000);

		// Bad signaling: junk, an unknown method, a request for something that is not there.
		await bob.client.sendJunk('not json');
		await bob.client.sendRaw({ id: 901, method: 'noSuchMethod', data: {} });
		await bob.client.request('resumeConsumer', { consumerId: 'missing' });

		// Uploads: a good one (transcode + waveform), one that is not audio, one resumed.
		const upload = (bytes: Buffer, name: string) =>
			new Promise<string>((resolve, reject) => {
				const u = new Upload(bytes, {
					endpoint: `http://127.0.0.1:${port}/voice/uploads`,
					headers: { authorization: `Bearer ${alice.token}` },
					metadata: { destination: 'channel:room', filename: name, filetype: 'application/octet-stream' },
					retryDelays: [],
					onSuccess: () => resolve(u.url!.split('/').pop()!),
					onError: reject,
				});
				u.start();
			});
		const wav = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-dash-')), 'tone.wav');
		writeToneWav(wav, 440, 2);
		const good = await upload(readFileSync(wav), 'tone.wav');
		const bad = await upload(randomBytes(20_000), 'noise.mp3');
		await bob.client.waitFor('voiceMessage', (d) => d.message.id === good && d.message.status === 'ready', 15_000);
		await bob.client.waitFor('voiceMessage', (d) => d.message.id === bad && d.message.status === 'failed', 15_000);
		const tus = { authorization: `Bearer ${alice.token}`, 'tus-resumable': '1.0.0' };
		const created = await fetch(`http://127.0.0.1:${port}/voice/uploads`, {
			method: 'POST',
			headers: { ...tus, 'upload-length': '1000', 'upload-metadata': `destination ${Buffer.from('channel:room').toString('base64')}` },
		});
		expect(created.status).toBe(201);
		expect((await fetch(`http://127.0.0.1:${port}${created.headers.get('location')}`, { method: 'HEAD', headers: tus })).status).toBe(200);

		// More speech while Prometheus keeps scraping, so rates have samples on both sides.
		await publisher.send(encodeTone(1000, 100));

		// Wait until Prometheus has the target up and several scrapes since the activity.
		const deadline = Date.now() + 30_000;
		for (;;) {
			const up = await prom.query('up{job="parley"}');
			const scrapes = await prom.query('count_over_time(parley_rtp_packets_total{direction="in"}[1m])');
			const upValue = Number(up.data?.result[0]?.value[1] ?? 0);
			const count = Number(scrapes.data?.result[0]?.value[1] ?? 0);
			if (upValue === 1 && count >= 4) break;
			if (Date.now() > deadline) throw new Error(`Prometheus did not scrape Parley: up=${JSON.stringify(up)} count=${count}`);
			await sleep(250);
		}
		await sleep(1500);

		const failures: string[] = [];
		let checked = 0;
		for (const { file, dashboard } of dashboards()) {
			for (const v of dashboard.templating?.list ?? []) {
				const q = typeof v.query === 'string' ? v.query : v.query?.query;
				const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(q ?? '');
				if (v.type !== 'query' || !m) continue;
				const r = await prom.query(`count by (${m[2]}) (${m[1]})`);
				checked++;
				if (r.status !== 'success' || (r.data?.result.length ?? 0) === 0) failures.push(`${file}: variable $${v.name}: ${q} -> ${r.error ?? 'no series'}`);
			}
			for (const panel of allPanels(dashboard.panels)) {
				for (const t of panel.targets ?? []) {
					if (!t.expr) continue;
					const promql = grafanaToPromQL(t.expr);
					const r = await prom.query(promql);
					checked++;
					if (r.status !== 'success') failures.push(`${file}: "${panel.title}" ${t.refId}: ${promql} -> error ${r.error}`);
					else if ((r.data?.result.length ?? 0) === 0) failures.push(`${file}: "${panel.title}" ${t.refId}: ${promql} -> no series`);
				}
			}
		}
		expect(failures, failures.join('\n')).toEqual([]);
		expect(checked).toBeGreaterThan(40);

		// And the figures make sense: two peers, speech in and out, worker CPU a fraction of a core.
		const value = async (promql: string) => Number((await prom.query(promql)).data?.result[0]?.value[1]);
		expect(await value('sum(parley_peers)')).toBe(2);
		expect(await value('sum(rate(parley_rtp_packets_total{direction="in"}[1m]))')).toBeGreaterThan(0);
		expect(await value('sum(rate(parley_rtp_packets_total{direction="out"}[1m]))')).toBeGreaterThan(0);
		const cpu = await value('max(rate(parley_worker_cpu_seconds_total[1m]))');
		expect(cpu).toBeGreaterThanOrEqual(0);
		expect(cpu).toBeLessThan(1);
		expect(await value('sum(parley_voice_messages_finished_total{source="upload",status="failed"})')).toBe(1);
		expect(await value('sum(parley_voice_uploads_resumed_total)')).toBe(1);
	}, 120_000);
});
