// The bench's command line: `npx tsx bench/run.ts [--scenario loss|capacity|signaling|storage|metadata|join|recording|api|mouth-to-ear|all]
// [--smoke] [--out dir]` and the overrides listed by --help. Prints a table, and writes
// results.json, report.md and SVG charts to bench/results/<timestamp>/ (or --out).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchRun } from './report/BenchRun.js';
import { textSummary, writeReport } from './report/report.js';
import { writeResultsPage } from './report/resultsPage.js';
import type { types as ms } from 'mediasoup';
import type { CapacityTarget } from './scenarios/capacity.js';
import type { MetadataEngine } from './scenarios/metadata.js';
import { MOUTH_TO_EAR_PATHS, type MouthToEarPath } from './scenarios/mouthToEar.js';
import type { StorageBackend } from './scenarios/storage.js';
import { NETWORK_PATHS, type NetworkPath } from '../testkit/reachability/ReachabilityLab.js';
import { type CapacityTransport, defaultOutDir, OPT_IN_SCENARIOS, runBench, SCENARIOS, type ScenarioName, SRTP_SUITES } from './runBench.js';

const HELP = `Usage: npx tsx bench/run.ts [options]

  --scenario NAME      loss | capacity | signaling | storage | metadata | join | recording | api | mouth-to-ear | all
                       (default all; repeatable or comma-separated; all leaves out mouth-to-ear, ~7 min at its defaults)
  --smoke              a few seconds per scenario: checks the outputs, not a measurement
  --out DIR            output folder (default bench/results/<timestamp>)
  --from FILE          render the report and charts again from a results.json (no measuring)
  --results-page       with --from: write the published page bench/RESULTS.md, its charts and the
                       run's JSON (per-packet arrays stripped) in bench/results-page/

Loss sweep:
  --loss-duration S    seconds of speech per condition (default 40)
  --loss-at WHERE      down | up | both (default down)
  --burst N            mean burst length of bursty loss, packets (default 3)
  --playout-delay MS   jitter-buffer deadline after sending (default 60)
  --delay MS --jitter MS   extra one-way delay and uniform jitter in the proxies (default 0)
  --bitrate BPS        Opus bitrate (default 32000)
  --loss-hint PCT      encoder packet-loss hint (default: match the condition)
  --red MODES          modes of the RED grid, comma-separated: fec (FEC only), red1, red1+fec, red2,
                       red2+fec, ... (default all five; none: no RED grid)
  --red-loss-at LIST   placements of the RED grid's loss: up,down,both (default all three)
  --red-loss-rates LIST    loss rates of the RED grid in percent (default 0,5,10,20,30)
  --no-stripped        no listener without RED beside the RED listener on uplink loss
  --loss-parallel N    streams at once; more run in batches (default 24)
Capacity:
  --transport LIST     plain,srtp,webrtc (default all three); red, red-stripped: plain RTP listeners
                       of RED d=2 publishers, with audio/red (forwarded) and without (stripped)
  --srtp-suite LIST    SRTP suites of the srtp ramp, one ramp each: AEAD_AES_256_GCM (default),
                       AEAD_AES_128_GCM, AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32
  --targets LIST       raw-mediasoup,parley (default both; plain and srtp ramps)
  --steps LIST         consumer counts to try, e.g. 500,1000,2000
  --publishers N       publishers in the room (default 10)
  --window MS          measuring window per step (default 4000)
  --no-pin             do not pin the worker and the bench to separate cores
  --raw-worker-bin PATH    mediasoup-worker binary of the raw-mediasoup twin (default: the one Parley
                       runs, MEDIASOUP_WORKER_BIN), e.g. a build without a worker patch Parley's has
Signaling:
  --clients N          WebSocket clients per storm wave (default 200)
  --waves N            storm waves (default 3)
  --media-clients N    WebRTC listeners for time-to-first-audio, joining at once (default 20)
  --media-joins N      then N listeners joining one after another (default 20)
  --http-duration MS   per HTTP endpoint (default 5000)
Storage (disk and s3):
  --storage-backends LIST  disk,s3 (default both)
  --storage-mib N      size of the uploaded file, MiB (default 20)
  --storage-chunks LIST    tus chunk sizes in KiB, one upload each (default 64,5120)
  --downloads N        downloads of the uploaded file per backend (default 5)
  --recordings N       recordings per backend (default 3)
  --recording-s S      length of each recording (default 3)
Metadata (SQLite, MariaDB, PostgreSQL):
  --metadata-engines LIST  sqlite,mariadb,postgres (default all three)
  --metadata-ops N     operations per phase (create, status update, list; default 3000)
  --metadata-concurrency N operations in flight (default 8)
Join time (Chromium in a network namespace: needs root):
  --join-paths LIST    direct-udp,ice-tcp,turn-relay,turn-tcp (default all four)
  --joins N            joins measured per path (default 10)
Mouth-to-ear (two Chromium processes, the speaker in a network namespace: needs root):
  --m2e-loss LIST      uplink loss levels in percent, each measured through Parley and direct (default 0,5,20)
  --m2e-duration S     measuring window per path and loss level (default 60)
  --m2e-paths LIST     parley,direct (default both)
  --m2e-gap MS         shortest gap between bursts (default 700; gaps are this + 0..95 ms); a burst not heard
                       within this - 50 ms counts as missed
  --m2e-together       both paths at once from one capture track (each burst timed on both under the same
                       load) instead of one after the other
Recording repair (RED and NACK behind uplink loss):
  --recording-duration S   seconds of speech per recording (default 60)
  --recording-loss P   random uplink loss, 0-1 (default 0.2)
Backend API (gRPC):
  --api-subscribers N  SubscribeStatus streams held at once (default 1000)
  --api-connections N  grpc-js connections the streams are spread over (default 4)
  --api-events N       status changes committed, created and ready alternately (default 200)
  --api-event-rate N   status changes per second (default 20)
  --api-peers N        publishers in the moderated channel (default 50)
  --api-listeners N    listeners consuming every publisher there (default 5)
  --api-call-rate N    ListParticipants + MuteParticipant calls per second, half each (default 200)
  --api-duration S     seconds of calls (default 10)
`;

const { values } = parseArgs({
	options: {
		scenario: { type: 'string', multiple: true },
		smoke: { type: 'boolean', default: false },
		out: { type: 'string' },
		from: { type: 'string' },
		'results-page': { type: 'boolean' },
		help: { type: 'boolean', short: 'h', default: false },
		'loss-duration': { type: 'string' },
		'loss-at': { type: 'string' },
		burst: { type: 'string' },
		'playout-delay': { type: 'string' },
		delay: { type: 'string' },
		jitter: { type: 'string' },
		bitrate: { type: 'string' },
		'loss-hint': { type: 'string' },
		red: { type: 'string' },
		'red-loss-at': { type: 'string' },
		'red-loss-rates': { type: 'string' },
		'no-stripped': { type: 'boolean', default: false },
		'loss-parallel': { type: 'string' },
		transport: { type: 'string' },
		'srtp-suite': { type: 'string' },
		targets: { type: 'string' },
		steps: { type: 'string' },
		publishers: { type: 'string' },
		window: { type: 'string' },
		'no-pin': { type: 'boolean', default: false },
		'raw-worker-bin': { type: 'string' },
		clients: { type: 'string' },
		waves: { type: 'string' },
		'media-clients': { type: 'string' },
		'media-joins': { type: 'string' },
		'http-duration': { type: 'string' },
		'storage-backends': { type: 'string' },
		'storage-mib': { type: 'string' },
		'storage-chunks': { type: 'string' },
		downloads: { type: 'string' },
		recordings: { type: 'string' },
		'recording-s': { type: 'string' },
		'metadata-engines': { type: 'string' },
		'metadata-ops': { type: 'string' },
		'metadata-concurrency': { type: 'string' },
		'join-paths': { type: 'string' },
		joins: { type: 'string' },
		'm2e-loss': { type: 'string' },
		'm2e-duration': { type: 'string' },
		'm2e-paths': { type: 'string' },
		'm2e-together': { type: 'boolean' },
		'm2e-gap': { type: 'string' },
		'recording-duration': { type: 'string' },
		'recording-loss': { type: 'string' },
		'api-subscribers': { type: 'string' },
		'api-connections': { type: 'string' },
		'api-events': { type: 'string' },
		'api-event-rate': { type: 'string' },
		'api-peers': { type: 'string' },
		'api-listeners': { type: 'string' },
		'api-call-rate': { type: 'string' },
		'api-duration': { type: 'string' },
	},
	strict: true,
});

if (values.help) {
	process.stdout.write(HELP);
	process.exit(0);
}

// The raw twin reads it when it starts its worker (RawMediasoupTarget): a before/after
// comparison of a worker change in one run, Parley on the new build, raw on the old one.
if (values['raw-worker-bin']) process.env.BENCH_RAW_WORKER_BIN = path.resolve(values['raw-worker-bin']);

if (values.from && values['results-page']) {
	const run = JSON.parse(readFileSync(values.from, 'utf8')) as BenchRun;
	const written = writeResultsPage(run, fileURLToPath(new URL('..', import.meta.url)));
	process.stdout.write(`Results page: ${written.join(', ')}\n`);
	process.exit(0);
}

if (values.from) {
	const run = JSON.parse(readFileSync(values.from, 'utf8')) as BenchRun;
	const dir = values.out ?? path.dirname(values.from);
	writeReport(run, dir);
	process.stdout.write(`${textSummary(run)}\n\nReport: ${dir}/report.md\n`);
	process.exit(0);
}

function number(name: string, v: string | undefined): number | undefined {
	if (v === undefined) return undefined;
	const n = Number(v);
	if (!Number.isFinite(n) || n < 0) {
		process.stderr.write(`bench: --${name} must be a non-negative number (got "${v}")\n`);
		process.exit(2);
	}
	return n;
}

function defined<T extends object>(o: T): Partial<T> {
	return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const requested = (values.scenario ?? ['all']).flatMap((s) => s.split(',')).map((s) => s.trim());
const scenarios: ScenarioName[] = requested.includes('all') ? SCENARIOS : (requested as ScenarioName[]);
for (const s of scenarios) {
	if (!SCENARIOS.includes(s) && !OPT_IN_SCENARIOS.includes(s)) {
		process.stderr.write(`bench: unknown scenario "${s}" (${[...SCENARIOS, ...OPT_IN_SCENARIOS].join(', ')}, all)\n`);
		process.exit(2);
	}
}
const lossAt = values['loss-at'];
if (lossAt !== undefined && !['up', 'down', 'both'].includes(lossAt)) {
	process.stderr.write('bench: --loss-at must be up, down or both\n');
	process.exit(2);
}
const transports = values.transport?.split(',').map((t) => t.trim());
if (transports?.some((t) => !['plain', 'srtp', 'webrtc', 'red', 'red-stripped'].includes(t))) {
	process.stderr.write('bench: --transport takes plain, srtp, webrtc, red and/or red-stripped\n');
	process.exit(2);
}
const srtpSuites = values['srtp-suite']?.split(',').map((t) => t.trim());
if (srtpSuites?.some((t) => !(SRTP_SUITES as string[]).includes(t))) {
	process.stderr.write(`bench: --srtp-suite takes ${SRTP_SUITES.join(', ')}\n`);
	process.exit(2);
}
const TARGETS: CapacityTarget[] = ['raw-mediasoup', 'parley'];
const targets = values.targets?.split(',').map((t) => t.trim());
if (targets && (targets.length === 0 || targets.some((t) => !(TARGETS as string[]).includes(t)))) {
	process.stderr.write('bench: --targets takes raw-mediasoup and/or parley\n');
	process.exit(2);
}
const storageBackends = values['storage-backends']?.split(',').map((t) => t.trim());
if (storageBackends && (storageBackends.length === 0 || storageBackends.some((t) => !['disk', 's3'].includes(t)))) {
	process.stderr.write('bench: --storage-backends takes disk and/or s3\n');
	process.exit(2);
}
const ENGINE_NAMES: Record<string, MetadataEngine> = { sqlite: 'SQLite', mariadb: 'MariaDB', postgres: 'PostgreSQL' };
const metadataEngines = values['metadata-engines']?.split(',').map((t) => t.trim().toLowerCase());
if (metadataEngines && (metadataEngines.length === 0 || metadataEngines.some((t) => !(t in ENGINE_NAMES)))) {
	process.stderr.write('bench: --metadata-engines takes sqlite, mariadb and/or postgres\n');
	process.exit(2);
}
const joinPaths = values['join-paths']?.split(',').map((t) => t.trim());
if (joinPaths && (joinPaths.length === 0 || joinPaths.some((t) => !(NETWORK_PATHS as readonly string[]).includes(t)))) {
	process.stderr.write(`bench: --join-paths takes ${NETWORK_PATHS.join(', ')}\n`);
	process.exit(2);
}
const redModes = values.red === undefined ? undefined : values.red === 'none' ? [] : values.red.split(',').map((t) => {
	const m = /^(?:fec|red(\d+)(\+fec)?)$/.exec(t.trim());
	const distance = m?.[1] === undefined ? 0 : Number(m[1]);
	if (!m || distance > 32 || (m[1] !== undefined && distance < 1)) {
		process.stderr.write(`bench: --red takes fec, redN and redN+fec (N = 1..32), or none (got "${t}")\n`);
		process.exit(2);
	}
	return { redDistance: distance, fec: m[1] === undefined || m[2] !== undefined };
});
const redLossAt = values['red-loss-at']?.split(',').map((t) => t.trim());
if (redLossAt && (redLossAt.length === 0 || redLossAt.some((t) => !['up', 'down', 'both'].includes(t)))) {
	process.stderr.write('bench: --red-loss-at takes up, down and/or both\n');
	process.exit(2);
}
const redLossRates = values['red-loss-rates']?.split(',').map((t) => number('red-loss-rates', t)! / 100);
if (redLossRates?.some((r) => r >= 1)) {
	process.stderr.write('bench: --red-loss-rates are percentages below 100\n');
	process.exit(2);
}
const m2eLoss = values['m2e-loss']?.split(',').map((t) => number('m2e-loss', t.trim())!);
if (m2eLoss && (m2eLoss.length === 0 || m2eLoss.some((r) => r >= 100))) {
	process.stderr.write('bench: --m2e-loss takes percentages below 100\n');
	process.exit(2);
}
const m2ePaths = values['m2e-paths']?.split(',').map((t) => t.trim());
if (m2ePaths && (m2ePaths.length === 0 || m2ePaths.some((t) => !(MOUTH_TO_EAR_PATHS as readonly string[]).includes(t)))) {
	process.stderr.write(`bench: --m2e-paths takes ${MOUTH_TO_EAR_PATHS.join(', ')}\n`);
	process.exit(2);
}
const delay = number('delay', values.delay);
const jitter = number('jitter', values.jitter);
const hint = number('loss-hint', values['loss-hint']);

const outDir = values.out ?? defaultOutDir();
const { run } = await runBench({
	scenarios,
	smoke: values.smoke,
	outDir,
	command: ['npx tsx bench/run.ts', ...process.argv.slice(2)].join(' '),
	loss: defined({
		durationS: number('loss-duration', values['loss-duration']),
		lossAt: lossAt as 'up' | 'down' | 'both' | undefined,
		meanBurstLength: number('burst', values.burst),
		playoutDelayMs: number('playout-delay', values['playout-delay']),
		bitrateBps: number('bitrate', values.bitrate),
		packetLossHint: hint,
		redModes,
		redLossAt: redLossAt as ('up' | 'down' | 'both')[] | undefined,
		redLossRates,
		strippedListener: values['no-stripped'] ? false : undefined,
		maxParallelStreams: number('loss-parallel', values['loss-parallel']),
		delay: delay !== undefined || jitter !== undefined ? { delayMs: delay ?? 0, jitterMs: jitter ?? 0 } : undefined,
	}),
	capacity: defined({
		steps: values.steps?.split(',').map((s) => number('steps', s)!),
		publishers: number('publishers', values.publishers),
		windowMs: number('window', values.window),
		pin: values['no-pin'] ? false : undefined,
		targets: targets as CapacityTarget[] | undefined,
	}),
	capacityTransports: (transports ?? []) as CapacityTransport[],
	srtpSuites: (srtpSuites ?? []) as ms.SrtpCryptoSuite[],
	signaling: defined({
		clients: number('clients', values.clients),
		waves: number('waves', values.waves),
		mediaClients: number('media-clients', values['media-clients']),
		sequentialMediaJoins: number('media-joins', values['media-joins']),
		httpDurationMs: number('http-duration', values['http-duration']),
	}),
	storage: defined({
		backends: storageBackends as StorageBackend[] | undefined,
		fileMiB: number('storage-mib', values['storage-mib']),
		chunkKiB: values['storage-chunks']?.split(',').map((s) => number('storage-chunks', s)!),
		downloads: number('downloads', values.downloads),
		recordings: number('recordings', values.recordings),
		recordingS: number('recording-s', values['recording-s']),
	}),
	metadata: defined({
		engines: metadataEngines?.map((t) => ENGINE_NAMES[t]!),
		ops: number('metadata-ops', values['metadata-ops']),
		concurrency: number('metadata-concurrency', values['metadata-concurrency']),
	}),
	join: defined({
		paths: joinPaths as NetworkPath[] | undefined,
		joinsPerPath: number('joins', values.joins),
	}),
	mouthToEar: defined({
		lossPercents: m2eLoss,
		durationS: number('m2e-duration', values['m2e-duration']),
		paths: m2ePaths as MouthToEarPath[] | undefined,
		together: values['m2e-together'],
		minGapMs: number('m2e-gap', values['m2e-gap']),
	}),
	recording: defined({
		durationS: number('recording-duration', values['recording-duration']),
		lossRate: number('recording-loss', values['recording-loss']),
	}),
	api: defined({
		subscribers: number('api-subscribers', values['api-subscribers']),
		connections: number('api-connections', values['api-connections']),
		events: number('api-events', values['api-events']),
		eventRate: number('api-event-rate', values['api-event-rate']),
		peers: number('api-peers', values['api-peers']),
		listeners: number('api-listeners', values['api-listeners']),
		callRate: number('api-call-rate', values['api-call-rate']),
		durationS: number('api-duration', values['api-duration']),
	}),
	log: (line) => process.stdout.write(`${line}\n`),
});
process.stdout.write(`Report: ${outDir}/report.md\n`);
process.exit(run.errors.length ? 1 : 0);
