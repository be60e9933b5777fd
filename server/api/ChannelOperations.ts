// The moderator operations of parley.v1.ChannelService, run wherever the channel is: on this
// node when it serves the channel, else on its home node over the cluster bus. The gRPC
// service (ChannelGrpcService.ts) authorizes a call where it arrives and hands the operation
// here; a node that gets a forwarded operation runs it as if the call had arrived there
// (the caller was authorized already: only nodes holding the cluster secret can ask).
//
// Bus requests (payloads from other nodes: parsed with the schemas below before use):
//   api.channel   {operation, hops}: run one operation here; answers {ok: true, result} or
//                 {ok: false, code, message} (the Parley error code, so the caller's gRPC
//                 status is the one a local call gives).
//   api.channels  {after, limit, patterns}: this node's open channels named after `after`
//                 that a grant with `patterns` covers, sorted, at most `limit`.
//
// Bridged channels (peers on several nodes): every node of the channel sees every peer (the
// remote ones flagged with the node they are connected to), so ListParticipants answers
// from any of them with the whole channel. Mute, Update and Remove act where the peer is
// connected: an operation for a remote peer goes on to that peer's node (from a satellite to
// the hub, from the hub to the peer's satellite: at most MAX_HOPS). CloseChannel closes the
// channel everywhere: the home closes it on each satellite first, then on itself.
import { z } from 'zod';
import type { Channel } from '../channels/Channel.js';
import type { ChannelRegistry } from '../channels/ChannelRegistry.js';
import type { Peer } from '../channels/Peer.js';
import type { ClusterBus } from '../cluster/ClusterBus.js';
import { ClusterBusError } from '../cluster/ClusterBus.js';
import type { Logger } from '../telemetry/logger.js';
import { channelNameSchema } from '../../protocol/schemas.js';
import { isErrorCode } from '../../protocol/errors.js';
import { RequestError } from '../../protocol/RequestError.js';

export const CHANNEL_API_CALL = 'api.channel';
export const CHANNEL_API_LIST = 'api.channels';
/** A satellite -> the hub -> the peer's satellite. */
export const MAX_HOPS = 2;
/** Channels one node reports per api.channels request (a page is at most 1000). */
const MAX_LISTED = 1001;

export const participantRefSchema = z.strictObject({ target: z.enum(['peerId', 'userId']), peerId: z.string().max(128).optional(), userId: z.string().max(128).optional() });
export type ParticipantRef = z.output<typeof participantRefSchema>;

const reason = z.string().max(200);
export const channelOperationSchema = z.discriminatedUnion('op', [
	z.strictObject({ op: z.literal('listParticipants'), channel: channelNameSchema }),
	z.strictObject({ op: z.literal('mute'), channel: channelNameSchema, participant: participantRefSchema, muted: z.boolean() }),
	z.strictObject({ op: z.literal('remove'), channel: channelNameSchema, participant: participantRefSchema, reason }),
	z.strictObject({
		op: z.literal('update'),
		channel: channelNameSchema,
		participant: participantRefSchema,
		grants: z.strictObject({ canPublish: z.boolean().optional(), canSubscribe: z.boolean().optional(), canRecord: z.boolean().optional() }),
	}),
	/** scope 'channel': the whole channel (run at its home); 'node': this node's part of it (the home asks each satellite). */
	z.strictObject({ op: z.literal('close'), channel: channelNameSchema, reason, scope: z.enum(['channel', 'node']) }),
]);
export type ChannelOperation = z.output<typeof channelOperationSchema>;

const callSchema = z.strictObject({ operation: channelOperationSchema, hops: z.number().int().min(1).max(MAX_HOPS) });

const participantSchema = z.object({
	peerId: z.string(),
	userId: z.string(),
	displayName: z.string(),
	nodeId: z.string(),
	grants: z.object({ canPublish: z.boolean(), canSubscribe: z.boolean(), canRecord: z.boolean() }),
	speaking: z.boolean(),
	mutedByModerator: z.boolean(),
});
/** What an operation answers: the participants (list), the participant (mute, update), how many were disconnected (close). */
const resultSchema = z.strictObject({
	participants: z.array(participantSchema).optional(),
	participant: participantSchema.optional(),
	participantsRemoved: z.number().int().min(0).optional(),
});
export type ChannelOperationResult = z.output<typeof resultSchema>;

const replySchema = z.discriminatedUnion('ok', [
	z.strictObject({ ok: z.literal(true), result: resultSchema }),
	z.strictObject({ ok: z.literal(false), code: z.string().max(64), message: z.string().max(1000) }),
]);
type Reply = z.output<typeof replySchema>;

const listRequestSchema = z.strictObject({ after: z.string().max(128), limit: z.number().int().min(1).max(MAX_LISTED), patterns: z.array(z.string().max(256)).max(1000) });
const channelSummarySchema = z.strictObject({ name: channelNameSchema, peers: z.number().int().min(0), speakers: z.number().int().min(0) });
export type ChannelSummary = z.output<typeof channelSummarySchema> & { homeNodeId: string };
const listReplySchema = z.strictObject({ channels: z.array(channelSummarySchema).max(MAX_LISTED) });

/** What the operations need of the cluster; absent on a single node. */
export interface ChannelApiCluster {
	/** Throws RequestError E_CLUSTER_UNAVAILABLE until the node has joined the cluster. */
	readonly bus: ClusterBus;
	/** The node claiming `channel` as its home (parley:channel-home:<channel>), if any. */
	homeOf(channel: string): Promise<string | undefined>;
	/** The homes of several channels, in order. */
	homesOf(channels: string[]): Promise<(string | undefined)[]>;
	/** Ids of the live nodes of the registry, this one included. */
	liveNodeIds(): Promise<string[]>;
	/** cluster.requestTimeoutMs: the longest a forwarded call waits for the other node. */
	readonly requestTimeoutMs: number;
}

export interface ChannelOperationsOptions {
	channels: ChannelRegistry;
	nodeId: string;
	cluster?: ChannelApiCluster;
	/** Whether a grant with these patterns covers the channel (the API's grant rule). */
	covers(patterns: string[], channel: string): boolean;
	log: Logger;
}

function speaking(peer: Peer): boolean {
	for (const p of peer.producers.values()) if (!p.paused && !p.closed) return true;
	return false;
}

/** Why the call ended (the API server aborts with a RequestError, E_TIMEOUT at the deadline). */
function abortError(signal: AbortSignal): RequestError {
	return signal.reason instanceof RequestError ? signal.reason : new RequestError('E_TIMEOUT', 'The call ended before the other node answered.');
}

export class ChannelOperations {
	readonly #channels: ChannelRegistry;
	readonly #nodeId: string;
	readonly #cluster: ChannelApiCluster | undefined;
	readonly #covers: (patterns: string[], channel: string) => boolean;
	readonly #log: Logger;

	constructor(options: ChannelOperationsOptions) {
		this.#channels = options.channels;
		this.#nodeId = options.nodeId;
		this.#cluster = options.cluster;
		this.#covers = options.covers;
		this.#log = options.log;
	}

	/** Serves other nodes' forwarded calls (once the cluster bus is up). */
	serve(bus: ClusterBus): void {
		bus.handle(CHANNEL_API_CALL, async (payload, from): Promise<Reply> => {
			const call = callSchema.safeParse(payload);
			if (!call.success) return { ok: false, code: 'E_BAD_REQUEST', message: `bad ${CHANNEL_API_CALL} from ${from}: ${call.error.issues[0]?.path.join('.')} ${call.error.issues[0]?.message}` };
			try {
				return { ok: true, result: await this.run(call.data.operation, undefined, call.data.hops) };
			} catch (err) {
				if (err instanceof RequestError) return { ok: false, code: err.code, message: err.message };
				this.#log.error({ err, from, op: call.data.operation.op, channel: call.data.operation.channel }, 'forwarded channel operation failed');
				return { ok: false, code: 'E_INTERNAL', message: 'internal error' };
			}
		});
		bus.handle(CHANNEL_API_LIST, async (payload) => {
			const req = listRequestSchema.parse(payload);
			return { channels: this.#localSummaries(req.after, req.limit, req.patterns) } satisfies z.input<typeof listReplySchema>;
		});
	}

	/**
	 * Runs `operation` where its channel (or, for a bridged channel, its participant) is.
	 * `signal` ends the wait for another node (the gRPC call's deadline or cancellation).
	 * `hops`: how many nodes the call went through before this one.
	 */
	async run(operation: ChannelOperation, signal?: AbortSignal, hops = 0): Promise<ChannelOperationResult> {
		const channel = this.#channels.get(operation.channel);
		if (!channel || channel.closed) {
			const home = hops === 0 ? await this.#homeElsewhere(operation.channel) : undefined;
			if (!home) throw new RequestError('E_NOT_FOUND', `No channel "${operation.channel}" ${this.#cluster ? 'in the cluster' : 'on this node'}.`);
			return this.#forward(home, operation, hops, signal);
		}
		switch (operation.op) {
			case 'listParticipants':
				return { participants: [...channel.peers.values()].map((p) => this.#participant(p)) };
			case 'mute': {
				const peer = this.#target(channel, operation.participant);
				if (peer.remote) return this.#forward(peer.remoteNodeId!, operation, hops, signal);
				await channel.muteParticipant(peer, operation.muted);
				return { participant: this.#participant(peer) };
			}
			case 'update': {
				const peer = this.#target(channel, operation.participant);
				if (peer.remote) return this.#forward(peer.remoteNodeId!, operation, hops, signal);
				const g = operation.grants;
				channel.updateGrants(peer, {
					canPublish: g.canPublish ?? peer.grants.canPublish,
					canSubscribe: g.canSubscribe ?? peer.grants.canSubscribe,
					canRecord: g.canRecord ?? peer.grants.canRecord,
				});
				return { participant: this.#participant(peer) };
			}
			case 'remove': {
				const peer = this.#target(channel, operation.participant);
				if (peer.remote) return this.#forward(peer.remoteNodeId!, operation, hops, signal);
				channel.removeParticipant(peer, operation.reason || 'removed by a moderator');
				return {};
			}
			case 'close':
				return this.#close(channel, operation, hops, signal);
		}
	}

	/**
	 * Open channels the grant's `patterns` cover, named after `after`, sorted by name: this
	 * node's, or with a cluster every live node's (asked over the bus; a bridged channel is
	 * listed once, with its home). At most `limit` + whether there are more.
	 */
	async listChannels(after: string, limit: number, patterns: string[], signal?: AbortSignal): Promise<{ channels: ChannelSummary[]; more: boolean }> {
		const cluster = this.#cluster;
		const byName = new Map<string, ChannelSummary>();
		for (const c of this.#localSummaries(after, limit + 1, patterns)) byName.set(c.name, { ...c, homeNodeId: this.#nodeId });
		if (cluster) {
			const bus = cluster.bus;
			const others = (await cluster.liveNodeIds()).filter((id) => id !== this.#nodeId);
			const answers = await Promise.all(
				others.map(async (nodeId) => {
					try {
						const reply = await this.#bounded(bus.request(nodeId, CHANNEL_API_LIST, { after, limit: limit + 1, patterns }, cluster.requestTimeoutMs), signal);
						return { nodeId, channels: listReplySchema.parse(reply).channels };
					} catch (err) {
						// Off the bus: the process is gone and so are its channels (its entry has not expired yet).
						if (err instanceof ClusterBusError && err.code === 'no_handler') return { nodeId, channels: [] };
						throw this.#busFailure(err, nodeId, `listing the channels of node ${nodeId}`);
					}
				}),
			);
			for (const { nodeId, channels } of answers) {
				for (const c of channels) {
					const seen = byName.get(c.name);
					// A bridged channel is open on each of its nodes, each seeing all its peers.
					if (!seen || c.peers > seen.peers) byName.set(c.name, { ...c, homeNodeId: seen?.homeNodeId ?? nodeId });
				}
			}
		}
		const sorted = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
		const page = sorted.slice(0, limit);
		if (cluster && page.length > 0) {
			const homes = await cluster.homesOf(page.map((c) => c.name));
			page.forEach((c, i) => (c.homeNodeId = homes[i] ?? c.homeNodeId));
		}
		return { channels: page, more: sorted.length > limit };
	}

	#localSummaries(after: string, limit: number, patterns: string[]): z.input<typeof channelSummarySchema>[] {
		return this.#channels
			.channels()
			.filter((c) => !c.closed && c.name > after && this.#covers(patterns, c.name))
			.sort((a, b) => (a.name < b.name ? -1 : 1))
			.slice(0, limit)
			.map((c) => {
				const peers = [...c.peers.values()];
				return { name: c.name, peers: peers.length, speakers: peers.filter(speaking).length };
			});
	}

	async #close(channel: Channel, operation: Extract<ChannelOperation, { op: 'close' }>, hops: number, signal: AbortSignal | undefined): Promise<ChannelOperationResult> {
		const reason = operation.reason || 'closed by a moderator';
		if (operation.scope === 'channel' && hops === 0) {
			// Open here as a satellite: the home closes it everywhere.
			const home = await this.#homeElsewhere(channel.name);
			if (home) return this.#forward(home, operation, hops, signal);
		}
		let removed = 0;
		if (operation.scope === 'channel') {
			// Satellites first: closing here first would end their links, and a satellite whose
			// link ends tells its peers to rejoin instead of closing them as removed.
			const satellites = new Set<string>();
			for (const p of channel.peers.values()) if (p.remoteNodeId) satellites.add(p.remoteNodeId);
			const parts = await Promise.all([...satellites].map((nodeId) => this.#forward(nodeId, { ...operation, scope: 'node' }, hops, signal)));
			for (const part of parts) removed += part.participantsRemoved ?? 0;
		}
		return { participantsRemoved: removed + channel.closeByModerator(reason) };
	}

	/** The channel's home when it is another node (with a cluster). */
	async #homeElsewhere(channel: string): Promise<string | undefined> {
		if (!this.#cluster) return undefined;
		let home: string | undefined;
		try {
			home = await this.#cluster.homeOf(channel);
		} catch (err) {
			this.#log.warn({ err, channel }, 'reading the channel home failed');
			throw new RequestError('E_CLUSTER_UNAVAILABLE', `Cannot tell which node serves channel "${channel}": Redis does not answer; try again.`);
		}
		return home === this.#nodeId ? undefined : home;
	}

	async #forward(nodeId: string, operation: ChannelOperation, hops: number, signal: AbortSignal | undefined): Promise<ChannelOperationResult> {
		const cluster = this.#cluster;
		if (!cluster || hops >= MAX_HOPS) throw new RequestError('E_INTERNAL', `Channel "${operation.channel}": the call would go on to node ${nodeId} after ${hops} nodes.`);
		let reply: Reply;
		try {
			const raw = await this.#bounded(cluster.bus.request(nodeId, CHANNEL_API_CALL, { operation, hops: hops + 1 }, cluster.requestTimeoutMs), signal);
			reply = replySchema.parse(raw);
		} catch (err) {
			throw this.#busFailure(err, nodeId, `channel "${operation.channel}"`);
		}
		if (reply.ok) return reply.result;
		throw new RequestError(isErrorCode(reply.code) ? reply.code : 'E_INTERNAL', reply.message);
	}

	#busFailure(err: unknown, nodeId: string, what: string): RequestError {
		if (err instanceof RequestError) return err;
		if (err instanceof ClusterBusError) {
			if (err.code === 'no_handler' || err.code === 'timeout') {
				// no_handler: off the bus (its process is gone), or a node without this request type.
				const why = err.code === 'timeout' ? `no answer within ${this.#cluster?.requestTimeoutMs} ms` : err.message;
				return new RequestError('E_NODE_UNAVAILABLE', `Node ${nodeId}, serving ${what}, does not answer (${why}); try again.`);
			}
			if (err.code === 'unavailable') return new RequestError('E_CLUSTER_UNAVAILABLE', `Cannot reach node ${nodeId} for ${what}: Redis does not answer; try again.`);
		}
		this.#log.error({ err, nodeId, what }, 'forwarded channel operation failed');
		return new RequestError('E_INTERNAL', `Node ${nodeId} failed on ${what}.`);
	}

	/** `request`, or the call's end (deadline, cancellation), whichever comes first. */
	async #bounded<T>(request: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
		if (!signal) return request;
		if (signal.aborted) throw abortError(signal);
		let onAbort: (() => void) | undefined;
		const aborted = new Promise<never>((_, reject) => {
			onAbort = () => reject(abortError(signal));
			signal.addEventListener('abort', onAbort, { once: true });
		});
		try {
			return await Promise.race([request, aborted]);
		} finally {
			signal.removeEventListener('abort', onAbort!);
		}
	}

	#participant(peer: Peer): z.output<typeof participantSchema> {
		return {
			peerId: peer.id,
			userId: peer.userId,
			displayName: peer.displayName,
			nodeId: peer.remoteNodeId ?? this.#nodeId,
			grants: { ...peer.grants },
			speaking: speaking(peer),
			mutedByModerator: peer.mutedByModerator,
		};
	}

	#target(channel: Channel, ref: ParticipantRef): Peer {
		if (ref.target === 'peerId') return channel.peer(ref.peerId ?? '');
		const peer = [...channel.peers.values()].find((p) => p.userId === ref.userId);
		if (!peer) throw new RequestError('E_NOT_FOUND', `No participant of user ${ref.userId} in channel ${channel.name}.`);
		return peer;
	}
}
