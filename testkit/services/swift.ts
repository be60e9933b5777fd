// A real, throwaway S3 endpoint: a single-node OpenStack Swift (Debian's swift-proxy,
// swift-account, swift-container, swift-object) with the s3api and tempauth middlewares, on
// free loopback ports, everything (configs, rings, objects) under one temp folder. s3api
// checks SigV4 signatures against tempauth's secret, so a wrong secret or a tampered request
// fails as it would against AWS: user `test:tester`, secret `testing`, region `us-east-1`,
// path-style addressing.
//
// Rings: with partition power 0, one replica and one device there is nothing to balance, so
// instead of three `swift-ring-builder create/add/rebalance` runs (~1.5 s each, and the
// ring holds the ports, which change every run) the ring files are written here in Swift's
// ring format v1 (swift.common.ring.RingData.serialize_v1): in microseconds, for the ports
// of this instance. Swift loads and checks them at start.
//
// The four daemons are direct children (detached: Swift calls setsid() and, on SIGTERM with
// workers, signals its whole process group). stop() SIGKILLs them (an S3 endpoint that goes
// away mid-request, as a crashed or restarted server does; objects already acknowledged
// were fsynced by the object server); start() starts them again on the same ports and
// data; close() also removes the folder. The exit backstop kills them if a test fails first.
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from '../ports.js';
import { acceptsTcp, makeTempFolder, removeTempFolder, spawnDaemon, waitUntil, type Daemon } from './daemon.js';

export interface TestSwift {
	/** http://127.0.0.1:<proxy port> */
	endpoint: string;
	region: 'us-east-1';
	accessKeyId: 'test:tester';
	secretAccessKey: 'testing';
	port: number;
	/** A client for this endpoint (path-style, the credentials above); the caller destroys it. */
	client(): S3Client;
	createBucket(name: string): Promise<void>;
	/** The PARLEY_STORAGE_* variables of a node whose files go to `bucket` under `keyPrefix`. */
	nodeEnv(bucket: string, keyPrefix: string): Record<string, string>;
	/** SIGKILLs the four daemons and waits for them; data kept for start(). */
	stop(): Promise<void>;
	/** Starts the four again on the same ports and data; resolves when /healthcheck answers. */
	start(): Promise<void>;
	restart(): Promise<void>;
	/** Stops and removes the folder. */
	close(): Promise<void>;
	/** Milliseconds the first start took. */
	startMs: number;
}

type Role = 'account' | 'container' | 'object';
const ROLES: Role[] = ['account', 'container', 'object'];

/** Swift's ring format v1: 'R1NG', version 1, the JSON header, then per replica the
 * partition -> device table as native-endian uint16 (here: one partition on device 0). */
function ringFile(port: number): Buffer {
	const dev = {
		id: 0,
		region: 1,
		zone: 1,
		ip: '127.0.0.1',
		port,
		replication_ip: '127.0.0.1',
		replication_port: port,
		device: 'd1',
		weight: 1,
		meta: '',
	};
	const json = Buffer.from(JSON.stringify({ byteorder: 'little', devs: [dev], part_shift: 32, replica_count: 1 }), 'ascii');
	const head = Buffer.alloc(10);
	head.write('R1NG', 0, 'ascii');
	head.writeUInt16BE(1, 4);
	head.writeUInt32BE(json.length, 6);
	const part2dev = Buffer.alloc(2);
	part2dev.writeUInt16LE(0, 0);
	return gzipSync(Buffer.concat([head, json, part2dev]));
}

function backendConf(role: Role, base: string, port: number): string {
	return `[DEFAULT]
swift_dir = ${base}/etc
devices = ${base}/node
mount_check = false
disable_fallocate = true
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
user = root
log_name = ${role}-server

[pipeline:main]
pipeline = ${role}-server

[app:${role}-server]
use = egg:swift#${role}
`;
}

function proxyConf(base: string, port: number): string {
	// [section name in the pipeline, entry point]
	const filters = [
		['catch_errors', 'catch_errors'],
		['gatekeeper', 'gatekeeper'],
		['healthcheck', 'healthcheck'],
		['proxy-logging', 'proxy_logging'],
		['listing_formats', 'listing_formats'],
		['bulk', 'bulk'],
		['tempurl', 'tempurl'],
		['copy', 'copy'],
		['slo', 'slo'],
		['dlo', 'dlo'],
		['versioned_writes', 'versioned_writes'],
		['symlink', 'symlink'],
	];
	return `[DEFAULT]
swift_dir = ${base}/etc
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
user = root
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

# No memcached: tempauth wants a cache object in the request and carries on without a server.
[filter:cache]
use = egg:swift#memcache

${filters.map(([name, egg]) => `[filter:${name}]\nuse = egg:swift#${egg}\n`).join('\n')}`;
}

async function healthy(port: number): Promise<boolean> {
	try {
		const res = await fetch(`http://127.0.0.1:${port}/healthcheck`, { signal: AbortSignal.timeout(1000) });
		await res.arrayBuffer();
		return res.status === 200;
	} catch {
		return false;
	}
}

export async function startSwift(): Promise<TestSwift> {
	const began = Date.now();
	const base = makeTempFolder('swift');
	const etc = path.join(base, 'etc');
	mkdirSync(etc);
	mkdirSync(path.join(base, 'node', 'd1'), { recursive: true });
	const ports = { proxy: await freePort(), account: await freePort(), container: await freePort(), object: await freePort() };
	writeFileSync(
		path.join(etc, 'swift.conf'),
		`[swift-hash]
swift_hash_path_suffix = parley-test-suffix
swift_hash_path_prefix = parley-test-prefix

[storage-policy:0]
name = Policy-0
default = yes
`,
	);
	for (const role of ROLES) {
		writeFileSync(path.join(etc, `${role}-server.conf`), backendConf(role, base, ports[role]));
		writeFileSync(path.join(etc, `${role}.ring.gz`), ringFile(ports[role]));
	}
	writeFileSync(path.join(etc, 'proxy-server.conf'), proxyConf(base, ports.proxy));

	let daemons: Daemon[] = [];
	const logOf = (name: string): string => path.join(base, `${name}.log`);
	const tails = (): string =>
		['proxy', ...ROLES]
			.map((n) => {
				try {
					return `--- ${n}\n${readFileSync(logOf(n), 'utf8').slice(-1500)}`;
				} catch {
					return `--- ${n}: no log`;
				}
			})
			.join('\n');

	const stop = async (): Promise<void> => {
		await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
		daemons = [];
	};

	const start = async (): Promise<void> => {
		if (daemons.some((d) => d.running())) return;
		// Ports of a just-killed instance may linger for a moment: retry briefly.
		const deadline = Date.now() + 15_000;
		for (;;) {
			daemons = (['proxy', ...ROLES] as const).map((name) => {
				const out = openSync(logOf(name), 'a');
				try {
					// -v: log to the console (our log file) as well as syslog.
					return spawnDaemon(`swift-${name}-server`, [path.join(etc, `${name}-server.conf`), '-v'], {
						stdio: ['ignore', out, out],
						detached: true,
						backstopSignal: 'SIGKILL',
						defaultStopSignal: 'SIGKILL',
					});
				} finally {
					closeSync(out);
				}
			});
			try {
				await waitUntil(
					`swift on ${ports.proxy}`,
					async () => (await healthy(ports.proxy)) && (await Promise.all(ROLES.map((r) => acceptsTcp(ports[r])))).every(Boolean),
					{ daemons, timeoutMs: 30_000, intervalMs: 50, log: tails },
				);
				return;
			} catch (err) {
				await stop();
				if (Date.now() > deadline) throw err;
			}
		}
	};

	await start();
	const endpoint = `http://127.0.0.1:${ports.proxy}`;
	const client = (): S3Client =>
		new S3Client({
			endpoint,
			region: 'us-east-1',
			forcePathStyle: true,
			credentials: { accessKeyId: 'test:tester', secretAccessKey: 'testing' },
		});
	return {
		endpoint,
		region: 'us-east-1',
		accessKeyId: 'test:tester',
		secretAccessKey: 'testing',
		port: ports.proxy,
		client,
		createBucket: async (name) => {
			const s3 = client();
			try {
				await s3.send(new CreateBucketCommand({ Bucket: name }));
				// Swift may answer the PUT before the container is visible to the next request
				// (seen once in CI: NoSuchBucket right after): resolve only once it is.
				const deadline = Date.now() + 10_000;
				for (;;) {
					try {
						await s3.send(new HeadBucketCommand({ Bucket: name }));
						break;
					} catch (err) {
						if (Date.now() > deadline) throw err;
						await new Promise((r) => setTimeout(r, 50));
					}
				}
			} finally {
				s3.destroy();
			}
		},
		nodeEnv: (bucket, keyPrefix) => ({
			PARLEY_STORAGE_BACKEND: 's3',
			PARLEY_STORAGE_S3_ENDPOINT: endpoint,
			PARLEY_STORAGE_S3_REGION: 'us-east-1',
			PARLEY_STORAGE_S3_BUCKET: bucket,
			PARLEY_STORAGE_S3_KEY_PREFIX: keyPrefix,
			PARLEY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
			PARLEY_STORAGE_S3_ACCESS_KEY_ID: 'test:tester',
			PARLEY_STORAGE_S3_SECRET_ACCESS_KEY: 'testing',
		}),
		stop,
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
