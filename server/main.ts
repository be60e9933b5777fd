// Entry point: `npm start`. Loads the configuration, starts one Parley node and shuts it
// down gracefully on SIGTERM/SIGINT (a second signal exits at once); SIGHUP reloads http.tls.
import { ConfigError, loadConfig } from './config/loadConfig.js';
import { ParleyServer } from './ParleyServer.js';
import { createLogger } from './telemetry/logger.js';

/** sysexits.h EX_CONFIG: the configuration is wrong, restarting will not help. */
const EXIT_CONFIG = 78;
/** A repeated SIGTERM/SIGINT this long after the first exits at once, without draining. */
const FORCE_EXIT_AFTER_MS = 1000;

async function main(): Promise<void> {
	let config;
	try {
		config = loadConfig();
	} catch (err) {
		if (err instanceof ConfigError) {
			process.stderr.write(`parley: ${err.message}\n`);
			process.exit(EXIT_CONFIG);
		}
		throw err;
	}
	const log = createLogger(config.logLevel);
	process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection'));

	let server: ParleyServer;
	try {
		server = await ParleyServer.create(config, log);
	} catch (err) {
		// A setting the start proved wrong (e.g. S3 refusing storage.s3.secretAccessKey).
		if (err instanceof ConfigError) {
			log.fatal({ err, options: err.options }, 'startup failed: configuration');
			log.flush();
			process.stderr.write(`parley: ${err.message}\n`);
			process.exit(EXIT_CONFIG);
		}
		log.fatal({ err }, 'startup failed');
		log.flush();
		process.stderr.write(`parley: startup failed: ${(err as Error).message}\n`);
		process.exit(1);
	}

	// Ctrl-C reaches the process more than once (the terminal signals the whole process
	// group, and npm forwards it too), so only a signal a while after the first forces exit.
	let firstSignalAt = 0;
	const onSignal = (signal: NodeJS.Signals): void => {
		if (firstSignalAt !== 0) {
			if (Date.now() - firstSignalAt < FORCE_EXIT_AFTER_MS) return;
			log.warn({ signal }, 'second signal: exiting now');
			log.flush();
			process.exit(1);
		}
		firstSignalAt = Date.now();
		server.shutdown(signal).then(
			() => {
				log.flush();
				// A deadline cut-off is logged above; the process still ends as asked.
				process.exit(0);
			},
			(err: unknown) => {
				log.fatal({ err }, 'shutdown failed');
				log.flush();
				process.exit(1);
			},
		);
	};
	process.on('SIGTERM', onSignal);
	process.on('SIGINT', onSignal);
	// SIGHUP re-reads the TLS certificate (certbot's deploy hook sends it); calls stay up. Only
	// with http.tls: without it SIGHUP keeps its default (the process ends), as before.
	if (config.http.tls.certFile) {
		process.on('SIGHUP', () => {
			log.info({ signal: 'SIGHUP' }, 'reloading the TLS certificate');
			void server.reloadTls();
		});
	}
}

await main();
