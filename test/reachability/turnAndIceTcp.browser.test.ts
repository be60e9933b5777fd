// Reaching Parley through firewalls, with real Chromium in a network namespace of the test's
// own (testkit/reachability/ReachabilityLab.ts, shared with the join-time bench): the browser
// sits behind a veth pair and nftables rules inside the namespace block what a firewall would,
// while Parley and a throwaway coturn listen on the host end. One Chromium (fake microphone: a
// 1 kHz tone) and one Parley server serve every case; each case connects a fresh listener and
// speaker and checks, by frequency, that the
// listener hears the tone and, from the browser's stats (client.connectionPath()), which
// path the audio took:
//   direct     no rules: host UDP
//   ICE-TCP    all UDP dropped, TURN unreachable: mediasoup's TCP candidate
//   relay      UDP to the media port dropped and relayOnly: through coturn over UDP
//   TURN/TCP   all UDP dropped and relayOnly: through coturn over TCP
//   refused    a server whose turn.secret coturn does not share: E_TURN_REFUSED, not a hang;
//              and coturn refuses expired credentials while it accepts fresh ones.
// Each case prints its join time: from connect() in the speaker's page to the first RTP
// packet at the listener (both pages in one browser, one clock).
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ParleyServer } from '../../server/ParleyServer.js';
import { turnCredential } from '../../server/media/turnCredentials.js';
import { netAdminUnavailable } from '../../testkit/netns.js';
import { ReachabilityLab, type CallResult } from '../../testkit/reachability/ReachabilityLab.js';
import { TURNSERVER } from '../../testkit/services/coturn.js';
import { testEnv } from '../helpers/config.js';

const JWT_SECRET = 'reachability-test-secret-0123456789-abcdef';
const TURN_SECRET = 'turn-shared-secret-0123456789-abcdefghijkl';
const TONE_HZ = 1000;

const unavailable = netAdminUnavailable() ?? (existsSync(TURNSERVER) ? null : `${TURNSERVER} is not installed: run scripts/setup (coturn)`);
if (unavailable) console.warn(`[reachability] skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)('reaching Parley through firewalls (Chromium in a network namespace)', () => {
	let lab: ReachabilityLab;
	/** Hands out credentials under a secret coturn does not share. */
	let wrongSecretServer: ParleyServer;
	const joinTimes: Record<string, number> = {};

	async function call(path: Parameters<ReachabilityLab['call']>[0]): Promise<CallResult> {
		const result = await lab.call(path);
		joinTimes[path] = result.joinMs;
		console.log(`[reachability] ${path}: join time (connect() -> first RTP at the listener) ${result.joinMs} ms`);
		return result;
	}

	beforeAll(async () => {
		lab = await ReachabilityLab.start({ env: await testEnv(), jwtSecret: JWT_SECRET, turnSecret: TURN_SECRET, toneHz: TONE_HZ });
		wrongSecretServer = await lab.serverWith('not-the-turn-secret-0123456789-abcdefghij');
	}, 60_000);

	afterAll(async () => {
		await lab?.close();
		if (Object.keys(joinTimes).length > 0) console.log(`[reachability] join times (ms): ${JSON.stringify(joinTimes)}`);
	});

	it('direct: audio flows over host UDP', async () => {
		const result = await call('direct-udp');
		expect(Math.abs(result.frequencyHz! - TONE_HZ)).toBeLessThan(30);
		for (const p of [...result.listener, ...result.speaker]) expect(p).toMatchObject({ candidateType: 'host', protocol: 'udp' });
		expect(result.speaker.map((p) => p.direction)).toContain('send');
	}, 30_000);

	it('ICE-TCP: with every UDP datagram dropped and TURN out of reach, audio flows over mediasoup\u2019s TCP candidate', async () => {
		const result = await call('ice-tcp');
		expect(Math.abs(result.frequencyHz! - TONE_HZ)).toBeLessThan(30);
		expect(result.speaker.length).toBeGreaterThan(0);
		// Chromium's active TCP candidate shows as host or, learnt from the server's answer, prflx.
		for (const p of [...result.listener, ...result.speaker]) {
			expect(p.protocol).toBe('tcp');
			expect(['host', 'prflx']).toContain(p.candidateType);
		}
	}, 30_000);

	it.each([
		{ path: 'turn-relay' as const, transport: 'udp', what: 'UDP to the media port and TCP to coturn dropped' },
		{ path: 'turn-tcp' as const, transport: 'tcp', what: 'every UDP datagram dropped' },
	])('relay: relay-only, with $what, audio flows through coturn over $transport', async ({ path, transport }) => {
		const result = await call(path);
		expect(Math.abs(result.frequencyHz! - TONE_HZ)).toBeLessThan(30);
		expect(result.speaker.length).toBeGreaterThan(0);
		for (const p of [...result.listener, ...result.speaker]) expect(p).toMatchObject({ candidateType: 'relay', relayProtocol: transport });
	}, 30_000);

	it('refused: coturn refuses a wrong secret (the client says E_TURN_REFUSED) and expired credentials', async () => {
		lab.firewallFor('direct-udp');
		{
			const speaker = await lab.openClient('refused', { relayOnly: true, target: wrongSecretServer });
			try {
				await speaker.evaluate('window.client.publishMicrophone()');
				await speaker.waitForFunction(() => (window as unknown as { errors: { code: string }[] }).errors.some((e) => e.code === 'E_TURN_REFUSED'), undefined, { timeout: 10_000 });
				const errors = (await speaker.evaluate('window.errors')) as { code: string; message: string }[];
				const refused = errors.find((e) => e.code === 'E_TURN_REFUSED')!;
				expect(refused.message).toContain(lab.coturn.url('udp'));
				// What reaches the application names the server, never the credential.
				expect(refused.message).not.toMatch(/\d{10}:user-/);
				expect(await lab.paths(speaker)).toEqual([]);

				// The same coturn, asked directly from the page: credentials that expired a minute
				// ago are refused (401), fresh ones get a relay candidate.
				const nowS = Math.floor(Date.now() / 1000);
				const gather = (expiresAtS: number) =>
					speaker.evaluate(
						async ({ url, username, credential }) => {
							const pc = new RTCPeerConnection({ iceServers: [{ urls: url, username, credential }], iceTransportPolicy: 'relay' });
							const seen: string[] = [];
							pc.addEventListener('icecandidate', (e) => e.candidate && seen.push(`candidate ${e.candidate.type}`));
							pc.addEventListener('icecandidateerror', (e) => seen.push(`error ${(e as RTCPeerConnectionIceErrorEvent).errorCode}`));
							pc.createDataChannel('probe');
							await pc.setLocalDescription(await pc.createOffer());
							const deadline = Date.now() + 5000;
							while (pc.iceGatheringState !== 'complete' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
							pc.close();
							return seen;
						},
						{ url: lab.coturn.url('udp'), ...turnCredential(TURN_SECRET, 'user-probe', expiresAtS) },
					);
				expect(await gather(nowS - 60)).toContain('error 401');
				expect(await gather(nowS + 600)).toContain('candidate relay');
			} finally {
				await speaker.close();
			}
		}
	}, 30_000);
});
