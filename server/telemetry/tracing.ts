// OpenTelemetry traces: a span per signaling request, upload hand-over, transcode and
// recording finalize, exported over OTLP/HTTP (JSON) when an endpoint is configured.
//
// Code everywhere creates spans through the API's global tracer. Without an endpoint no SDK
// is loaded or started: the API stays on its no-op tracer and context manager, so a span
// costs one small object and no context is propagated. With one, startTracing() starts the
// standard NodeSDK (AsyncLocalStorage context, batched export), traces only, which
// shutdown() flushes.
//
// Settings, first match wins (Parley's own key is the more specific choice, so it beats a
// variable set for every service on the host):
// - OTEL_SDK_DISABLED=true: tracing off, whatever else is set (the kill switch every SDK honours).
// - where spans go: telemetry.otlpEndpoint (base URL + /v1/traces), else
//   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is), else OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces),
//   else nowhere: tracing off.
// - service.name: telemetry.serviceName, else OTEL_SERVICE_NAME, else service.name in
//   OTEL_RESOURCE_ATTRIBUTES, else `parley`.
// - everything else is the SDK's own reading of the environment: OTEL_RESOURCE_ATTRIBUTES,
//   OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, OTEL_PROPAGATORS, OTEL_BSP_*.
// Metrics and logs stay Prometheus and pino: the SDK is given no metric reader, no log
// processor and no instrumentations, whatever OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER say.
import { readFileSync } from 'node:fs';
import { context, isSpanContextValid, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';

export { SpanKind };

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const DEFAULT_SERVICE_NAME = 'parley';
/** The SDK's tracer while tracing runs, else the API's no-op one. (Not a ProxyTracer kept
 * across: that one caches its first delegate forever, so a stopped SDK would stay in use.) */
let tracer = trace.getTracer('parley', VERSION);

/** A span export must not hold up shutdown when the collector is gone. */
const EXPORT_TIMEOUT_MS = 2000;
const FLUSH_AT_SHUTDOWN_MS = 3000;

/**
 * Runs `fn` inside a new active span (so log lines and child spans inside it carry its trace
 * id), records a throw as the span's exception and error status, and ends the span.
 */
export async function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, kind: SpanKind = SpanKind.INTERNAL): Promise<T> {
	return tracer.startActiveSpan(name, { attributes, kind }, async (span) => {
		try {
			return await fn(span);
		} catch (err) {
			recordSpanError(span, err);
			throw err;
		} finally {
			span.end();
		}
	});
}

export function recordSpanError(span: Span, err: unknown, message?: string): void {
	if (!span.isRecording()) return;
	span.recordException(err instanceof Error ? err : String(err));
	span.setStatus({ code: SpanStatusCode.ERROR, message: message ?? (err instanceof Error ? err.message : String(err)) });
}

/** pino mixin: the active span's ids on every log line written inside it. */
export function traceLogFields(): Record<string, string> {
	const span = trace.getActiveSpan();
	if (!span) return {};
	const ctx = span.spanContext();
	return isSpanContextValid(ctx) ? { traceId: ctx.traceId, spanId: ctx.spanId } : {};
}

/** What tracing logs through. Declared here, not taken from logger.ts, which imports this module. */
export interface TracingLogger {
	info(fields: Record<string, unknown>, msg: string): void;
	warn(fields: Record<string, unknown>, msg: string): void;
}

export interface TracingOptions {
	/** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT semantics); empty: the OTEL_* variables decide. */
	otlpEndpoint: string;
	/** service.name; empty: the OTEL_* variables decide, else `parley`. */
	serviceName: string;
}

export interface Tracing {
	/** Where spans are sent. */
	readonly tracesUrl: string;
	/** Exports what is buffered (bounded in time) and unregisters the SDK. */
	shutdown(): Promise<void>;
}

/** The signal-specific URL for a base endpoint: `http://c:4318` -> `http://c:4318/v1/traces`. */
export function tracesUrlOf(endpoint: string): string {
	return `${endpoint.replace(/\/+$/, '')}/v1/traces`;
}

/** The traces URL and the setting it came from, or undefined when none is set. */
function resolveTracesUrl(options: TracingOptions, env: NodeJS.ProcessEnv): { url: string; from: string } | undefined {
	const candidates: [from: string, value: string | undefined, toUrl: (v: string) => string][] = [
		['telemetry.otlpEndpoint', options.otlpEndpoint, tracesUrlOf],
		['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, (v) => v],
		['OTEL_EXPORTER_OTLP_ENDPOINT', env.OTEL_EXPORTER_OTLP_ENDPOINT, tracesUrlOf],
	];
	for (const [from, raw, toUrl] of candidates) {
		const value = raw?.trim();
		// An empty variable means unset (the OTel spec's rule), as for an empty Parley key.
		if (!value) continue;
		let url: URL;
		try {
			url = new URL(toUrl(value));
		} catch {
			throw new Error(`${from} is not a URL: ${value}`);
		}
		// `localhost:4318` parses, as scheme `localhost:`; say so rather than fail at every export.
		if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${from} must be an http:// or https:// URL: ${value}`);
		return { url: url.toString(), from };
	}
	return undefined;
}

/** Starts exporting spans when an endpoint is configured; undefined (and nothing loaded) otherwise. */
export async function startTracing(options: TracingOptions, log: TracingLogger): Promise<Tracing | undefined> {
	// The SDK reads the rest of its settings from process.env; these are read from the same place.
	const env = process.env;
	// Checked first: the switch turns tracing off even when an endpoint setting is broken.
	if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') {
		log.info({}, 'tracing off: OTEL_SDK_DISABLED=true');
		return undefined;
	}
	const endpoint = resolveTracesUrl(options, env);
	if (!endpoint) return undefined;
	// Loaded only here: a node without tracing never loads the SDK.
	const [{ NodeSDK }, { logs }, { OTLPTraceExporter }, { defaultResource, detectResources, envDetector, resourceFromAttributes }, semconv] = await Promise.all([
		import('@opentelemetry/sdk-node'),
		import('@opentelemetry/api-logs'),
		import('@opentelemetry/exporter-trace-otlp-http'),
		import('@opentelemetry/resources'),
		import('@opentelemetry/semantic-conventions'),
	]);
	// The env detector applies OTEL_SERVICE_NAME over OTEL_RESOURCE_ATTRIBUTES; Parley's key goes over both.
	const envServiceName = detectResources({ detectors: [envDetector] }).attributes[semconv.ATTR_SERVICE_NAME];
	const serviceName = options.serviceName || (typeof envServiceName === 'string' && envServiceName) || DEFAULT_SERVICE_NAME;
	const sdk = new NodeSDK({
		// Host, process and OTEL_RESOURCE_ATTRIBUTES are detected on top of this.
		resource: defaultResource().merge(resourceFromAttributes({ [semconv.ATTR_SERVICE_VERSION]: VERSION })),
		serviceName,
		// An explicit URL: the one resolved above, so what is logged is where spans go. Headers,
		// certificates and batching still come from OTEL_EXPORTER_OTLP_* and OTEL_BSP_*.
		traceExporter: new OTLPTraceExporter({ url: endpoint.url, timeoutMillis: EXPORT_TIMEOUT_MS }),
		// Traces only: without these the SDK would start OTLP metric and log exporters by default.
		// (With no processors it still registers an empty logger provider, unregistered at shutdown.)
		metricReaders: [],
		logRecordProcessors: [],
		instrumentations: [],
	});
	sdk.start();
	tracer = trace.getTracer('parley', VERSION);
	log.info({ tracesUrl: endpoint.url, from: endpoint.from, serviceName }, 'exporting traces');
	let stopped: Promise<void> | undefined;
	return {
		tracesUrl: endpoint.url,
		shutdown: () =>
			(stopped ??= (async () => {
				let timer: NodeJS.Timeout | undefined;
				try {
					await Promise.race([
						sdk.shutdown(),
						new Promise<void>((resolve) => {
							timer = setTimeout(resolve, FLUSH_AT_SHUTDOWN_MS);
						}),
					]);
				} catch (err) {
					log.warn({ err }, 'trace export at shutdown failed');
				} finally {
					clearTimeout(timer);
					// Back to the no-op globals, so a later server in this process can register.
					trace.disable();
					context.disable();
					propagation.disable();
					logs.disable();
					tracer = trace.getTracer('parley', VERSION);
				}
			})()),
	};
}
