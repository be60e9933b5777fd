// parley.v1.ChannelService (protocol/proto/parley/v1/channels.proto): translates calls into
// the channel domain's operations (server/channels); the rules live there.
// In a cluster a call works at any node: it is authorized where it arrives, then runs where
// the channel is (ChannelOperations.ts forwards it to the channel's home over the cluster bus).
import { z } from 'zod';
import { channelNameSchema } from '../../protocol/schemas.js';
import type { ListChannelsResponse } from '../../protocol/grpc/generated/parley/v1/ListChannelsResponse.js';
import type { ListParticipantsResponse } from '../../protocol/grpc/generated/parley/v1/ListParticipantsResponse.js';
import type { MuteParticipantResponse } from '../../protocol/grpc/generated/parley/v1/MuteParticipantResponse.js';
import type { RemoveParticipantResponse } from '../../protocol/grpc/generated/parley/v1/RemoveParticipantResponse.js';
import type { UpdateParticipantResponse } from '../../protocol/grpc/generated/parley/v1/UpdateParticipantResponse.js';
import type { CloseChannelResponse } from '../../protocol/grpc/generated/parley/v1/CloseChannelResponse.js';
import type { ApiService, UnaryApiMethod } from './GrpcApiServer.js';
import type { ChannelOperations, ParticipantRef } from './ChannelOperations.js';

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

export function createChannelService(deps: { operations: ChannelOperations }): ApiService {
	const ops = deps.operations;
	return {
		name: CHANNEL_SERVICE_NAME,
		methods: {
			ListChannels: unary(
				z.object({ page: z.object({ pageSize: z.number().int().min(0), pageToken: z.string().max(128) }).nullable() }),
				async (req, ctx): Promise<ListChannelsResponse> => {
					ctx.authorize('channels.list');
					const size = Math.min(req.page?.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
					// The cursor is the last name of the page: pages stay stable while channels come and go.
					const { channels, more } = await ops.listChannels(req.page?.pageToken ?? '', size, ctx.principal.channels, ctx.signal);
					return { channels, page: { nextPageToken: more ? channels[channels.length - 1]!.name : '' } };
				},
			),
			ListParticipants: unary(z.object({ channel: channelNameSchema }), async (req, ctx): Promise<ListParticipantsResponse> => {
				ctx.authorize('channels.list', req.channel);
				const { participants } = await ops.run({ op: 'listParticipants', channel: req.channel }, ctx.signal);
				return { participants: participants ?? [] };
			}),
			MuteParticipant: unary(z.object({ channel: channelNameSchema, participant: participantRef, muted: z.boolean() }), async (req, ctx): Promise<MuteParticipantResponse> => {
				ctx.authorize('participants.mute', req.channel);
				const { participant } = await ops.run({ op: 'mute', channel: req.channel, participant: ref(req.participant), muted: req.muted }, ctx.signal);
				return { participant: participant ?? null };
			}),
			RemoveParticipant: unary(z.object({ channel: channelNameSchema, participant: participantRef, reason }), async (req, ctx): Promise<RemoveParticipantResponse> => {
				ctx.authorize('participants.remove', req.channel);
				await ops.run({ op: 'remove', channel: req.channel, participant: ref(req.participant), reason: req.reason }, ctx.signal);
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
					const grants = { ...(req.canPublish !== undefined && { canPublish: req.canPublish }), ...(req.canSubscribe !== undefined && { canSubscribe: req.canSubscribe }), ...(req.canRecord !== undefined && { canRecord: req.canRecord }) };
					const { participant } = await ops.run({ op: 'update', channel: req.channel, participant: ref(req.participant), grants }, ctx.signal);
					return { participant: participant ?? null };
				},
			),
			CloseChannel: unary(z.object({ channel: channelNameSchema, reason }), async (req, ctx): Promise<CloseChannelResponse> => {
				ctx.authorize('channels.close', req.channel);
				const { participantsRemoved } = await ops.run({ op: 'close', channel: req.channel, reason: req.reason, scope: 'channel' }, ctx.signal);
				return { participantsRemoved: participantsRemoved ?? 0 };
			}),
		},
	};
}

/** The validated reference, without the field the target does not name. */
function ref(r: z.output<typeof participantRef>): ParticipantRef {
	return r.target === 'peerId' ? { target: 'peerId', peerId: r.peerId! } : { target: 'userId', userId: r.userId! };
}
