// Parley nodes as separate processes (`npm start` style) sharing one real redis-server, for
// the tests of channels spanning nodes. spanAbovePeers is 0, so every join that arrives at
// a node other than the channel's home spans the channel instead of being redirected.
import { mintAccessToken } from '../../server/signaling/accessToken.js';
import { PROTOCOL_VERSION, type PeerInfo, type RequestData } from '../../server/signaling/protocol.js';
import { testEnv } from '../helpers/config.js';
import { logLine, startServerProcess, type ServerProcess } from '../helpers/serverProcess.js';
import { TestSignalingClient } from '../helpers/signalingClient.js';

export const SECRET = 'span-test-secret-0123456789-abcdefghij';
const KEY = new TextEncoder().encode(SECRET);
/** Short, so a killed node leaves the registry (and its peers their channels) quickly. */
export const NODE_TTL_MS = 1500;

export type RtpCapabilities = RequestData<'join'>['rtpCapabilities'];

export interface NodeProcess {
	nodeId: string;
	proc: ServerProcess;
	port: number;
	wsUrl(token: string): string;
	/** SIGTERM and wait for the exit (no-op when it is already gone). */
	stop(): Promise<void>;
}

export function nodeAt(nodeId: string, port: number): Pick<NodeProcess, 'nodeId' | 'wsUrl'> {
	return { nodeId, wsUrl: (token) => `ws://127.0.0.1:${port}/ws?token=${encodeURIComponent(token)}&v=${PROTOCOL_VERSION}` };
}

export async function startNode(redisUrl: string, nodeId: string, env: Record<string, string> = {}): Promise<NodeProcess> {
	const proc = startServerProcess(
		await testEnv({
			PARLEY_LOG_LEVEL: 'info',
			PARLEY_AUTH_JWT_SECRET: SECRET,
			REDIS_URL: redisUrl,
			PARLEY_CLUSTER_NODE_ID: nodeId,
			PARLEY_CLUSTER_SPAN_ABOVE_PEERS: '0',
			PARLEY_CLUSTER_NODE_TTL_MS: String(NODE_TTL_MS),
			PARLEY_CLUSTER_PIPE_LISTEN_IP: '127.0.0.1',
			PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '300',
			PARLEY_METRICS_STATS_INTERVAL_MS: '0',
			...env,
		}),
	);
	const port = Number(new URL(String((await logLine(proc, 'parley listening', 30_000)).http)).port);
	await logLine(proc, 'cluster node started', 10_000);
	return {
		nodeId,
		proc,
		port,
		wsUrl: nodeAt(nodeId, port).wsUrl,
		async stop() {
			if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
			proc.child.kill('SIGTERM');
			await proc.exited;
		},
	};
}

export interface JoinedClient {
	client: TestSignalingClient;
	peerId: string;
	/** Who was in the channel when the join answered (on every node). */
	peers: PeerInfo[];
	rtpCapabilities: RtpCapabilities;
}

export async function joinVia(node: Pick<NodeProcess, 'nodeId' | 'wsUrl'>, channel: string, userId: string): Promise<JoinedClient> {
	const token = await mintAccessToken({ userId, displayName: userId, channels: [channel], grants: { canPublish: true, canSubscribe: true, canRecord: false }, ttlS: 600 }, KEY);
	const { client } = await TestSignalingClient.connect(node.wsUrl(token));
	const caps = await client.request('getRouterRtpCapabilities', {});
	if (!caps.ok) throw new Error(`getRouterRtpCapabilities: ${caps.error.code}`);
	const rtpCapabilities = caps.data.rtpCapabilities as RtpCapabilities;
	const join = await client.request('join', { channel, rtpCapabilities });
	if (!join.ok) throw new Error(`join via ${node.nodeId}: ${join.error.code} ${join.error.message}`);
	return { client, peerId: join.data.peerId, peers: join.data.peers, rtpCapabilities };
}

/** Prometheus gauge value from a node's /metrics (0 when absent). */
export async function gauge(node: NodeProcess, name: string): Promise<number> {
	const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
	let sum = 0;
	for (const line of text.split('\n')) {
		if (line.startsWith('#')) continue;
		const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
		if (m && m[1] === name) sum += Number(m[3]);
	}
	return sum;
}
