// Structured JSON logs (pino) on stdout. Every module gets a child logger naming its part
// of the system (`{"component":"media"}`), so lines can be filtered by component. Writes are
// synchronous: log volume is low (no per-packet logging) and nothing is lost at exit.
// Lines written inside a traced span carry its `traceId` and `spanId` (see tracing.ts, which
// takes any `{ info, warn }` logger, so the import goes one way: logger -> tracing).
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { traceLogFields } from './tracing.js';

export type { Logger };

export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
	return pino(
		{
			level,
			base: { pid: process.pid },
			timestamp: pino.stdTimeFunctions.isoTime,
			formatters: { level: (label) => ({ level: label }) },
			mixin: traceLogFields,
		},
		destination ?? pino.destination({ sync: true }),
	);
}
