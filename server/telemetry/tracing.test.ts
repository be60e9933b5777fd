// Traces end to end: a server pointed at a small OTLP/HTTP receiver (this test) exports a
// span per signaling request and per upload hand-over and transcode, with the attributes
// and errors promised; log lines written inside a span carry its trace id. Without an
// endpoint nothing is started and spans are the API's no-op ones. The standard OTEL_*
// variables configure what Parley's keys leave unset.
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { metrics } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Upload } from 'tus-js-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testConfig } from '../../test/helpers/config.js';
import { TestSignalingClient } from '../../testkit/signalingClient.js';
import { writeToneWav } from '../../test/helpers/wav.js';
import { ParleyServer } from '../ParleyServer.js';
import { mintAccessToken } from '../auth/accessToken.js';
import { PROTOCOL_VERSION, type RequestData } from '../../protocol/messages.js';
import { createLogger } from './logger.js';
import { inSpan, startTracing, type Tracing, type TracingLogger } from './tracing.js';

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
	/** Trace exports. */
	requests: { path: string; contentType: string; headers: http.IncomingHttpHeaders; body: ExportRequest }[];
	/** Every request's method and path, traces or not (metrics and logs must never come). */
	seen: string[];
	close(): Promise<void>;
}

/** Accepts OTLP/HTTP JSON exports at /v1/traces, like a collector would. */
async function startReceiver(): Promise<Receiver> {
	const requests: Receiver['requests'] = [];
	const seen: string[] = [];
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on('data', (c: Buffer) => chunks.push(c));
		req.on('end', () => {
			seen.push(`${req.method} ${req.url}`);
			if (req.method !== 'POST' || req.url !== '/v1/traces') {
				res.writeHead(404).end();
				return;
			}
			requests.push({
				path: req.url,
				contentType: req.headers['content-type'] ?? '',
				headers: req.headers,
				body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as ExportRequest,
			});
			res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
		});
	});
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	return {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		requests,
		seen,
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

function resourcesOf(receiver: Receiver): ExportRequest['resourceSpans'] {
	return receiver.requests.flatMap((r) => r.body.resourceSpans);
}

function spansOf(receiver: Receiver): OtlpSpan[] {
	return resourcesOf(receiver).flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
}

/** Runs with exactly these OTEL_* variables (the shell's own are hidden), restored afterwards. */
class OtelEnv {
	readonly #saved = new Map<string, string | undefined>();
	constructor() {
		for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) this.set(name, undefined);
	}
	set(name: string, value: string | undefined): void {
		if (!this.#saved.has(name)) this.#saved.set(name, process.env[name]);
		if (value === undefined) delete process.env[name];
		else process.env[name] = value;
	}
	restore(): void {
		for (const [name, value] of this.#saved) {
			if (value === undefined) delete process.env[name];
			else process.env[name] = value;
		}
	}
}

/** A `{ info, warn }` logger that keeps what it is told. */
function recordingLogger(): TracingLogger & { lines: { level: string; msg: string; fields: Record<string, unknown> }[] } {
	const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
	return {
		lines,
		info: (fields, msg) => void lines.push({ level: 'info', msg, fields }),
		warn: (fields, msg) => void lines.push({ level: 'warn', msg, fields }),
	};
}

const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('OpenTelemetry traces', () => {
	let server: ParleyServer | undefined;
	let tracing: Tracing | undefined;
	let receiver: Receiver | undefined;
	/** A second collector, for settings that must lose. */
	let other: Receiver | undefined;
	let env: OtelEnv;

	beforeEach(() => {
		env = new OtelEnv();
	});

	afterEach(async () => {
		await server?.shutdown('test end');
		server = undefined;
		await tracing?.shutdown();
		tracing = undefined;
		await receiver?.close();
		receiver = undefined;
		await other?.close();
		other = undefined;
		env.restore();
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

	it('takes endpoint, service name, headers and resource attributes from the OTEL_* variables when Parley keys are unset; exports traces only', async () => {
		receiver = await startReceiver();
		env.set('OTEL_EXPORTER_OTLP_ENDPOINT', receiver.url);
		env.set('OTEL_SERVICE_NAME', 'parley-from-env');
		env.set('OTEL_EXPORTER_OTLP_HEADERS', 'x-collector-token=s3cret');
		env.set('OTEL_RESOURCE_ATTRIBUTES', 'deployment.environment.name=staging');
		const lines: string[] = [];
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET }), createLogger('info', { write: (line: string) => void lines.push(line) }));
		const token = await mintAccessToken({ userId: 'ada', channels: ['room'], ttlS: 600 }, key);
		const { client } = await TestSignalingClient.connect(`ws://127.0.0.1:${server.http.port}/ws?token=${token}&v=${PROTOCOL_VERSION}`);
		expect((await client.request('getRouterRtpCapabilities', {})).ok).toBe(true);
		client.close();
		// Would be exported at shutdown if the SDK had started its default metric or log exporters.
		metrics.getMeter('probe').createCounter('probe_total').add(1);
		logs.getLogger('probe').emit({ body: 'probe' });
		await server.shutdown('test end');

		expect(spansOf(receiver).map((s) => s.name)).toContain('signaling/getRouterRtpCapabilities');
		const resources = resourcesOf(receiver);
		expect(resources.length).toBeGreaterThan(0);
		for (const r of resources) {
			expect(attr(r.resource, 'service.name')).toBe('parley-from-env');
			expect(attr(r.resource, 'service.version')).toBe(PACKAGE_VERSION);
			expect(attr(r.resource, 'deployment.environment.name')).toBe('staging');
		}
		for (const r of receiver.requests) expect(r.headers['x-collector-token']).toBe('s3cret');
		// OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER default to otlp in the SDK: nothing but traces may arrive.
		expect(new Set(receiver.seen)).toEqual(new Set(['POST /v1/traces']));
		const started = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'exporting traces')!;
		expect(started).toMatchObject({ component: 'telemetry', tracesUrl: `${receiver.url}/v1/traces`, from: 'OTEL_EXPORTER_OTLP_ENDPOINT', serviceName: 'parley-from-env' });
	});

	it("Parley's keys win over the OTEL_* variables", async () => {
		receiver = await startReceiver();
		other = await startReceiver();
		env.set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', `${other.url}/v1/traces`);
		env.set('OTEL_EXPORTER_OTLP_ENDPOINT', other.url);
		env.set('OTEL_SERVICE_NAME', 'from-env');
		tracing = await startTracing({ otlpEndpoint: receiver.url, serviceName: 'from-key' }, recordingLogger());
		expect(tracing?.tracesUrl).toBe(`${receiver.url}/v1/traces`);
		await inSpan('probe', {}, async () => {});
		await tracing!.shutdown();

		expect(spansOf(receiver).map((s) => s.name)).toEqual(['probe']);
		expect(resourcesOf(receiver).map((r) => attr(r.resource, 'service.name'))).toEqual(['from-key']);
		expect(other.seen).toEqual([]);
	});

	it('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is and beats OTEL_EXPORTER_OTLP_ENDPOINT; service.name can come from OTEL_RESOURCE_ATTRIBUTES', async () => {
		receiver = await startReceiver();
		other = await startReceiver();
		env.set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', `${receiver.url}/v1/traces`);
		env.set('OTEL_EXPORTER_OTLP_ENDPOINT', other.url);
		env.set('OTEL_RESOURCE_ATTRIBUTES', 'service.name=from-attributes,team=voice');
		const log = recordingLogger();
		tracing = await startTracing({ otlpEndpoint: '', serviceName: '' }, log);
		expect(tracing?.tracesUrl).toBe(`${receiver.url}/v1/traces`);
		await inSpan('probe', {}, async () => {});
		await tracing!.shutdown();

		expect(spansOf(receiver).map((s) => s.name)).toEqual(['probe']);
		const [resource] = resourcesOf(receiver);
		expect(attr(resource!.resource, 'service.name')).toBe('from-attributes');
		expect(attr(resource!.resource, 'team')).toBe('voice');
		expect(other.seen).toEqual([]);
		expect(log.lines.find((l) => l.msg === 'exporting traces')?.fields).toMatchObject({ from: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', serviceName: 'from-attributes' });
	});

	it('service.name is parley when neither the key nor the OTEL_* variables name one', async () => {
		receiver = await startReceiver();
		tracing = await startTracing({ otlpEndpoint: receiver.url, serviceName: '' }, recordingLogger());
		await inSpan('probe', {}, async () => {});
		await tracing!.shutdown();
		expect(resourcesOf(receiver).map((r) => attr(r.resource, 'service.name'))).toEqual(['parley']);
	});

	it.each([
		{ sampler: 'always_off', arg: undefined },
		{ sampler: 'traceidratio', arg: '0' },
	])('OTEL_TRACES_SAMPLER=$sampler (arg $arg): spans are not recorded and nothing is exported', async ({ sampler, arg }) => {
		receiver = await startReceiver();
		env.set('OTEL_TRACES_SAMPLER', sampler);
		env.set('OTEL_TRACES_SAMPLER_ARG', arg);
		tracing = await startTracing({ otlpEndpoint: receiver.url, serviceName: '' }, recordingLogger());
		expect(tracing).toBeDefined();
		expect(await inSpan('probe', {}, async (span) => span.isRecording())).toBe(false);
		await tracing!.shutdown();
		expect(receiver.seen).toEqual([]);
	});

	it('OTEL_SDK_DISABLED=true starts nothing, even with telemetry.otlpEndpoint set', async () => {
		receiver = await startReceiver();
		env.set('OTEL_SDK_DISABLED', 'true');
		const log = recordingLogger();
		tracing = await startTracing({ otlpEndpoint: receiver.url, serviceName: '' }, log);
		expect(tracing).toBeUndefined();
		expect(await inSpan('probe', {}, async (span) => span.isRecording())).toBe(false);
		expect(log.lines.map((l) => l.msg)).toEqual(['tracing off: OTEL_SDK_DISABLED=true']);
		expect(receiver.seen).toEqual([]);
		// The switch wins over a broken endpoint setting too: startup goes on without tracing.
		env.set('OTEL_EXPORTER_OTLP_ENDPOINT', 'collector 4318');
		expect(await startTracing({ otlpEndpoint: '', serviceName: '' }, log)).toBeUndefined();
	});

	it('an endpoint that is not an http(s) URL stops startup, naming the setting it came from', async () => {
		await expect(startTracing({ otlpEndpoint: 'localhost:4318', serviceName: '' }, recordingLogger())).rejects.toThrow(
			'telemetry.otlpEndpoint must be an http:// or https:// URL: localhost:4318',
		);
		env.set('OTEL_EXPORTER_OTLP_ENDPOINT', 'collector 4318');
		await expect(startTracing({ otlpEndpoint: '', serviceName: '' }, recordingLogger())).rejects.toThrow('OTEL_EXPORTER_OTLP_ENDPOINT is not a URL: collector 4318');
		// Nothing was left registered: spans are still no-ops.
		expect(await inSpan('probe', {}, async (span) => span.isRecording())).toBe(false);
	});
});
