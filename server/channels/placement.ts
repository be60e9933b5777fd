// The ports a join needs from the cluster: where a channel is served, and how a channel
// opened here is bridged to its home on another node. The join (server/signaling) calls
// them; server/cluster implements them. Declared here, under both, so neither imports
// the other. On a single node there are none.
import type { Channel } from './Channel.js';

export type PlacementDecision =
	| { kind: 'local' }
	| { kind: 'redirect'; nodeId: string; url: string }
	| { kind: 'bridge'; homeNodeId: string };

/** Implemented by server/cluster/ChannelPlacement. */
export interface ChannelPlacer {
	place(channel: string): Promise<PlacementDecision>;
}

/** Implemented by server/cluster/ChannelBridge. Called on every join placed as a bridge:
 * must be idempotent. */
export interface ChannelBridgeHook {
	attach(channel: Channel, homeNodeId: string): Promise<void>;
}
