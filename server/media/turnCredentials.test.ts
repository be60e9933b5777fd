import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config/loadConfig.js';
import { turnCredential, turnCredentialIssuer } from './turnCredentials.js';

const SECRET = 'turn-unit-secret-0123456789-abcdefghijkl';

describe('TURN credentials', () => {
	it('follow the TURN REST scheme coturn verifies: <expiry>:<user>, base64 HMAC-SHA1', () => {
		const { username, credential } = turnCredential(SECRET, 'user-ada', 1_800_000_000);
		expect(username).toBe('1800000000:user-ada');
		expect(credential).toBe(createHmac('sha1', SECRET).update('1800000000:user-ada').digest('base64'));
		expect(turnCredential('another-secret-0123456789-abcdefghijklmn', 'user-ada', 1_800_000_000).credential).not.toBe(credential);
	});

	it('expire turn.credentialTtlS after issue and list every configured URL', () => {
		const issuer = turnCredentialIssuer({ urls: 'turn:10.0.0.1:3478?transport=udp, turns:turn.example.com:443?transport=tcp', secret: SECRET, credentialTtlS: 600 });
		const [server] = issuer.iceServers('user-bob', 1_700_000_000_500);
		expect(server).toEqual({ urls: ['turn:10.0.0.1:3478?transport=udp', 'turns:turn.example.com:443?transport=tcp'], ...turnCredential(SECRET, 'user-bob', 1_700_000_600) });
		expect(turnCredentialIssuer({ urls: '', secret: '', credentialTtlS: 3600 }).iceServers('user-bob')).toEqual([]);
	});

	it('configuration: a bad URL or a missing secret stops startup naming the option', () => {
		const error = (env: Record<string, string>): ConfigError => {
			try {
				loadConfig({ env });
			} catch (err) {
				return err as ConfigError;
			}
			throw new Error('loaded');
		};
		expect(error({ PARLEY_TURN_URLS: 'turn:10.0.0.1:3478' }).options).toEqual(['turn.secret']);
		expect(error({ PARLEY_TURN_URLS: 'stun:10.0.0.1:3478', PARLEY_TURN_SECRET: SECRET }).message).toContain('option "turn.urls"');
		expect(error({ PARLEY_TURN_URLS: 'turns:x.example:443?transport=udp', PARLEY_TURN_SECRET: SECRET }).options).toEqual(['turn.urls']);
		expect(error({ PARLEY_TURN_URLS: 'turn:10.0.0.1:3478', PARLEY_TURN_SECRET: 'short' }).options).toEqual(['turn.secret']);
		expect(loadConfig({ env: { PARLEY_TURN_URLS: 'turn:[::1]:3478?transport=tcp', PARLEY_TURN_SECRET: SECRET } }).turn.credentialTtlS).toBe(3600);
	});
});
