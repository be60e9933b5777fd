// What every service client of the SDK shares: where the API is, how calls authenticate
// (a fresh short-lived API token per call, minted from the key), the default deadline, and
// how a grpc-js callback or stream becomes a promise or an async iterator with SdkErrors.
// A service client (ChannelClient, VoiceMessageClient, ...) is a thin typed layer over it.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, PROTO_ROOT, protoFiles } from '../protocol/grpc/protoFiles.js';
import { mintApiToken, type ApiGrant, type SigningSecret } from '../protocol/tokens.js';
import { SdkError } from './SdkError.js';

export interface ApiKeyCredential {
	/** The key's id in api.keys (PARLEY_API_KEYS=id:secret). */
	id: string;
	secret: SigningSecret;
}

export interface ApiConnectionOptions {
	/** host:port of the API (api.grpc.host, api.grpc.port). */
	address: string;
	key: ApiKeyCredential;
	/** What each call's token grants (default: every operation on every channel). Narrow it to
	 * what this backend needs: a leaked token is then worth less. */
	grant?: ApiGrant;
	/** Lifetime of each call's token (default 60 s; the server refuses more than api.maxTokenLifetimeS). */
	tokenTtlS?: number;
	/** Deadline of a unary call unless the call sets its own (default 10 000 ms). */
	deadlineMs?: number;
	/** grpc.credentials.createSsl(...) for api.grpc.tls; default: plaintext. */
	credentials?: grpc.ChannelCredentials;
	/** grpc-js channel options. */
	channelOptions?: grpc.ChannelOptions;
}

/** Per-call options of every SDK method. */
export interface CallOptions {
	/** Overrides the connection's deadlineMs for this call (unary calls only). */
	deadlineMs?: number;
	/** Cancels the call (it rejects with CANCELLED; an iterator just ends). */
	signal?: AbortSignal;
}

export const ALL_OPERATIONS: ApiGrant = { channels: ['*'], operations: ['*'] };
export const DEFAULT_TOKEN_TTL_S = 60;
export const DEFAULT_DEADLINE_MS = 10_000;

let packageDefinition: protoLoader.PackageDefinition | undefined;

/** Parley's protos as grpc-js client constructors (loaded once per process). */
function apiPackage(): grpc.GrpcObject {
	packageDefinition ??= protoLoader.loadSync(protoFiles(), { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });
	return grpc.loadPackageDefinition(packageDefinition);
}

export class ApiConnection {
	readonly #options: ApiConnectionOptions;
	readonly #clients: grpc.Client[] = [];

	constructor(options: ApiConnectionOptions) {
		this.#options = options;
	}

	/** A raw grpc-js client of `service` ("parley.v1.ChannelService"), typed by the caller with
	 * the generated client interface. Closed with the connection. */
	client<C extends grpc.Client>(service: string): C {
		let node: unknown = apiPackage();
		for (const part of service.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
		if (typeof node !== 'function') throw new TypeError(`no service ${service} in protocol/proto`);
		const Client = node as grpc.ServiceClientConstructor;
		const client = new Client(this.#options.address, this.#options.credentials ?? grpc.credentials.createInsecure(), this.#options.channelOptions);
		this.#clients.push(client);
		return client as unknown as C;
	}

	/** `authorization: Bearer <fresh API token>`. */
	async metadata(): Promise<grpc.Metadata> {
		const token = await mintApiToken({
			keyId: this.#options.key.id,
			secret: this.#options.key.secret,
			grant: this.#options.grant ?? ALL_OPERATIONS,
			ttlS: this.#options.tokenTtlS ?? DEFAULT_TOKEN_TTL_S,
		});
		const md = new grpc.Metadata();
		md.set('authorization', `Bearer ${token}`);
		return md;
	}

	/** One unary call: `start` issues it with the metadata, options and callback given. */
	async unary<Res>(start: (md: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall, options: CallOptions = {}): Promise<Res> {
		options.signal?.throwIfAborted();
		const md = await this.metadata();
		const deadline = new Date(Date.now() + (options.deadlineMs ?? this.#options.deadlineMs ?? DEFAULT_DEADLINE_MS));
		return new Promise<Res>((resolve, reject) => {
			const call = start(md, { deadline }, (err, res) => {
				options.signal?.removeEventListener('abort', cancel);
				if (err) reject(SdkError.from(err));
				else resolve(res as Res);
			});
			const cancel = (): void => call.cancel();
			options.signal?.addEventListener('abort', cancel, { once: true });
		});
	}

	/** A server-streaming call as an async iterator; breaking out of the loop cancels the call.
	 * Throws SdkError when the stream fails (not when the caller cancels it). */
	async *serverStream<Res>(start: (md: grpc.Metadata) => grpc.ClientReadableStream<Res>, options: Pick<CallOptions, 'signal'> = {}): AsyncGenerator<Res, void, undefined> {
		if (options.signal?.aborted) return;
		const call = start(await this.metadata());
		const cancel = (): void => call.cancel();
		options.signal?.addEventListener('abort', cancel, { once: true });
		try {
			for await (const message of call as AsyncIterable<Res>) yield message;
		} catch (err) {
			const e = err as grpc.ServiceError;
			if (e.code === grpc.status.CANCELLED && options.signal?.aborted) return;
			throw typeof e.code === 'number' ? SdkError.from(e) : err;
		} finally {
			options.signal?.removeEventListener('abort', cancel);
			call.cancel();
		}
	}

	close(): void {
		for (const c of this.#clients.splice(0)) c.close();
	}
}
