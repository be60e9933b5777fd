// The backend API's gRPC server (api.grpc.*): its own HTTP/2 port, off by default. It loads
// the contract (protocol/proto) with @grpc/proto-loader, serves the services it is given, the
// standard health service (grpc.health.v1, per service and overall "") and server reflection
// (grpc.reflection.v1 and v1alpha, so grpcurl and other generic tools work).
//
// Services register as plain objects (ApiService): a name from the protos and, per method,
// a zod schema for its request and a handler. The server does the rest, the same for every
// call: authenticate the bearer token (apiAuth.ts), take from the key's token bucket,
// validate the request (INVALID_ARGUMENT with field violations), give the handler an
// AbortSignal that fires when the call is cancelled or passes its deadline, and map what it
// throws to a gRPC status (grpcErrors.ts).
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { z } from 'zod';
import type { ApiOperation } from '../../protocol/apiOperations.js';
import { PROTO_LOADER_OPTIONS, PROTO_ROOT, protoFiles } from '../../protocol/grpc/protoFiles.js';
import { RequestError } from '../../protocol/RequestError.js';
import { LocalRateLimiter, type RateLimitRule } from '../ratelimit/RateLimiter.js';
import type { Logger } from '../telemetry/logger.js';
import { ApiAuthenticator, authorize, type ApiKey, type ApiPrincipal } from './apiAuth.js';
import { asRequestError, fieldViolations, toServiceError } from './grpcErrors.js';

/** What a handler gets besides its request. */
export interface ApiCallContext {
	readonly principal: ApiPrincipal;
	/** Aborts when the client cancels, the call passes its deadline, or the server force-closes:
	 * stop the work (pass it down to anything long). */
	readonly signal: AbortSignal;
	/** E_FORBIDDEN (PERMISSION_DENIED) unless the token grants `operation` on `channel`. */
	authorize(operation: ApiOperation, channel?: string): void;
	readonly log: Logger;
}

export interface UnaryApiMethod<Req = any, Res = any> {
	kind: 'unary';
	/** Checks the decoded request (proto-loader's object: camelCase fields, defaults filled in). */
	request: z.ZodType<Req>;
	handle(request: Req, ctx: ApiCallContext): Promise<Res>;
}

export interface ServerStreamApiMethod<Req = any, Res = any> {
	kind: 'serverStream';
	request: z.ZodType<Req>;
	/** Resolves when the stream is complete; `send` waits while the client is not reading. */
	handle(request: Req, ctx: ApiCallContext, send: (response: Res) => Promise<void>): Promise<void>;
}

export type ApiMethod = UnaryApiMethod | ServerStreamApiMethod;

/** One service of the contract, e.g. `parley.v1.ChannelService`, by method name ("ListChannels"). */
export interface ApiService {
	name: string;
	methods: Record<string, ApiMethod>;
}

export interface GrpcApiServerOptions {
	host: string;
	/** 0: a free port (see `port` after listen). */
	port: number;
	maxMessageBytes: number;
	tls?: { certFile: string; keyFile: string };
	keys: ApiKey[];
	maxTokenLifetimeS: number;
	rateLimit: RateLimitRule;
	services: ApiService[];
	log: Logger;
}

/** Keepalive: pings idle connections every 30 s (a dead backend's connection is dropped within
 * 40 s); clients may ping every 10 s at most. */
const KEEPALIVE_OPTIONS = {
	'grpc.keepalive_time_ms': 30_000,
	'grpc.keepalive_timeout_ms': 10_000,
	'grpc.http2.min_ping_interval_without_data_ms': 10_000,
	'grpc.max_concurrent_streams': 1000,
};

/** The loaded contract: every .proto under protocol/proto (reflection describes them all). */
export function loadApiPackage(): protoLoader.PackageDefinition {
	return protoLoader.loadSync(protoFiles(), { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });
}

function isServiceDefinition(value: unknown): value is protoLoader.ServiceDefinition {
	return typeof value === 'object' && value !== null && Object.values(value).every((m) => typeof m === 'object' && m !== null && 'path' in m && 'requestStream' in m);
}

export class GrpcApiServer {
	readonly #server: grpc.Server;
	readonly #options: GrpcApiServerOptions;
	readonly #health: HealthImplementation;
	readonly #auth: ApiAuthenticator;
	readonly #limiter: LocalRateLimiter;
	readonly #log: Logger;
	readonly #calls = new Set<AbortController>();
	#port = 0;
	#closing: Promise<void> | undefined;

	constructor(options: GrpcApiServerOptions) {
		this.#options = options;
		this.#log = options.log;
		this.#auth = new ApiAuthenticator(options.keys, { maxTokenLifetimeS: options.maxTokenLifetimeS });
		this.#limiter = new LocalRateLimiter(options.rateLimit);
		this.#server = new grpc.Server({
			'grpc.max_receive_message_length': options.maxMessageBytes,
			'grpc.max_send_message_length': options.maxMessageBytes,
			...KEEPALIVE_OPTIONS,
		});
		const pkg = loadApiPackage();
		const initial: Record<string, ServingStatus> = { '': 'SERVING' };
		for (const service of options.services) {
			const definition = pkg[service.name];
			if (!isServiceDefinition(definition)) throw new TypeError(`no service ${service.name} in protocol/proto`);
			const implementation: grpc.UntypedServiceImplementation = {};
			for (const [methodName, method] of Object.entries(definition)) {
				const impl = service.methods[method.originalName ?? methodName] ?? service.methods[methodName];
				if (!impl) throw new TypeError(`${service.name}.${methodName} has no implementation`);
				if ((impl.kind === 'serverStream') !== (method.responseStream && !method.requestStream)) throw new TypeError(`${service.name}.${methodName} is not a ${impl.kind} method in the protos`);
				implementation[method.originalName ?? methodName] = impl.kind === 'unary' ? this.#unary(service.name, methodName, impl) : this.#serverStream(service.name, methodName, impl);
			}
			this.#server.addService(withSharedStreamEncoding(definition) as grpc.ServiceDefinition, implementation);
			initial[service.name] = 'SERVING';
		}
		this.#health = new HealthImplementation(initial);
		this.#health.addToServer(this.#server);
		new ReflectionService(pkg).addToServer(this.#server);
	}

	/** The bound port (after listen). */
	get port(): number {
		return this.#port;
	}

	async listen(): Promise<void> {
		const { host, port, tls } = this.#options;
		const credentials = tls ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }], false) : grpc.ServerCredentials.createInsecure();
		this.#port = await new Promise<number>((resolve, reject) => {
			this.#server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
		});
		this.#log.info({ grpc: `${tls ? 'https' : 'http'}://${host}:${this.#port}`, services: this.#options.services.map((s) => s.name) }, 'gRPC API listening');
	}

	/** Health turns NOT_SERVING (overall and per service): load balancers stop sending calls,
	 * calls in flight finish. */
	drain(): void {
		for (const name of ['', ...this.#options.services.map((s) => s.name)]) this.#health.setStatus(name, 'NOT_SERVING');
	}

	/** Stops taking calls and waits for those in flight; at `deadline` cancels what is left. */
	close(deadline?: AbortSignal): Promise<void> {
		this.#closing ??= new Promise<void>((resolve) => {
			this.drain();
			const force = (): void => {
				for (const call of this.#calls) call.abort(new RequestError('E_SHUTTING_DOWN'));
				this.#server.forceShutdown();
				resolve();
			};
			if (deadline?.aborted) return force();
			deadline?.addEventListener('abort', force, { once: true });
			this.#server.tryShutdown(() => {
				deadline?.removeEventListener('abort', force);
				resolve();
			});
		});
		return this.#closing;
	}

	/** Auth, rate limit and validation, then the handler with its context. */
	async #begin<Req>(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>, schema: z.ZodType<Req>, abort: AbortController, method: string): Promise<{ request: Req; ctx: ApiCallContext }> {
		const authorization = call.metadata.get('authorization')[0];
		const principal = await this.#auth.authenticate(typeof authorization === 'string' ? authorization : undefined);
		const decision = this.#limiter.takeNow(principal.keyId);
		if (!decision.allowed) throw new RequestError('E_RATE_LIMIT', `API key "${principal.keyId}" is over its rate limit (api.requestsPerSecond).`, { retryAfterMs: decision.retryAfterMs });
		const parsed = schema.safeParse(call.request);
		if (!parsed.success) throw new InvalidRequest(parsed.error);
		return {
			request: parsed.data,
			ctx: {
				principal,
				signal: abort.signal,
				authorize: (operation, channel) => authorize(principal, operation, channel),
				log: this.#log.child({ method, keyId: principal.keyId }),
			},
		};
	}

	/** An AbortController for the call: aborted on cancel, at the deadline and at force-close. */
	#track(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): AbortController {
		const abort = new AbortController();
		this.#calls.add(abort);
		const deadline = call.getDeadline();
		const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
		let timer: NodeJS.Timeout | undefined;
		if (Number.isFinite(deadlineMs)) {
			timer = setTimeout(() => abort.abort(new RequestError('E_TIMEOUT', 'The call passed its deadline.')), Math.max(0, deadlineMs - Date.now()));
		}
		call.once('cancelled', () => abort.abort(new RequestError('E_TIMEOUT', 'The call was cancelled.')));
		abort.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
		(abort as AbortController & { done?: () => void }).done = () => {
			clearTimeout(timer);
			this.#calls.delete(abort);
		};
		return abort;
	}

	#fail(err: unknown, method: string): Partial<grpc.ServiceError> {
		if (err instanceof InvalidRequest) return toServiceError(new RequestError('E_BAD_REQUEST', 'The request is malformed.'), fieldViolations(err.zodError));
		const requestError = asRequestError(err);
		if (requestError !== err) this.#log.error({ err, method }, 'gRPC call failed');
		return toServiceError(requestError);
	}

	#unary(serviceName: string, methodName: string, impl: UnaryApiMethod): grpc.handleUnaryCall<unknown, unknown> {
		const method = `${serviceName}/${methodName}`;
		return (call, callback) => {
			const abort = this.#track(call);
			void (async () => {
				try {
					const { request, ctx } = await this.#begin(call, impl.request, abort, method);
					const response = await impl.handle(request, ctx);
					if (!abort.signal.aborted) callback(null, response);
				} catch (err) {
					if (!call.cancelled) callback(this.#fail(err, method) as grpc.ServiceError);
				} finally {
					(abort as AbortController & { done?: () => void }).done?.();
				}
			})();
		};
	}

	#serverStream(serviceName: string, methodName: string, impl: ServerStreamApiMethod): grpc.handleServerStreamingCall<unknown, unknown> {
		const method = `${serviceName}/${methodName}`;
		return (call) => {
			const abort = this.#track(call);
			const send = async (response: unknown): Promise<void> => {
				abort.signal.throwIfAborted();
				if (call.write(response)) return;
				// Backpressure: wait for the client to read (or for the call to end).
				await new Promise<void>((resolve) => {
					const done = (): void => {
						call.off('drain', done);
						abort.signal.removeEventListener('abort', done);
						resolve();
					};
					call.once('drain', done);
					abort.signal.addEventListener('abort', done, { once: true });
				});
				abort.signal.throwIfAborted();
			};
			void (async () => {
				try {
					const { request, ctx } = await this.#begin(call, impl.request, abort, method);
					await impl.handle(request, ctx, send);
					if (!abort.signal.aborted) call.end();
				} catch (err) {
					if (!call.cancelled) call.emit('error', this.#fail(err, method));
				} finally {
					(abort as AbortController & { done?: () => void }).done?.();
				}
			})();
		};
	}
}

/** A request that failed its schema (INVALID_ARGUMENT with the field violations). */
class InvalidRequest extends Error {
	readonly zodError: z.ZodError;
	constructor(zodError: z.ZodError) {
		super('invalid request');
		this.zodError = zodError;
	}
}

/**
 * The service's methods with server-stream responses encoded once per response object: a
 * status event that goes to 1,000 subscribers is one object written to 1,000 streams (the
 * status feed shares its reads, the services their converted events), and protobuf encoding
 * it once each was most of the fan-out's cost. By identity (WeakMap), so a response is never
 * confused with another and the cache lives as long as the object. A copy of the definition:
 * the loaded package is shared by every server in the process.
 */
function withSharedStreamEncoding(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
	const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
	for (const [name, method] of Object.entries(definition as Record<string, grpc.MethodDefinition<unknown, unknown>>)) {
		if (!method.responseStream) {
			out[name] = method;
			continue;
		}
		const encoded = new WeakMap<object, Buffer>();
		const serialize = method.responseSerialize;
		out[name] = {
			...method,
			responseSerialize: (value: unknown) => {
				if (typeof value !== 'object' || value === null) return serialize(value);
				let bytes = encoded.get(value);
				if (!bytes) {
					bytes = serialize(value);
					encoded.set(value, bytes);
				}
				return bytes;
			},
		};
	}
	return out as grpc.ServiceDefinition;
}
