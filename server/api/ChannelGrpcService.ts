// parley.v1.ChannelService (protocol/proto/parley/v1/channels.proto): translates calls into
// the channel domain's operations (server/channels); the rules live there.
// This node's channels only: a channel served by another node of a cluster is NOT_FOUND here
// (forwarding over the cluster bus is not built yet).
import { z } from 'zod';
import type { Channel } from '../channels/Channel.js';
import type { ChannelRegistry } from '../channels/ChannelRegistry.js';
import type { Peer } from '../channels/Peer.js';
import { channelNameSchema } from '../../protocol/schemas.js';
import { RequestError } from '../../protocol/RequestError.js';
import type { ChannelInfo } from '../../protocol/grpc/generated/parley/v1/ChannelInfo.js';
import type { Participant } from '../../protocol/grpc/generated/parley/v1/Participant.js';
import type { ListChannelsResponse } from '../../protocol/grpc/generated/parley/v1/ListChannelsResponse.js';
import type { ListParticipantsResponse } from '../../protocol/grpc/generated/parley/v1/ListParticipantsResponse.js';
import type { MuteParticipantResponse } from '../../protocol/grpc/generated/parley/v1/MuteParticipantResponse.js';
import type { RemoveParticipantResponse } from '../../protocol/grpc/generated/parley/v1/RemoveParticipantResponse.js';
import type { UpdateParticipantResponse } from '../../protocol/grpc/generated/parley/v1/UpdateParticipantResponse.js';
import type { CloseChannelResponse } from '../../protocol/grpc/generated/parley/v1/CloseChannelResponse.js';
import type { ApiService, UnaryApiMethod } from './GrpcApiServer.js';
import { coversChannel } from './apiAuth.js';

export const CHANNEL_SERVICE_NAME = 'parley.v1.ChannelService';
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

const participantRef = z
	.object({ peerId: z.string().optional(), userId: z.string().optional(), target: z.enum(['peerId', 'userId'], { message: 'set peer_id or user_id' }) })
	.nullable()
	.refine((ref) => ref !== null, 'required')
	.transform((ref) => ref!)
	.refine((ref) => (ref[ref.target] ?? '').length > 0 && (ref[ref.target] ?? '').length <= 128, { message: 'must be 1-128 characters', path: ['peerId'] });

const reason = z.string().max(200, 'at most 200 characters');

const unary = <S extends z.ZodType, Res>(request: S, handle: UnaryApiMethod<z.output<S>, Res>['handle']): UnaryApiMethod<z.output<S>, Res> => ({ kind: 'unary', request: request as z.ZodType<z.output<S>>, handle });

function speaking(peer: Peer): boolean {
	for (const p of peer.producers.values()) if (!p.paused && !p.closed) return true;
	return false;
}

export function createChannelService(deps: { channels: ChannelRegistry; nodeId: string }): ApiService {
	const find = (name: string): Channel => {
		const channel = deps.channels.get(name);
		if (!channel || channel.closed) throw new RequestError('E_NOT_FOUND', `No channel "${name}" on this node.`);
		return channel;
	};
	const participant = (peer: Peer): Participant => ({
		peerId: peer.id,
		userId: peer.userId,
		displayName: peer.displayName,
		nodeId: peer.remoteNodeId ?? deps.nodeId,
		grants: { ...peer.grants },
		speaking: speaking(peer),
		mutedByModerator: peer.mutedByModerator,
	});
	const target = (channel: Channel, ref: { target: 'peerId' | 'userId'; peerId?: string | undefined; userId?: string | undefined }): Peer => {
		if (ref.target === 'peerId') return channel.peer(ref.peerId!);
		const peer = [...channel.peers.values()].find((p) => p.userId === ref.userId);
		if (!peer) throw new RequestError('E_NOT_FOUND', `No participant of user ${ref.userId} in channel ${channel.name}.`);
		return peer;
	};
	return {
		name: CHANNEL_SERVICE_NAME,
		methods: {
			ListChannels: unary(
				z.object({ page: z.object({ pageSize: z.number().int().min(0), pageToken: z.string().max(128) }).nullable() }),
				async (req, ctx): Promise<ListChannelsResponse> => {
					ctx.authorize('channels.list');
					const size = Math.min(req.page?.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
					const after = req.page?.pageToken ?? '';
					// The cursor is the last name of the page: pages stay stable while channels come and go.
					const names = deps.channels
						.channels()
						.filter((c) => !c.closed && c.name > after && coversChannel(ctx.principal, c.name))
						.sort((a, b) => (a.name < b.name ? -1 : 1));
					const page = names.slice(0, size);
					const channels: ChannelInfo[] = page.map((c) => {
						const peers = [...c.peers.values()];
						return { name: c.name, peers: peers.length, speakers: peers.filter(speaking).length, homeNodeId: deps.nodeId };
					});
					return { channels, page: { nextPageToken: names.length > size ? page[page.length - 1]!.name : '' } };
				},
			),
			ListParticipants: unary(z.object({ channel: channelNameSchema }), async (req, ctx): Promise<ListParticipantsResponse> => {
				ctx.authorize('channels.list', req.channel);
				return { participants: [...find(req.channel).peers.values()].map(participant) };
			}),
			MuteParticipant: unary(z.object({ channel: channelNameSchema, participant: participantRef, muted: z.boolean() }), async (req, ctx): Promise<MuteParticipantResponse> => {
				ctx.authorize('participants.mute', req.channel);
				const channel = find(req.channel);
				const peer = target(channel, req.participant);
				await channel.muteParticipant(peer, req.muted);
				return { participant: participant(peer) };
			}),
			RemoveParticipant: unary(z.object({ channel: channelNameSchema, participant: participantRef, reason }), async (req, ctx): Promise<RemoveParticipantResponse> => {
				ctx.authorize('participants.remove', req.channel);
				const channel = find(req.channel);
				channel.removeParticipant(target(channel, req.participant), req.reason || 'removed by a moderator');
				return {};
			}),
			UpdateParticipant: unary(
				z.object({
					channel: channelNameSchema,
					participant: participantRef,
					canPublish: z.boolean().optional(),
					canSubscribe: z.boolean().optional(),
					canRecord: z.boolean().optional(),
				}),
				async (req, ctx): Promise<UpdateParticipantResponse> => {
					ctx.authorize('participants.update', req.channel);
					const channel = find(req.channel);
					const peer = target(channel, req.participant);
					channel.updateGrants(peer, {
						canPublish: req.canPublish ?? peer.grants.canPublish,
						canSubscribe: req.canSubscribe ?? peer.grants.canSubscribe,
						canRecord: req.canRecord ?? peer.grants.canRecord,
					});
					return { participant: participant(peer) };
				},
			),
			CloseChannel: unary(z.object({ channel: channelNameSchema, reason }), async (req, ctx): Promise<CloseChannelResponse> => {
				ctx.authorize('channels.close', req.channel);
				return { participantsRemoved: find(req.channel).closeByModerator(req.reason || 'closed by a moderator') };
			}),
		},
	};
}
