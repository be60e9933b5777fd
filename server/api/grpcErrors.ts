// Parley's errors as gRPC statuses. Every RequestError code (protocol/errors.ts) has its gRPC
// status here (a new code does not compile until it gets one); the Parley code travels in the
// `parley-error-code` trailer and, with the standard rich error model, in
// `grpc-status-details-bin`: a google.rpc.Status whose details hold an ErrorInfo (reason = the
// Parley code), a BadRequest with field violations for INVALID_ARGUMENT, a RetryInfo for the
// rate limit. Generic clients (grpcurl, grpc-status libraries) decode these.
import { Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { z } from 'zod';
import { PARLEY_ERROR_CODE_TRAILER, RETRY_AFTER_MS_TRAILER } from '../../protocol/apiOperations.js';
import type { ErrorCode } from '../../protocol/errors.js';
import { PROTO_ROOT } from '../../protocol/grpc/protoFiles.js';
import { RequestError } from '../../protocol/RequestError.js';

/** The gRPC status of each Parley error code. */
export const GRPC_STATUS_OF: Record<ErrorCode, GrpcStatus> = {
	E_BAD_REQUEST: GrpcStatus.INVALID_ARGUMENT,
	E_UNKNOWN_METHOD: GrpcStatus.UNIMPLEMENTED,
	E_MESSAGE_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
	E_RATE_LIMIT: GrpcStatus.RESOURCE_EXHAUSTED,
	E_AUTH: GrpcStatus.UNAUTHENTICATED,
	E_PROTOCOL_VERSION: GrpcStatus.FAILED_PRECONDITION,
	E_FORBIDDEN: GrpcStatus.PERMISSION_DENIED,
	E_METRICS_NOT_PUBLIC: GrpcStatus.NOT_FOUND,
	E_AUDIO_URL_INVALID: GrpcStatus.PERMISSION_DENIED,
	E_AUDIO_URL_EXPIRED: GrpcStatus.PERMISSION_DENIED,
	E_NOT_JOINED: GrpcStatus.FAILED_PRECONDITION,
	E_ALREADY_JOINED: GrpcStatus.FAILED_PRECONDITION,
	E_NOT_FOUND: GrpcStatus.NOT_FOUND,
	E_UNSUPPORTED_MEDIA: GrpcStatus.INVALID_ARGUMENT,
	E_INVALID_STATE: GrpcStatus.FAILED_PRECONDITION,
	E_CHANNEL_FULL: GrpcStatus.RESOURCE_EXHAUSTED,
	E_TOO_MANY_CHANNELS: GrpcStatus.RESOURCE_EXHAUSTED,
	E_TOO_MANY_TRANSPORTS: GrpcStatus.RESOURCE_EXHAUSTED,
	E_TOO_MANY_PRODUCERS: GrpcStatus.RESOURCE_EXHAUSTED,
	E_TOO_MANY_RECORDINGS: GrpcStatus.RESOURCE_EXHAUSTED,
	E_TOO_MANY_USER_CONNECTIONS: GrpcStatus.RESOURCE_EXHAUSTED,
	E_TOO_MANY_ADDRESS_CONNECTIONS: GrpcStatus.RESOURCE_EXHAUSTED,
	E_TOO_MANY_USER_CHANNELS: GrpcStatus.RESOURCE_EXHAUSTED,
	E_TOO_MANY_USER_RECORDINGS: GrpcStatus.RESOURCE_EXHAUSTED,
	E_TOO_MANY_PENDING_UPLOADS: GrpcStatus.RESOURCE_EXHAUSTED,
	E_STORED_BYTES_QUOTA: GrpcStatus.RESOURCE_EXHAUSTED,
	E_STORED_MESSAGES_QUOTA: GrpcStatus.RESOURCE_EXHAUSTED,
	E_STORAGE_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
	E_SHUTTING_DOWN: GrpcStatus.UNAVAILABLE,
	E_EVENT_OUT_OF_RANGE: GrpcStatus.OUT_OF_RANGE,
	E_REPLACED: GrpcStatus.ABORTED,
	E_REMOVED: GrpcStatus.PERMISSION_DENIED,
	E_MUTED_BY_MODERATOR: GrpcStatus.PERMISSION_DENIED,
	E_INTERNAL: GrpcStatus.INTERNAL,
	E_REDIRECT: GrpcStatus.FAILED_PRECONDITION,
	E_CLUSTER_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
	E_NODE_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
	E_GONE: GrpcStatus.NOT_FOUND,
	E_CONFLICT: GrpcStatus.ABORTED,
	E_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
	E_UNSUPPORTED_MEDIA_TYPE: GrpcStatus.INVALID_ARGUMENT,
	E_VERSION: GrpcStatus.FAILED_PRECONDITION,
	E_CHECKSUM_MISMATCH: GrpcStatus.DATA_LOSS,
	E_STORAGE_FULL: GrpcStatus.RESOURCE_EXHAUSTED,
	E_BUSY: GrpcStatus.UNAVAILABLE,
	E_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
	E_NOT_READY: GrpcStatus.FAILED_PRECONDITION,
	E_NOT_BUILT: GrpcStatus.UNAVAILABLE,
};

/** ErrorInfo.domain of Parley's errors. */
export const ERROR_DOMAIN = 'parley';

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : PROTO_ROOT + target);
root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto']);
const StatusType = root.lookupType('google.rpc.Status');
const detailTypes = {
	ErrorInfo: root.lookupType('google.rpc.ErrorInfo'),
	BadRequest: root.lookupType('google.rpc.BadRequest'),
	RetryInfo: root.lookupType('google.rpc.RetryInfo'),
};

function any(type: keyof typeof detailTypes, value: Record<string, unknown>): { type_url: string; value: Uint8Array } {
	const t = detailTypes[type];
	return { type_url: `type.googleapis.com/google.rpc.${type}`, value: t.encode(t.fromObject(value)).finish() };
}

export interface FieldViolation {
	field: string;
	description: string;
}

/** Field violations of a failed zod parse ("participant.peerId": "Required"). */
export function fieldViolations(error: z.ZodError): FieldViolation[] {
	return error.issues.map((issue) => ({ field: issue.path.join('.') || '(request)', description: issue.message }));
}

/** A RequestError as the error a gRPC handler fails its call with. */
export function toServiceError(err: RequestError, violations: FieldViolation[] = []): Partial<ServiceError> {
	const code = GRPC_STATUS_OF[err.code];
	const metadata = new Metadata();
	metadata.set(PARLEY_ERROR_CODE_TRAILER, err.code);
	const details = [any('ErrorInfo', { reason: err.code, domain: ERROR_DOMAIN })];
	if (violations.length > 0) details.push(any('BadRequest', { fieldViolations: violations }));
	const retryAfterMs = err.details.retryAfterMs;
	if (retryAfterMs !== undefined) {
		metadata.set(RETRY_AFTER_MS_TRAILER, String(retryAfterMs));
		details.push(any('RetryInfo', { retryDelay: { seconds: Math.floor(retryAfterMs / 1000), nanos: (retryAfterMs % 1000) * 1_000_000 } }));
	}
	const message = violations.length > 0 ? `${err.message} ${violations.map((v) => `${v.field}: ${v.description}`).join('; ')}` : err.message;
	metadata.set('grpc-status-details-bin', Buffer.from(StatusType.encode(StatusType.fromObject({ code, message, details })).finish()));
	return { code, details: message, metadata };
}

/** Decodes grpc-status-details-bin (clients and tests read the details with it). */
export function decodeStatusDetails(bin: Buffer): { code: number; message: string; errorInfo?: { reason: string; domain: string }; fieldViolations: FieldViolation[]; retryDelayMs?: number } {
	const s = StatusType.toObject(StatusType.decode(bin), { defaults: true }) as { code: number; message: string; details: { type_url: string; value: Uint8Array }[] };
	const out: ReturnType<typeof decodeStatusDetails> = { code: s.code, message: s.message, fieldViolations: [] };
	for (const d of s.details) {
		const name = d.type_url.split('/').pop()?.replace('google.rpc.', '') as keyof typeof detailTypes | undefined;
		const t = name && detailTypes[name];
		if (!t) continue;
		const v = t.toObject(t.decode(d.value), { defaults: true, longs: Number }) as Record<string, unknown>;
		if (name === 'ErrorInfo') out.errorInfo = { reason: v.reason as string, domain: v.domain as string };
		if (name === 'BadRequest') out.fieldViolations = v.fieldViolations as FieldViolation[];
		if (name === 'RetryInfo') {
			const delay = v.retryDelay as { seconds: number; nanos: number };
			out.retryDelayMs = delay.seconds * 1000 + Math.round(delay.nanos / 1e6);
		}
	}
	return out;
}

/** Any thrown value as a RequestError (unexpected ones become E_INTERNAL; the caller logs them). */
export function asRequestError(err: unknown): RequestError {
	return err instanceof RequestError ? err : new RequestError('E_INTERNAL');
}
