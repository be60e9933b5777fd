// A real, throwaway PostgreSQL (Debian's postgresql, /usr/lib/postgresql/<v>/bin) on a free
// loopback port, data under a temp folder, database `parley`, trust auth for `postgres`.
//
// initdb and the server refuse to run as root, so both run as `nobody` (the folder is
// chowned to it). The server is spawned directly, not through pg_ctl, so its PID is the
// child's and stop() signals it: SIGINT is PostgreSQL's "fast" shutdown (ends sessions,
// checkpoints, exits; SIGTERM would wait for every pooled client to leave). kill() sends
// SIGQUIT, the "immediate" shutdown: no checkpoint, recovery at the next start, as after a
// crash. start() again uses the same port and data, so clients reconnect to the same URL.
import { chownSync, openSync, closeSync, readdirSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../ports.js';
import { cachedTemplate, copyTemplate, makeTempFolder, removeTempFolder, run, spawnDaemon, waitUntil, type Daemon } from './daemon.js';

export interface TestPostgres {
	/** postgres://postgres@127.0.0.1:<port>/parley */
	url: string;
	port: number;
	/** A new, empty database named `name` on this server; its URL. */
	createDatabase(name: string): Promise<string>;
	/** Fast shutdown (SIGINT), waits for the exit; data kept for start(). */
	stop(): Promise<void>;
	/** Immediate shutdown (SIGQUIT), as close to a crash as PostgreSQL allows; data kept. */
	kill(): Promise<void>;
	/** Starts again on the same port and data (after stop() or kill()). */
	start(): Promise<void>;
	restart(): Promise<void>;
	/** Stops and removes the data folder. */
	close(): Promise<void>;
	/** Milliseconds the first start took (initdb + server + CREATE DATABASE). */
	startMs: number;
}

function postgresBin(): string {
	const root = '/usr/lib/postgresql';
	const versions = existsSync(root)
		? readdirSync(root)
				.filter((v) => existsSync(path.join(root, v, 'bin', 'postgres')))
				.sort((a, b) => Number(b) - Number(a))
		: [];
	if (versions[0] === undefined) throw new Error(`PostgreSQL not found under ${root} (scripts/setup installs it)`);
	return path.join(root, versions[0], 'bin');
}

function nobody(): { uid: number; gid: number } {
	const line = readFileSync('/etc/passwd', 'utf8')
		.split('\n')
		.find((l) => l.startsWith('nobody:'));
	const [, , uid, gid] = line?.split(':') ?? [];
	if (uid === undefined || gid === undefined) throw new Error('no nobody user in /etc/passwd');
	return { uid: Number(uid), gid: Number(gid) };
}

async function answers(port: number, database: string): Promise<boolean> {
	const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database, connectionTimeoutMillis: 1000 });
	client.on('error', () => {});
	try {
		await client.connect();
		await client.query('SELECT 1');
		return true;
	} catch {
		return false;
	} finally {
		await client.end().catch(() => {});
	}
}

export interface PostgresOptions {
	/** fsync and full-page writes on, as a production server runs (benchmarks). Off by default:
	 * a throwaway test database need not survive a power cut, and tests run faster. */
	durable?: boolean;
}

export async function startPostgres(options: PostgresOptions = {}): Promise<TestPostgres> {
	const began = Date.now();
	const bin = postgresBin();
	const user = nobody();
	const base = makeTempFolder('postgres');
	chownSync(base, user.uid, user.gid);
	const data = path.join(base, 'data');
	const logFile = path.join(base, 'postgres.log');
	const version = (await run(path.join(bin, 'postgres'), ['-V'])).trim().split(' ').pop() ?? 'unknown';
	// initdb takes 0.7-2 s; copying its result ~0.3 s.
	const template = await cachedTemplate(`postgres-${version}`, async (dir) => {
		chownSync(dir, user.uid, user.gid);
		await run(path.join(bin, 'initdb'), ['-D', path.join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'], {
			...user,
			cwd: dir,
		});
	});
	await copyTemplate(template, base);
	chownSync(base, user.uid, user.gid);
	const port = await freePort();
	let daemon: Daemon | undefined;

	const start = async (): Promise<void> => {
		if (daemon?.running()) return;
		const log = openSync(logFile, 'a');
		chownSync(logFile, user.uid, user.gid);
		// The port may still be held for a moment by the instance just stopped: retry briefly.
		const deadline = Date.now() + 10_000;
		try {
			for (;;) {
				daemon = spawnDaemon(
					path.join(bin, 'postgres'),
					['-D', data, '-c', 'listen_addresses=127.0.0.1', '-p', String(port), '-k', base, ...(options.durable ? [] : ['-c', 'fsync=off', '-c', 'full_page_writes=off'])],
					{ ...user, cwd: base, stdio: ['ignore', log, log], backstopSignal: 'SIGQUIT', defaultStopSignal: 'SIGINT' },
				);
				try {
					await waitUntil(`postgres on ${port}`, () => answers(port, 'postgres'), {
						daemons: [daemon],
						log: () => readFileSync(logFile, 'utf8').slice(-2000),
					});
					break;
				} catch (err) {
					await daemon.stop('SIGQUIT');
					if (Date.now() > deadline) throw err;
				}
			}
		} finally {
			closeSync(log);
		}
	};

	await start();
	const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
	await admin.connect();
	await admin.query('CREATE DATABASE parley');
	await admin.end();

	const stop = async (): Promise<void> => {
		await daemon?.stop('SIGINT');
	};
	return {
		url: `postgres://postgres@127.0.0.1:${port}/parley`,
		port,
		createDatabase: async (name) => {
			const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/parley` });
			await c.connect();
			await c.query(`CREATE DATABASE ${name}`);
			await c.end();
			return `postgres://postgres@127.0.0.1:${port}/${name}`;
		},
		stop,
		kill: async () => {
			await daemon?.stop('SIGQUIT');
		},
		start,
		restart: async () => {
			await stop();
			await start();
		},
		close: async () => {
			await stop();
			removeTempFolder(base);
		},
		startMs: Date.now() - began,
	};
}
