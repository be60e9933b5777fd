// Structured JSON logs (pino) on stdout. Every module gets a child logger naming its part
// of the system (`{"component":"media"}`), so lines can be filtered by component. Writes are
// synchronous: log volume is low (no per-packet logging) and nothing is lost at exit.
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
	return pino(
		{
			level,
			base: { pid: process.pid },
			timestamp: pino.stdTimeFunctions.isoTime,
			formatters: { level: (label) => ({ level: label }) },
		},
		destination ?? pino.destination({ sync: true }),
	);
}
