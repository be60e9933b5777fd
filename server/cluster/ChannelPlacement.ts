// Where a channel is served. Each channel has one home node, claimed atomically in Redis
// (parley:channel-home:<channel>); a join arriving elsewhere is redirected to the home
// node, or, when the home node is busy, the channel bridges nodes. See README.md here.
import type { Redis } from 'ioredis';
import { RequestError } from '../../protocol/RequestError.js';
import type { PlacementDecision } from '../channels/placement.js';
import type { Logger } from '../telemetry/logger.js';
import { settlesWithin } from '../async/settlesWithin.js';
import type { NodeRegistry } from './NodeRegistry.js';

export const CHANNEL_HOME_PREFIX = 'parley:channel-home:';

export interface ChannelPlacementOptions {
	redis: Redis;
	registry: NodeRegistry;
	/** How long a claim lives without refresh (cluster.nodeTtlMs). */
	ttlMs: number;
	/** cluster.bridgeAbovePeers: redirect while the home node serves fewer peers; 0 = always bridge. */
	bridgeAbovePeers: number;
	/** The channel is open on this node (joins to it keep working without Redis). */
	isOpenHere: (channel: string) => boolean;
	/**
	 * Whether a node is still connected to Redis (its bus subscription exists). A node killed
	 * outright loses its connections at once while its registry entry lives on until the TTL;
	 * checking this lets the next join take the channel over without waiting for the TTL.
	 * Default: trust the registry alone.
	 */
	isOnBus?: (nodeId: string) => Promise<boolean>;
	/** A decision that takes longer (Redis stalled) answers E_CLUSTER_UNAVAILABLE; default 2000. */
	timeoutMs?: number;
	log: Logger;
}

/** Replaces a stale home (a node no longer in the registry) only if it is still that node. */
const REPLACE_STALE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
	return 1
end
return 0
`;

/** Refreshes this node's claims; a claim that vanished (Redis restarted empty, or the key
 * expired while Redis was away) is taken again. Returns the channels another node holds now. */
const REFRESH_SCRIPT = `
local lost = {}
for i, key in ipairs(KEYS) do
	local home = redis.call('GET', key)
	if home == false or home == ARGV[1] then
		redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
	else
		table.insert(lost, i)
	end
end
return lost
`;

/** Deletes claims only where this node still holds them. */
const RELEASE_SCRIPT = `
local n = 0
for _, key in ipairs(KEYS) do
	if redis.call('GET', key) == ARGV[1] then
		redis.call('DEL', key)
		n = n + 1
	end
end
return n
`;

/** Attempts before a join gives up on a claim that keeps changing hands under it. */
const MAX_CLAIM_ATTEMPTS = 4;

function unavailable(): RequestError {
	return new RequestError('E_CLUSTER_UNAVAILABLE', 'cluster coordination (Redis) is unreachable; try again');
}

export class ChannelPlacement {
	readonly nodeId: string;
	readonly #redis: Redis;
	readonly #registry: NodeRegistry;
	readonly #ttlMs: number;
	readonly #bridgeAbovePeers: number;
	readonly #isOpenHere: (channel: string) => boolean;
	readonly #isOnBus: (nodeId: string) => Promise<boolean>;
	readonly #timeoutMs: number;
	readonly #log: Logger;
	/** Channels this node claimed as their home -> when a join was last placed here (ms);
	 * refreshed on every heartbeat. */
	readonly #homed = new Map<string, number>();
	#stopped = false;
	/** Until then, a channel without a home is not claimed at once (see redisReconnected). */
	#claimsOpenAt = 0;

	constructor(options: ChannelPlacementOptions) {
		this.nodeId = options.registry.nodeId;
		this.#redis = options.redis;
		this.#registry = options.registry;
		this.#ttlMs = options.ttlMs;
		this.#bridgeAbovePeers = options.bridgeAbovePeers;
		this.#isOpenHere = options.isOpenHere;
		this.#isOnBus = options.isOnBus ?? (async () => true);
		this.#timeoutMs = options.timeoutMs ?? 2000;
		this.#log = options.log;
		options.registry.onHeartbeat(() => this.refresh());
	}

	/**
	 * Redis came back after an outage (maybe empty, after a restart): the nodes serving
	 * channels re-claim them on their next heartbeat, each after its own reconnect. Until
	 * then (one TTL) a join for a channel without a home waits before claiming it, so it does
	 * not take a channel that is live on another node and split it in two.
	 */
	redisReconnected(): void {
		this.#claimsOpenAt = Date.now() + this.#ttlMs;
	}

	/** Channels whose home is this node. */
	homedChannels(): string[] {
		return [...this.#homed.keys()];
	}

	/**
	 * Decides how a join for `channel` arriving here is served. Throws RequestError
	 * E_CLUSTER_UNAVAILABLE when Redis cannot be asked and the channel is not open here.
	 */
	async place(channel: string): Promise<PlacementDecision> {
		if (this.#stopped) throw new RequestError('E_SHUTTING_DOWN');
		if (this.#redis.status !== 'ready') {
			if (this.#isOpenHere(channel)) return { kind: 'local' };
			throw unavailable();
		}
		try {
			const decision = this.#place(channel);
			// The claim grace after a reconnect waits on purpose; only Redis round trips are bounded.
			const graceMs = Math.max(0, this.#claimsOpenAt - Date.now());
			if (!(await settlesWithin(decision, this.#timeoutMs + graceMs))) throw new Error(`Redis did not answer within ${this.#timeoutMs} ms`);
			return await decision;
		} catch (err) {
			if (err instanceof RequestError) throw err;
			// A command failed: Redis went away mid-decision.
			this.#log.warn({ err, channel }, 'channel placement failed');
			if (this.#isOpenHere(channel)) return { kind: 'local' };
			throw unavailable();
		}
	}

	async #place(channel: string): Promise<PlacementDecision> {
		const key = CHANNEL_HOME_PREFIX + channel;
		const graceMs = this.#claimsOpenAt - Date.now();
		if (graceMs > 0 && !this.#homed.has(channel) && (await this.#redis.get(key)) === null) {
			await new Promise((resolve) => setTimeout(resolve, graceMs));
		}
		for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
			const home = await this.#redis.get(key);
			if (home === null) {
				if ((await this.#redis.set(key, this.nodeId, 'PX', this.#ttlMs, 'NX')) === 'OK') return this.#local(channel, 'claimed');
				continue; // another node claimed it meanwhile: read who
			}
			if (home === this.nodeId) return this.#local(channel);
			const info = await this.#registry.get(home);
			if (!info || !(await this.#isOnBus(home))) {
				// The home node is gone (its claim outlived its registry entry, or it dropped
				// off Redis): take over, unless another node took over first.
				if ((await this.#redis.eval(REPLACE_STALE_SCRIPT, 1, key, home, this.nodeId, String(this.#ttlMs))) === 1) {
					return this.#local(channel, `taken over from ${home}`);
				}
				continue;
			}
			if (this.#bridgeAbovePeers > 0 && info.load.peers < this.#bridgeAbovePeers) {
				return { kind: 'redirect', nodeId: home, url: info.signalingUrl };
			}
			return { kind: 'bridge', homeNodeId: home };
		}
		throw new RequestError('E_CLUSTER_UNAVAILABLE', `the home of channel "${channel}" keeps changing; try again`);
	}

	#local(channel: string, how?: string): PlacementDecision {
		if (how) this.#log.info({ channel, how }, 'channel homed here');
		this.#homed.set(channel, Date.now());
		return { kind: 'local' };
	}

	/** Keeps this node's claims alive (runs on each registry heartbeat). */
	async refresh(): Promise<void> {
		const now = Date.now();
		for (const [channel, placedAt] of this.#homed) {
			// A claim whose channel is not open here (placed, then the join failed): let it
			// lapse. The grace covers joins placed but still opening their channel.
			if (!this.#isOpenHere(channel) && now - placedAt > this.#ttlMs) this.#homed.delete(channel);
		}
		const channels = [...this.#homed.keys()];
		if (channels.length === 0) return;
		const lost = (await this.#redis.eval(
			REFRESH_SCRIPT,
			channels.length,
			...channels.map((c) => CHANNEL_HOME_PREFIX + c),
			this.nodeId,
			String(this.#ttlMs),
		)) as number[];
		for (const index of lost) {
			const channel = channels[index - 1]!;
			this.#homed.delete(channel);
			// Its peers here keep talking; new joins go to the new home.
			this.#log.warn({ channel }, 'another node holds the home of a channel open here (claim lapsed while Redis was away)');
		}
	}

	/** The channel closed here: give up its home at once so the next join can claim it anywhere. */
	async release(channel: string): Promise<void> {
		if (!this.#homed.delete(channel)) return;
		await this.#releaseKeys([channel]);
	}

	/** Shutdown: place no more joins and give up every home at once, so other nodes take
	 * over without waiting for the TTL. */
	async releaseAll(): Promise<void> {
		this.#stopped = true;
		const channels = [...this.#homed.keys()];
		this.#homed.clear();
		await this.#releaseKeys(channels);
	}

	async #releaseKeys(channels: string[]): Promise<void> {
		if (channels.length === 0 || this.#redis.status !== 'ready') return;
		try {
			const released = this.#redis.eval(RELEASE_SCRIPT, channels.length, ...channels.map((c) => CHANNEL_HOME_PREFIX + c), this.nodeId);
			// A stalled Redis must not hold up a shutdown: the claims expire by themselves.
			if (!(await settlesWithin(released, 1000))) throw new Error('Redis did not answer within 1000 ms');
			await released;
		} catch (err) {
			this.#log.warn({ err, channels: channels.length }, 'could not release channel homes; they expire by themselves');
		}
	}
}
