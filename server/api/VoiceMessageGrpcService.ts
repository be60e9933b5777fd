// parley.v1.VoiceMessageService (protocol/proto/parley/v1/voice_messages.proto): Get, List,
// Delete and SubscribeStatus over the voice-message store and the status feed.
//
// What a token sees: messages sent to channels its grants cover; messages sent to users only
// with a grant for every channel ("*"): a user's messages belong to no channel a narrower
// grant could name. A message the token may not see is NOT_FOUND, as an unknown id is, so ids
// cannot be probed.
import { z } from 'zod';
import { RequestError } from '../../protocol/RequestError.js';
import type { VoiceMessageStatusEvent } from '../../protocol/grpc/generated/parley/v1/VoiceMessageStatusEvent.js';
import type { VoiceMessage as VoiceMessageProto } from '../../protocol/grpc/generated/parley/v1/VoiceMessage.js';
import { VOICE_MESSAGE_STATUSES } from '../../protocol/schemas.js';
import { EventLogOutOfRangeError, InvalidEventPositionError, type LoggedVoiceEvent } from '../voice/store/VoiceEventLog.js';
import { InvalidCursorError, type VoiceMessageStore } from '../voice/store/VoiceMessageStore.js';
import { formatDestination, parseDestination, voiceMessageInfo, type VoiceMessage } from '../voice/voiceMessage.js';
import type { VoiceStatusFeed } from '../voice/VoiceStatusFeed.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import type { ApiCallContext, ApiService } from './GrpcApiServer.js';
import { coversChannel, type ApiPrincipal } from './apiAuth.js';

export interface VoiceMessageGrpcDeps {
	store: VoiceMessageStore;
	feed: VoiceStatusFeed;
	/** Deletes the message's file and its record (the record's event follows); false when unknown. */
	remove(id: string): Promise<boolean>;
}

export const LIST_DEFAULT_PAGE_SIZE = 50;
export const LIST_MAX_PAGE_SIZE = 100;

const id = z.string().uuid('must be a voice message id');
const destination = z.string().regex(/^(channel|user):.{1,200}$/, 'must be channel:<name> or user:<id>');
const page = z.object({ pageSize: z.number().int().min(0).max(LIST_MAX_PAGE_SIZE, `at most ${LIST_MAX_PAGE_SIZE}`), pageToken: z.string().max(200) }).partial();

const getRequest = z.object({ id });
const listRequest = z
	.object({ ownerId: z.string().max(200), destination: z.union([z.literal(''), destination]), page: page.nullish() })
	.partial()
	.superRefine((r, ctx) => {
		if (!!r.ownerId === !!r.destination) ctx.addIssue({ code: 'custom', path: ['owner_id'], message: 'give exactly one of owner_id and destination' });
	});
const subscribeRequest = z.object({
	filter: z
		.object({
			ownerId: z.string().max(200),
			destination: z.union([z.literal(''), destination]),
			voiceMessageId: z.union([z.literal(''), id]),
			statuses: z.array(z.enum(VOICE_MESSAGE_STATUSES)).max(VOICE_MESSAGE_STATUSES.length),
		})
		.partial()
		.nullish(),
	afterEventId: z.string().max(64).optional(),
});

function visibleTo(principal: ApiPrincipal, dest: string): boolean {
	if (dest.startsWith('channel:')) return coversChannel(principal, dest.slice('channel:'.length));
	return principal.channels.includes('*');
}

function toProto(m: VoiceMessageInfo): VoiceMessageProto {
	return {
		id: m.id,
		ownerId: m.ownerId,
		destination: formatDestination(m.destination),
		source: m.source,
		status: m.status,
		createdAtMs: String(m.createdAt),
		durationMs: Math.round(m.durationMs ?? 0),
		sizeBytes: String(m.sizeBytes ?? 0),
		failureReason: m.failureReason ?? '',
		originalSha256: m.originalSha256 ?? '',
	};
}

/** Converted once per logged event: the feed hands the same object to every subscriber, so
 * they get the same response object, which the server then encodes once (GrpcApiServer). */
const converted = new WeakMap<LoggedVoiceEvent, VoiceMessageStatusEvent>();
function toEvent(logged: LoggedVoiceEvent): VoiceMessageStatusEvent {
	let out = converted.get(logged);
	if (!out) {
		const { position, event } = logged;
		out = { eventId: position, deliveryId: event.eventId, event: event.event, sequence: event.sequence, atMs: String(event.at), message: toProto(event.message) };
		converted.set(logged, out);
	}
	return out;
}

/** The store's cursor, opaque to clients (base64url of "<createdAt>:<id>"). */
function encodeToken(cursor: string | undefined): string {
	return cursor ? Buffer.from(cursor).toString('base64url') : '';
}
function decodeToken(token: string | undefined): string | undefined {
	if (!token) return undefined;
	return Buffer.from(token, 'base64url').toString();
}

async function readable(deps: VoiceMessageGrpcDeps, ctx: ApiCallContext, messageId: string): Promise<VoiceMessage> {
	const m = await deps.store.get(messageId);
	if (!m || !visibleTo(ctx.principal, formatDestination(m.destination))) throw new RequestError('E_NOT_FOUND', `No voice message ${messageId}.`);
	return m;
}

export function voiceMessageGrpcService(deps: VoiceMessageGrpcDeps): ApiService {
	return {
		name: 'parley.v1.VoiceMessageService',
		methods: {
			Get: {
				kind: 'unary',
				request: getRequest,
				async handle(req: z.infer<typeof getRequest>, ctx: ApiCallContext) {
					ctx.authorize('voiceMessages.read');
					return toProto(voiceMessageInfo(await readable(deps, ctx, req.id)));
				},
			},
			List: {
				kind: 'unary',
				request: listRequest,
				async handle(req: z.infer<typeof listRequest>, ctx: ApiCallContext) {
					ctx.authorize('voiceMessages.read');
					const limit = req.page?.pageSize || LIST_DEFAULT_PAGE_SIZE;
					const before = decodeToken(req.page?.pageToken);
					if (req.destination && !visibleTo(ctx.principal, req.destination)) throw new RequestError('E_FORBIDDEN', `The API token does not cover ${req.destination}.`);
					try {
						const result = req.destination
							? await deps.store.listFor(parseDestination(req.destination)!, { limit, ...(before && { before }) })
							: await deps.store.listByOwner(req.ownerId!, { limit, ...(before && { before }) });
						const visible = result.messages.filter((m) => visibleTo(ctx.principal, formatDestination(m.destination)));
						return { messages: visible.map((m) => toProto(voiceMessageInfo(m))), page: { nextPageToken: encodeToken(result.nextCursor) } };
					} catch (err) {
						if (err instanceof InvalidCursorError) throw new RequestError('E_BAD_REQUEST', 'page.page_token is not a token this service gave out.');
						throw err;
					}
				},
			},
			Delete: {
				kind: 'unary',
				request: getRequest,
				async handle(req: z.infer<typeof getRequest>, ctx: ApiCallContext) {
					ctx.authorize('voiceMessages.delete');
					await readable(deps, ctx, req.id);
					if (!(await deps.remove(req.id))) throw new RequestError('E_NOT_FOUND', `No voice message ${req.id}.`);
					return {};
				},
			},
			SubscribeStatus: {
				kind: 'serverStream',
				request: subscribeRequest,
				async handle(req: z.infer<typeof subscribeRequest>, ctx: ApiCallContext, send: (e: VoiceMessageStatusEvent) => Promise<void>) {
					ctx.authorize('voiceMessages.read');
					const f = req.filter ?? {};
					if (f.destination && !visibleTo(ctx.principal, f.destination)) throw new RequestError('E_FORBIDDEN', `The API token does not cover ${f.destination}.`);
					const subscription = deps.feed.subscribe({
						after: req.afterEventId || undefined,
						filter: {
							...(f.ownerId && { ownerId: f.ownerId }),
							...(f.destination && { destination: f.destination }),
							...(f.voiceMessageId && { voiceMessageId: f.voiceMessageId }),
							...(f.statuses?.length && { statuses: f.statuses }),
						},
						visible: (e) => visibleTo(ctx.principal, e.event.destination),
						signal: ctx.signal,
					});
					try {
						// send() waits while the client is not reading; the feed reads the next batch
						// only then, so a slow subscriber costs one batch of memory, not a queue.
						for await (const e of subscription) await send(toEvent(e));
						// The feed ends only when the node shuts down (a cancelled call aborts instead):
						// UNAVAILABLE tells the client to resume, here after a restart or on another node.
						if (!ctx.signal.aborted) throw new RequestError('E_SHUTTING_DOWN', 'The server is shutting down: subscribe again with after_event_id set to the last event id received.');
					} catch (err) {
						if (err instanceof EventLogOutOfRangeError) throw new RequestError('E_EVENT_OUT_OF_RANGE', `${err.message}; resume from event ${err.oldestPosition} or later.`);
						if (err instanceof InvalidEventPositionError) throw new RequestError('E_BAD_REQUEST', `after_event_id: ${err.message}`);
						throw err;
					}
				},
			},
		},
	};
}
