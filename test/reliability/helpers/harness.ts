// A Parley server in this process with clients that speak the real protocol: what most
// reliability tests start from. Tokens are signed with a fixed test secret.
import { ParleyServer } from '../../../server/ParleyServer.js';
import { mintAccessToken, type MintOptions } from '../../../server/auth/accessToken.js';
import { PROTOCOL_VERSION, type Notifications, type RequestData } from '../../../protocol/messages.js';
import { testConfig } from '../../helpers/config.js';
import { testLogger } from '../../helpers/logger.js';
import { TestSignalingClient } from '../../../testkit/signalingClient.js';
import { scrapeMetrics, select } from '../../helpers/prometheusText.js';

export const SECRET = 'reliability-test-secret-0123456789-abcdef';
export const KEY = new TextEncoder().encode(SECRET);

export type RtpCapabilities = RequestData<'join'>['rtpCapabilities'];

export interface Harness {
	server: ParleyServer;
	base: string;
	wsUrl(token: string): string;
	token(overrides?: Partial<MintOptions>): Promise<string>;
	/** Connected and welcomed. */
	connect(overrides?: Partial<MintOptions>): Promise<TestSignalingClient>;
	/** Connected and joined to `channel`. */
	joined(channel: string, overrides?: Partial<MintOptions>): Promise<{ client: TestSignalingClient; peerId: string; rtpCapabilities: RtpCapabilities }>;
	/** Closes every client this harness opened, then shuts the server down. */
	close(): Promise<void>;
}

let userCounter = 0;

export async function startHarness(env: Record<string, string> = {}): Promise<Harness> {
	const server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, ...env }), testLogger());
	const key = env.PARLEY_AUTH_JWT_SECRET ? new TextEncoder().encode(env.PARLEY_AUTH_JWT_SECRET) : KEY;
	const clients: TestSignalingClient[] = [];
	const base = `http://127.0.0.1:${server.http.port}`;
	const wsUrl = (token: string) => `ws://127.0.0.1:${server.http.port}/ws?token=${encodeURIComponent(token)}&v=${PROTOCOL_VERSION}`;
	const token = (overrides: Partial<MintOptions> = {}) =>
		mintAccessToken(
			{ userId: `user-${++userCounter}`, channels: ['room', 'fuzz-*', 'other'], grants: { canPublish: true, canSubscribe: true, canRecord: true }, ttlS: 600, ...overrides },
			key,
		);
	const connect = async (overrides: Partial<MintOptions> = {}) => {
		const { client } = await TestSignalingClient.connect(wsUrl(await token(overrides)));
		clients.push(client);
		return client;
	};
	const joined = async (channel: string, overrides: Partial<MintOptions> = {}) => {
		const client = await connect(overrides);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error(`getRouterRtpCapabilities: ${caps.error.code}`);
		const rtpCapabilities = caps.data.rtpCapabilities as RtpCapabilities;
		const join = await client.request('join', { channel, rtpCapabilities });
		if (!join.ok) throw new Error(`join: ${join.error.code}`);
		return { client, peerId: join.data.peerId, rtpCapabilities };
	};
	return {
		server,
		base,
		wsUrl,
		token,
		connect,
		joined,
		async close() {
			for (const c of clients.splice(0)) c.close();
			await server.shutdown('test end');
		},
	};
}

/** mediasoup objects on every worker, summed. */
export function mediaLoad(server: ParleyServer): { routers: number; transports: number; producers: number; consumers: number } {
	const sum = { routers: 0, transports: 0, producers: 0, consumers: 0 };
	for (const w of server.workers.info()) {
		sum.routers += w.routers;
		sum.transports += w.transports;
		sum.producers += w.producers;
		sum.consumers += w.consumers;
	}
	return sum;
}

export { sleep, waitUntil } from '../../helpers/wait.js';

/**
 * Listening as the soaks' bots do: a receive transport, and every consumer the server
 * announces resumed, without DTLS (the server-side objects are what a leak would keep).
 * Takes every notification off `client.notifications`. `stop` ends the resuming.
 */
export async function listenWithoutMedia(client: TestSignalingClient): Promise<{ listening: boolean; stop: () => void }> {
	const recv = await client.request('createTransport', { direction: 'recv' });
	const resume = setInterval(() => {
		for (const n of client.notifications.splice(0)) {
			if (n.method === 'newConsumer') void client.request('resumeConsumer', { consumerId: (n.data as Notifications['newConsumer']).consumerId });
		}
	}, 100);
	return { listening: recv.ok, stop: () => clearInterval(resume) };
}

/** How a soak bot ends a session: half the time politely (leave, then close), else it drops
 * the socket without a close frame. Says whether it dropped it. */
export async function leaveOrDrop(client: TestSignalingClient, rng: { chance(p: number): boolean }): Promise<'left' | 'dropped'> {
	if (rng.chance(0.5)) {
		await client.request('leave', {});
		client.close();
		return 'left';
	}
	client.ws.terminate();
	return 'dropped';
}

/** parley_storage_failures_total by operation, from GET /metrics. */
export async function storageFailures(base: string): Promise<Record<string, number>> {
	return Object.fromEntries(select(await scrapeMetrics(base), 'parley_storage_failures_total').map((s) => [s.labels.operation!, s.value]));
}

/** The voiceMessage notifications a client got about message `id`, in order. */
export function voiceUpdates(client: TestSignalingClient, id: string): Notifications['voiceMessage'][] {
	return client.notifications.filter((n) => n.method === 'voiceMessage' && (n.data as Notifications['voiceMessage']).message.id === id).map((n) => n.data as Notifications['voiceMessage']);
}
