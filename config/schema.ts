// Parley's configuration: every option, its default, unit and meaning, declared once.
//
// The loader (server/config/loadConfig.ts) validates a JSON config file plus PARLEY_*
// environment overrides against this schema; `npm run config:docs` renders
// config/README.md from it (a test fails when that file is stale). Option `a.bC` is
// overridden by the environment variable `PARLEY_A_B_C`.
import { z } from 'zod';
import { isRoomEventType, ROOM_EVENT_TYPES } from '../protocol/roomEvents.js';

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

/** turn:/turns: URLs as browsers take them (RTCIceServer.urls); turns: only over TCP (TLS). */
const TURN_URL = /^(turn:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}(\?transport=(udp|tcp))?|turns:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}(\?transport=tcp)?)$/;

/** The entries of the comma-separated turn.urls option. */
export function turnUrlList(value: string): string[] {
	return value
		.split(',')
		.map((u) => u.trim())
		.filter((u) => u !== '');
}

/** The entries of api.keys (`<id>:<secret>,...`); an entry that does not parse is undefined
 * (a repeated id too), so validation can name the option. */
export function apiKeyList(value: string): ({ id: string; secret: string } | undefined)[] {
	const seen = new Set<string>();
	return value
		.split(',')
		.map((entry) => entry.trim())
		.filter((entry) => entry !== '')
		.map((entry) => {
			const m = /^([A-Za-z0-9._-]{1,64}):(.{32,})$/.exec(entry);
			if (!m || seen.has(m[1]!)) return undefined;
			seen.add(m[1]!);
			return { id: m[1]!, secret: m[2]! };
		});
}

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
			maxBodyBytes: option(z.number().int().min(1024).max(16 * 1_048_576).default(65_536), {
				description: 'Largest body accepted by JSON endpoints (voice-message chunks have their own limit).',
				unit: 'bytes',
			}),
			port: option(portOrZero.default(8080), {
				description: 'TCP port of the HTTP + WebSocket listener (health, metrics, voice-message API, /ws). 0 picks a free port.',
				unit: 'port',
			}),
			maxConcurrentRequests: option(z.number().int().min(1).max(1_000_000).default(256), {
				description:
					'Plain HTTP requests (voice API, uploads, demo page, tokens) in flight at once on this node, from arrival to reply; one more gets 503 with Retry-After: 1 at once and its connection is closed. Bounds memory too: each may hold its body (tus chunks up to 8 MiB). /healthz, /readyz and /metrics are not counted. WebSockets have signaling.maxConnections.',
				unit: 'requests',
			}),
			bodyTimeoutMs: option(z.number().int().min(1000).max(3_600_000).default(60_000), {
				description:
					'Time a request body (POST, PATCH) may take to arrive, from the request\'s start; past it the request gets 408 and its connection is closed (slow-body attacks). uWebSockets.js already closes bodies slower than 16 KB/s; this bounds the rest. Clients on slow links send smaller tus chunks (1 MiB needs 17 KB/s at 60 s).',
				unit: 'ms',
			}),
			slowReaderTimeoutMs: option(z.number().int().min(1000).max(3_600_000).default(30_000), {
				description:
					'Time a client may take to accept each 64 KiB chunk of a streamed reply (voice-message audio); past it the connection is closed. Downloads are sent as the client reads, one chunk in memory per connection, and keep their http.maxConcurrentRequests slot until the last byte is taken. uWebSockets.js already closes a connection that takes no bytes for about 10 s; this also bounds one that reads a trickle (30 s is a floor of about 2 KB/s).',
				unit: 'ms',
			}),
			trustProxy: option(z.boolean().default(false), {
				description:
					'Behind a reverse proxy: take the client address for per-address rate limits from the last X-Forwarded-For entry (the one your proxy appends) instead of the socket. Leave off when clients connect directly, or they could pick their own address.',
			}),
			tls: z
				.strictObject({
					certFile: option(z.string().default(''), {
						description:
							'PEM file with the server certificate, then any intermediates (certbot: fullchain.pem). Set together with http.tls.keyFile: http.port then serves HTTPS and WSS only (same routes), and SIGHUP re-reads both files without dropping connections. A missing, unreadable or non-PEM file, a key that does not match, stops startup with exit code 78; a certificate that has expired or expires within 14 days is logged as a warning. Empty (default): plain HTTP and WS.',
					}),
					keyFile: option(z.string().default(''), {
						description: 'PEM file with the private key of http.tls.certFile (certbot: privkey.pem), unencrypted. Read at startup and on SIGHUP; never logged.',
					}),
				})
				.prefault({}),
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
			opusInbandFec: option(z.boolean().default(true), {
				description: 'Offer Opus in-band FEC (useinbandfec=1): a receiver rebuilds a lost 20 ms frame from the next packet.',
			}),
			opusDtx: option(z.boolean().default(true), {
				description: 'Offer Opus DTX (usedtx=1): senders stop sending during silence.',
			}),
			opusRed: option(z.boolean().default(true), {
				description:
					'Offer Opus RED (RFC 2198, audio/red with Opus blocks): a publisher that supports it (Chromium) sends each frame again in the next one or two packets, chosen by the publisher. Listeners that negotiated RED get it as sent; the others (Firefox, plain RTP) get the primary Opus frame, and a frame lost on the way in is rebuilt from the next packet\'s copy. Recordings use the copies too. DTX silence is not redundancy: a publisher in DTX sends nothing to repeat.',
			}),
			opusNack: option(z.boolean().default(false), {
				description: 'Offer NACK retransmission for Opus (audio RTX); off by default since FEC covers loss without the extra round trip. For bench comparisons.',
			}),
			workerRespawnDelayMs: option(z.number().int().min(0).max(60_000).default(1000), {
				description:
					'Delay before a died worker is replaced when the previous replacement failed too (doubles per failure, up to 30 s). The first replacement is immediate.',
				unit: 'ms',
			}),
		})
		.prefault({}),

	turn: z
		.strictObject({
			urls: option(
				z
					.string()
					.default('')
					.superRefine((v, ctx) => {
						const bad = turnUrlList(v).find((u) => !TURN_URL.test(u));
						if (bad !== undefined) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(bad)} is not turn:<host>:<port>?transport=udp|tcp or turns:<host>:<port>?transport=tcp (entries are comma-separated)` });
					}),
				{
					description:
						'TURN servers handed to every client with its transport parameters, comma-separated: `turn:<host>:<port>?transport=udp`, `turn:<host>:<port>?transport=tcp`, `turns:<host>:<port>?transport=tcp` (TLS, e.g. port 443 for clients behind firewalls that pass only TLS). Each client gets time-limited credentials for them (the TURN REST scheme of coturn\'s `use-auth-secret`). Empty: no TURN; clients reach the media port directly over UDP, or over TCP when UDP is blocked.',
				},
			),
			secret: option(z.string().refine((v) => v === '' || v.length >= 32, 'must be empty or at least 32 characters').default(''), {
				description:
					'Shared secret of the TURN servers (coturn: `use-auth-secret` with `static-auth-secret=<this>`), at least 32 characters; required when turn.urls is set. Clients get username `<unix expiry>:<user id>` and credential base64(HMAC-SHA1(secret, username)); neither the secret nor the credentials are logged.',
			}),
			credentialTtlS: option(z.number().int().min(60).max(7 * 86_400).default(3600), {
				description:
					'Lifetime of the TURN credentials in each createTransport (and restartIce) reply. coturn checks the expiry on every request, allocation refreshes included, so a relayed call that outlives it loses its relay until the client\'s ICE restart fetches fresh ones; a reconnect or rejoin always gets fresh ones. Short limits what a leaked credential is worth.',
				unit: 's',
			}),
		})
		.prefault({}),

	auth: z
		.strictObject({
			jwtSecret: option(z.string().refine((v) => v === '' || v.length >= 32, 'must be empty or at least 32 characters').default(''), {
				description:
					'HS256 secret that signs access tokens (at least 32 characters). Empty: a random secret per process (tokens die with it; fine for a single dev node, wrong for production or a cluster).',
			}),
			devTokens: option(z.enum(['off', 'loopback', 'any']).default('loopback'), {
				description:
					'Development token endpoint POST /dev/token used by the demo page: `loopback` serves only clients on this machine (direct requests: a loopback socket address, a loopback Host header, and no header a proxy adds: Forwarded, Via, any X-Forwarded-*, X-Real-IP, X-Client-IP, True-Client-IP, CF-Connecting-IP, X-Cluster-Client-IP), `any` serves everyone (never on a public server), `off` disables it. Production turns it off: set `off` on any server others can reach (a warning is logged at startup while it is on and http.host is not a loopback address).',
			}),
			devTokenTtlS: option(z.number().int().min(60).max(7 * 86_400).default(3600), {
				description: 'Lifetime of tokens from /dev/token.',
				unit: 's',
			}),
			maxTokenLifetimeS: option(z.number().int().min(60).max(366 * 86_400).default(7 * 86_400), {
				description:
					'Longest lifetime an access token may have: exp - iat, or exp - now when iat is absent. Longer-lived tokens are refused (E_AUTH), so a leaked token is not useful for years. Keep it at least auth.devTokenTtlS.',
				unit: 's',
			}),
			audience: option(z.string().max(256).default(''), {
				description: 'Required `aud` claim of access tokens (tokens minted by /dev/token and `npm run token` carry it). Empty: not checked.',
			}),
			issuer: option(z.string().max(256).default(''), {
				description: 'Required `iss` claim of access tokens (tokens minted by /dev/token and `npm run token` carry it). Empty: not checked.',
			}),
			audioUrlTtlS: option(z.number().int().min(10).max(86_400).default(300), {
				description:
					'Lifetime of the signed audio links from POST /voice/messages/:id/audio-url (`?user=&exp=&sig=`, an HMAC bound to one message and the user it was issued to, keyed by HKDF from auth.jwtSecret). An <audio> element uses one to play and seek (Range) without the access token in its URL; access tokens are not accepted in the query of the voice API (`?access_token=` was removed). Past it: 403 E_AUDIO_URL_EXPIRED, ask for a new link.',
				unit: 's',
			}),
		})
		.prefault({}),

	signaling: z
		.strictObject({
			maxMessageBytes: option(z.number().int().min(1024).max(1_048_576).default(16_384), {
				description:
					'Largest signaling message accepted. Larger ones get E_MESSAGE_TOO_LARGE; ones over 4x this close the connection (code 1009, reason E_MESSAGE_TOO_LARGE); ones over 8x are cut unread by the WebSocket layer, without a close frame (the client sees 1006). Before its welcome a client may send at most 16 messages and 2x this in bytes (more: close 4429).',
				unit: 'bytes',
			}),
			requestsPerSecond: option(z.number().min(0.1).max(10_000).default(20), {
				description: 'Sustained request rate per connection (token bucket refill). Excess requests get E_RATE_LIMIT.',
				unit: 'requests/s',
			}),
			requestBurst: option(z.number().int().min(1).max(100_000).default(50), {
				description: 'Requests a connection may send at once before the rate limit applies (token bucket size).',
				unit: 'requests',
			}),
			idleTimeoutS: option(
				z
					.number()
					.int()
					.min(8)
					.max(960)
					.refine((v) => v % 4 === 0, 'must be a multiple of 4 (uWebSockets.js)')
					.default(32),
				{
					description: 'A connection silent this long is closed. The server pings idle clients, so live browsers never hit it.',
					unit: 's',
				},
			),
			maxBufferedBytes: option(z.number().int().min(16_384).max(64 * 1_048_576).default(1_048_576), {
				description:
					'Bytes queued for a client that does not read. Past a quarter of it, lossy notifications (audio levels, scores) are dropped; past it, the connection is closed (code 4508).',
				unit: 'bytes',
			}),
			maxConnections: option(z.number().int().min(1).max(1_000_000).default(10_000), {
				description: 'WebSocket connections per node; more are closed at once with code 4429.',
				unit: 'connections',
			}),
			requestTimeoutMs: option(z.number().int().min(100).max(120_000).default(10_000), {
				description:
					"A request still unanswered after this long is answered E_INTERNAL (the connection stays open). Its handler keeps the connection's turn: the next request waits until it is done, and what it did then (a join, a transport, a producer) is undone.",
				unit: 'ms',
			}),
			userRequestsPerSecond: option(z.number().min(0).max(100_000).default(40), {
				description:
					'Sustained request rate per user over all their connections (on every node when Redis is set, else on this node). Excess requests get E_RATE_LIMIT saying when to retry. 0 turns the limit off.',
				unit: 'requests/s',
			}),
			userRequestBurst: option(z.number().int().min(1).max(1_000_000).default(100), {
				description: 'Requests a user may send at once over all their connections before userRequestsPerSecond applies (token bucket size).',
				unit: 'requests',
			}),
			ipRequestsPerSecond: option(z.number().min(0).max(100_000).default(0), {
				description:
					'Sustained request rate per client address over all connections and users (IPv6: per /64), cluster-wide with Redis. 0 (default) turns the limit off: behind a reverse proxy without http.trustProxy every client has the proxy\'s address, and many users may share a NAT. Set it (e.g. 200) together with http.trustProxy behind a proxy.',
				unit: 'requests/s',
			}),
			ipRequestBurst: option(z.number().int().min(1).max(1_000_000).default(500), {
				description: 'Requests one client address may send at once before ipRequestsPerSecond applies (token bucket size).',
				unit: 'requests',
			}),
			ipConnectionsPerMinute: option(z.number().min(0).max(1_000_000).default(0), {
				description:
					'New WebSocket connections per client address (IPv6: per /64), cluster-wide with Redis, checked before the token; more are closed at once with code 4429 and a reason saying when to retry. 0 (default) turns the limit off (see ipRequestsPerSecond for why); e.g. 120 with ipConnectionBurst 60.',
				unit: 'connections/min',
			}),
			ipConnectionBurst: option(z.number().int().min(1).max(1_000_000).default(60), {
				description: 'New WebSocket connections one client address may open at once before ipConnectionsPerMinute applies (token bucket size).',
				unit: 'connections',
			}),
			maxConnectionsPerUser: option(z.number().int().min(0).max(1_000_000).default(8), {
				description:
					'WebSocket connections one user (token sub) may hold open at once on this node (per node, also in a cluster); one more is closed at once with code 4429 and reason E_TOO_MANY_USER_CONNECTIONS. Keeps one token from taking all of maxConnections. 0 turns the limit off.',
				unit: 'connections',
			}),
			maxConnectionsPerAddress: option(z.number().int().min(0).max(1_000_000).default(256), {
				description:
					'WebSocket connections one client address (IPv6: per /64) may hold open at once on this node; one more is closed at once with code 4429 and reason E_TOO_MANY_ADDRESS_CONNECTIONS, before its token is checked. The default leaves room for a household or office behind one NAT; behind a reverse proxy set http.trustProxy (else every client has the proxy\'s address) or raise it. 0 turns the limit off.',
				unit: 'connections',
			}),
			allowedOrigins: option(
				z
					.string()
					.max(8192)
					.refine((v) => v.split(',').map((o) => o.trim()).filter((o) => o !== '').every((o) => /^https?:\/\/[^/\s,]+$/.test(o)), 'a comma-separated list of origins: http(s)://host[:port], no path')
					.default(''),
				{
				description:
					'Comma-separated origins (scheme://host[:port], exact match, e.g. "https://chat.example.org,https://example.org") whose pages may open a signaling WebSocket; an upgrade with another Origin is refused with 403 before the upgrade. Browsers always send Origin, so a request without one is not from a browser page (a native client, a test) and is let through: the list guards users\' browsers against other sites, not the server against non-browser clients (tokens do that). Empty (default): any origin, since the demo page may be served from any host name the server is reached by.',
				},
			),
		})
		.prefault({}),

	channels: z
		.strictObject({
			maxChannels: option(z.number().int().min(1).max(100_000).default(1000), {
				description: 'Channels (mediasoup routers) per node; joining another gets E_TOO_MANY_CHANNELS.',
				unit: 'channels',
			}),
			maxPeers: option(z.number().int().min(1).max(100_000).default(500), {
				description: 'Peers per channel on this node (a channel bridged across nodes holds this many on each of its nodes); one more gets E_CHANNEL_FULL.',
				unit: 'peers',
			}),
			maxTransportsPerPeer: option(z.number().int().min(1).max(16).default(4), {
				description: 'WebRTC transports per peer (one send and one receive are enough); more get E_TOO_MANY_TRANSPORTS.',
				unit: 'transports',
			}),
			maxProducersPerPeer: option(z.number().int().min(1).max(16).default(2), {
				description: 'Audio producers per peer; more get E_TOO_MANY_PRODUCERS.',
				unit: 'producers',
			}),
			maxChannelsPerUser: option(z.number().int().min(0).max(100_000).default(16), {
				description:
					'Channels one user may have opened (created by their join) and still open on this node; a join that would create one more gets E_TOO_MANY_USER_CHANNELS (joining channels that are already open is not counted). Keeps a wildcard token from opening all of maxChannels. 0 turns the limit off.',
				unit: 'channels',
			}),
			emptyCloseDelayMs: option(z.number().int().min(0).max(3_600_000).default(10_000), {
				description: 'An empty channel keeps its router this long (quick rejoins are cheap), then closes.',
				unit: 'ms',
			}),
			audioLevelIntervalMs: option(z.number().int().min(100).max(10_000).default(300), {
				description: 'How often audio levels are sent to the channel (AudioLevelObserver interval): the throttle for speaking indicators.',
				unit: 'ms',
			}),
			audioLevelThresholdDb: option(z.number().int().min(-127).max(0).default(-60), {
				description: 'Audio above this level counts as speaking in audio-level notifications.',
				unit: 'dBov',
			}),
		})
		.prefault({}),

	storage: z
		.strictObject({
			backend: option(z.enum(['disk', 's3']).default('disk'), {
				description:
					'Where voice-message files live. disk: under storage.dir (one node, or a directory every node shares). s3: in an S3-compatible bucket (storage.s3.*), so nodes share no directory: tus uploads are staged there, recordings are checkpointed there as they go, downloads stream from it.',
			}),
			dir: option(z.string().min(1).default('./data/storage'), {
				description:
					'With backend disk: directory for voice-message files (created if missing). With backend s3: this node\'s own work folder (recordings being written, conversions, finished files waiting for S3 to come back); nothing in it is shared. Relative paths are resolved from the working directory.',
			}),
			s3: z
				.strictObject({
					endpoint: option(z.string().refine((v) => v === '' || /^https?:\/\/[^\s/]+(\/.*)?$/.test(v), 'must be empty or an http(s) URL').default(''), {
						description: 'S3 API endpoint, e.g. http://127.0.0.1:9000 for MinIO or a Swift s3api proxy. Empty: AWS S3 of storage.s3.region.',
					}),
					region: option(z.string().min(1).default('us-east-1'), {
						description: 'Region the requests are signed for (SigV4). Most S3-compatible servers accept us-east-1.',
						envAliases: ['AWS_REGION'],
					}),
					bucket: option(z.string().regex(/^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a bucket name (3-63 of a-z 0-9 . -)').default(''), {
						description: 'Bucket holding the files. Required with backend s3; it must exist (Parley does not create it).',
					}),
					keyPrefix: option(z.string().regex(/^$|^([A-Za-z0-9_.-]+\/)+$/, 'must be empty or folder names each ending in /, e.g. parley/').default(''), {
						description: 'Prefix of every key Parley writes, e.g. parley/: messages are <prefix><owner>/<yyyymm>/<id>.ogg, staged uploads and checkpoints sit under <prefix>.uploads/ and <prefix>.recordings/.',
					}),
					forcePathStyle: option(z.boolean().default(false), {
						description: 'Address the bucket as <endpoint>/<bucket> rather than <bucket>.<endpoint>: needed by MinIO, Swift and most self-hosted servers.',
					}),
					accessKeyId: option(z.string().default(''), {
						description: 'Access key. Empty: the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, instance roles).',
					}),
					secretAccessKey: option(z.string().default(''), {
						description: 'Secret key belonging to storage.s3.accessKeyId (both or neither).',
					}),
					presignedDownloadTtlS: option(z.number().int().min(0).max(3600).default(0), {
						description:
							'0: audio downloads stream from S3 through the node. Above 0: GET /voice/messages/:id/audio answers 302 to a presigned S3 URL valid this long (the bucket must be reachable by clients).',
						unit: 's',
					}),
				})
				.prefault({}),
		})
		.prefault({}),

	metadata: z
		.strictObject({
			url: option(
				z
					.string()
					.refine((v) => v === '' || /^(sqlite:.+|mysql:\/\/.+|mariadb:\/\/.+|postgres(ql)?:\/\/.+)$/.test(v), 'must be empty, sqlite:<file>, mysql://..., mariadb://... or postgres://...')
					.default(''),
				{
					description:
						'SQL database holding voice-message metadata and its event outbox: sqlite:<file> (one node), mysql://user:pass@host:port/db (MySQL or MariaDB) or postgres://user:pass@host:port/db (PostgreSQL). Migrations run at startup under a lock. Empty: sqlite:<voice.databasePath> on one node; with cluster.redisUrl set, the older Redis store (kept for clusters that run only Redis; move to SQL with npm run metadata:import).',
					envAliases: ['DATABASE_URL'],
				},
			),
			poolSize: option(z.number().int().min(1).max(200).default(10), {
				description: 'Connections to a MySQL/MariaDB or PostgreSQL server per node.',
				unit: 'connections',
			}),
			outboxPollMs: option(z.number().int().min(10).max(60_000).default(250), {
				description: 'How often the outbox relay looks for events not yet on the stream or the webhook, when it is not woken by a commit of its own node.',
				unit: 'ms',
			}),
			outboxLeaseMs: option(z.number().int().min(1000).max(600_000).default(15_000), {
				description: 'How long a node holds the outbox events it is publishing; a node that dies holding them leaves them to the others after this.',
				unit: 'ms',
			}),
			eventRetentionS: option(z.number().int().min(60).max(90 * 86_400).default(86_400), {
				description:
					'How long voice-message events stay in the outbox once delivered to every target: the event log that status subscriptions (the backend API\'s SubscribeStatus) read and resume from. A subscriber resuming from an older event gets OUT_OF_RANGE. With the Redis store the log is the stream, bounded by cluster.eventStreamMaxLen instead.',
				unit: 's',
			}),
		})
		.prefault({}),

	voice: z
		.strictObject({
			databasePath: option(z.string().min(1).default('./data/parley.db'), {
				description: 'SQLite file holding voice-message metadata (one node). Relative paths are resolved from the working directory.',
			}),
			recordingCheckpointMs: option(z.number().int().min(0).max(60_000).default(2000), {
				description:
					'With storage.backend s3: how often a running recording\'s new Ogg pages are written to S3, so a node that dies loses at most this much of it (another node finalizes the message from what reached S3). 0: only the finished file is written.',
				unit: 'ms',
			}),
			maxDurationMs: option(z.number().int().min(1000).max(3_600_000).default(300_000), {
				description:
					'Longest voice message: a recording stops itself here (and says so); an upload whose audio is longer is refused before transcoding.',
				unit: 'ms',
			}),
			maxConcurrentRecordings: option(z.number().int().min(0).max(10_000).default(100), {
				description: 'Recordings running at once on this node; one more gets E_TOO_MANY_RECORDINGS.',
				unit: 'recordings',
			}),
			maxRecordingsPerUser: option(z.number().int().min(0).max(10_000).default(2), {
				description: 'Recordings one user may run at once on this node; one more gets E_TOO_MANY_USER_RECORDINGS. 0 turns the limit off.',
				unit: 'recordings',
			}),
			maxStoredBytesPerUser: option(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(512 * 1_048_576), {
				description:
					"Bytes of voice messages one user may store (their files; a message still being converted counts with its upload's size, an unfinished upload with its Upload-Length). Checked when an upload is created (413 E_STORED_BYTES_QUOTA when its Upload-Length does not fit) and when a recording starts (E_STORED_BYTES_QUOTA when nothing is left); a recording that fills what is left stops itself with the reason \"stored bytes quota reached\" and keeps what it recorded. Failed messages do not count; deleting messages frees room. 0 turns the limit off.",
				unit: 'bytes',
			}),
			maxStoredMessagesPerUser: option(z.number().int().min(0).max(100_000_000).default(1000), {
				description:
					'Voice messages one user may store (those not failed, unfinished uploads included); one more upload or recording gets E_STORED_MESSAGES_QUOTA (409). Deleting messages frees room. 0 turns the limit off.',
				unit: 'messages',
			}),
			maxPendingUploadsPerUser: option(z.number().int().min(0).max(100_000).default(4), {
				description:
					'Unfinished tus uploads one user may hold at once (checked when an upload is created); one more gets 429 E_TOO_MANY_PENDING_UPLOADS with Retry-After until the oldest expires (finish or DELETE one to go on at once). 0 turns the limit off.',
				unit: 'uploads',
			}),
			maxUploadBytes: option(z.number().int().min(1024).max(1_073_741_824).default(20 * 1_048_576), {
				description: 'Largest uploaded voice file (tus Upload-Length); larger ones get 413.',
				unit: 'bytes',
			}),
			uploadExpiryMs: option(z.number().int().min(60_000).max(30 * 86_400_000).default(86_400_000), {
				description: 'An unfinished upload expires this long after it was created; expired partial uploads are deleted.',
				unit: 'ms',
			}),
			transcodeConcurrency: option(z.number().int().min(1).max(64).default(1), {
				description: 'ffmpeg processes transcoding uploads at once (each takes a core while it runs).',
				unit: 'processes',
			}),
			transcodeQueue: option(z.number().int().min(0).max(10_000).default(50), {
				description: 'Uploads waiting for a transcoder; beyond this an upload fails at once as busy.',
				unit: 'uploads',
			}),
			transcodeTimeoutMs: option(z.number().int().min(1000).max(3_600_000).default(60_000), {
				description: 'An ffmpeg run taking longer is killed and the upload fails.',
				unit: 'ms',
			}),
			opusBitrateBps: option(z.number().int().min(6000).max(128_000).default(24_000), {
				description: 'Bitrate of Opus encoded from uploads (mono, voice-tuned).',
				unit: 'bits/s',
			}),
			auditOnStartup: option(z.boolean().default(true), {
				description:
					'After each start, check in the background that metadata and files agree: ready messages whose file is missing or changed are marked failed, .ogg files no message owns are moved to <storage.dir>/.orphans/, leftover temp files are removed; counts in the log ("storage audit finished") and parley_storage_audit_items. Nothing is changed when most of what is checked looks lost (wrong disk or database), and with cluster.redisUrl set only old temp files are (findings are reported). Costs about a stat and a metadata lookup per file.',
			}),
			auditHashAll: option(z.boolean().default(false), {
				description:
					'Make the startup audit hash every ready file against its sha256 (reads the whole store: minutes for large ones). Off: only files modified after they became ready are hashed; a changed size is always caught.',
			}),
			webhookUrl: option(z.union([z.literal(''), z.url({ protocol: /^https?$/ })]).default(''), {
				description:
					'URL that receives every voice-message lifecycle event (created, processing, ready, failed, deleted) as a signed JSON POST (server/voice/README.md). Empty: no webhooks.',
			}),
			webhookSecret: option(z.string().refine((v) => v === '' || v.length >= 16, 'must be empty or at least 16 characters').default(''), {
				description:
					'Secret of the webhook signature (X-Parley-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">). Required when webhookUrl is set (at least 16 characters).',
			}),
			webhookMaxAttempts: option(z.number().int().min(1).max(50).default(6), {
				description:
					'Attempts per webhook event: a network error, timeout, 5xx or 429 is retried with exponential backoff and jitter (0.5 s, 1 s, 2 s, ... up to 30 s); any other 4xx is final.',
				unit: 'attempts',
			}),
			webhookTimeoutMs: option(z.number().int().min(100).max(120_000).default(5000), {
				description: 'Time one webhook attempt may take (connect, send, response headers) before it counts as failed and is retried.',
				unit: 'ms',
			}),
			webhookQueue: option(z.number().int().min(1).max(1_000_000).default(10_000), {
				description: 'Webhook events waiting for delivery on this node (in memory); when full, new events are dropped (logged and counted).',
				unit: 'events',
			}),
			webhookRoomEvents: option(
				z
					.string()
					.default('')
					.refine((v) => v === '*' || v === '' || v.split(',').every((t) => isRoomEventType(t.trim())), `must be *, empty, or comma-separated event types (${ROOM_EVENT_TYPES.join(', ')})`),
				{
					description:
						'Room and participant events also POSTed to voice.webhookUrl (same secret and signature; X-Parley-Delivery is the event id): * for all, empty for none (the default: a receiver built for the voice-message events does not get new ones unasked), or comma-separated types such as participant.joined,participant.left. Delivered once, by the node where the event happened, from an in-memory queue (voice.webhookQueue, at-least-once while that node runs).',
				},
			),
			userRequestsPerSecond: option(z.number().min(0).max(100_000).default(20), {
				description:
					'Sustained rate of HTTP requests per user to the voice-message API and tus uploads (/voice/...), on every node when Redis is set. Excess requests get 429 with Retry-After and code E_RATE_LIMIT. 0 turns the limit off.',
				unit: 'requests/s',
			}),
			userRequestBurst: option(z.number().int().min(1).max(1_000_000).default(60), {
				description: 'Voice HTTP requests a user may send at once before userRequestsPerSecond applies (token bucket size).',
				unit: 'requests',
			}),
			ipRequestsPerSecond: option(z.number().min(0).max(100_000).default(0), {
				description:
					'Sustained rate of voice HTTP requests per client address (IPv6: per /64), checked before authentication, cluster-wide with Redis. 0 (default) turns the limit off (see signaling.ipRequestsPerSecond for why); e.g. 100 with http.trustProxy behind a proxy.',
				unit: 'requests/s',
			}),
			ipRequestBurst: option(z.number().int().min(1).max(1_000_000).default(300), {
				description: 'Voice HTTP requests one client address may send at once before ipRequestsPerSecond applies (token bucket size).',
				unit: 'requests',
			}),
		})
		.prefault({}),

	cluster: z
		.strictObject({
			redisUrl: option(z.string().default(''), {
				description: 'Redis URL (redis://host:port/db). Empty: single node, nothing shared. Readiness checks Redis when set.',
				envAliases: ['REDIS_URL'],
			}),
			secret: option(z.string().refine((v) => v === '' || v.length >= 32, 'must be empty or at least 32 characters').default(''), {
				description:
					'Shared secret of the cluster (at least 32 characters, the same on every node; e.g. `openssl rand -hex 32`). Keys (HKDF-SHA256, one key per purpose) the HMAC-SHA256 of every cluster bus message (with a timestamp and id: messages older or newer than 30 s, replayed, or from a node not in the registry are dropped), the signature of every node registry entry (unsigned or forged entries are ignored, so redirects and bridges go only to nodes holding it), and the sealing of the SRTP keys of node-to-node media. Required when redisUrl is set: startup fails without it, so a cluster is never open to whoever can write to Redis by accident. Rotate by restarting every node with the new secret (nodes with different secrets do not see each other).',
			}),
			nodeId: option(z.string().regex(/^[A-Za-z0-9_.-]{0,100}$/).default(''), {
				description:
					'This node\'s id in the cluster (letters, digits, _ . -). Empty: <hostname>-<pid>-<4 random hex>, new on every start, so a restarted node never inherits the home claims of the process it replaces (those expire or are taken over) and two nodes never share an id.',
			}),
			publicUrl: option(z.string().regex(/^(https?|wss?):\/\/[^/\s]+\/?$|^$/).default(''), {
				description:
					'Base URL clients use to reach this node (http(s):// or ws(s)://, no path), given in redirects: signaling is <publicUrl>/ws. Empty: http://<media announced address>:<http port>, https:// when http.tls is set. Set it behind a TLS proxy or NAT, and with http.tls to the host name the certificate is for.',
			}),
			nodeTtlMs: option(z.number().int().min(300).max(60_000).default(3000), {
				description:
					'Lifetime of this node\'s registry entry and of its channels\' home claims in Redis; refreshed every third of it. A node that dies is gone from the registry (and its channels can move) within about this long.',
				unit: 'ms',
			}),
			requestTimeoutMs: option(z.number().int().min(50).max(60_000).default(2000), {
				description: 'Default time a node-to-node request over the cluster bus waits for its reply.',
				unit: 'ms',
			}),
			bridgeAbovePeers: option(z.number().int().min(0).max(1_000_000).default(500), {
				description:
					'A join for a channel homed on another node is redirected there while that node serves fewer peers than this; at or above it the channel is bridged across nodes (this node pipes it from the home node). 0: always bridge, never redirect.',
				unit: 'peers',
			}),
			pipeListenIp: option(z.union([z.literal(''), z.ipv4(), z.ipv6()]).default(''), {
				description:
					'Local address the PipeTransports of channels bridged across nodes bind to (SRTP between the nodes\' mediasoup workers, UDP). Empty: media.listenIp. Use a private-network address so node-to-node media stays off the public interface.',
			}),
			pipeAnnouncedIp: option(z.union([z.literal(''), z.ipv4(), z.ipv6()]).default(''), {
				description:
					'IP other nodes send this node\'s pipe media to. Empty: pipeListenIp when it is a specific address, else media.announcedAddress when it is an IP, else the host\'s first non-internal IPv4 address.',
			}),
			pipeMinPort: option(z.number().int().min(0).max(65_535).default(0), {
				description: 'Lowest UDP port of pipe transports (one per bridged channel and linked node). 0 (with pipeMaxPort 0): any free port in 10000-59999. Open the range between nodes only.',
				unit: 'port',
			}),
			pipeMaxPort: option(z.number().int().min(0).max(65_535).default(0), {
				description: 'Highest UDP port of pipe transports; set together with pipeMinPort (pipeMinPort <= pipeMaxPort).',
				unit: 'port',
			}),
			eventStreamMaxLen: option(z.number().int().min(1000).max(100_000_000).default(100_000), {
				description:
					'Approximate cap of the Redis Stream parley:voice-meta (voice-message lifecycle events, XADD MAXLEN ~): older entries are trimmed. Consumers that fall further behind lose events.',
				unit: 'entries',
			}),
		})
		.prefault({}),

	metrics: z
		.strictObject({
			enabled: option(z.boolean().default(true), {
				description: 'Serve Prometheus metrics at GET /metrics and poll mediasoup producer and consumer stats for them.',
			}),
			port: option(portOrZero.default(0), {
				description: 'TCP port of a separate listener that serves only /metrics. 0: /metrics is served on http.port.',
				unit: 'port',
			}),
			host: option(z.string().default(''), {
				description: 'Address the separate metrics listener binds to (when metrics.port is set). Empty: http.host.',
			}),
			bearerToken: option(z.string().default(''), {
				description:
					'When set, /metrics answers 401 (E_AUTH) unless the request sends "Authorization: Bearer <token>" (Prometheus: `authorization: { credentials: ... }`), on either listener; compared in constant time. Empty: on the separate listener (metrics.port) open to anyone who reaches it; on http.port see metrics.public.',
			}),
			public: option(z.boolean().default(false), {
				description:
					'Serve /metrics on the public listener (http.port) without a bearer token. Off by default: metrics tell an outsider who is in which channel and how busy the node is, so anonymous GET /metrics on http.port gets 404 (E_METRICS_NOT_PUBLIC) unless metrics.bearerToken is set (then the token is required) or this is true. The separate listener (metrics.port, meant for a private network) is not affected.',
			}),
			statsIntervalMs: option(z.number().int().min(0).max(300_000).default(5000), {
				description: 'How often mediasoup producer and consumer stats (RTP packets and bytes, loss, jitter, NACKs, scores) are polled for the metrics. 0 turns polling off.',
				unit: 'ms',
			}),
			statsMaxPerRound: option(z.number().int().min(1).max(100_000).default(500), {
				description:
					'Most producers and consumers polled in one round. With more, rounds take turns through them (round robin), so each is polled every ceil(count / this) rounds and the load on the workers stays flat.',
				unit: 'objects',
			}),
		})
		.prefault({}),

	api: z
		.strictObject({
			grpc: z
				.strictObject({
					enabled: option(z.boolean().default(false), {
						description: 'Serve the gRPC backend API (parley.v1 services, health, reflection) on api.grpc.host:api.grpc.port. Off by default: turn it on only with api.keys set.',
					}),
					host: option(z.string().min(1).default('127.0.0.1'), {
						description: 'Address the gRPC listener binds to. Loopback by default: the API is for the app\'s own backend, not for browsers; bind wider (with api.grpc.tls) when that backend runs elsewhere.',
					}),
					port: option(portOrZero.default(50051), {
						description: 'TCP port of the gRPC listener (HTTP/2). 0 picks a free port.',
						unit: 'port',
					}),
					maxMessageBytes: option(z.number().int().min(1024).max(64 * 1_048_576).default(1_048_576), {
						description: 'Largest gRPC message received or sent; a larger one fails the call with RESOURCE_EXHAUSTED.',
						unit: 'bytes',
					}),
					tls: z
						.strictObject({
							certFile: option(z.string().default(''), {
								description: 'PEM certificate chain of the gRPC listener (with api.grpc.tls.keyFile). Empty: plaintext HTTP/2 (h2c).',
							}),
							keyFile: option(z.string().default(''), {
								description: 'PEM private key of api.grpc.tls.certFile.',
							}),
						})
						.prefault({}),
				})
				.prefault({}),
			keys: option(
				z
					.string()
					.default('')
					.refine((v) => apiKeyList(v).every((k) => k !== undefined), 'must be comma-separated <id>:<secret> pairs, ids of letters, digits, . _ - (up to 64), secrets at least 32 characters, no id twice'),
				{
					description:
						'API keys of the backend API, comma-separated `<id>:<secret>` (id: up to 64 letters, digits, `.`, `_`, `-`; secret: at least 32 characters, e.g. `openssl rand -hex 32`). A backend signs each call\'s token (HS256) with a secret and names its key in `iss` (or the `kid` header). Several keys let a key be rotated: add the new one, move the backends, remove the old one. Set it through PARLEY_API_KEYS rather than the config file.',
				},
			),
			maxTokenLifetimeS: option(z.number().int().min(10).max(86_400).default(600), {
				description: 'Longest lifetime an API token may have (exp - iat, or exp - now without iat); longer ones are refused with UNAUTHENTICATED. API tokens are minted per call or per minute by a backend: keep them short.',
				unit: 's',
			}),
			requestsPerSecond: option(z.number().min(0.1).max(100_000).default(50), {
				description: 'Calls per second each API key may make on this node (token bucket, refilled at this rate); over it: RESOURCE_EXHAUSTED with google.rpc.RetryInfo and a retry-after-ms trailer.',
				unit: 'calls/s',
			}),
			requestBurst: option(z.number().int().min(1).max(100_000).default(100), {
				description: 'Calls an API key may make at once before api.requestsPerSecond applies.',
				unit: 'calls',
			}),
			eventRetention: option(z.number().int().min(1).max(1_000_000).default(10_000), {
				description: 'Room events each node keeps in memory (the events of every node, in arrival order) for EventService.SubscribeEvents to resume from after_event_id; an older id answers OUT_OF_RANGE (E_EVENT_OUT_OF_RANGE).',
				unit: 'events',
			}),
		})
		.prefault({}),

	telemetry: z
		.strictObject({
			// The OTEL_* fallbacks are read by server/telemetry/tracing.ts, after this option, so a
			// Parley key (file or PARLEY_*) beats a variable set for every service on the host.
			otlpEndpoint: option(z.string().default(''), {
				description:
					'OTLP/HTTP base URL of a trace collector (spans go to <url>/v1/traces, JSON encoded), e.g. http://localhost:4318. Empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL, used as is), else OTEL_EXPORTER_OTLP_ENDPOINT (a base URL); none set: tracing is off and no tracing SDK is started. OTEL_SDK_DISABLED=true turns tracing off even when this is set. Sampling (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG), collector headers (OTEL_EXPORTER_OTLP_HEADERS) and extra resource attributes (OTEL_RESOURCE_ATTRIBUTES) come from the standard variables.',
			}),
			serviceName: option(z.string().default(''), {
				description:
					'service.name of the exported spans (tells nodes or deployments apart in the trace backend). Empty: OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, else parley.',
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
			cacheMs: option(z.number().int().min(0).max(60_000).default(1000), {
				description:
					'Time one run of the readiness checks answers /readyz: calls within it (and calls while the checks run) share that run, so probes cost at most one storage write + fsync per window. 0: every call runs the checks (concurrent calls still share one run).',
				unit: 'ms',
			}),
		})
		.prefault({}),
}).superRefine((c, ctx) => {
	// Options that are only valid together: reported with the option's path, so startup names it.
	if (c.storage.backend === 's3' && c.storage.s3.bucket === '') {
		ctx.addIssue({ code: 'custom', path: ['storage', 's3', 'bucket'], message: 'required when storage.backend is s3' });
	}
	if ((c.http.tls.certFile === '') !== (c.http.tls.keyFile === '')) {
		ctx.addIssue({ code: 'custom', path: ['http', 'tls', c.http.tls.certFile === '' ? 'certFile' : 'keyFile'], message: 'http.tls.certFile and http.tls.keyFile go together (both or neither)' });
	}
	if ((c.api.grpc.tls.certFile === '') !== (c.api.grpc.tls.keyFile === '')) {
		ctx.addIssue({ code: 'custom', path: ['api', 'grpc', 'tls', c.api.grpc.tls.certFile === '' ? 'certFile' : 'keyFile'], message: 'api.grpc.tls.certFile and api.grpc.tls.keyFile go together (both or neither)' });
	}
	if (turnUrlList(c.turn.urls).length > 0 && c.turn.secret === '') {
		ctx.addIssue({ code: 'custom', path: ['turn', 'secret'], message: 'required when turn.urls is set (the static-auth-secret of the TURN servers)' });
	}
	if ((c.storage.s3.accessKeyId === '') !== (c.storage.s3.secretAccessKey === '')) {
		ctx.addIssue({ code: 'custom', path: ['storage', 's3', c.storage.s3.accessKeyId === '' ? 'accessKeyId' : 'secretAccessKey'], message: 'storage.s3.accessKeyId and storage.s3.secretAccessKey go together (both or neither)' });
	}
});

/** The validated configuration, with every default filled in. */
export type ParleyConfig = z.output<typeof configSchema>;
/** What a config file may contain: any subset of the options. */
export type ParleyConfigInput = z.input<typeof configSchema>;
