// The S3 client and bucket every S3 user in Parley shares (message files, staged tus
// uploads, recording checkpoints), made once from storage.s3.*. Any S3-compatible server
// works: AWS S3, MinIO, Ceph RGW, OpenStack Swift's s3api, R2 (requests are SigV4-signed).
import { S3Client } from '@aws-sdk/client-s3';
import type { ParleyConfig } from '../../../config/schema.js';

const S3_CONNECT_TIMEOUT_MS = 5000;
const S3_IDLE_TIMEOUT_MS = 60_000;

export interface S3Location {
	client: S3Client;
	bucket: string;
	/** Empty, or folder names each ending in '/' (validated by the config schema). */
	keyPrefix: string;
}

export function createS3Location(s3: ParleyConfig['storage']['s3']): S3Location {
	const client = new S3Client({
		region: s3.region,
		...(s3.endpoint && { endpoint: s3.endpoint }),
		forcePathStyle: s3.forcePathStyle,
		// Empty: the SDK's default chain (environment, profile, instance role).
		...(s3.accessKeyId && { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } }),
		// Bodies are checksummed only when the operation requires it: several S3-compatible
		// servers (Swift's s3api among them) reject the newer default CRC32 trailers.
		requestChecksumCalculation: 'WHEN_REQUIRED',
		responseChecksumValidation: 'WHEN_REQUIRED',
		// The SDK retries throttling and 5xx itself; a stopped server is answered quickly
		// (callers turn it into 503 E_STORAGE_UNAVAILABLE) rather than after minutes.
		maxAttempts: 3,
		// A server that accepts connections but never answers must not hang a request forever
		// (the SDK's default has no timeouts): connecting, and a socket idle this long, fail the
		// attempt (ETIMEDOUT / TimeoutError: 503 E_STORAGE_UNAVAILABLE).
		requestHandler: { connectionTimeout: S3_CONNECT_TIMEOUT_MS, requestTimeout: S3_IDLE_TIMEOUT_MS },
	});
	return { client, bucket: s3.bucket, keyPrefix: s3.keyPrefix };
}
