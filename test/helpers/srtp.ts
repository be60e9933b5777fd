// An independent SRTP implementation for RTP packets, on Node's crypto: AES-CM + HMAC-SHA1
// (RFC 3711) and AES-GCM (RFC 7714). Tests check the worker's libsrtp against it, so an SRTP
// build that only agrees with itself (both ends the same library) cannot pass.
import { createCipheriv, createDecipheriv, createHmac, timingSafeEqual } from 'node:crypto';

export type SrtpSuite = 'AEAD_AES_256_GCM' | 'AEAD_AES_128_GCM' | 'AES_CM_128_HMAC_SHA1_80' | 'AES_CM_128_HMAC_SHA1_32';

interface SuiteSpec {
	keyLen: number;
	saltLen: number;
	/** 0 for the AEAD suites (the GCM tag authenticates). */
	authKeyLen: number;
	tagLen: number;
	gcm: boolean;
}

const SUITES: Record<SrtpSuite, SuiteSpec> = {
	AEAD_AES_256_GCM: { keyLen: 32, saltLen: 12, authKeyLen: 0, tagLen: 16, gcm: true },
	AEAD_AES_128_GCM: { keyLen: 16, saltLen: 12, authKeyLen: 0, tagLen: 16, gcm: true },
	AES_CM_128_HMAC_SHA1_80: { keyLen: 16, saltLen: 14, authKeyLen: 20, tagLen: 10, gcm: false },
	AES_CM_128_HMAC_SHA1_32: { keyLen: 16, saltLen: 14, authKeyLen: 20, tagLen: 4, gcm: false },
};

/** Master key + master salt, the concatenation mediasoup's `keyBase64` carries. */
export function masterKeyLength(suite: SrtpSuite): number {
	return SUITES[suite].keyLen + SUITES[suite].saltLen;
}

/** The AES-CM key derivation of RFC 3711 section 4.3 (key derivation rate 0, index 0); the
 * AEAD suites use it too, with their 96-bit salt padded to 112 bits (RFC 7714 section 11). */
function deriveKey(masterKey: Buffer, masterSalt: Buffer, label: number, length: number): Buffer {
	const iv = Buffer.alloc(16);
	masterSalt.copy(iv, 0);
	iv[7]! ^= label;
	const cipher = createCipheriv(masterKey.length === 32 ? 'aes-256-ctr' : 'aes-128-ctr', masterKey, iv);
	return cipher.update(Buffer.alloc(length));
}

/** Length of the RTP header, CSRCs and header extension included (what stays in clear). */
function rtpHeaderLength(packet: Buffer): number {
	let len = 12 + 4 * (packet[0]! & 0x0f);
	if (packet[0]! & 0x10) len += 4 + 4 * packet.readUInt16BE(len + 2);
	if (len > packet.length) throw new Error('RTP header longer than the packet');
	return len;
}

/** One direction of an SRTP session (one master key, RTP only). */
export class SrtpContext {
	readonly #spec: SuiteSpec;
	readonly #key: Buffer;
	readonly #salt: Buffer;
	readonly #authKey: Buffer;
	/** Rollover counter and highest sequence number seen, per SSRC (receiver side). */
	readonly #rx = new Map<number, { roc: number; seq: number }>();

	constructor(suite: SrtpSuite, keyAndSalt: Buffer) {
		const spec = SUITES[suite];
		if (keyAndSalt.length !== spec.keyLen + spec.saltLen) throw new Error(`${suite} needs ${spec.keyLen + spec.saltLen} key bytes, got ${keyAndSalt.length}`);
		const masterKey = keyAndSalt.subarray(0, spec.keyLen);
		const masterSalt = Buffer.alloc(14);
		keyAndSalt.copy(masterSalt, 0, spec.keyLen);
		this.#spec = spec;
		this.#key = deriveKey(masterKey, masterSalt, 0x00, spec.keyLen);
		this.#authKey = spec.authKeyLen ? deriveKey(masterKey, masterSalt, 0x01, spec.authKeyLen) : Buffer.alloc(0);
		this.#salt = deriveKey(masterKey, masterSalt, 0x02, spec.saltLen);
	}

	/** Encrypts and authenticates an RTP packet (ROC 0: callers keep sequence numbers from wrapping). */
	protect(rtp: Buffer): Buffer {
		const headerLen = rtpHeaderLength(rtp);
		const header = rtp.subarray(0, headerLen);
		const ssrc = rtp.readUInt32BE(8);
		const seq = rtp.readUInt16BE(2);
		if (this.#spec.gcm) {
			const cipher = createCipheriv(this.#key.length === 32 ? 'aes-256-gcm' : 'aes-128-gcm', this.#key, this.#gcmIv(ssrc, 0, seq), { authTagLength: 16 });
			cipher.setAAD(header);
			const body = Buffer.concat([cipher.update(rtp.subarray(headerLen)), cipher.final()]);
			return Buffer.concat([header, body, cipher.getAuthTag()]);
		}
		const body = createCipheriv('aes-128-ctr', this.#key, this.#ctrIv(ssrc, 0, seq)).update(rtp.subarray(headerLen));
		const authenticated = Buffer.concat([header, body]);
		return Buffer.concat([authenticated, this.#hmac(authenticated, 0)]);
	}

	/** Checks and decrypts an SRTP packet; throws when authentication fails. */
	unprotect(srtp: Buffer): Buffer {
		const headerLen = rtpHeaderLength(srtp);
		const { tagLen } = this.#spec;
		if (srtp.length < headerLen + tagLen) throw new Error('SRTP packet shorter than its tag');
		const header = srtp.subarray(0, headerLen);
		const ssrc = srtp.readUInt32BE(8);
		const seq = srtp.readUInt16BE(2);
		const roc = this.#estimateRoc(ssrc, seq);
		const body = srtp.subarray(headerLen, srtp.length - tagLen);
		const tag = srtp.subarray(srtp.length - tagLen);
		let plain: Buffer;
		if (this.#spec.gcm) {
			const decipher = createDecipheriv(this.#key.length === 32 ? 'aes-256-gcm' : 'aes-128-gcm', this.#key, this.#gcmIv(ssrc, roc, seq), { authTagLength: 16 });
			decipher.setAAD(header);
			decipher.setAuthTag(tag);
			plain = Buffer.concat([decipher.update(body), decipher.final()]); // final() throws on a bad tag
		} else {
			const expected = this.#hmac(srtp.subarray(0, srtp.length - tagLen), roc);
			if (!timingSafeEqual(expected, tag)) throw new Error('SRTP authentication failed');
			plain = createDecipheriv('aes-128-ctr', this.#key, this.#ctrIv(ssrc, roc, seq)).update(body);
		}
		this.#rx.set(ssrc, { roc, seq });
		return Buffer.concat([header, plain]);
	}

	/** RFC 3711 section 3.3.1: the rollover counter a sequence number most likely belongs to. */
	#estimateRoc(ssrc: number, seq: number): number {
		const last = this.#rx.get(ssrc);
		if (!last) return 0;
		if (last.seq < 0x8000) return seq - last.seq > 0x8000 ? Math.max(0, last.roc - 1) : last.roc;
		return last.seq - 0x8000 > seq ? last.roc + 1 : last.roc;
	}

	/** RFC 3711 section 4.1.1: (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16). */
	#ctrIv(ssrc: number, roc: number, seq: number): Buffer {
		const iv = Buffer.alloc(16);
		this.#salt.copy(iv, 0);
		const x = Buffer.alloc(16);
		x.writeUInt32BE(ssrc >>> 0, 4);
		x.writeUInt32BE(roc >>> 0, 8);
		x.writeUInt16BE(seq, 12);
		for (let i = 0; i < 16; i++) iv[i]! ^= x[i]!;
		return iv;
	}

	/** RFC 7714 section 8.1: (0x0000 || SSRC || ROC || SEQ) XOR salt. */
	#gcmIv(ssrc: number, roc: number, seq: number): Buffer {
		const iv = Buffer.alloc(12);
		iv.writeUInt32BE(ssrc >>> 0, 2);
		iv.writeUInt32BE(roc >>> 0, 6);
		iv.writeUInt16BE(seq, 10);
		for (let i = 0; i < 12; i++) iv[i]! ^= this.#salt[i]!;
		return iv;
	}

	/** RFC 3711 section 4.2: HMAC-SHA1 over the packet and the ROC, truncated to the tag. */
	#hmac(authenticated: Buffer, roc: number): Buffer {
		const rocBytes = Buffer.alloc(4);
		rocBytes.writeUInt32BE(roc >>> 0);
		return createHmac('sha1', this.#authKey).update(authenticated).update(rocBytes).digest().subarray(0, this.#spec.tagLen);
	}
}
