// What an S3 failure means for Parley. An object store that cannot be reached, that fails on
// its side or throttles, or that refuses our credentials or bucket is "unavailable": the API
// answers 503 E_STORAGE_UNAVAILABLE with Retry-After (storageFailure() classifies the error by
// its code), finished files wait in the local work folder, /readyz names the storage check.
// Anything else (a 4xx about one request) is a bug or a missing object and is left as it is.
//
// The error message names the cause for the log (the operation, the S3 code, the endpoint's
// answer); clients only ever get the generic sentence of storageFailureText().

/** Why S3 is not usable right now. */
export type S3Unavailability = 'unreachable' | 'server error' | 'throttled' | 'refused';

export class StorageUnavailableError extends Error {
	override readonly name = 'StorageUnavailableError';
	/** storageFailure() maps this code to 'unavailable'. */
	readonly code = 'ES3UNAVAILABLE';
	/** What Parley was doing ('checkpoint put', 'download', ...), for the log and the metrics. */
	readonly operation: string;
	readonly kind: S3Unavailability;
	/** The S3 error code (NoSuchBucket, SignatureDoesNotMatch, SlowDown, ...) or errno, when known. */
	readonly s3Code: string | undefined;
	/** The HTTP status S3 answered, when it answered. */
	readonly httpStatus: number | undefined;

	constructor(operation: string, kind: S3Unavailability, s3Code: string | undefined, httpStatus: number | undefined, cause: unknown) {
		super(`S3 ${operation} failed: ${kind}${s3Code ? ` (${s3Code}${httpStatus ? `, HTTP ${httpStatus}` : ''})` : httpStatus ? ` (HTTP ${httpStatus})` : ''}: ${(cause as Error | undefined)?.message ?? String(cause)}`, { cause });
		this.operation = operation;
		this.kind = kind;
		this.s3Code = s3Code;
		this.httpStatus = httpStatus;
	}
}

/** Errors of the network or socket: the server is not there (or stopped answering). */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'ESOCKETTIMEDOUT', 'UND_ERR_SOCKET']);
/** Refusals of the credentials, the signature or the bucket: no request can succeed until an
 * operator acts, but nothing is wrong with the request itself. */
const REFUSAL_CODES = new Set([
	'InvalidAccessKeyId',
	'SignatureDoesNotMatch',
	'AccessDenied',
	'NoSuchBucket',
	'AllAccessDisabled',
	'AccountProblem',
	'InvalidToken',
	'ExpiredToken',
	'TokenRefreshRequired',
	'RequestTimeTooSkewed',
	'Forbidden',
	'CredentialsProviderError',
]);
const THROTTLE_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests', 'ServiceUnavailable']);

interface SdkErrorShape {
	name?: unknown;
	code?: unknown;
	Code?: unknown;
	$metadata?: { httpStatusCode?: unknown };
	$fault?: unknown;
	cause?: unknown;
}

/** The S3 error code of an SDK error (its name), or a Node errno code. */
export function s3ErrorCode(err: unknown): string | undefined {
	const e = err as SdkErrorShape | undefined;
	if (!e || typeof e !== 'object') return undefined;
	if (typeof e.Code === 'string') return e.Code;
	if (typeof e.code === 'string') return e.code;
	if (typeof e.name === 'string' && e.name !== 'Error') return e.name;
	return undefined;
}

export function s3HttpStatus(err: unknown): number | undefined {
	const status = (err as SdkErrorShape | undefined)?.$metadata?.httpStatusCode;
	return typeof status === 'number' ? status : undefined;
}

/** A missing object (GET/HEAD of a key nobody wrote). A missing bucket is not this. */
export function isS3NotFound(err: unknown): boolean {
	const code = s3ErrorCode(err);
	if (code === 'NoSuchBucket') return false;
	return code === 'NoSuchKey' || code === 'NotFound' || s3HttpStatus(err) === 404;
}

/** Why this error makes S3 unusable right now, or undefined when it is about the request. */
export function s3Unavailability(err: unknown): { kind: S3Unavailability; code: string | undefined; status: number | undefined } | undefined {
	if (err instanceof StorageUnavailableError) return { kind: err.kind, code: err.s3Code, status: err.httpStatus };
	const code = s3ErrorCode(err);
	const status = s3HttpStatus(err);
	const causeCode = s3ErrorCode((err as SdkErrorShape | undefined)?.cause);
	if ((code && NETWORK_CODES.has(code)) || (causeCode && NETWORK_CODES.has(causeCode)) || code === 'TimeoutError' || code === 'RequestTimeout') {
		return { kind: 'unreachable', code: code && NETWORK_CODES.has(code) ? code : (causeCode ?? code), status };
	}
	if (code && THROTTLE_CODES.has(code)) return { kind: 'throttled', code, status };
	if (code && REFUSAL_CODES.has(code)) return { kind: 'refused', code, status };
	// A HEAD has no body, so its refusals come as a bare 403 (and a missing bucket as a 404
	// that callers of HeadBucket handle themselves).
	if (status === 403) return { kind: 'refused', code, status };
	if (status === 429) return { kind: 'throttled', code, status };
	if (status !== undefined && status >= 500) return { kind: 'server error', code, status };
	// The SDK could not even make the request: no credentials in the chain, a socket hang-up.
	if (code === 'CredentialsProviderError' || (err instanceof Error && /socket hang up|ECONNREFUSED|ECONNRESET/.test(err.message))) return { kind: 'unreachable', code, status };
	return undefined;
}

/** The error to throw for an S3 failure: StorageUnavailableError when S3 is unusable, else the error itself. */
export function toStorageError(operation: string, err: unknown): unknown {
	if (err instanceof StorageUnavailableError) return err;
	const u = s3Unavailability(err);
	return u ? new StorageUnavailableError(operation, u.kind, u.code, u.status, err) : err;
}

/** Runs one S3 operation, turning "S3 is unusable" errors into StorageUnavailableError. */
export async function s3Call<T>(operation: string, run: () => Promise<T>): Promise<T> {
	try {
		return await run();
	} catch (err) {
		throw toStorageError(operation, err);
	}
}
