// Churn against the server as users run it (server/main.ts as a child process): bots join
// and leave channels, publish real WebRTC audio (werift), listen, record, upload through tus
// and disconnect politely or abruptly, in a seeded random loop. After the churn, and after
// a warm-up that opened everything opened lazily, the server must hold exactly what it held
// before: mediasoup transports, producers, consumers, channels, sessions, recordings,
// transcodes (from /metrics), and open file descriptors (/proc/<pid>/fd, server and
// workers); its RSS must stay within the stated band.
//
// CI runs 20 s (the churn reaches its steady state within a few seconds). The long run (10 min):
//   PARLEY_SOAK_S=600 npx vitest run test/reliability/soak.process.test.ts
import { mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { PROTOCOL_VERSION, type Notifications, type RequestData } from '../../protocol/messages.js';
import { encodeTone } from '../helpers/audio.js';
import { testEnv } from '../helpers/config.js';
import { freePort } from '../../testkit/ports.js';
import { liveServerObjects, parsePrometheusText } from '../helpers/prometheusText.js';
import { logLine, startServerProcess, type ServerProcess } from '../helpers/serverProcess.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { writeToneWav } from '../helpers/wav.js';
import { publishWithWerift, streamTone } from '../../testkit/weriftPublisher.js';
import { KEY, leaveOrDrop, listenWithoutMedia, SECRET, sleep, waitUntil } from './helpers/harness.js';
import { Prng } from './helpers/prng.js';
import { uploadFile } from './helpers/tus.js';

const SOAK_S = Number(process.env.PARLEY_SOAK_S ?? 20);
const BOTS = Number(process.env.PARLEY_SOAK_BOTS ?? 6);
const CHANNELS = ['soak-a', 'soak-b', 'soak-c'];
/** RSS the server may hold above its post-warm-up baseline, at the end and at its peak. */
const RSS_END_BAND_MB = 64;
const RSS_PEAK_BAND_MB = 160;

interface Figures {
	transports: number;
	producers: number;
	consumers: number;
	channels: number;
	sessions: number;
	recordings: number;
	transcodes: number;
	serverFds: number;
	serverFdKinds: Record<string, number>;
	serverTcp: string[];
	workerFds: number[];
	serverRssMb: number;
	workerRssMb: number[];
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
/** Fewest descriptors `pid` has open, sampled every 250 ms for up to `windowMs` (stops early at `enough`). */
async function fewestFds(pid: number, windowMs: number, enough = 0): Promise<number> {
	let fewest = fdCount(pid);
	for (const end = Date.now() + windowMs; Date.now() < end && fewest > enough; ) {
		await new Promise((r) => setTimeout(r, 250));
		fewest = Math.min(fewest, fdCount(pid));
	}
	return fewest;
}
/** Open descriptors by kind (socket, pipe, anon_inode, file), for the report. */
function fdKinds(pid: number): Record<string, number> {
	const kinds: Record<string, number> = {};
	for (const fd of readdirSync(`/proc/${pid}/fd`)) {
		let target = 'gone';
		try {
			target = readlinkSync(`/proc/${pid}/fd/${fd}`);
		} catch {
			// Closed between the listing and the readlink.
		}
		const kind = /^(socket|pipe|anon_inode):/.exec(target)?.[1] ?? (target === 'gone' ? 'gone' : 'file');
		kinds[kind] = (kinds[kind] ?? 0) + 1;
	}
	return kinds;
}

/** The server's TCP sockets as `local->remote state` (from /proc/net/tcp), for the report. */
function tcpSockets(pid: number): string[] {
	const inodes = new Set<string>();
	for (const fd of readdirSync(`/proc/${pid}/fd`)) {
		try {
			const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
			if (m) inodes.add(m[1]!);
		} catch {
			// Closed meanwhile.
		}
	}
	const states: Record<string, string> = { '01': 'ESTABLISHED', '06': 'TIME_WAIT', '08': 'CLOSE_WAIT', '0A': 'LISTEN' };
	const out: string[] = [];
	for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
		for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
			const f = line.trim().split(/\s+/);
			if (f.length < 10 || !inodes.has(f[9]!)) continue;
			const port = (a: string) => parseInt(a.split(':')[1]!, 16);
			out.push(`${port(f[1]!)}->${port(f[2]!)} ${states[f[3]!] ?? f[3]}`);
		}
	}
	return out.sort();
}

/** GET without keep-alive, so the request leaves no idle connection (an fd) in the server. */
function getText(url: string): Promise<string> {
	return new Promise((resolve, reject) => {
		http.get(url, { agent: false }, (res) => {
			let body = '';
			res.on('data', (d: Buffer) => (body += d.toString()));
			res.on('end', () => resolve(body));
		}).on('error', reject);
	});
}
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe(`soak: ${SOAK_S} s of churn by ${BOTS} bots`, () => {
	let server: ServerProcess | undefined;
	afterAll(() => {
		if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
	});

	it('returns to its baseline of media objects, sessions and open files, with RSS in the band', async () => {
		const env = await testEnv({
			PARLEY_AUTH_JWT_SECRET: SECRET,
			PARLEY_LOG_LEVEL: 'info',
			PARLEY_HTTP_PORT: String(await freePort()),
			PARLEY_MEDIA_WORKERS: '2',
			PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '300',
			PARLEY_SIGNALING_REQUESTS_PER_SECOND: '200',
			PARLEY_SIGNALING_REQUEST_BURST: '400',
		});
		server = startServerProcess(env);
		const s = server;
		const workerPids = (await logLine(s, 'mediasoup workers started')).pids as number[];
		await logLine(s, 'parley listening');
		const pid = s.child.pid!;
		const base = `http://127.0.0.1:${env.PARLEY_HTTP_PORT}`;
		const wav = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-soak-')), 'tone.wav');
		writeToneWav(wav, 440, 1);
		const wavBytes = readFileSync(wav);
		const tone = encodeTone(1000, 50);

		const figures = async (): Promise<Figures> => {
			return {
				...liveServerObjects(parsePrometheusText(await getText(`${base}/metrics`))),
				serverFds: fdCount(pid),
				serverFdKinds: fdKinds(pid),
				serverTcp: tcpSockets(pid),
				workerFds: workerPids.map(fdCount),
				serverRssMb: Math.round(rssMb(pid)),
				workerRssMb: workerPids.map((p) => Math.round(rssMb(p))),
			};
		};
		const quiet = (f: Figures) => f.transports + f.producers + f.consumers + f.channels + f.sessions + f.recordings + f.transcodes === 0;
		const settle = async () => {
			await waitUntil(async () => quiet(await figures()), 20_000, 'the server to be idle', 200);
			// Clients close idle keep-alive connections after 4 s (undici's default): only then
			// are the server's sockets for the last uploads gone.
			await sleep(5000);
		};

		const counts = { sessions: 0, published: 0, listened: 0, recorded: 0, recordingsReady: 0, uploaded: 0, abrupt: 0, errors: [] as string[] };
		const token = (userId: string) => mintAccessToken({ userId, channels: CHANNELS, grants: { canPublish: true, canSubscribe: true, canRecord: true }, ttlS: 3600 }, KEY);

		/** One session of one bot: connect, join, one or more of publish/record/listen/upload, go. */
		async function session(rng: Prng, userId: string): Promise<void> {
			const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${env.PARLEY_HTTP_PORT}/ws?token=${await token(userId)}&v=${PROTOCOL_VERSION}`);
			counts.sessions++;
			const cleanup: (() => unknown)[] = [];
			try {
				const caps = await client.request('getRouterRtpCapabilities', {});
				if (!caps.ok) throw new Error('caps');
				const join = await client.request('join', { channel: rng.pick(CHANNELS), rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
				if (!join.ok) throw new Error(`join ${join.error.code}`);
				const work: Promise<unknown>[] = [];
				if (rng.chance(0.6)) {
					const publisher = await publishWithWerift(client);
					cleanup.push(() => publisher.close());
					const stream = streamTone(publisher, tone);
					cleanup.push(() => stream.stop());
					counts.published++;
					if (rng.chance(0.5)) {
						const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: CHANNELS[0]! } });
						if (rec.ok) {
							counts.recorded++;
							// Checked is that every stopped recording becomes ready, not how fast: on a
							// busy machine its conversion waits for CPU (10 s was missed at load 15).
							work.push(
								sleep(rng.int(500, 2000)).then(async () => {
									const stopped = await client.request('stopRecording', { voiceMessageId: rec.data.voiceMessageId });
									if (stopped.ok) await client.until(() => client.notifications.some((n) => n.method === 'voiceMessage' && (n.data as Notifications['voiceMessage']).message.id === rec.data.voiceMessageId && (n.data as Notifications['voiceMessage']).message.status === 'ready'), 30_000).then(() => counts.recordingsReady++);
								}),
							);
						}
					}
				}
				if (rng.chance(0.5)) {
					const listener = await listenWithoutMedia(client);
					if (listener.listening) counts.listened++;
					cleanup.push(listener.stop);
				}
				if (rng.chance(0.3)) {
					work.push(uploadFile({ base, token: await token(userId) }, wavBytes, 32 * 1024, { destination: `channel:${CHANNELS[1]}`, filename: 'soak.wav' }).then(() => counts.uploaded++));
				}
				await Promise.all([sleep(rng.int(1000, 3000)), ...work]);
				if ((await leaveOrDrop(client, rng)) === 'dropped') counts.abrupt++;
			} finally {
				for (const c of cleanup.reverse()) await c();
				if (client.ws.readyState === client.ws.OPEN) client.close();
			}
		}

		async function bot(rng: Prng, index: number, until: number): Promise<void> {
			while (Date.now() < until) {
				await session(rng, `bot-${index}`).catch((err: Error) => counts.errors.push(`bot ${index}: ${err.message}`));
			}
		}

		// Warm-up: every kind of work once, so lazily opened files and sockets are in the baseline.
		const rng = Prng.fromEnv(0x50a4);
		await Promise.all(Array.from({ length: BOTS }, (_, i) => bot(rng.fork(), i, Date.now() + 4000)));
		await settle();
		const before = await figures();
		// The baseline is the fewest descriptors open over a few seconds: the test's own
		// keep-alive connection to /metrics (closed by undici after 4 s idle) or a child's stdio
		// pair may be open at any one instant.
		before.serverFds = await fewestFds(pid, 8000);

		const started = Date.now();
		const samples: number[] = [];
		const sampler = setInterval(() => samples.push(rssMb(pid)), 1000);
		await Promise.all(Array.from({ length: BOTS }, (_, i) => bot(rng.fork(), i, started + SOAK_S * 1000)));
		clearInterval(sampler);
		await settle();
		// A connection the last clients left idle is closed by them or by the server's idle
		// timeout (10 s for HTTP); a leaked one never is.
		const fdsSettledAt = Date.now();
		await waitUntil(() => fdCount(pid) <= before.serverFds && workerPids.every((p, i) => fdCount(p) === before.workerFds[i]), 20_000, 'open fds back to the baseline', 250).catch(() => undefined);
		const fdSettleMs = Date.now() - fdsSettledAt;
		const after = await figures();
		const peakRssMb = Math.round(Math.max(...samples));
		const report = { soakS: SOAK_S, bots: BOTS, ...counts, errors: counts.errors.length, before, after, peakRssMb, fdSettleMs };
		console.log(`soak figures: ${JSON.stringify(report)}`);

		expect(counts.errors.slice(0, 5)).toEqual([]);
		expect(counts.published).toBeGreaterThan(0);
		expect(counts.recordingsReady).toBe(counts.recorded);
		expect(s.child.exitCode).toBeNull();
		for (const k of ['transports', 'producers', 'consumers', 'channels', 'sessions', 'recordings', 'transcodes'] as const) expect(after[k], k).toBe(0);
		// A transient descriptor (a child process's stdio socketpair, a closing client socket)
		// can be open at any one instant; a leaked one is open at every instant. Judge by the
		// fewest open over a few seconds.
		// fewest open over a few seconds. Fewer than the baseline is no leak (a transient one
		// the baseline window happened to catch at every sample).
		const fewestServerFds = Math.min(after.serverFds, await fewestFds(pid, 8000, before.serverFds));
		expect(fewestServerFds).toBeLessThanOrEqual(before.serverFds);
		expect(after.workerFds).toEqual(before.workerFds);
		expect(after.serverRssMb - before.serverRssMb).toBeLessThan(RSS_END_BAND_MB);
		expect(peakRssMb - before.serverRssMb).toBeLessThan(RSS_PEAK_BAND_MB);

		s.child.kill('SIGTERM');
		expect(await s.exited).toBe(0);
	}, SOAK_S * 1000 + 120_000);
});
