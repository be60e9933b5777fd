// A failed call of the backend API as one error type: the gRPC status, Parley's error code
// (the `parley-error-code` trailer, protocol/errors.ts) and, for RESOURCE_EXHAUSTED over the
// rate limit, how long to wait before a retry (the `retry-after-ms` trailer).
import { status as GrpcStatus, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { PARLEY_ERROR_CODE_TRAILER, RETRY_AFTER_MS_TRAILER } from '../protocol/apiOperations.js';
import { ERROR_CODES, type ErrorCode } from '../protocol/errors.js';

export class SdkError extends Error {
	override readonly name = 'SdkError';
	/** The gRPC status code (grpc.status.UNAUTHENTICATED, ...). */
	readonly grpcStatus: GrpcStatus;
	/** Parley's error code (E_AUTH, E_NOT_FOUND, ...); undefined when the server sent none
	 * (the call did not reach Parley: no connection, deadline, cancelled). */
	readonly code: ErrorCode | undefined;
	/** RESOURCE_EXHAUSTED over the rate limit: milliseconds until a retry may succeed. */
	readonly retryAfterMs: number | undefined;
	/** The trailers as received. */
	readonly metadata: Metadata | undefined;

	constructor(message: string, grpcStatus: GrpcStatus, options: { code?: ErrorCode; retryAfterMs?: number; metadata?: Metadata; cause?: unknown } = {}) {
		super(message, { cause: options.cause });
		this.grpcStatus = grpcStatus;
		this.code = options.code;
		this.retryAfterMs = options.retryAfterMs;
		this.metadata = options.metadata;
	}

	/** The status name: "UNAUTHENTICATED", "NOT_FOUND", ... */
	get grpcStatusName(): string {
		return GrpcStatus[this.grpcStatus] ?? String(this.grpcStatus);
	}

	/** A grpc-js ServiceError as an SdkError. */
	static from(err: ServiceError): SdkError {
		const trailer = err.metadata?.get(PARLEY_ERROR_CODE_TRAILER)[0];
		const code = typeof trailer === 'string' && Object.hasOwn(ERROR_CODES, trailer) ? (trailer as ErrorCode) : undefined;
		const retry = Number(err.metadata?.get(RETRY_AFTER_MS_TRAILER)[0]);
		return new SdkError(err.details || err.message, err.code, {
			...(code && { code }),
			...(Number.isFinite(retry) && retry >= 0 && err.metadata?.get(RETRY_AFTER_MS_TRAILER).length ? { retryAfterMs: retry } : {}),
			metadata: err.metadata,
			cause: err,
		});
	}
}
