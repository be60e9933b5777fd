// Structured JSON logs (pino) on stdout. Every module gets a child logger naming its part
// of the system (`{"component":"media"}`), so lines can be filtered by component. Writes are
// synchronous: log volume is low (no per-packet logging) and nothing is lost at exit.
// Lines written inside a traced span carry its `traceId` and `spanId` (see tracing.ts, which
// takes any `{ info, warn }` logger, so the import goes one way: logger -> tracing).
//
// Secrets never reach a log line: logs are shipped, kept and read by more people than the
// tokens are meant for. Authorization header values, fields named like a token, and any
// string (a URL, a query, a message) carrying `token=`, `access_token=`, `sig=`, a Bearer
// credential or a JWT have them replaced by [redacted], whichever module logs them.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { traceLogFields } from './tracing.js';

export type { Logger };

export const REDACTED = '[redacted]';

/** Field paths whose whole value is a credential (pino redact syntax). */
const SECRET_PATHS = [
	...['authorization', 'token', 'accessToken', 'access_token', 'bearerToken', 'jwtSecret', 'secret', 'credential', 'password'].flatMap((key) => [key, `*.${key}`, `*.headers.${key}`, `*.*.headers.${key}`]),
	// TURN credentials as transports carry them (RTCIceServer.credential).
	'iceServers[*].credential',
	'*.iceServers[*].credential',
	'*.*.iceServers[*].credential',
];

/** Secrets inside text: query parameters carrying credentials, Bearer values, bare JWTs. */
const SECRET_IN_TEXT: [RegExp, string][] = [
	[/\b(token|access_token|sig|signature|jwt|password|secret)=[^&\s#"'<>]*/gi, `$1=${REDACTED}`],
	[/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, `$1 ${REDACTED}`],
	// A JWT header always starts with `{"` (base64url eyJ); three dot-separated parts.
	[/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED],
];

/** `text` with the credentials in it replaced by [redacted]. */
export function redactSecrets(text: string): string {
	let out = text;
	for (const [pattern, replacement] of SECRET_IN_TEXT) out = out.replace(pattern, replacement);
	return out;
}

/** Plain objects and arrays a few levels deep with their strings redacted (a URL in
 * `{url}`, `{request: {query}}`); errors and other class instances go to pino's serializers
 * as they are. */
function redactFields(value: unknown, depth: number): unknown {
	if (typeof value === 'string') return redactSecrets(value);
	if (depth === 0 || value === null || typeof value !== 'object') return value;
	if (Array.isArray(value)) return value.map((item) => redactFields(item, depth - 1));
	if (Object.getPrototypeOf(value) !== Object.prototype) return value;
	const out: Record<string, unknown> = {};
	for (const [key, item] of Object.entries(value)) out[key] = redactFields(item, depth - 1);
	return out;
}

export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
	return pino(
		{
			level,
			base: { pid: process.pid },
			timestamp: pino.stdTimeFunctions.isoTime,
			formatters: {
				level: (label) => ({ level: label }),
				log: (fields) => redactFields(fields, 4) as Record<string, unknown>,
			},
			redact: { paths: SECRET_PATHS, censor: REDACTED },
			serializers: {
				// An error's message and stack may quote a URL with a token in it.
				err: (err: Error) => {
					const serialized: Record<string, unknown> = {};
					for (const [key, value] of Object.entries(pino.stdSerializers.err(err))) serialized[key] = redactFields(value, 3);
					return serialized;
				},
			},
			hooks: {
				// The message text too (`log.info('GET ' + url)`).
				logMethod(args, method) {
					method.apply(
						this,
						args.map((arg) => (typeof arg === 'string' ? redactSecrets(arg) : arg)) as Parameters<typeof method>,
					);
				},
			},
			mixin: traceLogFields,
		},
		destination ?? pino.destination({ sync: true }),
	);
}
