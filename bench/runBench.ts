// One bench run: the chosen scenarios with full or smoke settings, then the outputs.
import path from 'node:path';
import type { types as ms } from 'mediasoup';
import type { BenchRun } from './report/BenchRun.js';
import { machineInfo, versions } from './report/machine.js';
import { REFERENCES } from './report/references.js';
import { textSummary, writeReport } from './report/report.js';
import { API_DEFAULTS, type ApiOptions, runApi } from './scenarios/api.js';
import { CAPACITY_DEFAULTS, type CapacityOptions, type CapacityResult, runCapacity } from './scenarios/capacity.js';
import { LOSS_SWEEP_DEFAULTS, type LossSweepOptions, runLossSweep } from './scenarios/lossSweep.js';
import { JOIN_DEFAULTS, type JoinTimeOptions, runJoinTime } from './scenarios/joinTime.js';
import { METADATA_DEFAULTS, type MetadataOptions, runMetadata } from './scenarios/metadata.js';
import { MOUTH_TO_EAR_DEFAULTS, type MouthToEarOptions, runMouthToEar } from './scenarios/mouthToEar.js';
import { RECORDING_REPAIR_DEFAULTS, type RecordingRepairOptions, runRecordingRepair } from './scenarios/recordingRepair.js';
import { runStorage, STORAGE_DEFAULTS, type StorageOptions } from './scenarios/storage.js';
import { runWebRtcCapacity, WEBRTC_CAPACITY_DEFAULTS } from './scenarios/webrtcCapacity.js';
import { runSignaling, SIGNALING_DEFAULTS, type SignalingOptions } from './scenarios/signaling.js';

export type ScenarioName = 'loss' | 'capacity' | 'signaling' | 'storage' | 'metadata' | 'join' | 'recording' | 'api' | 'mouth-to-ear';
/** red / red-stripped: plain RTP listeners of RED d=2 publishers, with and without audio/red. */
export type CapacityTransport = 'plain' | 'srtp' | 'webrtc' | 'red' | 'red-stripped';
/** What `all` runs. */
export const SCENARIOS: ScenarioName[] = ['loss', 'capacity', 'signaling', 'storage', 'metadata', 'join', 'recording', 'api'];
/** Run only when named: mouth-to-ear takes about 7 minutes at its defaults (60 s per path and loss level). */
export const OPT_IN_SCENARIOS: ScenarioName[] = ['mouth-to-ear'];
/** The suites mediasoup's PlainTransport offers (what `--srtp-suite` accepts). */
export const SRTP_SUITES: ms.SrtpCryptoSuite[] = ['AEAD_AES_256_GCM', 'AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'];

export interface BenchOptions {
	scenarios: ScenarioName[];
	smoke: boolean;
	outDir: string;
	command: string;
	loss: Partial<LossSweepOptions>;
	capacity: Partial<CapacityOptions>;
	/** Listener transports measured by the capacity ramp (empty: the defaults). */
	capacityTransports: CapacityTransport[];
	/** SRTP suites of the `srtp` ramp, one ramp each (empty: AEAD_AES_256_GCM). */
	srtpSuites?: ms.SrtpCryptoSuite[];
	signaling: Partial<SignalingOptions>;
	storage?: Partial<StorageOptions>;
	metadata?: Partial<MetadataOptions>;
	join?: Partial<JoinTimeOptions>;
	recording?: Partial<RecordingRepairOptions>;
	api?: Partial<ApiOptions>;
	mouthToEar?: Partial<MouthToEarOptions>;
	log: (line: string) => void;
}

/** Settings that run each scenario in a few seconds (CI): outputs and sanity, not figures. */
export const SMOKE = {
	// One RED condition: RED d=2 beside FEC only at 20% uplink loss, with a listener without RED.
	loss: { lossRates: [0, 0.1], models: ['random'], nack: [false], durationS: 4, redModes: [{ redDistance: 0, fec: true }, { redDistance: 2, fec: false }], redLossAt: ['up'], redLossRates: [0.2] } satisfies Partial<LossSweepOptions>,
	capacity: { steps: [40, 200], warmupMs: 300, windowMs: 1000, refineSteps: 0, contentionRetries: 0, quietWaitMs: 0, sampledListeners: 2 } satisfies Partial<CapacityOptions>,
	webrtcCapacity: { steps: [40], warmupMs: 300, windowMs: 1000, refineSteps: 0, contentionRetries: 0, quietWaitMs: 0, sampledListeners: 2 } satisfies Partial<CapacityOptions>,
	capacityTransports: ['plain', 'webrtc'] as CapacityTransport[],
	signaling: { clients: 20, waves: 1, channelSize: 10, mediaClients: 2, sequentialMediaJoins: 2, httpConnections: 8, httpDurationMs: 500 } satisfies Partial<SignalingOptions>,
	storage: { fileMiB: 0.25, downloads: 2, recordings: 1, recordingS: 0.5 } satisfies Partial<StorageOptions>,
	metadata: { ops: 50, destinations: 5 } satisfies Partial<MetadataOptions>,
	join: { joinsPerPath: 1, warmUpJoins: 0 } satisfies Partial<JoinTimeOptions>,
	recording: { durationS: 4, modes: [{ red: 2, nack: true }, { red: 0, nack: false }] } satisfies Partial<RecordingRepairOptions>,
	mouthToEar: { lossPercents: [5], durationS: 4, warmUpS: 1, minGapMs: 500 } satisfies Partial<MouthToEarOptions>,
	api: { subscribers: 20, connections: 2, events: 10, drainTimeoutMs: 5000, peers: 4, listeners: 1, callRate: 50, durationS: 1.5 } satisfies Partial<ApiOptions>,
};

/** Coarse steps, then `refineSteps` midpoints at the knee. SRTP costs about as much as the
 * forwarding itself (bench-anchors.md), so its ramps start lower. */
const STEPS: Record<CapacityTransport, number[]> = {
	plain: [1000, 2000, 3000, 4000, 5000, 6000, 8000],
	srtp: [500, 1000, 1500, 2000, 2500, 3000, 4000],
	// Each WebRTC listener costs the bench a DTLS handshake: fewer, coarser steps.
	webrtc: [1000, 2000, 2500, 3000, 4000],
	red: [1000, 2000, 3000, 4000, 5000, 6000, 8000],
	'red-stripped': [1000, 2000, 3000, 4000, 5000, 6000, 8000],
};

export function defaultOutDir(now = new Date()): string {
	return path.join(new URL('.', import.meta.url).pathname, 'results', now.toISOString().replace(/[:.]/g, '-'));
}

export async function runBench(options: BenchOptions): Promise<{ run: BenchRun; files: string[] }> {
	const started = new Date();
	const machine = machineInfo();
	const log = options.log;
	const run: BenchRun = {
		startedAt: started.toISOString(),
		finishedAt: '',
		durationS: 0,
		command: options.command,
		smoke: options.smoke,
		machine,
		loadAverageAfter: [],
		versions: versions(),
		references: REFERENCES,
		errors: [],
	};
	const guard = async (scenario: string, fn: () => Promise<void>): Promise<void> => {
		try {
			await fn();
		} catch (err) {
			const message = (err as Error).stack ?? String(err);
			run.errors.push({ scenario, message });
			log(`scenario ${scenario} failed: ${message}`);
		}
	};
	if (options.scenarios.includes('loss')) {
		await guard('loss', async () => {
			run.loss = await runLossSweep({ ...LOSS_SWEEP_DEFAULTS, ...(options.smoke ? SMOKE.loss : {}), ...options.loss }, log);
			for (const message of run.loss.errors) run.errors.push({ scenario: 'loss', message });
		});
	}
	if (options.scenarios.includes('capacity')) {
		const transports: CapacityTransport[] = options.capacityTransports.length ? options.capacityTransports : options.smoke ? SMOKE.capacityTransports : ['plain', 'srtp', 'webrtc'];
		run.capacity = [];
		const suites = options.srtpSuites?.length ? options.srtpSuites : [CAPACITY_DEFAULTS.srtpCryptoSuite];
		// One ramp per transport, and per suite for SRTP (the suites differ in cost per packet).
		const ramps = transports.flatMap((transport): { transport: CapacityTransport; suite: ms.SrtpCryptoSuite }[] =>
			transport === 'srtp' ? suites.map((suite) => ({ transport, suite })) : [{ transport, suite: CAPACITY_DEFAULTS.srtpCryptoSuite }],
		);
		for (const { transport, suite } of ramps) {
			await guard(transport === 'srtp' ? `capacity-srtp-${suite}` : `capacity-${transport}`, async () => {
				let result: CapacityResult;
				if (transport === 'webrtc') {
					const o: CapacityOptions = { ...WEBRTC_CAPACITY_DEFAULTS, steps: STEPS.webrtc, refineSteps: 0, ...(options.smoke ? SMOKE.webrtcCapacity : {}), ...options.capacity, transport, targets: ['parley'] };
					result = await runWebRtcCapacity(o, log);
				} else {
					const red = transport === 'red' || transport === 'red-stripped' ? { distance: 2, listenersWithRed: transport === 'red' } : null;
					const o: CapacityOptions = { ...CAPACITY_DEFAULTS, steps: STEPS[transport], refineSteps: transport === 'srtp' ? 1 : 2, ...(options.smoke ? SMOKE.capacity : {}), ...options.capacity, transport: transport === 'srtp' ? 'srtp' : 'plain', srtpCryptoSuite: suite, red };
					result = await runCapacity(o, log);
				}
				run.capacity!.push(result);
			});
		}
	}
	if (options.scenarios.includes('signaling')) {
		await guard('signaling', async () => {
			run.signaling = await runSignaling({ ...SIGNALING_DEFAULTS, ...(options.smoke ? SMOKE.signaling : {}), ...options.signaling }, log);
		});
	}
	if (options.scenarios.includes('storage')) {
		await guard('storage', async () => {
			run.storage = await runStorage({ ...STORAGE_DEFAULTS, ...(options.smoke ? SMOKE.storage : {}), ...options.storage }, log);
		});
	}
	if (options.scenarios.includes('metadata')) {
		await guard('metadata', async () => {
			run.metadata = await runMetadata({ ...METADATA_DEFAULTS, ...(options.smoke ? SMOKE.metadata : {}), ...options.metadata }, log);
		});
	}
	if (options.scenarios.includes('join')) {
		await guard('join', async () => {
			run.join = await runJoinTime({ ...JOIN_DEFAULTS, ...(options.smoke ? SMOKE.join : {}), ...options.join }, log);
		});
	}
	if (options.scenarios.includes('recording')) {
		await guard('recording', async () => {
			run.recording = await runRecordingRepair({ ...RECORDING_REPAIR_DEFAULTS, ...(options.smoke ? SMOKE.recording : {}), ...options.recording }, log);
		});
	}
	if (options.scenarios.includes('api')) {
		await guard('api', async () => {
			run.api = await runApi({ ...API_DEFAULTS, ...(options.smoke ? SMOKE.api : {}), ...options.api }, log);
		});
	}
	if (options.scenarios.includes('mouth-to-ear')) {
		await guard('mouth-to-ear', async () => {
			run.mouthToEar = await runMouthToEar({ ...MOUTH_TO_EAR_DEFAULTS, ...(options.smoke ? SMOKE.mouthToEar : {}), ...options.mouthToEar }, log);
			for (const c of run.mouthToEar.conditions) if (c.error) run.errors.push({ scenario: 'mouth-to-ear', message: `${c.path} ${c.lossPercent}%: ${c.error}` });
		});
	}
	const finished = new Date();
	run.finishedAt = finished.toISOString();
	run.durationS = (finished.getTime() - started.getTime()) / 1000;
	run.loadAverageAfter = machineInfo().loadAverage;
	const files = writeReport(run, options.outDir);
	log(`\n${textSummary(run)}\n`);
	return { run, files };
}
