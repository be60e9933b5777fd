// A logger for tests: silent unless TEST_LOG_LEVEL names a level (e.g. debug).
import { createLogger, type Logger } from '../../server/telemetry/logger.js';

export function testLogger(): Logger {
	const level = process.env.TEST_LOG_LEVEL;
	return createLogger(level === 'debug' || level === 'info' || level === 'warn' ? level : 'silent');
}
