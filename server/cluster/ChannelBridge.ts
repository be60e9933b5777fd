// Channels that bridge nodes. When a join for channel C arrives at node S while C's home node
// H is too busy to take it (ChannelPlacement decides), S serves the peer itself: it opens
// its own router for C and links it to H's router with a pair of mediasoup PipeTransports.
// H is the hub of a star: it links to every satellite, relays what one satellite sends to
// the others, and satellites never link to each other. Control messages (who is in the
// channel, which producers flow over the pipe) travel over the ClusterBus; media travels
// over the pipe as plain RTP between the nodes' workers.
//
// One ChannelBridges per node: it serves the bridge.* bus requests, owns every link of this
// node (ChannelBridgeLink.ts) and decides what a link's end means:
//   - a satellite link closes when the satellite's last local peer leaves (the hub drops its
//     peers), or when the hub is lost or closes the channel (the satellite closes its channel:
//     its peers get channelClosing and rejoin, and placement finds C a home again);
//   - a hub link to a lost satellite (NodeRegistry's nodeLost, a failed sync) closes: the
//     satellite's peers leave the hub's channel, and the hub's own peers keep talking.
//
// Plain RTP on the pipe (no enableSrtp): nodes of one deployment talk over loopback or a
// private network, like their Redis traffic. Encrypting it needs both ends to agree on
// keys sent over the bus; left for deployments that cross untrusted networks.
import { isIP } from 'node:net';
import type { types as ms } from 'mediasoup';
import type { ParleyConfig } from '../../config/schema.js';
import type { Channel } from '../channels/Channel.js';
import type { ChannelRegistry } from '../channels/ChannelRegistry.js';
import { primaryIPv4, WILDCARDS } from '../media/workerSettings.js';
import { RequestError } from '../../protocol/RequestError.js';
import type { ChannelBridgeHook } from '../channels/placement.js';
import type { Logger } from '../telemetry/logger.js';
import { ClusterBusError, type ClusterBus } from './ClusterBus.js';
import type { ClusterSecret } from './ClusterSecret.js';
import { ChannelBridgeLink, type BridgeLinkCloseKind } from './ChannelBridgeLink.js';
import {
	parseBridgeMessage,
	BRIDGE_CLOSE,
	BRIDGE_OPEN,
	BRIDGE_SYNC,
	bridgeCloseSchema,
	bridgeOpenReplySchema,
	bridgeOpenSchema,
	bridgeSyncSchema,
	type BridgeOpen,
	type BridgeOpenReply,
	type SealedSrtp,
} from './ChannelBridgeMessages.js';

/** Where this node's pipe ends listen (cluster.pipe* options, resolved). */
export interface PipeSettings {
	/** Local address the PipeTransports bind to. */
	listenIp: string;
	/** IP the other node sends to (undefined: listenIp). */
	announcedIp: string | undefined;
	/** UDP ports for pipe transports (undefined: mediasoup's default range). */
	portRange: { min: number; max: number } | undefined;
	/** NACK on the pipe (both ends must agree: the satellite's choice wins). */
	enableRtx: boolean;
}

/** cluster.pipe* resolved against the media options. Throws on a half-set port range. */
export function pipeSettings(config: ParleyConfig): PipeSettings {
	const c = config.cluster;
	const m = config.media;
	const listenIp = c.pipeListenIp || m.listenIp;
	let announcedIp: string | undefined = c.pipeAnnouncedIp || undefined;
	if (!announcedIp && WILDCARDS.has(listenIp)) announcedIp = isIP(m.announcedAddress) ? m.announcedAddress : primaryIPv4();
	if ((c.pipeMinPort === 0) !== (c.pipeMaxPort === 0) || c.pipeMinPort > c.pipeMaxPort) {
		throw new TypeError(`cluster.pipeMinPort (${c.pipeMinPort}) and cluster.pipeMaxPort (${c.pipeMaxPort}) must both be 0, or a range with min <= max`);
	}
	return {
		listenIp,
		announcedIp,
		portRange: c.pipeMinPort ? { min: c.pipeMinPort, max: c.pipeMaxPort } : undefined,
		enableRtx: m.opusNack,
	};
}

/** Emits `nodeLost(nodeId)` (NodeRegistry). */
export interface NodeLostSource {
	on(event: 'nodeLost', listener: (nodeId: string) => void): unknown;
	off(event: 'nodeLost', listener: (nodeId: string) => void): unknown;
}

/** The node registry as bridges see it: who left, and where a node's pipes listen. */
export interface BridgeNodeDirectory extends NodeLostSource {
	/** The node's signed registry entry (undefined: not a live node). */
	get(nodeId: string): Promise<{ pipeAddress: string } | undefined>;
}

export interface ChannelBridgesOptions {
	bus: ClusterBus;
	registry: ChannelRegistry;
	pipe: PipeSettings;
	/** Without it (unit tests of bridging alone) pipe addresses are not checked against the registry. */
	nodes?: BridgeNodeDirectory;
	/** cluster.secret: seals the SRTP keys of the pipes. */
	secret: ClusterSecret;
	log: Logger;
}

export class ChannelBridges implements ChannelBridgeHook {
	readonly #bus: ClusterBus;
	readonly #registry: ChannelRegistry;
	readonly #pipe: PipeSettings;
	readonly #nodes: BridgeNodeDirectory | undefined;
	readonly #secret: ClusterSecret;
	readonly #log: Logger;
	/** Channels this node is the hub of: channel -> satellite node id -> link. */
	readonly #hubs = new Map<string, Map<string, ChannelBridgeLink>>();
	/** Channels this node is a satellite of: channel -> link to the hub. */
	readonly #satellites = new Map<string, ChannelBridgeLink>();
	/** Satellite links being opened, so concurrent joins share one. */
	readonly #attaching = new Map<string, Promise<void>>();
	readonly #onNodeLost = (nodeId: string) => this.nodeLost(nodeId);
	/** bridge.close messages still on their way (close() waits for them before the bus goes). */
	readonly #notices = new Set<Promise<void>>();
	#closed = false;

	constructor(options: ChannelBridgesOptions) {
		this.#bus = options.bus;
		this.#registry = options.registry;
		this.#pipe = options.pipe;
		this.#nodes = options.nodes;
		this.#secret = options.secret;
		this.#log = options.log;
		this.#bus.handle(BRIDGE_OPEN, (payload, from) => this.#onOpen(parseBridgeMessage(bridgeOpenSchema, payload, BRIDGE_OPEN), from));
		this.#bus.handle(BRIDGE_SYNC, async (payload, from) => {
			const sync = parseBridgeMessage(bridgeSyncSchema, payload, BRIDGE_SYNC);
			const link = this.#linkWith(sync.channel, from);
			if (!link) throw new Error(`no bridge of channel ${sync.channel} with node ${from} here`);
			await link.receive(sync.events);
			return {};
		});
		this.#bus.handle(BRIDGE_CLOSE, async (payload, from) => {
			const message = parseBridgeMessage(bridgeCloseSchema, payload, BRIDGE_CLOSE);
			this.#linkWith(message.channel, from)?.close('remote', `closed by ${from}: ${message.reason}`);
			return {};
		});
		this.#nodes?.on('nodeLost', this.#onNodeLost);
	}

	/** Links of this node (tests check they return to zero). */
	get linkCount(): number {
		let n = this.#satellites.size;
		for (const links of this.#hubs.values()) n += links.size;
		return n;
	}

	/** The satellite link of `channel`, or the hub's link to `nodeId`, if any. */
	link(channel: string, nodeId?: string): ChannelBridgeLink | undefined {
		return nodeId === undefined ? this.#satellites.get(channel) : this.#hubs.get(channel)?.get(nodeId);
	}

	/** Satellite node ids of a channel this node is the hub of. */
	satellitesOf(channel: string): string[] {
		return [...(this.#hubs.get(channel)?.keys() ?? [])];
	}

	// ---- satellite side -----------------------------------------------------------------

	/** Links the local `channel` to its home node (no-op when it already is); resolves once
	 * the home node's peers and producers are in the local channel. Throws RequestError
	 * E_CLUSTER_UNAVAILABLE when the home node cannot be reached. */
	async attach(channel: Channel, homeNodeId: string): Promise<void> {
		if (this.#closed) throw new RequestError('E_SHUTTING_DOWN');
		if (homeNodeId === this.#bus.nodeId) return;
		// Another join is opening the link right now (its pipe is being made, so the link is
		// not registered yet): share it. Two links for one channel would announce the same
		// peers and producers twice, and the hub would drop the satellite.
		const opening = this.#attaching.get(channel.name);
		if (opening) {
			await opening.catch(() => undefined);
			const link = this.#satellites.get(channel.name);
			if (!link || link.closed || link.channel !== channel || link.remoteNodeId !== homeNodeId) {
				throw unavailable(`the link of channel ${channel.name} to node ${homeNodeId} could not be opened; join again`);
			}
			return;
		}
		const existing = this.#satellites.get(channel.name);
		// Linked already (a link being opened was awaited above).
		if (existing && !existing.closed && existing.channel === channel && existing.remoteNodeId === homeNodeId) return;
		if (existing) {
			// Bridged to another home than placement says now: start over, everyone rejoins.
			existing.close('local', `home of ${channel.name} moved to ${homeNodeId}`);
			channel.close(`home moved to node ${homeNodeId}`);
			throw unavailable(`channel ${channel.name} is moving to another node; join again`);
		}
		if (this.#hubs.get(channel.name)?.size) {
			throw unavailable(`this node is the home of ${channel.name} for other nodes, but placement names ${homeNodeId}; join again`);
		}
		const attaching = this.#openSatellite(channel, homeNodeId).finally(() => this.#attaching.delete(channel.name));
		this.#attaching.set(channel.name, attaching);
		await attaching;
	}

	async #openSatellite(channel: Channel, homeNodeId: string): Promise<void> {
		let pipe: ms.PipeTransport;
		try {
			pipe = await this.#createPipe(channel);
		} catch (err) {
			// The channel closed meanwhile (worker lost, shutdown), or no pipe port was free.
			this.#registry.closeIfUnused(channel);
			throw unavailable(`channel ${channel.name} cannot be linked to node ${homeNodeId} right now (${(err as Error).message}); join again`);
		}
		const link = new ChannelBridgeLink({
			channel,
			role: 'satellite',
			remoteNodeId: homeNodeId,
			bus: this.#bus,
			pipe,
			log: this.#log,
		});
		// Registered before bridge.open goes out: the hub's first syncs may come right after its reply.
		this.#satellites.set(channel.name, link);
		link.once('closed', (kind, reason) => this.#onSatelliteLinkClosed(link, kind, reason));
		try {
			const request: BridgeOpen = {
				channel: channel.name,
				ip: pipe.tuple.localAddress,
				port: pipe.tuple.localPort,
				enableRtx: this.#pipe.enableRtx,
				srtp: this.#sealSrtp(pipe, channel.name, this.#bus.nodeId, homeNodeId),
			};
			let reply: BridgeOpenReply;
			try {
				reply = parseBridgeMessage(bridgeOpenReplySchema, await this.#bus.request(homeNodeId, BRIDGE_OPEN, request), `${BRIDGE_OPEN} reply`);
			} catch (err) {
				throw busFailure(err, homeNodeId, channel.name);
			}
			if (link.closed) throw unavailable(`the link of channel ${channel.name} to node ${homeNodeId} closed while opening`);
			await this.#checkPipeAddress(homeNodeId, reply.ip);
			await pipe.connect({ ip: reply.ip, port: reply.port, srtpParameters: this.#openSrtp(reply.srtp, channel.name, homeNodeId, this.#bus.nodeId) });
			await link.receiveInitial(reply.events);
			await link.start(true);
			link.startFlowing();
			this.#log.info({ channel: channel.name, homeNodeId, remotePeers: link.counts.remotePeers }, 'channel bridges to its home node');
		} catch (err) {
			link.close('local', `opening failed: ${(err as Error).message}`);
			// Opened for this join only: nothing else would close it.
			this.#registry.closeIfUnused(channel);
			if (err instanceof RequestError) throw err;
			throw unavailable(`channel ${channel.name} could not be linked to node ${homeNodeId}: ${(err as Error).message}`);
		}
		// The last local peer leaving ends the bridge here (the hub drops our peers). Checked a
		// moment later: a user who joins again replaces their old peer (a leave, then a join
		// in the same step), and must find the bridge still there.
		const onPeerLeft = () => {
			setImmediate(() => {
				if (channel.localPeerCount === 0 && !link.closed) link.close('local', 'no local peers left');
			});
		};
		channel.on('peerLeft', onPeerLeft);
		link.once('closed', () => channel.off('peerLeft', onPeerLeft));
	}

	#onSatelliteLinkClosed(link: ChannelBridgeLink, kind: BridgeLinkCloseKind, reason: string): void {
		this.#trackNotice(link);
		if (this.#satellites.get(link.channel.name) === link) this.#satellites.delete(link.channel.name);
		// Without its hub the channel here is cut off from most of its peers: clients rejoin
		// (channelClosing) and placement gives the channel a (possibly new) home.
		if (kind !== 'local' && !link.channel.closed) link.channel.close(`home node ${link.remoteNodeId} lost: ${reason}`);
	}

	// ---- hub side -----------------------------------------------------------------------

	async #onOpen(open: BridgeOpen, from: string): Promise<BridgeOpenReply> {
		if (this.#closed) throw new Error(`node ${this.#bus.nodeId} is shutting down`);
		if (from === this.#bus.nodeId) throw new Error('a node cannot bridge to itself');
		if (this.#satellites.has(open.channel) || this.#attaching.has(open.channel)) {
			throw new Error(`node ${this.#bus.nodeId} is not the home of ${open.channel} (it bridges to ${this.#satellites.get(open.channel)?.remoteNodeId ?? 'another node'})`);
		}
		// Only to where the satellite's signed registry entry says its pipes listen, and only
		// with its sealed key: a forged bridge.open cannot make this node send audio elsewhere.
		await this.#checkPipeAddress(from, open.ip);
		const remoteSrtp = this.#openSrtp(open.srtp, open.channel, from, this.#bus.nodeId);
		// A satellite that opens again lost its previous link without us noticing.
		this.#hubs.get(open.channel)?.get(from)?.close('lost', 'satellite opened a new bridge');
		const channel = await this.#registry.open(open.channel);
		let pipe: ms.PipeTransport;
		try {
			pipe = await this.#createPipe(channel, open.enableRtx);
		} catch (err) {
			this.#registry.closeIfUnused(channel);
			throw err;
		}
		const link = new ChannelBridgeLink({ channel, role: 'hub', remoteNodeId: from, bus: this.#bus, pipe, log: this.#log });
		let links = this.#hubs.get(open.channel);
		if (!links) {
			links = new Map();
			this.#hubs.set(open.channel, links);
		}
		links.set(from, link);
		link.once('closed', (kind, reason) => this.#onHubLinkClosed(link, kind, reason));
		try {
			await pipe.connect({ ip: open.ip, port: open.port, srtpParameters: remoteSrtp });
			const events = await link.start(false);
			// After our reply is on its way (the satellite holds back syncs until it has it anyway).
			setImmediate(() => link.startFlowing());
			this.#log.info({ channel: open.channel, satelliteNodeId: from, events: events.length }, 'channel bridge opened by a satellite');
			return { ip: pipe.tuple.localAddress, port: pipe.tuple.localPort, srtp: this.#sealSrtp(pipe, open.channel, this.#bus.nodeId, from), events };
		} catch (err) {
			link.close('local', `opening failed: ${(err as Error).message}`, false);
			throw err;
		}
	}

	#onHubLinkClosed(link: ChannelBridgeLink, kind: BridgeLinkCloseKind, reason: string): void {
		this.#trackNotice(link);
		const links = this.#hubs.get(link.channel.name);
		if (links?.get(link.remoteNodeId) === link) links.delete(link.remoteNodeId);
		if (links?.size === 0) this.#hubs.delete(link.channel.name);
		this.#log.info({ channel: link.channel.name, satelliteNodeId: link.remoteNodeId, kind, reason }, 'satellite left the bridge');
		// Opened for a satellite that never brought a peer: no peer will ever leave it.
		if (!links?.size) this.#registry.closeIfUnused(link.channel);
	}

	// ---- both ---------------------------------------------------------------------------

	/** A node left the registry: every link with it is gone. */
	nodeLost(nodeId: string): void {
		for (const link of [...this.#satellites.values()]) if (link.remoteNodeId === nodeId) link.close('lost', `node ${nodeId} left the registry`);
		for (const links of [...this.#hubs.values()]) links.get(nodeId)?.close('lost', `node ${nodeId} left the registry`);
	}

	/** Closes every link (shutdown) and resolves once the other ends were told (bounded):
	 * close the bus after this. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		this.#nodes?.off('nodeLost', this.#onNodeLost);
		const links = [...this.#satellites.values(), ...[...this.#hubs.values()].flatMap((l) => [...l.values()])];
		for (const link of links) link.close('local', 'node shutting down');
		await Promise.all([...this.#notices]);
	}

	#trackNotice(link: ChannelBridgeLink): void {
		const notice = link.closeNotice;
		this.#notices.add(notice);
		void notice.finally(() => this.#notices.delete(notice));
	}

	#linkWith(channel: string, nodeId: string): ChannelBridgeLink | undefined {
		const satellite = this.#satellites.get(channel);
		if (satellite?.remoteNodeId === nodeId) return satellite;
		return this.#hubs.get(channel)?.get(nodeId);
	}

	/** Throws unless `ip` is the pipe address `nodeId`'s signed registry entry announces. */
	async #checkPipeAddress(nodeId: string, ip: string): Promise<void> {
		if (!this.#nodes) return;
		const entry = await this.#nodes.get(nodeId);
		if (!entry) throw new Error(`node ${nodeId} is not in the node registry`);
		if (entry.pipeAddress !== ip) throw new Error(`pipe address ${ip} is not the one node ${nodeId} announced (${entry.pipeAddress})`);
	}

	/** Our pipe end's SRTP parameters for the bus, the key sealed for this one pipe (from -> to, channel). */
	#sealSrtp(pipe: ms.PipeTransport, channel: string, fromNodeId: string, toNodeId: string): SealedSrtp {
		const params = pipe.srtpParameters;
		if (!params) throw new Error('pipe transport has no SRTP parameters');
		return { cryptoSuite: params.cryptoSuite, sealedKey: this.#secret.seal(params.keyBase64, srtpContext(channel, fromNodeId, toNodeId)) };
	}

	#openSrtp(srtp: SealedSrtp, channel: string, fromNodeId: string, toNodeId: string): ms.SrtpParameters {
		let keyBase64: string;
		try {
			keyBase64 = this.#secret.open(srtp.sealedKey, srtpContext(channel, fromNodeId, toNodeId));
		} catch {
			throw new Error(`the SRTP key from node ${fromNodeId} was not sealed with this cluster's secret`);
		}
		return { cryptoSuite: srtp.cryptoSuite, keyBase64 };
	}

	async #createPipe(channel: Channel, enableRtx = this.#pipe.enableRtx): Promise<ms.PipeTransport> {
		const p = this.#pipe;
		return channel.router.createPipeTransport({
			listenInfo: {
				protocol: 'udp',
				ip: p.listenIp,
				...(p.announcedIp ? { announcedAddress: p.announcedIp } : {}),
				...(p.portRange ? { portRange: p.portRange } : {}),
			},
			enableRtx,
			// Node-to-node media crosses the network between the nodes: encrypted and
			// authenticated (keys exchanged sealed over the bus).
			enableSrtp: true,
			appData: { channel: channel.name, bridge: true },
		});
	}
}

function srtpContext(channel: string, fromNodeId: string, toNodeId: string): string {
	return `bridge srtp\n${channel}\n${fromNodeId}\n${toNodeId}`;
}

function unavailable(message: string): RequestError {
	return new RequestError('E_CLUSTER_UNAVAILABLE', message);
}

/** A failed bus request as the joining client should hear it. */
function busFailure(err: unknown, homeNodeId: string, channel: string): RequestError {
	if (!(err instanceof ClusterBusError)) return unavailable(`node ${homeNodeId} gave an invalid answer for channel ${channel}: ${(err as Error).message}`);
	switch (err.code) {
		case 'unavailable':
			return unavailable('Cluster coordination (Redis) is unreachable: only channels already served here can be joined; try again.');
		case 'timeout':
		case 'no_handler':
			return unavailable(`The home node of channel ${channel} (${homeNodeId}) does not answer; try again in a few seconds.`);
		case 'remote':
			return unavailable(`The home node of channel ${channel} refused to share it: ${err.message}`);
	}
}
