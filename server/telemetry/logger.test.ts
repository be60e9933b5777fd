// Credentials never reach a log line, whatever a module logs: captured lines of a real
// pino logger, as they would go to stdout.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redactSecrets } from './logger.js';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEiLCJleHAiOjE4MDAwMDAwMDB9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';

function capture(): { lines: () => string[]; log: ReturnType<typeof createLogger> } {
	const chunks: string[] = [];
	const sink = new Writable({
		write(chunk: Buffer, _encoding, done) {
			chunks.push(chunk.toString());
			done();
		},
	});
	return { log: createLogger('debug', sink), lines: () => chunks.join('').split('\n').filter((l) => l !== '') };
}

describe('log redaction', () => {
	it('redacts tokens in logged URLs, queries, headers, fields, messages and errors', () => {
		const { log, lines } = capture();
		log.info({ url: `/ws?token=${JWT}&v=1` }, 'upgrade');
		log.info({ request: { query: `user=bob&exp=1800000000&sig=AbCdEfGh_-123`, path: '/voice/messages/x/audio' } }, 'audio');
		log.info({ url: `https://parley.example/voice/messages/x/audio?access_token=${JWT}` }, 'download');
		log.warn({ headers: { authorization: `Bearer ${JWT}`, host: 'parley.example' } }, 'headers');
		log.warn({ req: { headers: { authorization: 'Bearer opaque-metrics-token' } } }, 'nested headers');
		log.info({ authorization: 'Bearer opaque-metrics-token', token: 'opaque', accessToken: JWT }, 'fields');
		log.info(`fetching /voice/messages?access_token=${JWT} with Authorization: Bearer opaque-metrics-token`);
		log.error({ err: new Error(`redirect to wss://node-b/ws?token=${JWT} failed`) }, 'redirect');
		log.info({ note: `a bare ${JWT} in text` }, 'bare');

		const text = lines().join('\n');
		expect(lines()).toHaveLength(9);
		for (const secret of [JWT, 'eyJhbGciOiJIUzI1NiJ9', 'AbCdEfGh_-123', 'opaque-metrics-token', '"opaque"']) expect(text).not.toContain(secret);
		const parsed = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
		expect(parsed[0]!.url).toBe('/ws?token=[redacted]&v=1');
		expect((parsed[1]!.request as Record<string, string>).query).toBe('user=bob&exp=1800000000&sig=[redacted]');
		expect((parsed[1]!.request as Record<string, string>).path).toBe('/voice/messages/x/audio');
		expect(parsed[2]!.url).toBe('https://parley.example/voice/messages/x/audio?access_token=[redacted]');
		expect(parsed[3]!.headers).toEqual({ authorization: '[redacted]', host: 'parley.example' });
		expect(parsed[5]).toMatchObject({ authorization: '[redacted]', token: '[redacted]', accessToken: '[redacted]', msg: 'fields' });
		expect(parsed[6]!.msg).toBe('fetching /voice/messages?access_token=[redacted] with Authorization: Bearer [redacted]');
		expect((parsed[7]!.err as { message: string }).message).toBe('redirect to wss://node-b/ws?token=[redacted] failed');
		expect((parsed[7]!.err as { stack: string }).stack).not.toContain(JWT);
	});

	it('redacts TURN credentials wherever a transport carries them', () => {
		const { log, lines } = capture();
		const iceServers = [{ urls: ['turn:turn.example:3478?transport=udp'], username: '1800000000:ada', credential: 'c2VjcmV0LWhtYWMtdmFsdWU=' }];
		log.info({ iceServers }, 'top');
		log.info({ data: { iceServers } }, 'nested');
		log.info({ reply: { data: { iceServers } } }, 'deeper');
		log.info({ credential: 'c2VjcmV0LWhtYWMtdmFsdWU=', password: 'hunter2' }, 'fields');
		const text = lines().join('\n');
		expect(lines()).toHaveLength(4);
		expect(text).not.toContain('c2VjcmV0LWhtYWMtdmFsdWU=');
		expect(text).not.toContain('hunter2');
		expect(text).toContain('turn:turn.example:3478?transport=udp');
	});

	it('leaves text without credentials alone', () => {
		expect(redactSecrets('/voice/messages?channel=design&limit=20&before=abc')).toBe('/voice/messages?channel=design&limit=20&before=abc');
		expect(redactSecrets('GET /voice/messages/0b6c7a3e/audio')).toBe('GET /voice/messages/0b6c7a3e/audio');
	});
});
