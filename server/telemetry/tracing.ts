// OpenTelemetry traces: a span per signaling request, upload hand-over, transcode and
// recording finalize, exported over OTLP/HTTP (JSON) when an endpoint is configured.
//
// Code everywhere creates spans through the API's global tracer. Without an endpoint no SDK
// is loaded or started: the API stays on its no-op tracer and context manager, so a span
// costs one small object and no context is propagated. With one, startTracing() registers
// a NodeTracerProvider (AsyncLocalStorage context, batched export) that shutdown() flushes.
import { readFileSync } from 'node:fs';
import { context, isSpanContextValid, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { Logger } from './logger.js';

export { SpanKind };

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
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

export interface TracingOptions {
	/** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT semantics); empty: tracing off. */
	otlpEndpoint: string;
	serviceName: string;
}

export interface Tracing {
	/** Where spans are sent. */
	readonly tracesUrl: string;
	/** Exports what is buffered (bounded in time) and unregisters the provider. */
	shutdown(): Promise<void>;
}

/** The signal-specific URL for a base endpoint: `http://c:4318` -> `http://c:4318/v1/traces`. */
export function tracesUrlOf(endpoint: string): string {
	return `${endpoint.replace(/\/+$/, '')}/v1/traces`;
}

/** Starts exporting spans when an endpoint is configured; undefined (and nothing loaded) otherwise. */
export async function startTracing(options: TracingOptions, log: Logger): Promise<Tracing | undefined> {
	if (!options.otlpEndpoint) return undefined;
	const tracesUrl = tracesUrlOf(options.otlpEndpoint);
	try {
		new URL(tracesUrl);
	} catch {
		throw new Error(`telemetry.otlpEndpoint is not a URL: ${options.otlpEndpoint}`);
	}
	// Loaded only here: a node without tracing never loads the SDK.
	const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }, semconv] = await Promise.all([
		import('@opentelemetry/sdk-trace-node'),
		import('@opentelemetry/exporter-trace-otlp-http'),
		import('@opentelemetry/resources'),
		import('@opentelemetry/semantic-conventions'),
	]);
	const exporter = new OTLPTraceExporter({ url: tracesUrl, timeoutMillis: EXPORT_TIMEOUT_MS });
	const provider = new NodeTracerProvider({
		resource: resourceFromAttributes({ [semconv.ATTR_SERVICE_NAME]: options.serviceName, [semconv.ATTR_SERVICE_VERSION]: VERSION }),
		spanProcessors: [new BatchSpanProcessor(exporter, { exportTimeoutMillis: EXPORT_TIMEOUT_MS })],
	});
	provider.register();
	tracer = provider.getTracer('parley', VERSION);
	log.info({ tracesUrl, serviceName: options.serviceName }, 'exporting traces');
	let stopped: Promise<void> | undefined;
	return {
		tracesUrl,
		shutdown: () =>
			(stopped ??= (async () => {
				let timer: NodeJS.Timeout | undefined;
				try {
					await Promise.race([
						provider.shutdown(),
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
					tracer = trace.getTracer('parley', VERSION);
				}
			})()),
	};
}
