// What each signaling method does: grant checks, then the channel's API. Data arrives
// validated against protocol.ts; failures are RequestErrors with the protocol's codes.
import type { types as ms } from 'mediasoup';
import type { z } from 'zod';
import type { Channel } from '../channels/Channel.js';
import type { ChannelRegistry } from '../channels/ChannelRegistry.js';
import type { ChannelBridgeHook, ChannelPlacer } from '../channels/placement.js';
import { Peer } from '../channels/Peer.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { TurnCredentialIssuer } from '../media/turnCredentials.js';
import { VoiceMessageService } from '../voice/VoiceMessageService.js';
import { channelAllowed } from '../auth/accessToken.js';
import { CLOSE_CODES, type Method, type ResponseData, type TransportInfo } from '../../protocol/messages.js';
import type { requestSchemas } from '../../protocol/schemas.js';
import { RequestError } from '../../protocol/RequestError.js';
import type { SignalingSession } from './SignalingSession.js';

export interface HandlerContext {
	registry: ChannelRegistry;
	pool: WorkerPool;
	routerRtpCapabilities: ms.RtpCapabilities;
	voice: VoiceMessageService;
	voiceMaxDurationMs: number;
	/** Where a channel is served when several nodes share Redis; absent on a single node. */
	placement?: ChannelPlacer;
	/** Connects a channel opened here to its home node on another node (a channel bridged across nodes). */
	bridge?: ChannelBridgeHook;
	/** TURN servers with fresh credentials per transport (turn.*); absent: none. */
	turn?: TurnCredentialIssuer;
}

type Handler<M extends Method> = (session: SignalingSession, data: z.output<(typeof requestSchemas)[M]>, ctx: HandlerContext) => Promise<ResponseData[M]>;

function joined(session: SignalingSession): { peer: Peer; channel: Channel } {
	const peer = session.joinedPeer;
	if (!peer || !session.channel) throw new RequestError('E_NOT_JOINED');
	return { peer, channel: session.channel };
}

/**
 * Runs a request on one of the peer's mediasoup objects. The object can close between our
 * lookup and the worker's answer (its producer closed, the peer left, the worker died):
 * for the client it is simply gone, not an internal error.
 */
async function onLiveObject<T>(what: string, work: () => Promise<T>): Promise<T> {
	try {
		return await work();
	} catch (err) {
		const name = (err as Error).name;
		if (name === 'NotFoundError' || name === 'InvalidStateError') throw new RequestError('E_NOT_FOUND', `The ${what} closed meanwhile.`);
		throw err;
	}
}

/** Transports whose connect was requested (mediasoup allows one connect per transport). */
const connectCalled = new WeakSet<ms.Transport>();

function requireGrant(session: SignalingSession, grant: 'canPublish' | 'canSubscribe' | 'canRecord'): void {
	// Once joined, the peer's grants: a moderator may have changed them since the token.
	const grants = session.joinedPeer?.grants ?? session.claims.grants;
	if (!grants[grant]) throw new RequestError('E_FORBIDDEN', `The access token does not grant ${grant}.`);
}

async function createTransportInfo(session: SignalingSession, peer: Peer, channel: Channel, direction: 'send' | 'recv', ctx: HandlerContext): Promise<TransportInfo> {
	const transport = await channel.createTransport(peer, direction, ctx.pool.webRtcServerFor(channel.router));
	return {
		transportId: transport.id,
		iceParameters: transport.iceParameters,
		iceCandidates: transport.iceCandidates as TransportInfo['iceCandidates'],
		dtlsParameters: transport.dtlsParameters as TransportInfo['dtlsParameters'],
		iceServers: ctx.turn?.iceServers(session.claims.userId) ?? [],
	};
}

export const requestHandlers: { [M in Method]: Handler<M> } = {
	async getRouterRtpCapabilities(_session, _data, ctx) {
		// mediasoup and mediasoup-client type the same JSON differently.
		return { rtpCapabilities: ctx.routerRtpCapabilities as unknown as ResponseData['getRouterRtpCapabilities']['rtpCapabilities'] };
	},

	async join(session, data, ctx) {
		if (session.joinedPeer) throw new RequestError('E_ALREADY_JOINED');
		if (!channelAllowed(session.claims.channels, data.channel)) {
			throw new RequestError('E_FORBIDDEN', `The access token does not allow channel "${data.channel}".`);
		}
		// Before joining: a refused transport must not leave a half-done join behind.
		const directions = data.transports ?? [];
		for (const direction of directions) requireGrant(session, direction === 'send' ? 'canPublish' : 'canSubscribe');
		const placed = (await ctx.placement?.place(data.channel)) ?? { kind: 'local' };
		if (placed.kind === 'redirect') {
			throw new RequestError('E_REDIRECT', `Channel "${data.channel}" is served by node ${placed.nodeId}; join it there.`, { redirect: { nodeId: placed.nodeId, url: placed.url } });
		}
		// ClusterNode hands out placement and bridge together; the check keeps a wiring slip loud.
		if (placed.kind === 'bridge' && !ctx.bridge) throw new RequestError('E_INTERNAL', 'This node cannot serve channels bridged across nodes.');
		const channel = await ctx.registry.open(data.channel, session.claims.userId);
		if (placed.kind === 'bridge') await ctx.bridge!.attach(channel, placed.homeNodeId);
		const peer = new Peer({
			userId: session.claims.userId,
			displayName: session.claims.displayName,
			grants: session.claims.grants,
			rtpCapabilities: data.rtpCapabilities as ms.RtpCapabilities,
			link: session,
		});
		const { replaced, others } = channel.addPeer(peer);
		replaced?.link.disconnect(CLOSE_CODES.REPLACED, 'E_REPLACED: the same user joined this channel from another connection');
		session.peer = peer;
		session.channel = channel;
		session.log.info({ channel: channel.name, peerId: peer.id, replaced: replaced?.id }, 'peer joined');
		const moderated = channel.moderationOf(peer.userId);
		const moderation = moderated && { moderation: { ...moderated } };
		if (directions.length === 0) return { peerId: peer.id, channel: channel.name, peers: others, ...moderation };
		// Both at once (the worker creates them concurrently), and the recv transport's
		// consumers of producers already here start on their way before the client answers.
		try {
			const created = await Promise.all(directions.map(async (direction) => [direction, await createTransportInfo(session, peer, channel, direction, ctx)] as const));
			return { peerId: peer.id, channel: channel.name, peers: others, transports: Object.fromEntries(created), ...moderation };
		} catch (err) {
			// All or nothing: the client retries the join as a whole.
			channel.removePeer(peer);
			if (session.peer === peer) {
				session.peer = undefined;
				session.channel = undefined;
			}
			session.log.info({ channel: channel.name, peerId: peer.id }, 'join undone: its transports could not be created');
			throw err;
		}
	},

	async createTransport(session, data, ctx) {
		const { peer, channel } = joined(session);
		requireGrant(session, data.direction === 'send' ? 'canPublish' : 'canSubscribe');
		return createTransportInfo(session, peer, channel, data.direction, ctx);
	},

	async connectTransport(session, data) {
		const { peer } = joined(session);
		const transport = peer.webRtcTransport(data.transportId);
		// Not dtlsState: a client whose ICE is up before this request (ICE-lite answers checks
		// at once) finds DTLS already running as server, waiting for this fingerprint.
		if (connectCalled.has(transport)) throw new RequestError('E_INVALID_STATE', 'Transport already connected.');
		connectCalled.add(transport);
		try {
			await onLiveObject('transport', () => transport.connect({ dtlsParameters: data.dtlsParameters as ms.DtlsParameters }));
		} catch (err) {
			connectCalled.delete(transport);
			throw err;
		}
		return {};
	},

	async produce(session, data) {
		const { peer, channel } = joined(session);
		requireGrant(session, 'canPublish');
		const producer = await channel.produce(peer, data.transportId, data.kind, data.rtpParameters as ms.RtpParameters, data.paused ?? false);
		return { producerId: producer.id };
	},

	async pauseProducer(session, data) {
		const producer = joined(session).peer.producer(data.producerId);
		await onLiveObject('producer', () => producer.pause());
		return {};
	},

	async resumeProducer(session, data) {
		const { peer } = joined(session);
		const producer = peer.producer(data.producerId);
		if (peer.mutedByModerator) throw new RequestError('E_MUTED_BY_MODERATOR');
		await onLiveObject('producer', () => producer.resume());
		return {};
	},

	async closeProducer(session, data) {
		joined(session).peer.producer(data.producerId).close();
		return {};
	},

	async resumeConsumer(session, data) {
		const consumer = joined(session).peer.consumer(data.consumerId);
		await onLiveObject('consumer', () => consumer.resume());
		return {};
	},

	async restartIce(session, data, ctx) {
		const transport = joined(session).peer.webRtcTransport(data.transportId);
		const iceParameters = await onLiveObject('transport', () => transport.restartIce());
		return { iceParameters, iceServers: ctx.turn?.iceServers(session.claims.userId) ?? [] };
	},

	async getTransportStats(session, data) {
		const transport = joined(session).peer.webRtcTransport(data.transportId);
		return { stats: await onLiveObject('transport', () => transport.getStats()) };
	},

	async leave(session) {
		const { peer, channel } = joined(session);
		channel.removePeer(peer);
		session.peer = undefined;
		session.channel = undefined;
		session.log.info({ channel: channel.name, peerId: peer.id }, 'peer left');
		return {};
	},

	async startRecording(session, data, ctx) {
		const { peer, channel } = joined(session);
		requireGrant(session, 'canRecord');
		const producer = peer.producer(data.producerId);
		if (data.destination.kind === 'channel' && !channelAllowed(session.claims.channels, data.destination.channel)) {
			throw new RequestError('E_FORBIDDEN', `The access token does not allow channel "${data.destination.channel}".`);
		}
		const message = await ctx.voice.startRecording(session.claims.userId, data.destination, channel.router, producer);
		return { voiceMessageId: message.id, maxDurationMs: ctx.voiceMaxDurationMs };
	},

	async stopRecording(session, data, ctx) {
		requireGrant(session, 'canRecord');
		const message = await ctx.voice.stopRecording(session.claims.userId, data.voiceMessageId);
		return { voiceMessage: VoiceMessageService.info(message) };
	},
};

/**
 * Takes back what a request did when its client never got the answer: it succeeded after
 * its timeout (the client was told it failed) or after the socket closed (the close already
 * cleaned up what the session had, not this). Only what would outlive the mistake is undone:
 * a joined peer, a transport, a producer, a recording. Other methods change state the client sets again.
 */
export function undoRequest(session: SignalingSession, method: Method, result: unknown, ctx: Pick<HandlerContext, 'voice'>): void {
	const peer = session.joinedPeer;
	switch (method) {
		case 'join': {
			const channel = session.channel;
			if (!peer || !channel || peer.id !== (result as ResponseData['join']).peerId) return;
			channel.removePeer(peer);
			session.peer = undefined;
			session.channel = undefined;
			session.log.info({ channel: channel.name, peerId: peer.id }, 'late join undone');
			return;
		}
		case 'createTransport': {
			const { transportId } = result as ResponseData['createTransport'];
			if (peer?.transports.has(transportId)) peer.transport(transportId).close();
			return;
		}
		case 'produce': {
			const { producerId } = result as ResponseData['produce'];
			if (peer?.producers.has(producerId)) peer.producer(producerId).close();
			return;
		}
		case 'startRecording': {
			// Nobody knows its id: it would run to voice.maxDurationMs and become a message its
			// sender never meant to send.
			const { voiceMessageId } = result as ResponseData['startRecording'];
			void ctx.voice.discardRecording(session.claims.userId, voiceMessageId).then(
				() => session.log.info({ voiceMessageId }, 'late startRecording undone'),
				(err: unknown) => session.log.error({ err, voiceMessageId }, 'undoing a late startRecording failed'),
			);
			return;
		}
		default:
			return;
	}
}
