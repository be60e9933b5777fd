// A real, throwaway MariaDB (Debian's mariadb-server) on a free loopback port, data under a
// temp folder, database `parley`, user root without a password (normal authentication, so
// TCP clients such as mysql2 log in; nothing listens beyond 127.0.0.1).
//
// mariadb-install-db takes ~4 s, so its data folder is built once per MariaDB version as a
// template under os.tmpdir() and copied for each instance (~0.3 s). mariadbd is spawned as
// a direct child: stop() sends SIGTERM (a clean shutdown, ~1.3 s), kill() SIGKILL (InnoDB
// recovers at the next start, as after a crash); start() again uses the same port and data.
import { openSync, closeSync, readFileSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { freePort } from '../ports.js';
import { cachedTemplate, copyTemplate, makeTempFolder, removeTempFolder, run, spawnDaemon, waitUntil, type Daemon } from './daemon.js';

export interface TestMariaDb {
	/** mysql://root@127.0.0.1:<port>/parley */
	url: string;
	port: number;
	/** A new, empty database named `name` on this server; its URL. */
	createDatabase(name: string): Promise<string>;
	/** Clean shutdown (SIGTERM), waits for the exit; data kept for start(). */
	stop(): Promise<void>;
	/** SIGKILL, as a crash; data kept (InnoDB recovers at start). */
	kill(): Promise<void>;
	/** Starts again on the same port and data (after stop() or kill()). */
	start(): Promise<void>;
	restart(): Promise<void>;
	/** Stops and removes the data folder. */
	close(): Promise<void>;
	/** Milliseconds the first start took (copy + server + CREATE DATABASE). */
	startMs: number;
}

async function answers(port: number): Promise<boolean> {
	try {
		const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 1000 });
		try {
			await conn.query('SELECT 1');
			return true;
		} finally {
			await conn.end().catch(() => {});
		}
	} catch {
		return false;
	}
}

export async function startMariaDb(): Promise<TestMariaDb> {
	const began = Date.now();
	const version = (await run('mariadbd', ['--version'])).match(/Ver\s+(\S+)/)?.[1] ?? 'unknown';
	const template = await cachedTemplate(`mariadb-${version}`, async (dir) => {
		await run('mariadb-install-db', [
			'--no-defaults',
			`--datadir=${path.join(dir, 'data')}`,
			'--user=root',
			'--auth-root-authentication-method=normal',
			'--skip-test-db',
		]);
	});
	const base = makeTempFolder('mariadb');
	await copyTemplate(template, base);
	const data = path.join(base, 'data');
	const logFile = path.join(base, 'err.log');
	const port = await freePort();
	let daemon: Daemon | undefined;

	const start = async (): Promise<void> => {
		if (daemon?.running()) return;
		// The port may still be held for a moment by the instance just stopped: retry briefly.
		const deadline = Date.now() + 10_000;
		for (;;) {
			const out = openSync(path.join(base, 'stdout.log'), 'a');
			try {
				daemon = spawnDaemon(
					'mariadbd',
					[
						'--no-defaults',
						`--datadir=${data}`,
						// Its own folder for temporary tables: in the shared /tmp one has vanished
						// mid-query while other tests ran beside it (EE_DELETE on '/tmp/#sql-temptable-...').
						`--tmpdir=${base}`,
						'--user=root',
						'--bind-address=127.0.0.1',
						`--port=${port}`,
						`--socket=${path.join(base, 'sock')}`,
						`--pid-file=${path.join(base, 'pid')}`,
						'--skip-log-bin',
						'--innodb-log-file-size=4M',
						'--innodb-buffer-pool-size=16M',
						`--log-error=${logFile}`,
					],
					{ stdio: ['ignore', out, out], backstopSignal: 'SIGKILL', defaultStopSignal: 'SIGTERM' },
				);
			} finally {
				closeSync(out);
			}
			try {
				await waitUntil(`mariadbd on ${port}`, () => answers(port), {
					daemons: [daemon],
					intervalMs: 50,
					log: () => readFileSync(logFile, 'utf8').slice(-2000),
				});
				return;
			} catch (err) {
				await daemon.stop('SIGKILL');
				if (Date.now() > deadline) throw err;
			}
		}
	};

	await start();
	const admin = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
	await admin.query('CREATE DATABASE parley CHARACTER SET utf8mb4 COLLATE utf8mb4_bin');
	await admin.end();

	const stop = async (): Promise<void> => {
		await daemon?.stop('SIGTERM', 20_000);
	};
	return {
		url: `mysql://root@127.0.0.1:${port}/parley`,
		port,
		createDatabase: async (name) => {
			const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
			await c.query(`CREATE DATABASE ${name}`);
			await c.end();
			return `mysql://root@127.0.0.1:${port}/${name}`;
		},
		stop,
		kill: async () => {
			await daemon?.stop('SIGKILL');
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
