// Everything one run of the bench produced: the JSON file is this object.
import type { ApiResult } from '../scenarios/api.js';
import type { CapacityResult } from '../scenarios/capacity.js';
import type { JoinTimeResult } from '../scenarios/joinTime.js';
import type { LossSweepResult } from '../scenarios/lossSweep.js';
import type { MetadataResult } from '../scenarios/metadata.js';
import type { MouthToEarResult } from '../scenarios/mouthToEar.js';
import type { RecordingRepairResult } from '../scenarios/recordingRepair.js';
import type { SignalingResult } from '../scenarios/signaling.js';
import type { StorageResult } from '../scenarios/storage.js';
import type { MachineInfo, Versions } from './machine.js';
import { REFERENCES } from './references.js';

export interface BenchRun {
	startedAt: string;
	finishedAt: string;
	durationS: number;
	command: string;
	smoke: boolean;
	machine: MachineInfo;
	/** Load average when the run ended (the start is in `machine`). */
	loadAverageAfter: number[];
	versions: Versions;
	loss?: LossSweepResult;
	/** One per listener transport kind (plain RTP, SRTP). */
	capacity?: CapacityResult[];
	signaling?: SignalingResult;
	/** Voice-message files: disk and s3. */
	storage?: StorageResult;
	/** Voice-message metadata: SQLite, MariaDB, PostgreSQL. */
	metadata?: MetadataResult;
	/** Join time over direct UDP, ICE-TCP and TURN relay (Chromium). */
	join?: JoinTimeResult;
	/** Mouth-to-ear latency, Chromium to Chromium, through Parley and direct, under uplink loss. */
	mouthToEar?: MouthToEarResult;
	/** Recordings behind a lossy uplink, repaired with RED and NACK. */
	recording?: RecordingRepairResult;
	/** The gRPC backend API: SubscribeStatus fan-out, moderation calls under load. */
	api?: ApiResult;
	references: typeof REFERENCES;
	/** Errors of scenarios that failed (the others still report). */
	errors: { scenario: string; message: string }[];
}

export interface Headline {
	label: string;
	value: string;
	path: string;
}
