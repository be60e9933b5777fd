// Parley's configuration: every option, its default, unit and meaning, declared once.
//
// The loader (server/config/loadConfig.ts) validates a JSON config file plus PARLEY_*
// environment overrides against this schema; `npm run config:docs` renders
// config/README.md from it (a test fails when that file is stale). Option `a.bC` is
// overridden by the environment variable `PARLEY_A_B_C`.
import { z } from 'zod';

/** Extra documentation carried by each option (rendered into config/README.md). */
export interface OptionMeta {
	description: string;
	/** Unit of a numeric option ("ms", "bytes", ...). */
	unit?: string;
	/** Environment variables other than PARLEY_* that also set this option. */
	envAliases?: string[];
}

function option<T extends z.ZodType>(schema: T, meta: OptionMeta): T {
	return schema.meta(meta as unknown as Record<string, unknown>) as T;
}

const port = z.number().int().min(1).max(65535);
/** 0 lets the OS pick (useful for tests); the chosen port is logged. */
const portOrZero = z.number().int().min(0).max(65535);

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const configSchema = z.strictObject({
	logLevel: option(z.enum(LOG_LEVELS).default('info'), {
		description: 'Minimum level of the JSON log lines written to stdout.',
	}),

	http: z
		.strictObject({
			host: option(z.string().min(1).default('0.0.0.0'), {
				description: 'Address the HTTP + WebSocket listener binds to.',
			}),
			port: option(portOrZero.default(8080), {
				description: 'TCP port of the HTTP + WebSocket listener (health, metrics, voice-message API, /ws). 0 picks a free port.',
				unit: 'port',
			}),
		})
		.prefault({}),

	media: z
		.strictObject({
			workers: option(z.number().int().min(0).max(256).default(0), {
				description: 'Number of mediasoup workers (one process each, one core each). 0 means one per CPU core.',
				unit: 'workers',
			}),
			workerBin: option(z.string().default(''), {
				description:
					'Path of the mediasoup-worker binary. Empty: MEDIASOUP_WORKER_BIN, else the binary scripts/setup links into node_modules/mediasoup.',
				envAliases: ['MEDIASOUP_WORKER_BIN'],
			}),
			workerLogLevel: option(z.enum(['debug', 'warn', 'error', 'none']).default('warn'), {
				description: 'Log level inside the mediasoup workers (their lines are forwarded to Parley\'s log).',
			}),
			listenIp: option(z.ipv4().or(z.ipv6()).default('0.0.0.0'), {
				description: 'Local address the workers\' WebRTC servers listen on for media (UDP and TCP).',
			}),
			announcedAddress: option(z.string().default(''), {
				description:
					'Address (IP or host name) given to clients in ICE candidates, for NAT or a public IP. Empty: listenIp, or when listenIp is a wildcard, the first non-internal IPv4 address of the host (127.0.0.1 if it has none).',
			}),
			rtcPort: option(port.default(40000), {
				description:
					'First media port. Worker i listens on rtcPort + i for both UDP and TCP (one port pair per worker serves all its WebRTC transports), so open rtcPort .. rtcPort + workers - 1 in the firewall.',
				unit: 'port',
			}),
			workerRespawnDelayMs: option(z.number().int().min(0).max(60_000).default(1000), {
				description:
					'Delay before a died worker is replaced when the previous replacement failed too (doubles per failure, up to 30 s). The first replacement is immediate.',
				unit: 'ms',
			}),
		})
		.prefault({}),

	storage: z
		.strictObject({
			dir: option(z.string().min(1).default('./data/storage'), {
				description: 'Directory for voice-message files (created if missing). Relative paths are resolved from the working directory.',
			}),
		})
		.prefault({}),

	cluster: z
		.strictObject({
			redisUrl: option(z.string().default(''), {
				description: 'Redis URL (redis://host:port/db). Empty: single node, nothing shared. Readiness checks Redis when set.',
				envAliases: ['REDIS_URL'],
			}),
		})
		.prefault({}),

	shutdown: z
		.strictObject({
			deadlineMs: option(z.number().int().min(0).max(600_000).default(10_000), {
				description:
					'On SIGTERM/SIGINT: how long in-flight work (recordings, uploads, requests) may take to finish before workers are closed and the process exits.',
				unit: 'ms',
			}),
		})
		.prefault({}),

	readiness: z
		.strictObject({
			checkTimeoutMs: option(z.number().int().min(1).max(60_000).default(2000), {
				description: 'Time each /readyz check (workers, storage, Redis) may take before it counts as failed.',
				unit: 'ms',
			}),
		})
		.prefault({}),
});

/** The validated configuration, with every default filled in. */
export type ParleyConfig = z.output<typeof configSchema>;
/** What a config file may contain: any subset of the options. */
export type ParleyConfigInput = z.input<typeof configSchema>;
