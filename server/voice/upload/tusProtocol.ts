// The tus 1.0.0 wire format (https://tus.io/protocols/resumable-upload): header names,
// what the server advertises, and parsers for the headers a client sends. Pure functions:
// no HTTP server, no files.
import { createHash } from 'node:crypto';

export const TUS_VERSION = '1.0.0';
export const TUS_EXTENSIONS = ['creation', 'termination', 'checksum', 'expiration'] as const;
export const CHECKSUM_ALGORITHMS = ['sha1', 'sha256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

/** The checksum extension's status for a chunk that does not match its Upload-Checksum. */
export const STATUS_CHECKSUM_MISMATCH = 460;

/** PATCH bodies must say they are raw bytes at an offset. */
export const OFFSET_OCTET_STREAM = 'application/offset+octet-stream';

/** Headers a browser's tus client must be able to read (CORS hides the rest). */
export const EXPOSED_HEADERS = [
	'Upload-Offset',
	'Location',
	'Upload-Length',
	'Tus-Version',
	'Tus-Resumable',
	'Tus-Max-Size',
	'Tus-Extension',
	'Upload-Expires',
	'Upload-Metadata',
	'Tus-Checksum-Algorithm',
] as const;

/** Offsets and lengths: plain decimal digits only (no sign, exponent, spaces or hex), safe integers. */
export function parseNonNegativeInteger(text: string): number | undefined {
	if (!/^\d{1,16}$/.test(text)) return undefined;
	const value = Number(text);
	return Number.isSafeInteger(value) ? value : undefined;
}

const METADATA_KEY = /^[\x21-\x7e]+$/;
// Padding is optional: some clients strip it.
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Upload-Metadata: comma-separated `key base64value` pairs (the value may be absent). Keys
 * are unique, printable ASCII without spaces or commas. Undefined when malformed.
 */
export function parseUploadMetadata(header: string): Map<string, string> | undefined {
	const pairs = new Map<string, string>();
	if (header.trim() === '') return pairs;
	for (const item of header.split(',')) {
		const parts = item.trim().split(' ');
		const key = parts[0] ?? '';
		const value = parts[1] ?? '';
		if (parts.length > 2 || !METADATA_KEY.test(key) || pairs.has(key) || !BASE64.test(value) || value.length % 4 === 1) return undefined;
		pairs.set(key, Buffer.from(value, 'base64').toString('utf8'));
	}
	return pairs;
}

export type ParsedChecksum =
	| { ok: true; algorithm: ChecksumAlgorithm; digest: Buffer }
	| { ok: false; reason: 'unsupported' | 'malformed'; message: string };

const DIGEST_BYTES: Record<ChecksumAlgorithm, number> = { sha1: 20, sha256: 32 };

/** Upload-Checksum: `<algorithm> <base64 digest>`. */
export function parseUploadChecksum(header: string): ParsedChecksum {
	const m = /^([A-Za-z0-9-]+) ([A-Za-z0-9+/]+={0,2})$/.exec(header.trim());
	if (!m) return { ok: false, reason: 'malformed', message: 'Upload-Checksum must be "<algorithm> <base64 digest>".' };
	const algorithm = m[1]!.toLowerCase();
	if (!isChecksumAlgorithm(algorithm)) {
		return { ok: false, reason: 'unsupported', message: `Checksum algorithm "${algorithm}" is not supported (${CHECKSUM_ALGORITHMS.join(', ')}).` };
	}
	const digest = Buffer.from(m[2]!, 'base64');
	if (digest.length !== DIGEST_BYTES[algorithm]) {
		return { ok: false, reason: 'malformed', message: `A ${algorithm} digest is ${DIGEST_BYTES[algorithm]} bytes.` };
	}
	return { ok: true, algorithm, digest };
}

function isChecksumAlgorithm(name: string): name is ChecksumAlgorithm {
	return (CHECKSUM_ALGORITHMS as readonly string[]).includes(name);
}

export function checksumMatches(checksum: { algorithm: ChecksumAlgorithm; digest: Buffer }, data: Buffer): boolean {
	return createHash(checksum.algorithm).update(data).digest().equals(checksum.digest);
}

/** Media type without parameters, lower case (`Application/Offset+Octet-Stream; x=y` counts). */
export function isOffsetOctetStream(contentType: string): boolean {
	return (contentType.split(';')[0] ?? '').trim().toLowerCase() === OFFSET_OCTET_STREAM;
}

/** RFC 7231 IMF-fixdate, the format of Upload-Expires. */
export function httpDate(epochMs: number): string {
	return new Date(epochMs).toUTCString();
}
