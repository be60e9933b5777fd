// The cluster secret (cluster.secret) and what it keys: the MAC of every bus envelope, the
// signature of every node registry entry, and the sealing of the SRTP keys of node-to-node
// pipes. Anyone who can write to Redis could otherwise speak for a node; without the
// secret their envelopes and entries are dropped. One key per purpose (HKDF), so a MAC
// made for one purpose is never valid for another.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/** Shortest accepted secret (as for auth.jwtSecret): `openssl rand -hex 32` gives 64. */
export const MIN_CLUSTER_SECRET_LENGTH = 32;

export type ClusterKeyPurpose = 'bus' | 'registry' | 'srtp';

const HKDF_SALT = 'parley-cluster-v1';
const MAC_BYTES = 32;
const SEAL_NONCE_BYTES = 12;
const SEAL_TAG_BYTES = 16;

export class ClusterSecret {
	readonly #keys: Record<ClusterKeyPurpose, Buffer>;

	constructor(secret: string) {
		if (secret.length < MIN_CLUSTER_SECRET_LENGTH) throw new TypeError(`cluster.secret must be at least ${MIN_CLUSTER_SECRET_LENGTH} characters`);
		const derive = (purpose: ClusterKeyPurpose) => Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, `parley ${purpose}`, 32));
		this.#keys = { bus: derive('bus'), registry: derive('registry'), srtp: derive('srtp') };
	}

	/** HMAC-SHA256 of `data` with the key of `purpose`, base64url. */
	mac(purpose: ClusterKeyPurpose, data: string): string {
		return createHmac('sha256', this.#keys[purpose]).update(data, 'utf8').digest('base64url');
	}

	/** Whether `mac` is the MAC of `data` (constant time). */
	verify(purpose: ClusterKeyPurpose, data: string, mac: string): boolean {
		const given = Buffer.from(mac, 'base64url');
		if (given.length !== MAC_BYTES) return false;
		return timingSafeEqual(given, createHmac('sha256', this.#keys[purpose]).update(data, 'utf8').digest());
	}

	/** AES-256-GCM of `plain` under the srtp key, bound to `context` (e.g. channel and node
	 * ids): Redis carries the bus in the clear, and an SRTP key read there would decrypt the pipe. */
	seal(plain: string, context: string): string {
		const nonce = randomBytes(SEAL_NONCE_BYTES);
		const cipher = createCipheriv('aes-256-gcm', this.#keys.srtp, nonce);
		cipher.setAAD(Buffer.from(context, 'utf8'));
		const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
		return Buffer.concat([nonce, cipher.getAuthTag(), body]).toString('base64url');
	}

	/** The inverse of seal(); throws when the box was not sealed with this secret and context. */
	open(sealed: string, context: string): string {
		const box = Buffer.from(sealed, 'base64url');
		if (box.length < SEAL_NONCE_BYTES + SEAL_TAG_BYTES) throw new Error('sealed value too short');
		const decipher = createDecipheriv('aes-256-gcm', this.#keys.srtp, box.subarray(0, SEAL_NONCE_BYTES));
		decipher.setAAD(Buffer.from(context, 'utf8'));
		decipher.setAuthTag(box.subarray(SEAL_NONCE_BYTES, SEAL_NONCE_BYTES + SEAL_TAG_BYTES));
		return Buffer.concat([decipher.update(box.subarray(SEAL_NONCE_BYTES + SEAL_TAG_BYTES)), decipher.final()]).toString('utf8');
	}
}
