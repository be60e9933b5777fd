// VoiceMessageUploader with a fake tus Upload: how its options map onto tus-js-client's
// (chunks, retry schedule from a policy, retry decisions, auth per request, metadata,
// resume), and cancel / error handling.
import type { DetailedError, HttpRequest, HttpResponse, PreviousUpload, UploadOptions } from 'tus-js-client';
import { describe, expect, it } from 'vitest';
import { ParleyError } from './ParleyError.js';
import { BackoffReconnectPolicy } from './ReconnectPolicy.js';
import {
	DEFAULT_UPLOAD_CHUNK_BYTES,
	DEFAULT_UPLOAD_RETRY,
	isRetryableUploadStatus,
	pickPreviousUpload,
	uploadRetryDelays,
	voiceFileFingerprint,
	VoiceMessageUploader,
	type TusUpload,
} from './VoiceMessageUploader.js';

type Script = (options: UploadOptions, upload: FakeUpload) => void;

class FakeUpload implements TusUpload {
	url: string | null = null;
	started = 0;
	aborted: boolean[] = [];
	resumedFrom: PreviousUpload | null = null;
	constructor(
		readonly file: File | Blob,
		readonly options: UploadOptions,
		readonly previous: PreviousUpload[],
		readonly script: Script,
	) {}
	start(): void {
		this.started += 1;
		this.script(this.options, this);
	}
	async abort(shouldTerminate?: boolean): Promise<void> {
		this.aborted.push(shouldTerminate ?? false);
	}
	async findPreviousUploads(): Promise<PreviousUpload[]> {
		return this.previous;
	}
	resumeFromPreviousUpload(previousUpload: PreviousUpload): void {
		this.resumedFrom = previousUpload;
		this.url = previousUpload.uploadUrl;
	}
}

function uploader(script: Script, { previous = [] as PreviousUpload[], ...options }: Partial<ConstructorParameters<typeof VoiceMessageUploader>[0]> & { previous?: PreviousUpload[] } = {}) {
	const uploads: FakeUpload[] = [];
	let tokens = 0;
	const instance = new VoiceMessageUploader({
		endpoint: 'https://parley.example/voice/uploads',
		token: async () => `jwt-${++tokens}`,
		createUpload: (file, tusOptions) => {
			const upload = new FakeUpload(file, tusOptions, previous, script);
			uploads.push(upload);
			return upload;
		},
		...options,
	});
	return { instance, uploads };
}

const succeed: Script = (options, upload) => {
	queueMicrotask(() => {
		upload.url ??= 'https://parley.example/voice/uploads/u1';
		options.onSuccess?.({ lastResponse: undefined as never });
	});
};

function fakeResponse(status: number, body = ''): HttpResponse {
	return { getStatus: () => status, getHeader: () => undefined, getBody: () => body, getUnderlyingObject: () => null };
}

function fakeRequest(): HttpRequest & { headers: Map<string, string> } {
	const headers = new Map<string, string>();
	return {
		headers,
		getMethod: () => 'PATCH',
		getURL: () => 'https://parley.example/voice/uploads/u1',
		setHeader: (name, value) => void headers.set(name, value),
		getHeader: (name) => headers.get(name),
		setProgressHandler: () => undefined,
		send: async () => fakeResponse(204),
		abort: async () => undefined,
		getUnderlyingObject: () => null,
	};
}

function detailedError(status: number | null, body = ''): DetailedError {
	return Object.assign(new Error(`tus: HTTP ${status}`), {
		originalRequest: fakeRequest(),
		originalResponse: status === null ? null : fakeResponse(status, body),
		causingError: null,
	}) as DetailedError;
}

const file = new Blob([new Uint8Array(600 * 1024)], { type: 'audio/webm' });
const destination = { kind: 'channel' as const, channel: 'lobby' };

describe('uploadRetryDelays', () => {
	it('maps the policy schedule (exponential, capped) one delay per retry until it gives up', () => {
		const policy = new BackoffReconnectPolicy({ delaysMs: [500, 1000], maxDelayMs: 3000, maxAttempts: 5, jitterRatio: 0 });
		expect(uploadRetryDelays(policy)).toEqual([500, 1000, 2000, 3000, 3000]);
	});

	it('applies the jitter of the policy, within its ratio', () => {
		let i = 0;
		const randoms = [0, 0.999, 0.5];
		const policy = new BackoffReconnectPolicy({ delaysMs: [1000], maxDelayMs: 10_000, maxAttempts: 3, jitterRatio: 0.3, random: () => randoms[i++]! });
		const delays = uploadRetryDelays(policy);
		expect(delays).toHaveLength(3);
		expect(delays[0]).toBe(700);
		expect(delays[1]).toBeGreaterThanOrEqual(2590);
		expect(delays[1]).toBeLessThanOrEqual(2600);
		expect(delays[2]).toBe(4000);
	});

	it('cuts a policy that never gives up', () => {
		const forever = new BackoffReconnectPolicy({ delaysMs: [100], maxDelayMs: 1000, maxAttempts: Infinity, jitterRatio: 0 });
		expect(uploadRetryDelays(forever, 7)).toHaveLength(7);
		expect(uploadRetryDelays(forever)).toHaveLength(50);
	});

	it('the default schedule starts at 0.5 s, doubles, caps at 30 s, 10 retries', () => {
		const delays = uploadRetryDelays(new BackoffReconnectPolicy({ ...DEFAULT_UPLOAD_RETRY, jitterRatio: 0 }));
		expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
	});
});

describe('isRetryableUploadStatus', () => {
	it('retries network failures, server errors, conflicts, locks and rate limits only', () => {
		for (const status of [0, 408, 409, 423, 429, 500, 502, 503]) expect(isRetryableUploadStatus(status), String(status)).toBe(true);
		for (const status of [400, 401, 403, 404, 410, 413, 415, 460]) expect(isRetryableUploadStatus(status), String(status)).toBe(false);
	});
});

describe('VoiceMessageUploader', () => {
	it('maps its options onto tus-js-client: endpoint, chunks, retries, metadata, auth, resume storage', async () => {
		const retryPolicy = new BackoffReconnectPolicy({ delaysMs: [10, 20], maxDelayMs: 40, maxAttempts: 4, jitterRatio: 0 });
		const { instance, uploads } = uploader(succeed, { retryPolicy });
		const result = await instance.upload(file, { destination, fileName: 'memo.webm' });
		expect(result).toEqual({ uploadUrl: 'https://parley.example/voice/uploads/u1', sizeBytes: file.size, resumed: false });
		const options = uploads[0]!.options;
		expect(options).toMatchObject({
			endpoint: 'https://parley.example/voice/uploads',
			chunkSize: DEFAULT_UPLOAD_CHUNK_BYTES,
			retryDelays: [10, 20, 40, 40],
			metadata: { destination: 'channel:lobby', filename: 'memo.webm', filetype: 'audio/webm' },
			storeFingerprintForResuming: true,
			removeFingerprintOnSuccess: true,
		});
		// Each request gets a fresh token from the provider, and only there (no static header
		// for XHR to append it to).
		expect(options.headers?.Authorization).toBeUndefined();
		const request = fakeRequest();
		await options.onBeforeRequest?.(request);
		expect(request.headers.get('Authorization')).toBe('Bearer jwt-1');
		await options.onBeforeRequest?.(request);
		expect(request.headers.get('Authorization')).toBe('Bearer jwt-2');
	});

	it('decides retries by status, and never after cancel', async () => {
		const controller = new AbortController();
		const { instance, uploads } = uploader(() => undefined);
		const pending = instance.upload(file, { destination, signal: controller.signal });
		await Promise.resolve();
		await Promise.resolve();
		const onShouldRetry = uploads[0]!.options.onShouldRetry!;
		const options = uploads[0]!.options;
		expect(onShouldRetry(detailedError(null), 0, options)).toBe(true);
		expect(onShouldRetry(detailedError(503), 0, options)).toBe(true);
		expect(onShouldRetry(detailedError(409), 0, options)).toBe(true);
		expect(onShouldRetry(detailedError(403), 0, options)).toBe(false);
		expect(onShouldRetry(detailedError(413), 0, options)).toBe(false);
		controller.abort();
		expect(onShouldRetry(detailedError(503), 0, options)).toBe(false);
		await expect(pending).rejects.toMatchObject({ code: 'E_ABORTED' });
	});

	it('uses the chunk size asked for and validates it', () => {
		const { instance } = uploader(succeed, { chunkSizeBytes: 64 * 1024 });
		expect(instance).toBeInstanceOf(VoiceMessageUploader);
		expect(() => uploader(succeed, { chunkSizeBytes: 0 })).toThrow(TypeError);
	});

	it('reports progress', async () => {
		const seen: number[] = [];
		const { instance } = uploader((options, upload) => {
			options.onProgress?.(256 * 1024, file.size);
			options.onProgress?.(file.size, file.size);
			succeed(options, upload);
		});
		await instance.upload(file, { destination, onProgress: ({ bytesSent, bytesTotal }) => seen.push(bytesSent / bytesTotal) });
		expect(seen).toEqual([(256 * 1024) / file.size, 1]);
	});

	it('resumes the newest stored upload of the same file to the same destination', async () => {
		const stored = (uploadUrl: string, dest: string, creationTime: string): PreviousUpload => ({
			size: file.size,
			metadata: { destination: dest, filename: 'memo.webm', filetype: 'audio/webm' },
			creationTime,
			urlStorageKey: `tus::${uploadUrl}`,
			uploadUrl,
			parallelUploadUrls: null,
		});
		const previous = [
			stored('https://parley.example/voice/uploads/old', 'channel:lobby', '2025-01-01T10:00:00Z'),
			stored('https://parley.example/voice/uploads/other-dest', 'user:grace', '2025-01-03T10:00:00Z'),
			stored('https://parley.example/voice/uploads/new', 'channel:lobby', '2025-01-02T10:00:00Z'),
		];
		const { instance, uploads } = uploader(succeed, { previous });
		const result = await instance.upload(file, { destination, fileName: 'memo.webm' });
		expect(uploads[0]!.resumedFrom?.uploadUrl).toBe('https://parley.example/voice/uploads/new');
		expect(result).toMatchObject({ resumed: true, uploadUrl: 'https://parley.example/voice/uploads/new' });
		expect(pickPreviousUpload(previous, { destination: 'channel:other', filename: 'memo.webm' })).toBeUndefined();
	});

	it('does not look for previous uploads when not resumable', async () => {
		const { instance, uploads } = uploader(succeed, { resumable: false, previous: [{ size: 1, metadata: {}, creationTime: '', urlStorageKey: 'k', uploadUrl: 'x', parallelUploadUrls: null }] });
		await instance.upload(file, { destination });
		expect(uploads[0]!.resumedFrom).toBeNull();
		expect(uploads[0]!.options.storeFingerprintForResuming).toBe(false);
	});

	it('cancel terminates the upload on the server and rejects with E_ABORTED', async () => {
		const controller = new AbortController();
		const { instance, uploads } = uploader((_options, upload) => {
			upload.url = 'https://parley.example/voice/uploads/u1';
			queueMicrotask(() => controller.abort());
		});
		await expect(instance.upload(file, { destination, signal: controller.signal })).rejects.toMatchObject({ code: 'E_ABORTED' });
		expect(uploads[0]!.aborted).toEqual([true]);
		// Already cancelled: nothing starts.
		await expect(instance.upload(file, { destination, signal: controller.signal })).rejects.toMatchObject({ code: 'E_ABORTED' });
		expect(uploads).toHaveLength(1);
	});

	it('turns the final tus error into a ParleyError: the server code, or E_NETWORK without an answer', async () => {
		const failWith = (error: Error): Script => (options) => queueMicrotask(() => options.onError?.(error));
		const tooLarge = uploader(failWith(detailedError(413, JSON.stringify({ error: { code: 'E_TOO_LARGE', message: 'The file exceeds 20 MiB.' } }))));
		const error = await tooLarge.instance.upload(file, { destination }).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(ParleyError);
		expect(error).toMatchObject({ code: 'E_TOO_LARGE', httpStatus: 413, message: 'The file exceeds 20 MiB.' });

		const forbidden = uploader(failWith(detailedError(403, JSON.stringify({ error: { code: 'E_FORBIDDEN', message: 'This token may not send voice messages there.' } }))));
		await expect(forbidden.instance.upload(file, { destination })).rejects.toMatchObject({ code: 'E_FORBIDDEN', httpStatus: 403 });

		const offline = uploader(failWith(detailedError(null)));
		await expect(offline.instance.upload(file, { destination })).rejects.toMatchObject({ code: 'E_NETWORK' });

		const other = uploader(failWith(new Error('tus: cannot read the file')));
		await expect(other.instance.upload(file, { destination })).rejects.toMatchObject({ code: 'E_UPLOAD_FAILED', message: 'tus: cannot read the file' });
	});

	it('refuses an invalid destination before creating anything', async () => {
		const { instance, uploads } = uploader(succeed);
		await expect(instance.upload(file, { destination: { kind: 'channel', channel: '../x' } })).rejects.toMatchObject({ code: 'E_BAD_REQUEST' });
		expect(uploads).toHaveLength(0);
	});
});

describe('voiceFileFingerprint', () => {
	const options: UploadOptions = { endpoint: 'https://parley.example/voice/uploads', metadata: { destination: 'channel:lobby' } };

	it('identifies a File by name, size and date, per destination', async () => {
		const a = new File(['abc'], 'memo.ogg', { type: 'audio/ogg', lastModified: 1000 });
		const fingerprint = await voiceFileFingerprint(a, options);
		expect(fingerprint).toContain('memo.ogg');
		expect(fingerprint).toContain('channel:lobby');
		expect(await voiceFileFingerprint(a, { ...options, metadata: { destination: 'user:grace' } })).not.toBe(fingerprint);
	});

	it('identifies a Blob by its content', async () => {
		const a = await voiceFileFingerprint(new Blob(['one'], { type: 'audio/ogg' }), options);
		const b = await voiceFileFingerprint(new Blob(['two'], { type: 'audio/ogg' }), options);
		const a2 = await voiceFileFingerprint(new Blob(['one'], { type: 'audio/ogg' }), options);
		expect(a).toMatch(/sha256:[0-9a-f]{64}/);
		expect(a).not.toBe(b);
		expect(a).toBe(a2);
	});
});
