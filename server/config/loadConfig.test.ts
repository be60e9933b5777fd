import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderConfigDocs } from './configDocs.js';
import { ConfigError, envNameOf, listOptions, loadConfig } from './loadConfig.js';

function configError(env: Record<string, string>): ConfigError {
	try {
		loadConfig({ env });
	} catch (err) {
		if (err instanceof ConfigError) return err;
		throw err;
	}
	throw new Error('loadConfig accepted a bad configuration');
}

function writeConfigFile(content: string): string {
	const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-config-')), 'parley.json');
	writeFileSync(file, content);
	return file;
}

describe('loadConfig', () => {
	it('fills every default from an empty environment', () => {
		const config = loadConfig({ env: {} });
		expect(config.http.port).toBe(8080);
		expect(config.logLevel).toBe('info');
		expect(config.media.workers).toBe(0);
		expect(config.media.rtcPort).toBe(40000);
		expect(config.shutdown.deadlineMs).toBe(10_000);
		expect(config.cluster.redisUrl).toBe('');
	});

	it('takes PARLEY_* overrides, converting numbers', () => {
		const config = loadConfig({ env: { PARLEY_HTTP_PORT: '9001', PARLEY_MEDIA_WORKERS: '3', PARLEY_MEDIA_ANNOUNCED_ADDRESS: 'voice.example.org' } });
		expect(config.http.port).toBe(9001);
		expect(config.media.workers).toBe(3);
		expect(config.media.announcedAddress).toBe('voice.example.org');
	});

	it('honours REDIS_URL, with PARLEY_CLUSTER_REDIS_URL winning over it', () => {
		expect(loadConfig({ env: { REDIS_URL: 'redis://a:1' } }).cluster.redisUrl).toBe('redis://a:1');
		expect(loadConfig({ env: { REDIS_URL: 'redis://a:1', PARLEY_CLUSTER_REDIS_URL: 'redis://b:2' } }).cluster.redisUrl).toBe('redis://b:2');
		expect(loadConfig({ env: { REDIS_URL: '' } }).cluster.redisUrl).toBe('');
	});

	it('rejects a negative port, naming the option and the variable', () => {
		const err = configError({ PARLEY_HTTP_PORT: '-1' });
		expect(err.options).toEqual(['http.port']);
		expect(err.message).toContain('option "http.port"');
		expect(err.message).toContain('PARLEY_HTTP_PORT="-1"');
	});

	it('rejects an unknown log level, listing the allowed ones', () => {
		const err = configError({ PARLEY_LOG_LEVEL: 'loud' });
		expect(err.options).toEqual(['logLevel']);
		expect(err.message).toMatch(/option "logLevel".*"info"/s);
	});

	it('rejects a non-numeric number instead of reading it as 0 or NaN', () => {
		const err = configError({ PARLEY_SHUTDOWN_DEADLINE_MS: 'soon' });
		expect(err.options).toEqual(['shutdown.deadlineMs']);
		expect(err.message).toMatch(/expected number/);
	});

	it('rejects a listen address that is not an IP', () => {
		expect(configError({ PARLEY_MEDIA_LISTEN_IP: 'example.org' }).options).toEqual(['media.listenIp']);
	});

	it('rejects unknown PARLEY_* variables (typos would otherwise be ignored)', () => {
		const err = configError({ PARLEY_HTTP_PROT: '1' });
		expect(err.options).toEqual(['PARLEY_HTTP_PROT']);
	});

	it('reads a JSON file, the environment overriding it', () => {
		const file = writeConfigFile(JSON.stringify({ http: { port: 7000, host: '127.0.0.1' }, media: { workers: 2 } }));
		const config = loadConfig({ env: { PARLEY_CONFIG: file, PARLEY_MEDIA_WORKERS: '4' } });
		expect(config.http).toMatchObject({ host: '127.0.0.1', port: 7000 });
		expect(config.media.workers).toBe(4);
	});

	it('names the file and the option for a bad value or an unknown key in the file', () => {
		const file = writeConfigFile(JSON.stringify({ http: { port: 70000, colour: 'red' } }));
		const err = configError({ PARLEY_CONFIG: file });
		expect(err.options.sort()).toEqual(['http.colour', 'http.port']);
		expect(err.message).toContain(`option "http.port" (from config file ${file})`);
		expect(err.message).toContain('option "http.colour"');
	});

	it('refuses a file that is not JSON', () => {
		const file = writeConfigFile('{ port: 1 ');
		expect(() => loadConfig({ env: { PARLEY_CONFIG: file } })).toThrow(/not valid JSON/);
	});

	it('accepts the shipped example file', () => {
		expect(() => loadConfig({ env: { PARLEY_CONFIG: path.resolve('config/example.json') } })).not.toThrow();
	});
});

describe('option catalogue', () => {
	it('derives env names from option paths', () => {
		expect(envNameOf(['media', 'workerRespawnDelayMs'])).toBe('PARLEY_MEDIA_WORKER_RESPAWN_DELAY_MS');
	});

	it('documents every option with a description and a default', () => {
		for (const o of listOptions()) {
			expect(o.jsonSchema.description, o.name).toBeTruthy();
			expect(o.jsonSchema.default, o.name).not.toBeUndefined();
		}
	});

	it('config/README.md is generated from the current schema (run `npm run config:docs`)', () => {
		expect(readFileSync('config/README.md', 'utf8')).toBe(renderConfigDocs());
	});
});
