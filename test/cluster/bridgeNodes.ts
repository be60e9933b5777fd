// Nodes for the tests of channels bridging nodes: the cluster tests' node processes
// (helpers/nodes.ts) with bridgeAbovePeers 0, so every join that arrives at a node other than
// the channel's home bridges the channel instead of being redirected.
import { PROTOCOL_VERSION, type PeerInfo, type RequestData } from '../../protocol/messages.js';
import { scrapeMetrics, total } from '../helpers/prometheusText.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { startNode as startClusterNode, token, type NodeProcess } from './helpers/nodes.js';

export type { NodeProcess };

/** Short, so a killed node leaves the registry (and its peers their channels) quickly. */
export const NODE_TTL_MS = 1500;

export type RtpCapabilities = RequestData<'join'>['rtpCapabilities'];

export function startNode(redisUrl: string, nodeId: string, env: Record<string, string> = {}): Promise<NodeProcess> {
	return startClusterNode(redisUrl, nodeId, {
		PARLEY_CLUSTER_BRIDGE_ABOVE_PEERS: '0',
		PARLEY_CLUSTER_NODE_TTL_MS: String(NODE_TTL_MS),
		PARLEY_CLUSTER_PIPE_LISTEN_IP: '127.0.0.1',
		...env,
	});
}

export interface JoinedClient {
	client: TestSignalingClient;
	peerId: string;
	/** Who was in the channel when the join answered (on every node). */
	peers: PeerInfo[];
	rtpCapabilities: RtpCapabilities;
}

/** Connects to `node` (its signaling URL) as `userId` and joins `channel` (no redirect expected). */
export async function joinVia(node: Pick<NodeProcess, 'url' | 'nodeId'>, channel: string, userId: string): Promise<JoinedClient> {
	const { client } = await TestSignalingClient.connect(`${node.url}?token=${encodeURIComponent(await token(userId))}&v=${PROTOCOL_VERSION}`);
	const caps = await client.request('getRouterRtpCapabilities', {});
	if (!caps.ok) throw new Error(`getRouterRtpCapabilities: ${caps.error.code}`);
	const rtpCapabilities = caps.data.rtpCapabilities as RtpCapabilities;
	const join = await client.request('join', { channel, rtpCapabilities });
	if (!join.ok) throw new Error(`join via ${node.nodeId}: ${join.error.code} ${join.error.message}`);
	return { client, peerId: join.data.peerId, peers: join.data.peers, rtpCapabilities };
}

/** A gauge summed over its label sets, from a node's /metrics (0 when absent). */
export async function gauge(node: NodeProcess, name: string): Promise<number> {
	return total(await scrapeMetrics(node.httpBase), name);
}
