// Traces end to end: a server pointed at a small OTLP/HTTP receiver (this test) exports a
// span per signaling request and per upload hand-over and transcode, with the attributes
// and errors promised; log lines written inside a span carry its trace id. Without an
// endpoint nothing is started and spans are the API's no-op ones.
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Upload } from 'tus-js-client';
import { afterEach, describe, expect, it } from 'vitest';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { TestSignalingClient } from '../../test/helpers/signalingClient.js';
import { writeToneWav } from '../../test/helpers/wav.js';
import { ParleyServer } from '../ParleyServer.js';
import { mintAccessToken } from '../auth/accessToken.js';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { createLogger } from './logger.js';
import { inSpan } from './tracing.js';

const SECRET = 'tracing-test-secret-0123456789-abcdefghij';
const key = new TextEncoder().encode(SECRET);

interface OtlpValue {
	stringValue?: string;
	intValue?: number | string;
	boolValue?: boolean;
	doubleValue?: number;
}
interface OtlpSpan {
	traceId: string;
	spanId: string;
	parentSpanId?: string;
	name: string;
	kind: number;
	attributes: { key: string; value: OtlpValue }[];
	status?: { code?: number; message?: string };
	events?: { name: string; attributes?: { key: string; value: OtlpValue }[] }[];
}
interface ExportRequest {
	resourceSpans: { resource: { attributes: { key: string; value: OtlpValue }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

interface Receiver {
	url: string;
	requests: { path: string; contentType: string; body: ExportRequest }[];
	close(): Promise<void>;
}

/** Accepts OTLP/HTTP JSON exports at /v1/traces, like a collector would. */
async function startReceiver(): Promise<Receiver> {
	const requests: Receiver['requests'] = [];
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on('data', (c: Buffer) => chunks.push(c));
		req.on('end', () => {
			if (req.method !== 'POST' || req.url !== '/v1/traces') {
				res.writeHead(404).end();
				return;
			}
			requests.push({ path: req.url, contentType: req.headers['content-type'] ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as ExportRequest });
			res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
		});
	});
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	return {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		requests,
		close: () => new Promise((resolve) => server.close(() => resolve())),
	};
}

function attr(span: { attributes: { key: string; value: OtlpValue }[] }, name: string): string | number | boolean | undefined {
	const v = span.attributes.find((a) => a.key === name)?.value;
	if (!v) return undefined;
	return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.boolValue ?? v.doubleValue;
}

/** OTLP JSON carries ids as hex (the spec's JSON mapping); accept base64 too. */
function hexId(id: string): string {
	return /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');
}

describe('OpenTelemetry traces', () => {
	let server: ParleyServer | undefined;
	let receiver: Receiver | undefined;

	afterEach(async () => {
		await server?.shutdown('test end');
		server = undefined;
		await receiver?.close();
		receiver = undefined;
	});

	it('exports a span per signaling request, upload hand-over and transcode over OTLP/HTTP; logs carry the trace id', async () => {
		receiver = await startReceiver();
		const lines: string[] = [];
		const log = createLogger('info', { write: (line: string) => void lines.push(line) });
		server = await ParleyServer.create(
			await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, PARLEY_TELEMETRY_OTLP_ENDPOINT: `${receiver.url}/`, PARLEY_TELEMETRY_SERVICE_NAME: 'parley-under-test' }),
			log,
		);
		const token = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canRecord: true }, ttlS: 600 }, key);
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		const joined = await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		expect(joined.ok).toBe(true);
		const missing = await client.request('resumeConsumer', { consumerId: 'no-such-consumer' });
		expect(missing.ok ? 'OK' : missing.error.code).toBe('E_NOT_FOUND');

		// An upload: the hand-over span, and the transcode it starts as a child.
		const wav = path.join(mkdtempSync(path.join(os.tmpdir(), 'parley-trace-')), 'tone.wav');
		writeToneWav(wav, 440, 1);
		const uploadUrl = await new Promise<string>((resolve, reject) => {
			const u = new Upload(readFileSync(wav), {
				endpoint: `http://127.0.0.1:${server!.http.port}/voice/uploads`,
				headers: { authorization: `Bearer ${token}` },
				metadata: { destination: 'channel:room', filename: 'tone.wav', filetype: 'audio/wav' },
				retryDelays: [],
				onSuccess: () => resolve(u.url!),
				onError: reject,
			});
			u.start();
		});
		const messageId = uploadUrl.split('/').pop()!;
		await client.waitFor('voiceMessage', (d) => d.message.id === messageId && d.message.status === 'ready', 15_000);
		client.close();
		// Shutdown flushes what the batch processor still holds.
		await server.shutdown('test end');

		expect(receiver.requests.length).toBeGreaterThan(0);
		for (const r of receiver.requests) expect(r.contentType).toMatch(/^application\/json/);
		const resources = receiver.requests.flatMap((r) => r.body.resourceSpans);
		expect(resources.map((r) => attr(r.resource, 'service.name'))).toContain('parley-under-test');
		const spans = resources.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));

		const join = spans.find((s) => s.name === 'signaling/join');
		expect(join, `spans: ${spans.map((s) => s.name).join(', ')}`).toBeDefined();
		expect(join!.kind).toBe(2); // SPAN_KIND_SERVER
		expect(attr(join!, 'rpc.system')).toBe('parley');
		expect(attr(join!, 'rpc.method')).toBe('join');
		expect(attr(join!, 'parley.channel')).toBe('room');
		expect(attr(join!, 'parley.result_code')).toBe('OK');
		expect(join!.status?.code ?? 0).not.toBe(2);

		const failed = spans.find((s) => s.name === 'signaling/resumeConsumer')!;
		expect(attr(failed, 'rpc.method')).toBe('resumeConsumer');
		expect(attr(failed, 'parley.result_code')).toBe('E_NOT_FOUND');
		expect(attr(failed, 'parley.channel')).toBe('room');
		expect(failed.status?.code).toBe(2); // STATUS_CODE_ERROR
		expect(failed.events?.map((e) => e.name)).toContain('exception');

		const handOver = spans.find((s) => s.name === 'voice.upload.complete')!;
		expect(attr(handOver, 'parley.upload_id')).toBe(messageId);
		const transcode = spans.find((s) => s.name === 'voice.transcode')!;
		expect(attr(transcode, 'parley.detected_format')).toBe('wav');
		expect(transcode.traceId).toBe(handOver.traceId);
		expect(transcode.parentSpanId).toBe(handOver.spanId);
		expect(spans.some((s) => s.name === 'voice.waveform' && s.traceId === handOver.traceId)).toBe(true);

		// The handler's log line for the join carries the join span's ids.
		const peerJoined = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'peer joined')!;
		expect(peerJoined.traceId).toBe(hexId(join!.traceId));
		expect(peerJoined.spanId).toBe(hexId(join!.spanId));
		const listening = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'parley listening')!;
		expect(listening.traces).toBe(`${receiver.url}/v1/traces`);
		expect(listening.traceId).toBeUndefined();
	});

	it('starts nothing without an endpoint: spans are no-ops and logs have no trace ids', async () => {
		const lines: string[] = [];
		const log = createLogger('info', { write: (line: string) => void lines.push(line) });
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET }), log);
		expect(await inSpan('probe', {}, async (span) => span.isRecording())).toBe(false);
		const token = await mintAccessToken({ userId: 'ada', channels: ['room'], ttlS: 600 }, key);
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		expect((await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] })).ok).toBe(true);
		client.close();
		const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
		expect(entries.find((l) => l.msg === 'peer joined')).toBeDefined();
		expect(entries.some((l) => 'traceId' in l)).toBe(false);
		expect(entries.find((l) => l.msg === 'parley listening')!.traces).toBe('off');
	});
});
