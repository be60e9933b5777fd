// The checks of http.tls files before uWebSockets.js sees them, on certificates openssl
// makes: each refusal names the option, and the expiry warning's thresholds.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config/loadConfig.js';
import { certificateWarning, describeCertificate, EXPIRY_WARNING_MS, loadTlsCertificate } from './tlsCertificate.js';

const DAY_MS = 86_400_000;

function makeCert(dir: string, name: string, days: number): { certFile: string; keyFile: string } {
	const certFile = path.join(dir, `${name}.crt`);
	const keyFile = path.join(dir, `${name}.key`);
	execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', String(days), '-subj', `/CN=${name}.test/O=Parley`, '-addext', `subjectAltName=DNS:${name}.test`, '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
	return { certFile, keyFile };
}

/** The ConfigError loadTlsCertificate throws for these files. */
function refusal(certFile: string, keyFile: string): ConfigError {
	try {
		loadTlsCertificate({ certFile, keyFile });
	} catch (err) {
		if (err instanceof ConfigError) return err;
		throw err;
	}
	throw new Error('loadTlsCertificate accepted the files');
}

describe('loadTlsCertificate', () => {
	let dir: string;
	let a: { certFile: string; keyFile: string };
	let b: { certFile: string; keyFile: string };
	const file = (name: string, text: string): string => {
		const p = path.join(dir, name);
		writeFileSync(p, text);
		return p;
	};

	beforeAll(() => {
		dir = mkdtempSync(path.join(os.tmpdir(), 'parley-tls-unit-'));
		a = makeCert(dir, 'a', 90);
		b = makeCert(dir, 'b', 1);
	});
	afterAll(() => rmSync(dir, { recursive: true, force: true }));

	it('reads a matching pair: subject, names, validity and the SHA-256 fingerprint, and counts a chain', () => {
		const cert = loadTlsCertificate(a);
		const pem = readFileSync(a.certFile, 'utf8');
		const x509 = new X509Certificate(pem);
		expect(cert).toMatchObject({ subject: 'CN=a.test, O=Parley', subjectAltName: 'DNS:a.test', fingerprint256: x509.fingerprint256, chainLength: 1 });
		expect(cert.notAfter.getTime() - Date.now()).toBeGreaterThan(89 * DAY_MS);
		expect(describeCertificate(cert)).not.toHaveProperty('keyFile');
		// fullchain.pem: the leaf first, then an intermediate (any certificate stands in for one).
		const chain = file('fullchain.pem', pem + readFileSync(b.certFile, 'utf8'));
		expect(loadTlsCertificate({ certFile: chain, keyFile: a.keyFile })).toMatchObject({ fingerprint256: x509.fingerprint256, chainLength: 2 });
	});

	it('refuses files that are missing, not PEM, swapped, corrupt or encrypted, naming the option', () => {
		const cases: [ConfigError, string[], string][] = [
			[refusal(path.join(dir, 'nope.crt'), a.keyFile), ['http.tls.certFile'], 'cannot read'],
			[refusal(a.certFile, path.join(dir, 'nope.key')), ['http.tls.keyFile'], 'cannot read'],
			[refusal(file('empty.crt', ''), a.keyFile), ['http.tls.certFile'], 'is not a PEM certificate'],
			[refusal(a.keyFile, a.certFile), ['http.tls.certFile'], 'swapped with http.tls.keyFile'],
			[refusal(a.certFile, a.certFile), ['http.tls.keyFile'], 'swapped with http.tls.certFile'],
			[refusal(file('corrupt.crt', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), a.keyFile), ['http.tls.certFile'], 'certificate 1 in'],
			[refusal(a.certFile, file('corrupt.key', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')), ['http.tls.keyFile'], 'does not parse as a private key'],
			[refusal(a.certFile, b.keyFile), ['http.tls.keyFile', 'http.tls.certFile'], 'does not belong to the certificate'],
		];
		const encrypted = path.join(dir, 'encrypted.key');
		execFileSync('openssl', ['pkey', '-in', a.keyFile, '-aes256', '-passout', 'pass:secret', '-out', encrypted]);
		cases.push([refusal(a.certFile, encrypted), ['http.tls.keyFile'], 'is an encrypted key']);
		for (const [err, options, text] of cases) {
			expect(err.options).toEqual(options);
			expect(err.message).toContain(`option "${options[0]}"`);
			expect(err.message).toContain(text);
			expect(err.message).not.toContain('MII');
		}
	});

	it('warns of a certificate that expired, expires within 14 days or is not valid yet', () => {
		const cert = loadTlsCertificate(a);
		const notAfter = cert.notAfter.getTime();
		expect(certificateWarning(cert)).toBeUndefined();
		expect(certificateWarning(cert, notAfter - EXPIRY_WARNING_MS - 1000)).toBeUndefined();
		expect(certificateWarning(cert, notAfter - 3 * DAY_MS)).toMatch(/^the TLS certificate expires in 3\.0 days/);
		expect(certificateWarning(cert, notAfter + 1000)).toMatch(/^the TLS certificate expired on /);
		expect(certificateWarning(cert, cert.notBefore.getTime() - 60_000)).toMatch(/not valid before/);
		expect(certificateWarning(loadTlsCertificate(b))).toMatch(/expires in (0\.\d|1\.0) days/);
	});

	it('config: certFile and keyFile go together', () => {
		expect(() => loadConfig({ env: { PARLEY_HTTP_TLS_CERT_FILE: a.certFile } })).toThrow(/option "http\.tls\.keyFile".*both or neither/);
		expect(() => loadConfig({ env: { PARLEY_HTTP_TLS_KEY_FILE: a.keyFile } })).toThrow(/option "http\.tls\.certFile"/);
		expect(loadConfig({ env: { PARLEY_HTTP_TLS_CERT_FILE: a.certFile, PARLEY_HTTP_TLS_KEY_FILE: a.keyFile } }).http.tls).toEqual(a);
	});
});
