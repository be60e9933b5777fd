// One whole tus upload of a file's bytes to Parley's voice-message endpoint, the way the
// browser client's uploader does it (tus-js-client), resolving with the upload's URL.
import { Upload } from 'tus-js-client';

export interface TusUploadOptions {
	/** e.g. http://127.0.0.1:<port>/voice/uploads */
	endpoint: string;
	token: string;
	metadata: Record<string, string>;
	chunkSize?: number;
}

export function tusUpload(bytes: Buffer, { endpoint, token, metadata, chunkSize = 32 * 1024 }: TusUploadOptions): Promise<string> {
	return new Promise<string>((resolve, reject) => {
		const upload = new Upload(bytes, {
			endpoint,
			chunkSize,
			headers: { authorization: `Bearer ${token}` },
			metadata,
			retryDelays: [],
			onSuccess: () => resolve(upload.url!),
			onError: reject,
		});
		upload.start();
	});
}
