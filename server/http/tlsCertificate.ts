// The certificate and key that http.tls names, read and checked with node:crypto before
// uWebSockets.js is given their paths. uWS only says "App construction failed" for a missing
// file, a file that is not PEM and a key of another certificate alike, so each of those is
// found here first and reported naming the option (a ConfigError: exit code 78 at startup,
// an error log line on a SIGHUP reload, which keeps the certificate already served).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/loadConfig.js';

/** The two files (http.tls.certFile, http.tls.keyFile). */
export interface TlsFiles {
	certFile: string;
	keyFile: string;
}

/** What is known of a checked certificate: safe to log and to export (never the key). */
export interface TlsCertificate {
	certFile: string;
	keyFile: string;
	/** The leaf certificate's subject and issuer, one `key=value` per line as node gives them. */
	subject: string;
	issuer: string;
	/** e.g. `DNS:localhost, IP Address:127.0.0.1`; empty when the certificate has none. */
	subjectAltName: string;
	notBefore: Date;
	notAfter: Date;
	/** SHA-256 of the leaf certificate (DER), colon-separated hex as browsers and openssl show it. */
	fingerprint256: string;
	/** Certificates in certFile: the leaf, then intermediates (certbot's fullchain.pem has 2 or more). */
	chainLength: number;
}

/** A certificate this close to its notAfter is logged as a warning (Let's Encrypt renews at 30 days). */
export const EXPIRY_WARNING_MS = 14 * 86_400_000;

const CERT_OPTION = 'http.tls.certFile';
const KEY_OPTION = 'http.tls.keyFile';
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Reads both files and checks that the certificate is PEM, the key is PEM and unencrypted,
 * and the key is the certificate's. Throws a ConfigError naming the option at fault. */
export function loadTlsCertificate(files: TlsFiles): TlsCertificate {
	const certText = readOption(CERT_OPTION, files.certFile);
	const keyText = readOption(KEY_OPTION, files.keyFile);
	const blocks = certText.match(PEM_CERTIFICATE) ?? [];
	if (blocks.length === 0) {
		const swapped = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(certText) ? ' (it holds a private key: swapped with http.tls.keyFile?)' : '';
		throw optionError(CERT_OPTION, `${files.certFile} is not a PEM certificate: no -----BEGIN CERTIFICATE----- block${swapped}`);
	}
	const chain = blocks.map((pem, i) => {
		try {
			return new X509Certificate(pem);
		} catch (err) {
			throw optionError(CERT_OPTION, `certificate ${i + 1} in ${files.certFile} does not parse: ${(err as Error).message}`);
		}
	});
	const leaf = chain[0]!;
	if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyText)) {
		throw optionError(KEY_OPTION, `${files.keyFile} is an encrypted key; give the key unencrypted (openssl pkey -in <file> -out <new file>), readable only by Parley`);
	}
	if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyText)) {
		const swapped = /-----BEGIN CERTIFICATE-----/.test(keyText) ? ' (it holds a certificate: swapped with http.tls.certFile?)' : '';
		throw optionError(KEY_OPTION, `${files.keyFile} is not a PEM private key: no -----BEGIN ... PRIVATE KEY----- block${swapped}`);
	}
	let key;
	try {
		key = createPrivateKey({ key: keyText, format: 'pem' });
	} catch (err) {
		// node's message names no file and says nothing of the key's bytes.
		throw optionError(KEY_OPTION, `${files.keyFile} does not parse as a private key: ${(err as Error).message}`);
	}
	if (!leaf.checkPrivateKey(key)) {
		throw new ConfigError(
			`option "${KEY_OPTION}": the key in ${files.keyFile} does not belong to the certificate in ${files.certFile} (option "${CERT_OPTION}", subject ${oneLine(leaf.subject)}); give the key the certificate was issued for`,
			[KEY_OPTION, CERT_OPTION],
		);
	}
	return {
		certFile: files.certFile,
		keyFile: files.keyFile,
		subject: oneLine(leaf.subject),
		issuer: oneLine(leaf.issuer),
		subjectAltName: leaf.subjectAltName ?? '',
		notBefore: new Date(leaf.validFrom),
		notAfter: new Date(leaf.validTo),
		fingerprint256: leaf.fingerprint256,
		chainLength: chain.length,
	};
}

/** Why a certificate deserves a warning now (expired, expiring within EXPIRY_WARNING_MS, not
 * valid yet), or undefined. Browsers refuse an expired one: calls stop working. */
export function certificateWarning(cert: TlsCertificate, nowMs = Date.now()): string | undefined {
	const leftMs = cert.notAfter.getTime() - nowMs;
	if (leftMs <= 0) return `the TLS certificate expired on ${cert.notAfter.toISOString()}: browsers refuse it; renew it and send SIGHUP`;
	if (leftMs < EXPIRY_WARNING_MS) return `the TLS certificate expires in ${(leftMs / 86_400_000).toFixed(1)} days (${cert.notAfter.toISOString()}); renew it and send SIGHUP`;
	if (cert.notBefore.getTime() > nowMs) return `the TLS certificate is not valid before ${cert.notBefore.toISOString()} (is the clock right?)`;
	return undefined;
}

/** The fields of a certificate for a log line or a metric label (no key material). */
export function describeCertificate(cert: TlsCertificate): Record<string, string | number> {
	return {
		subject: cert.subject,
		issuer: cert.issuer,
		subjectAltName: cert.subjectAltName,
		notBefore: cert.notBefore.toISOString(),
		notAfter: cert.notAfter.toISOString(),
		fingerprint256: cert.fingerprint256,
		chainLength: cert.chainLength,
		certFile: cert.certFile,
	};
}

function readOption(option: string, file: string): string {
	try {
		return readFileSync(file, 'utf8');
	} catch (err) {
		throw optionError(option, `cannot read ${file}: ${(err as Error).message}`);
	}
}

function optionError(option: string, message: string): ConfigError {
	return new ConfigError(`option "${option}": ${message}`, [option]);
}

/** node gives `CN=a\nO=b`; a log line or label reads better as `CN=a, O=b`. */
function oneLine(dn: string): string {
	return dn.split('\n').filter((part) => part !== '').join(', ');
}
