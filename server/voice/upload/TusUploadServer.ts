// Resumable voice-message uploads over tus 1.0.0 (core, creation, termination, checksum,
// expiration), so clients that recorded offline can send files with the stock tus-js-client.
//
//   OPTIONS basePath[/:id]  204, what the server supports (no auth: CORS preflights carry none)
//   POST    basePath        201 + Location: create an upload (needs canRecord and the destination)
//   HEAD    basePath/:id    200 + Upload-Offset: how much is durably stored
//   PATCH   basePath/:id    204 + Upload-Offset: append one chunk, durable before the reply
//   DELETE  basePath/:id    204: drop the upload
//
// Uploads belong to the user who created them; to anyone else they do not exist (404).
// The bytes live in an UploadStore (DiskUploadStore under storage.dir, or S3UploadStore in
// the bucket when nodes share no directory); once the last one is durable, onComplete
// receives the file before the final PATCH is acknowledged.
import { httpErrorReply, type HttpReply, type HttpRouteRequest, type HttpServer } from '../../http/HttpServer.js';
import { channelAllowed, type AccessClaims, type TokenPolicy } from '../../auth/accessToken.js';
import { authenticate, UPLOAD_TOKEN } from '../../auth/httpAuth.js';
import { RequestError } from '../../../protocol/RequestError.js';
import type { Logger } from '../../telemetry/logger.js';
import type { HttpRateLimits } from '../../ratelimit/rateLimits.js';
import { describeDelay } from '../../ratelimit/RateLimiter.js';
import { parseDestination, type Destination } from '../voiceMessage.js';
import { storageFailure, storageFailureText, type StorageFailure } from '../files/storageDirectory.js';
import {
	CHECKSUM_ALGORITHMS,
	checksumMatches,
	EXPOSED_HEADERS,
	httpDate,
	isOffsetOctetStream,
	OFFSET_OCTET_STREAM,
	parseNonNegativeInteger,
	parseUploadChecksum,
	parseUploadMetadata,
	TUS_EXTENSIONS,
	TUS_VERSION,
} from './tusProtocol.js';
import { DiskUploadStore, UPLOAD_ID_PATTERN, type StoredUpload, type UploadStore } from './UploadStore.js';
import { PendingUploads } from './PendingUploads.js';

export interface CompletedUpload {
	uploadId: string;
	/** claims.userId of the creator. */
	ownerId: string;
	destination: Destination;
	/** The client's file name (metadata only; never part of a path). */
	fileName: string;
	fileType: string;
	/**
	 * Absolute path of the complete file. It is yours to read, copy or hard-link during
	 * onComplete; do not move or delete it: it is removed once onComplete resolves, and must
	 * still be there if a crash makes the server call onComplete again.
	 */
	path: string;
	sizeBytes: number;
	/** Hex sha256 of the whole file. */
	sha256: string;
}

/** What metrics count; every hook is optional. */
export interface UploadEvents {
	/** POST created an upload. */
	created?(): void;
	/** HEAD on an unfinished upload: a client resuming. */
	resumed?(): void;
	/** A PATCH body was stored. */
	received?(bytes: number): void;
	/** The full file was handed over (onComplete succeeded). */
	completed?(sizeBytes: number): void;
	/** onComplete threw; the upload is kept for a retry. */
	completeFailed?(): void;
	/** An unfinished upload expired and was removed. */
	expired?(): void;
	/** Storing failed on the disk or in the metadata (answered 503/507); the error says which
	 * operation. */
	storageFailed?(error: unknown): void;
}

export interface TusUploadServerOptions {
	/** Where the routes live, e.g. '/voice/uploads' (no trailing slash). */
	basePath: string;
	/** Where partial uploads live. Absent: a DiskUploadStore in `dir`. */
	store?: UploadStore;
	/** Directory for partial uploads on disk (created if missing): <id>.part and <id>.json per
	 * upload. Needed without `store`. */
	dir?: string;
	/** Largest Upload-Length accepted (413 beyond). */
	maxSizeBytes: number;
	/** Incomplete uploads expire this long after creation (410, then removed by cleanupExpired). */
	expiryMs: number;
	/** Largest PATCH body, held in memory until it is written (default 8 MiB). */
	maxChunkBytes?: number;
	/** How often cleanupExpired runs on its own (default: expiryMs, at most hourly; 0 never). */
	cleanupIntervalMs?: number;
	/** Verifies the `Authorization: Bearer <jwt>` of every request (the WebSocket's key). */
	signingKey: Uint8Array;
	/** Lifetime, audience and issuer rules (auth.*); the defaults when absent. */
	tokenPolicy?: TokenPolicy;
	/**
	 * Called when the last byte is durable, before the final PATCH is acknowledged. A throw
	 * answers 500 and keeps the upload: the next HEAD or final PATCH calls it again. It is
	 * called once per upload, except after a crash between its success and the server
	 * recording that success: make it idempotent on uploadId.
	 */
	onComplete(upload: CompletedUpload): Promise<void>;
	log: Logger;
	events?: UploadEvents;
	/** Per-address (before authentication) and per-user request limits: 429 with Retry-After. */
	rateLimits?: HttpRateLimits;
	/** Unfinished uploads one user may hold (voice.maxPendingUploadsPerUser); 0 or absent: no limit. */
	maxPendingPerUser?: number;
	/**
	 * The stored-bytes and stored-messages quotas: why `ownerId` may not store `adding` more
	 * (an upload's Upload-Length and 1, plus what their other unfinished uploads promise), or
	 * undefined. Absent: no such quota.
	 */
	storedQuota?: (ownerId: string, adding: { bytes: number; messages: number }) => Promise<RequestError | undefined>;
}

const DEFAULT_MAX_CHUNK_BYTES = 8 * 1_048_576;

/** 507 when the disk is full, 503 when it is not writable: both are worth retrying later. */
function storageError(failure: StorageFailure): RequestError {
	const message = `The upload cannot be stored now: ${storageFailureText(failure)}. Retry later from the current offset.`;
	return failure === 'full' ? new RequestError('E_STORAGE_FULL', message) : new RequestError('E_STORAGE_UNAVAILABLE', message, {}, { 'Retry-After': '30' });
}

/** Every destination a sender names: a user always, a channel when the token allows it. */
function mayAddress(claims: AccessClaims, destination: Destination): boolean {
	return destination.kind === 'user' || channelAllowed(claims.channels, destination.channel);
}
const MAX_CLEANUP_INTERVAL_MS = 3_600_000;
const MAX_METADATA_TEXT = 255;

/** On every reply, including the 413/500 ones HttpServer makes itself. */
const COMMON_HEADERS = {
	'Tus-Resumable': TUS_VERSION,
	'Access-Control-Expose-Headers': EXPOSED_HEADERS.join(', '),
} as const;

export class TusUploadServer {
	readonly #options: TusUploadServerOptions;
	readonly #store: UploadStore;
	readonly #log: Logger;
	readonly #pending: PendingUploads;
	#cleanupTimer: NodeJS.Timeout | undefined;
	#cleaning: Promise<number> | undefined;

	constructor(http: HttpServer, options: TusUploadServerOptions) {
		if (!/^\/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$/.test(options.basePath)) throw new TypeError(`basePath must start with / and not end with one: ${options.basePath}`);
		for (const name of ['maxSizeBytes', 'expiryMs'] as const) {
			if (!Number.isSafeInteger(options[name]) || options[name] <= 0) throw new TypeError(`${name} must be a positive integer`);
		}
		const maxChunkBytes = options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
		if (!Number.isSafeInteger(maxChunkBytes) || maxChunkBytes <= 0) throw new TypeError('maxChunkBytes must be a positive integer');
		this.#options = options;
		this.#log = options.log;
		if (!options.store && !options.dir) throw new TypeError('TusUploadServer needs a store or a dir');
		this.#store = options.store ?? new DiskUploadStore(options.dir!, options.log);
		this.#pending = new PendingUploads(options.maxPendingPerUser ?? 0, options.storedQuota !== undefined);

		const base = options.basePath;
		const routeOptions = { headers: { ...COMMON_HEADERS } };
		http.route('options', base, () => this.#capabilities(), routeOptions);
		http.route('options', `${base}/:id`, () => this.#capabilities(), routeOptions);
		http.route('post', base, (req) => this.#serve(req, (claims) => this.#create(req, claims)), routeOptions);
		http.route('head', `${base}/:id`, (req) => this.#serve(req, (claims) => this.#status(req, claims)), routeOptions);
		http.route('patch', `${base}/:id`, (req) => this.#serve(req, (claims) => this.#append(req, claims)), {
			...routeOptions,
			readBody: true,
			maxBodyBytes: maxChunkBytes,
		});
		http.route('del', `${base}/:id`, (req) => this.#serve(req, (claims) => this.#terminate(req, claims)), routeOptions);

		const intervalMs = options.cleanupIntervalMs ?? Math.min(options.expiryMs, MAX_CLEANUP_INTERVAL_MS);
		if (intervalMs > 0) {
			this.#cleanupTimer = setInterval(() => {
				this.cleanupExpired().catch((err: unknown) => this.#log.error({ err }, 'upload cleanup failed'));
			}, intervalMs);
			// Cleanup is housekeeping: it must not keep the process alive.
			this.#cleanupTimer.unref();
		}
	}

	/** Uploads held in memory (tests check the count returns to zero). */
	get cachedUploads(): number {
		return this.#store.cachedCount;
	}

	/**
	 * Deletes incomplete uploads past their expiry (returns how many), the records of
	 * completed ones past theirs, and files left behind by crashes.
	 */
	async cleanupExpired(): Promise<number> {
		// One sweep at a time: the timer and a caller may ask together.
		this.#cleaning ??= this.#sweep().finally(() => {
			this.#cleaning = undefined;
		});
		return this.#cleaning;
	}

	close(): void {
		clearInterval(this.#cleanupTimer);
		this.#cleanupTimer = undefined;
	}

	async #sweep(): Promise<number> {
		let expired = 0;
		for (const id of await this.#store.ids()) {
			try {
				await this.#store.withUpload(id, async (upload) => {
					if (!upload || Date.now() < upload.record.expiresAt) return;
					await upload.remove();
					this.#pending.release(upload.record.ownerId, id);
					if (!upload.record.completed) {
						expired++;
						this.#options.events?.expired?.();
						this.#log.info({ uploadId: id, ownerId: upload.record.ownerId, offsetBytes: upload.offsetBytes }, 'expired upload removed');
					}
				});
			} catch (err) {
				// One unreadable record must not stop the sweep of the others.
				this.#log.error({ err, uploadId: id }, 'cannot check upload for expiry');
			}
		}
		await this.#store.removeStrays(this.#options.expiryMs);
		return expired;
	}

	#capabilities(): HttpReply {
		return {
			status: 204,
			headers: {
				'Tus-Version': TUS_VERSION,
				'Tus-Extension': TUS_EXTENSIONS.join(','),
				'Tus-Max-Size': String(this.#options.maxSizeBytes),
				'Tus-Checksum-Algorithm': CHECKSUM_ALGORITHMS.join(','),
			},
		};
	}

	/** The checks every tus request shares (version, then identity), and errors to replies. */
	async #serve(req: HttpRouteRequest, handle: (claims: AccessClaims) => Promise<HttpReply>): Promise<HttpReply> {
		try {
			const limits = this.#options.rateLimits;
			const byAddress = await limits?.admitAddress(req);
			if (byAddress) return byAddress;
			if (req.header('tus-resumable') !== TUS_VERSION) {
				throw new RequestError('E_VERSION', `Tus-Resumable must be ${TUS_VERSION}.`, {}, { 'Tus-Version': TUS_VERSION });
			}
			const claims = await this.#authenticate(req);
			const byUser = await limits?.admitUser(claims.userId);
			return byUser ?? (await handle(claims));
		} catch (err) {
			if (err instanceof RequestError) return httpErrorReply(err);
			const failure = storageFailure(err);
			if (failure) {
				// The offset only moves once a chunk is durable, so the client resumes from HEAD.
				req.log.warn({ err }, 'upload storage failed');
				this.#options.events?.storageFailed?.(err);
				return httpErrorReply(storageError(failure));
			}
			throw err;
		}
	}

	async #authenticate(req: HttpRouteRequest): Promise<AccessClaims> {
		try {
			return await authenticate(req, this.#options.signingKey, UPLOAD_TOKEN, this.#options.tokenPolicy);
		} catch (err) {
			if (!(err instanceof RequestError)) throw err;
			req.log.debug({ reason: err.message }, 'upload request not authenticated');
			// tus clients expect the challenge on every 401.
			throw new RequestError(err.code, err.message, err.details, { 'WWW-Authenticate': 'Bearer' });
		}
	}

	async #create(req: HttpRouteRequest, claims: AccessClaims): Promise<HttpReply> {
		if (!claims.grants.canRecord) throw new RequestError('E_FORBIDDEN', 'This token may not send voice messages (canRecord).');
		const lengthBytes = this.#uploadLength(req.header('upload-length'));
		const metadataHeader = req.header('upload-metadata');
		const metadata = parseUploadMetadata(metadataHeader);
		if (!metadata) throw new RequestError('E_BAD_REQUEST', 'Upload-Metadata must be comma-separated "key base64value" pairs with unique keys.');
		const destination = parseDestination(metadata.get('destination') ?? '');
		if (!destination) throw new RequestError('E_BAD_REQUEST', 'Upload-Metadata needs a destination: "channel:<name>" or "user:<id>".');
		const fileName = metadata.get('filename') ?? '';
		const fileType = metadata.get('filetype') ?? '';
		if (fileName.length > MAX_METADATA_TEXT || fileType.length > MAX_METADATA_TEXT) {
			throw new RequestError('E_BAD_REQUEST', `filename and filetype are limited to ${MAX_METADATA_TEXT} characters.`);
		}
		if (!mayAddress(claims, destination)) throw new RequestError('E_FORBIDDEN', 'This token may not send voice messages there.');

		const expiresAt = Date.now() + this.#options.expiryMs;
		if (this.#pending.enabled) await this.#pending.seed(this.#store);
		const promised = this.#pending.promised(claims.userId);
		let place = this.#pending.reserve(claims.userId, { expiresAt, lengthBytes });
		if ('refused' in place) {
			// The count is this node's: uploads it knows of may have been finished, deleted or
			// expired through another node. Ask the store about them before refusing.
			await this.#pending.recheck(claims.userId, this.#store);
			place = this.#pending.reserve(claims.userId, { expiresAt, lengthBytes });
		}
		if ('refused' in place) {
			const { limit, retryAfterMs } = place.refused;
			throw new RequestError(
				'E_TOO_MANY_PENDING_UPLOADS',
				`You have ${limit} unfinished uploads; finish or delete one (DELETE its URL), or wait until the oldest expires in ${describeDelay(retryAfterMs)}.`,
				{ retryAfterMs },
				{ 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
			);
		}
		let upload: StoredUpload;
		try {
			// With the place taken, so concurrent creations see each other's bytes.
			const overQuota = await this.#options.storedQuota?.(claims.userId, { bytes: promised.bytes + lengthBytes, messages: promised.messages + 1 });
			if (overQuota) throw overQuota;
			upload = await this.#store.create({ ownerId: claims.userId, lengthBytes, destination, fileName, fileType, metadataHeader, expiresAt });
		} catch (err) {
			this.#pending.settle(claims.userId, place.key, undefined);
			throw err;
		}
		this.#pending.settle(claims.userId, place.key, upload.record.id);
		this.#options.events?.created?.();
		req.log.info({ uploadId: upload.record.id, ownerId: claims.userId, lengthBytes }, 'upload created');
		return {
			status: 201,
			headers: { Location: `${this.#options.basePath}/${upload.record.id}`, 'Upload-Expires': httpDate(expiresAt) },
		};
	}

	#uploadLength(header: string): number {
		if (!header) throw new RequestError('E_BAD_REQUEST', 'Upload-Length is required (Upload-Defer-Length is not supported).');
		const lengthBytes = parseNonNegativeInteger(header);
		if (lengthBytes === undefined || lengthBytes === 0) throw new RequestError('E_BAD_REQUEST', 'Upload-Length must be a positive integer.');
		if (lengthBytes > this.#options.maxSizeBytes) {
			throw new RequestError('E_TOO_LARGE', `Uploads are limited to ${this.#options.maxSizeBytes} bytes.`, {}, { 'Tus-Max-Size': String(this.#options.maxSizeBytes) });
		}
		return lengthBytes;
	}

	async #status(req: HttpRouteRequest, claims: AccessClaims): Promise<HttpReply> {
		return this.#withOwnUpload(req, claims, async (upload) => {
			if (!upload.record.completed) this.#options.events?.resumed?.();
			// A final PATCH whose onComplete failed left the upload full but unfinished: finish it now.
			if (!upload.record.completed && upload.offsetBytes === upload.record.lengthBytes) await this.#complete(upload, req.log);
			const headers: Record<string, string> = {
				'Upload-Offset': String(upload.offsetBytes),
				'Upload-Length': String(upload.record.lengthBytes),
				'Cache-Control': 'no-store',
				...this.#expiryHeader(upload),
			};
			if (upload.record.metadataHeader) headers['Upload-Metadata'] = upload.record.metadataHeader;
			return { status: 200, headers };
		});
	}

	async #append(req: HttpRouteRequest, claims: AccessClaims): Promise<HttpReply> {
		if (!isOffsetOctetStream(req.header('content-type'))) {
			throw new RequestError('E_UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${OFFSET_OCTET_STREAM}.`);
		}
		const offsetBytes = parseNonNegativeInteger(req.header('upload-offset'));
		if (offsetBytes === undefined) throw new RequestError('E_BAD_REQUEST', 'Upload-Offset must be a non-negative integer.');
		const checksumHeader = req.header('upload-checksum');
		const checksum = checksumHeader ? parseUploadChecksum(checksumHeader) : undefined;
		if (checksum && !checksum.ok) throw new RequestError('E_BAD_REQUEST', checksum.message);
		const chunk = req.body;

		return this.#withOwnUpload(req, claims, async (upload) => {
			if (offsetBytes !== upload.offsetBytes) {
				throw new RequestError('E_CONFLICT', `Upload-Offset ${offsetBytes} does not match the upload's offset; HEAD it to resume.`);
			}
			if (offsetBytes + chunk.length > upload.record.lengthBytes) {
				throw new RequestError('E_TOO_LARGE', `This chunk would pass the Upload-Length of ${upload.record.lengthBytes} bytes.`);
			}
			if (checksum && !checksumMatches(checksum, chunk)) {
				throw new RequestError('E_CHECKSUM_MISMATCH', `The chunk does not match its ${checksum.algorithm} checksum; it was discarded.`);
			}
			if (chunk.length > 0) {
				await upload.append(chunk);
				this.#options.events?.received?.(chunk.length);
			}
			req.log.debug({ uploadId: upload.record.id, offsetBytes: upload.offsetBytes, chunkBytes: chunk.length }, 'upload chunk stored');
			if (!upload.record.completed && upload.offsetBytes === upload.record.lengthBytes) await this.#complete(upload, req.log);
			return { status: 204, headers: { 'Upload-Offset': String(upload.offsetBytes), ...this.#expiryHeader(upload) } };
		});
	}

	async #terminate(req: HttpRouteRequest, claims: AccessClaims): Promise<HttpReply> {
		// No expiry check: removing an expired upload early is what its owner wants anyway.
		return this.#withOwnUpload(
			req,
			claims,
			async (upload) => {
				await upload.remove();
				this.#pending.release(upload.record.ownerId, upload.record.id);
				req.log.info({ uploadId: upload.record.id }, 'upload terminated');
				return { status: 204 };
			},
			{ allowExpired: true },
		);
	}

	/** Runs `task` on the URL's upload when it exists, belongs to these claims and has not expired. */
	async #withOwnUpload(
		req: HttpRouteRequest,
		claims: AccessClaims,
		task: (upload: StoredUpload) => Promise<HttpReply>,
		{ allowExpired = false } = {},
	): Promise<HttpReply> {
		const id = req.params[0] ?? '';
		// Only our own UUIDs name files: `..%2F`, `../x` and any other text end here.
		const notFound = new RequestError('E_NOT_FOUND', 'No such upload.');
		if (!UPLOAD_ID_PATTERN.test(id)) throw notFound;
		return this.#store.withUpload(id, async (upload) => {
			// Someone else's upload answers exactly like a missing one, so ids do not leak.
			if (!upload || upload.record.ownerId !== claims.userId) throw notFound;
			if (!allowExpired && !upload.record.completed && Date.now() >= upload.record.expiresAt) {
				throw new RequestError('E_GONE', 'This upload expired.');
			}
			return task(upload);
		});
	}

	/** Hands the complete file to onComplete, then records that it was taken. */
	async #complete(upload: StoredUpload, log: Logger): Promise<void> {
		const { record } = upload;
		// On disk the .part file itself; from S3 the parts streamed into one local file, its
		// length checked against Upload-Length.
		const file = await upload.completeFile();
		const completed: CompletedUpload = {
			uploadId: record.id,
			ownerId: record.ownerId,
			destination: record.destination,
			fileName: record.fileName,
			fileType: record.fileType,
			path: file.path,
			sizeBytes: record.lengthBytes,
			sha256: file.sha256,
		};
		try {
			await this.#options.onComplete(completed);
		} catch (err) {
			log.error({ err, uploadId: record.id }, 'onComplete failed; the upload is kept for a retry');
			await upload.abandonCompleteFile().catch((abandonErr: unknown) => log.warn({ err: abandonErr, uploadId: record.id }, 'cannot remove the assembled file'));
			const failure = storageFailure(err);
			if (failure) {
				this.#options.events?.storageFailed?.(err);
				throw storageError(failure);
			}
			this.#options.events?.completeFailed?.();
			throw new RequestError('E_INTERNAL', 'The upload is stored but could not be finished; retry (HEAD or the final PATCH).');
		}
		await upload.markCompleted(completed.sha256);
		this.#pending.release(record.ownerId, record.id);
		this.#options.events?.completed?.(completed.sizeBytes);
		log.info({ uploadId: record.id, ownerId: record.ownerId, sizeBytes: completed.sizeBytes }, 'upload completed');
	}

	#expiryHeader(upload: StoredUpload): Record<string, string> {
		// Upload-Expires is about unfinished uploads; a finished one no longer expires in tus terms.
		return upload.record.completed ? {} : { 'Upload-Expires': httpDate(upload.record.expiresAt) };
	}
}
