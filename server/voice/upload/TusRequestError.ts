// A tus request that cannot be served: the HTTP status tus prescribes, a stable code and a
// sentence for people. Thrown inside the upload server; turned into a reply at the route.
import type { HttpReply } from '../../http/HttpServer.js';

export type TusErrorCode =
	| 'E_BAD_REQUEST'
	| 'E_AUTH'
	| 'E_FORBIDDEN'
	| 'E_NOT_FOUND'
	| 'E_GONE'
	| 'E_CONFLICT'
	| 'E_TOO_LARGE'
	| 'E_UNSUPPORTED_MEDIA_TYPE'
	| 'E_VERSION'
	| 'E_CHECKSUM_MISMATCH'
	| 'E_STORAGE_FULL'
	| 'E_STORAGE_UNAVAILABLE'
	| 'E_INTERNAL';

export class TusRequestError extends Error {
	override readonly name = 'TusRequestError';
	readonly status: number;
	readonly code: TusErrorCode;
	readonly headers: Record<string, string>;

	constructor(status: number, code: TusErrorCode, message: string, headers: Record<string, string> = {}) {
		super(message);
		this.status = status;
		this.code = code;
		this.headers = headers;
	}

	toReply(): HttpReply {
		return { status: this.status, body: { error: { code: this.code, message: this.message } }, headers: this.headers };
	}
}
