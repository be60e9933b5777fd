// A throwaway coturn TURN server (Debian's turnserver) with time-limited credentials
// (`use-auth-secret`, the scheme Parley's turn.secret mints for), listening on one address
// and port of the test's choosing, relaying from a free port range on the same address. Its
// config, pid file and log live in a temp folder; the daemon is a direct child, stopped by its
// PID. The machine's coturn service (/etc/turnserver.conf) is never read or started.
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, freePortRange } from '../ports.js';
import { makeTempFolder, removeTempFolder, spawnDaemon, waitUntil } from './daemon.js';

export const TURNSERVER = process.env.TURNSERVER_PATH ?? '/usr/bin/turnserver';

export interface CoturnOptions {
	/** Address it listens and relays on (default 127.0.0.1). */
	listenIp?: string;
	/** The static-auth-secret credentials are checked against. */
	secret: string;
	realm?: string;
}

export interface TestCoturn {
	readonly pid: number;
	readonly listenIp: string;
	/** The TURN port (UDP and TCP). */
	readonly port: number;
	/** turn:<ip>:<port>?transport=udp|tcp, as turn.urls takes them. */
	url(transport: 'udp' | 'tcp'): string;
	/** What it logged so far (allocations, refused credentials: "401"). */
	log(): string;
	/** Stops the daemon by its PID and removes the folder. */
	close(): Promise<void>;
}

export async function startCoturn({ listenIp = '127.0.0.1', secret, realm = 'parley.test' }: CoturnOptions): Promise<TestCoturn> {
	const folder = makeTempFolder('coturn');
	const port = await freePort();
	const relayBase = await freePortRange(32);
	const conf = path.join(folder, 'turnserver.conf');
	const logFile = path.join(folder, 'turn.log');
	writeFileSync(
		conf,
		[
			`listening-ip=${listenIp}`,
			`relay-ip=${listenIp}`,
			`listening-port=${port}`,
			`min-port=${relayBase}`,
			`max-port=${relayBase + 31}`,
			'use-auth-secret',
			`static-auth-secret=${secret}`,
			`realm=${realm}`,
			'fingerprint',
			'no-cli',
			'no-tls',
			'no-dtls',
			'no-multicast-peers',
			// Relaying to a media server on 127.0.0.1 (unsafe in production, where peers are never loopback).
			...(listenIp.startsWith('127.') ? ['allow-loopback-peers'] : []),
			`log-file=${logFile}`,
			'simple-log',
			`pidfile=${path.join(folder, 'turnserver.pid')}`,
			'',
		].join('\n'),
	);
	const daemon = spawnDaemon(TURNSERVER, ['-c', conf], { backstopSignal: 'SIGKILL' });
	const readLog = (): string => {
		try {
			return readFileSync(logFile, 'utf8');
		} catch {
			return '';
		}
	};
	await waitUntil('turnserver', () => acceptsTcpOn(listenIp, port), { daemons: [daemon], timeoutMs: 10_000, log: readLog });
	return {
		pid: daemon.pid,
		listenIp,
		port,
		url: (transport) => `turn:${listenIp}:${port}?transport=${transport}`,
		log: readLog,
		close: async () => {
			await daemon.stop('SIGTERM', 3000);
			removeTempFolder(folder);
		},
	};
}

function acceptsTcpOn(host: string, port: number): Promise<boolean> {
	return new Promise((resolve) => {
		const s = net.connect(port, host);
		s.once('connect', () => (s.destroy(), resolve(true)));
		s.once('error', () => resolve(false));
	});
}
