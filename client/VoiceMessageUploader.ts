// Sends an audio file as a voice message over tus 1.0.0 (the server's /voice/uploads, see
// server/voice/upload/TusUploadServer.ts) with the stock tus-js-client: chunks, retries on
// the same kind of schedule as reconnects (exponential backoff with jitter), progress,
// cancel (the server's copy is deleted too), and resume after a page reload: the upload URL
// is kept in localStorage under the file's fingerprint, and the next upload of the same file
// to the same destination continues where the last one stopped.
import { Upload, type DetailedError, type PreviousUpload, type UploadOptions, type UrlStorage } from 'tus-js-client';
import type { VoiceMessageDestination } from '../protocol/schemas.js';
import { ParleyError } from './ParleyError.js';
import { BackoffReconnectPolicy, type BackoffReconnectPolicyOptions, type ReconnectPolicy } from './ReconnectPolicy.js';
import { assertValidDestination, destinationText, httpError } from './VoiceMessageApi.js';

/** What the uploader needs of a tus-js-client Upload (tests pass a fake). */
export interface TusUpload {
	readonly url: string | null;
	start(): void;
	abort(shouldTerminate?: boolean): Promise<void>;
	findPreviousUploads(): Promise<PreviousUpload[]>;
	resumeFromPreviousUpload(previousUpload: PreviousUpload): void;
}

export type CreateTusUpload = (file: File | Blob, options: UploadOptions) => TusUpload;

/** Small enough for steady progress and cheap retries, large enough to not be chatty. */
export const DEFAULT_UPLOAD_CHUNK_BYTES = 256 * 1024;

/** Retries of one stalled upload: 0.5 s doubling to 30 s, 10 times; reset by any progress (tus). */
export const DEFAULT_UPLOAD_RETRY: Readonly<BackoffReconnectPolicyOptions> = {
	delaysMs: [500, 1000, 2000, 4000, 8000, 16_000],
	maxDelayMs: 30_000,
	maxAttempts: 10,
	jitterRatio: 0.3,
};

/** tus-js-client takes a finite list; a policy that never gives up is cut here. */
export const MAX_UPLOAD_RETRIES = 50;

/** Bytes hashed to recognise a Blob (no name, no date) after a reload. */
const FINGERPRINT_SAMPLE_BYTES = 1_048_576;

/**
 * The policy's schedule as tus-js-client's `retryDelays`: one delay per retry until the
 * policy gives up. Jitter is drawn once per upload, which is what spreads the clients.
 */
export function uploadRetryDelays(policy: ReconnectPolicy, maxRetries = MAX_UPLOAD_RETRIES): number[] {
	const delays: number[] = [];
	for (let attempt = 0; attempt < maxRetries; attempt += 1) {
		const delayMs = policy.nextDelayMs(attempt);
		if (delayMs === null) break;
		delays.push(delayMs);
	}
	return delays;
}

/**
 * Whether trying again can help: no answer (network), a server error, an offset conflict or
 * lock (the next HEAD sorts it out), or being told to slow down. Anything else (auth,
 * forbidden, too large, gone) fails the same way again.
 */
export function isRetryableUploadStatus(status: number): boolean {
	return status === 0 || status === 408 || status === 409 || status === 423 || status === 429 || status >= 500;
}

export interface UploadProgress {
	bytesSent: number;
	bytesTotal: number;
}

export interface VoiceMessageUploadOptions {
	destination: VoiceMessageDestination;
	onProgress?: (progress: UploadProgress) => void;
	/** Aborting stops the upload and deletes what the server has of it (E_ABORTED). */
	signal?: AbortSignal;
	/** The name sent as metadata; a File's own name by default. */
	fileName?: string;
}

export interface VoiceMessageUploadResult {
	/** The tus upload URL; its last path segment is the voice message id. */
	uploadUrl: string;
	sizeBytes: number;
	/** True when it continued an upload a previous page left unfinished (same URL). */
	resumed: boolean;
}

export interface VoiceMessageUploaderOptions {
	/** Absolute URL of the tus endpoint, e.g. `https://parley.example/voice/uploads`. */
	endpoint: string;
	/** A valid access token for each request (it may fetch a fresh one). */
	token: () => Promise<string>;
	chunkSizeBytes?: number;
	/** When to retry a failed request; DEFAULT_UPLOAD_RETRY otherwise. */
	retryPolicy?: ReconnectPolicy;
	/** Keep upload URLs (localStorage) to resume after a reload; default true. */
	resumable?: boolean;
	/** Where upload URLs are kept; tus-js-client's localStorage one by default. */
	urlStorage?: UrlStorage;
	/** Creates the tus Upload; tus-js-client's by default. */
	createUpload?: CreateTusUpload;
}

export class VoiceMessageUploader {
	readonly endpoint: string;
	readonly #token: () => Promise<string>;
	readonly #chunkSizeBytes: number;
	readonly #retryPolicy: ReconnectPolicy;
	readonly #resumable: boolean;
	readonly #urlStorage: UrlStorage | undefined;
	readonly #createUpload: CreateTusUpload;

	constructor(options: VoiceMessageUploaderOptions) {
		this.endpoint = new URL(options.endpoint).toString();
		const chunkSizeBytes = options.chunkSizeBytes ?? DEFAULT_UPLOAD_CHUNK_BYTES;
		if (!Number.isSafeInteger(chunkSizeBytes) || chunkSizeBytes <= 0) throw new TypeError('chunkSizeBytes must be a positive integer');
		this.#token = options.token;
		this.#chunkSizeBytes = chunkSizeBytes;
		this.#retryPolicy = options.retryPolicy ?? new BackoffReconnectPolicy(DEFAULT_UPLOAD_RETRY);
		this.#resumable = options.resumable ?? true;
		this.#urlStorage = options.urlStorage;
		this.#createUpload = options.createUpload ?? ((file, tusOptions) => new Upload(file, tusOptions));
	}

	/** Uploads `file`; resolves once the server has all of it (the message is then processing). */
	async upload(file: File | Blob, { destination, onProgress, signal, fileName }: VoiceMessageUploadOptions): Promise<VoiceMessageUploadResult> {
		assertValidDestination(destination);
		if (signal?.aborted) throw new ParleyError('E_ABORTED', 'The upload was cancelled.');
		const fileType = file.type || 'application/octet-stream';
		const name = fileName ?? ((file as Partial<File>).name || 'voice-message');
		const retryDelays = uploadRetryDelays(this.#retryPolicy);

		let settle: { resolve: (result: VoiceMessageUploadResult) => void; reject: (error: ParleyError) => void } | undefined;
		const done = new Promise<VoiceMessageUploadResult>((resolve, reject) => {
			settle = { resolve, reject };
		});
		// Awaited below, unless cancelled before start (then its rejection is not the one thrown).
		done.catch(() => undefined);
		let resumedFrom: string | null = null;
		let upload: TusUpload | undefined;
		const tusOptions: UploadOptions = {
			endpoint: this.endpoint,
			chunkSize: this.#chunkSizeBytes,
			retryDelays,
			metadata: { destination: destinationText(destination), filename: name, filetype: fileType },
			// A fresh token per request (a long upload may outlive the first one), set here
			// only: in browsers setHeader appends, so a static `headers` entry would double it.
			onBeforeRequest: async (req) => {
				req.setHeader('Authorization', `Bearer ${await this.#token()}`);
			},
			onShouldRetry: (error) => !signal?.aborted && isRetryableUploadStatus(error.originalResponse?.getStatus() ?? 0),
			onProgress: (bytesSent, bytesTotal) => onProgress?.({ bytesSent, bytesTotal }),
			// A stored upload the server no longer has (expired, another user's) starts over.
			onSuccess: () => settle?.resolve({ uploadUrl: upload?.url ?? '', sizeBytes: file.size, resumed: resumedFrom !== null && upload?.url === resumedFrom }),
			onError: (error) => settle?.reject(uploadError(error, retryDelays.length)),
			fingerprint: voiceFileFingerprint as unknown as UploadOptions['fingerprint'],
			storeFingerprintForResuming: this.#resumable,
			// A finished upload is a voice message now: uploading the file again sends another.
			removeFingerprintOnSuccess: true,
			...(this.#urlStorage && { urlStorage: this.#urlStorage }),
		};
		upload = this.#createUpload(file, tusOptions);
		const current = upload;

		const onAbort = (): void => {
			// terminate: DELETE on the server and the stored URL forgotten.
			current.abort(true).catch(() => undefined);
			settle?.reject(new ParleyError('E_ABORTED', 'The upload was cancelled.'));
		};
		signal?.addEventListener('abort', onAbort, { once: true });
		try {
			if (this.#resumable) {
				const previous = pickPreviousUpload(await current.findPreviousUploads().catch(() => []), tusOptions.metadata ?? {});
				if (previous) {
					current.resumeFromPreviousUpload(previous);
					resumedFrom = previous.uploadUrl;
				}
			}
			if (signal?.aborted) throw new ParleyError('E_ABORTED', 'The upload was cancelled.');
			current.start();
			return await done;
		} finally {
			signal?.removeEventListener('abort', onAbort);
		}
	}
}

/** The newest stored upload of the same file to the same destination. */
export function pickPreviousUpload(previous: PreviousUpload[], metadata: Record<string, string>): PreviousUpload | undefined {
	return previous
		.filter((p) => p.uploadUrl && p.metadata.destination === metadata.destination && p.metadata.filename === metadata.filename)
		.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime))[0];
}

/**
 * Identifies a file across page loads. A File has a name and a date; a Blob (recorded in
 * the page) has neither, so a hash of its start stands in; without Web Crypto it cannot be
 * recognised and is not resumable (null).
 */
export async function voiceFileFingerprint(file: File | Blob, options: UploadOptions): Promise<string | null> {
	const f = file as Partial<File>;
	const parts = ['parley-voice', options.metadata?.destination ?? '', file.type, String(file.size), options.endpoint ?? ''];
	if (typeof f.name === 'string' && f.name && typeof f.lastModified === 'number') return [...parts, f.name, String(f.lastModified)].join('|');
	const subtle = globalThis.crypto?.subtle;
	if (!subtle) return null;
	const digest = await subtle.digest('SHA-256', await file.slice(0, FINGERPRINT_SAMPLE_BYTES).arrayBuffer());
	const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
	return [...parts, `sha256:${hex}`].join('|');
}

function isDetailedError(error: Error): error is DetailedError {
	return 'originalRequest' in error;
}

function uploadError(error: Error, retries: number): ParleyError {
	if (error instanceof ParleyError) return error;
	const response = isDetailedError(error) ? error.originalResponse : null;
	if (response && response.getStatus() > 0) {
		return httpError(response.getStatus(), response.getBody(), `The upload failed: HTTP ${response.getStatus()}.`);
	}
	if (isDetailedError(error)) {
		return new ParleyError('E_NETWORK', `The upload could not reach the server${retries > 0 ? ', even after retrying' : ''}.`, { cause: error });
	}
	return new ParleyError('E_UPLOAD_FAILED', error.message || undefined, { cause: error });
}
