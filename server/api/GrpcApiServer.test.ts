// The gRPC server's own rules with a real client: rate limit with retry info, deadlines that
// stop the handler's work, drain turning health NOT_SERVING.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProto } from 'grpc-health-check';
import { z } from 'zod';
import { afterEach, expect, it } from 'vitest';
import { testLogger } from '../../test/helpers/logger.js';
import { mintApiToken } from './apiAuth.js';
import { GrpcApiServer, loadApiPackage, type ApiService, type UnaryApiMethod } from './GrpcApiServer.js';
import { decodeStatusDetails } from './grpcErrors.js';

const SECRET = 'api-secret-that-is-long-enough-0123456789';
const pkg = grpc.loadPackageDefinition(loadApiPackage()) as any;
const std = grpc.loadPackageDefinition(protoLoader.loadSync(healthProto, { enums: String })) as any;

let server: GrpcApiServer | undefined;
const clients: grpc.Client[] = [];
afterEach(async () => {
	for (const c of clients.splice(0)) c.close();
	await server?.close(AbortSignal.timeout(2000));
	server = undefined;
});

/** ChannelService with handlers of the test's own. */
function service(listChannels: UnaryApiMethod['handle']): ApiService {
	const none: UnaryApiMethod = { kind: 'unary', request: z.unknown(), handle: async () => ({}) };
	return {
		name: 'parley.v1.ChannelService',
		methods: {
			ListChannels: { kind: 'unary', request: z.unknown(), handle: listChannels },
			ListParticipants: none,
			MuteParticipant: none,
			RemoveParticipant: none,
			UpdateParticipant: none,
			CloseChannel: none,
		},
	};
}

async function start(listChannels: UnaryApiMethod['handle'], burst = 100, tls?: { certFile: string; keyFile: string }): Promise<any> {
	server = new GrpcApiServer({
		host: '127.0.0.1',
		port: 0,
		maxMessageBytes: 65_536,
		keys: [{ id: 'k', secret: SECRET }],
		maxTokenLifetimeS: 600,
		rateLimit: { ratePerSecond: 0.5, burst },
		services: [service(listChannels)],
		log: testLogger(),
		...(tls && { tls }),
	});
	await server.listen();
	const credentials = tls ? grpc.credentials.createSsl(readFileSync(tls.certFile)) : grpc.credentials.createInsecure();
	const client = new pkg.parley.v1.ChannelService(`${tls ? 'localhost' : '127.0.0.1'}:${server.port}`, credentials);
	clients.push(client);
	return client;
}

async function list(client: any, options: grpc.CallOptions = {}): Promise<grpc.ServiceError | null> {
	const md = new grpc.Metadata();
	md.set('authorization', `Bearer ${await mintApiToken({ keyId: 'k', secret: SECRET, grant: { channels: ['*'], operations: ['channels.list'] }, ttlS: 60 })}`);
	return new Promise((resolve) => client.ListChannels({}, md, options, (err: grpc.ServiceError | null) => resolve(err)));
}

it('over the per-key rate: RESOURCE_EXHAUSTED with a retry-after-ms trailer and google.rpc.RetryInfo', async () => {
	const client = await start(async () => ({ channels: [] }), 2);
	expect(await list(client)).toBeNull();
	expect(await list(client)).toBeNull();
	const err = await list(client);
	expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
	expect(err?.metadata.get('parley-error-code')).toEqual(['E_RATE_LIMIT']);
	const retryAfterMs = Number(err?.metadata.get('retry-after-ms')[0]);
	expect(retryAfterMs).toBeGreaterThan(0);
	expect(retryAfterMs).toBeLessThanOrEqual(2000);
	expect(decodeStatusDetails(err!.metadata.get('grpc-status-details-bin')[0] as Buffer).retryDelayMs).toBe(retryAfterMs);
});

it('a call past its deadline aborts the signal its handler was given', async () => {
	let aborted: Promise<unknown> | undefined;
	const client = await start(async (_req, ctx) => {
		aborted = new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(ctx.signal.reason), { once: true }));
		await aborted;
		return { channels: [] };
	});
	const err = await list(client, { deadline: Date.now() + 300 });
	expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
	await expect(aborted).resolves.toBeDefined();
});

it('health turns NOT_SERVING, overall and per service, once draining', async () => {
	await start(async () => ({ channels: [] }));
	const health = new std.grpc.health.v1.Health(`127.0.0.1:${server!.port}`, grpc.credentials.createInsecure());
	clients.push(health);
	const check = (service: string) => new Promise<string>((resolve, reject) => health.Check({ service }, (err: Error | null, r: { status: string }) => (err ? reject(err) : resolve(r.status))));
	expect(await check('parley.v1.ChannelService')).toBe('SERVING');
	server!.drain();
	expect(await check('')).toBe('NOT_SERVING');
	expect(await check('parley.v1.ChannelService')).toBe('NOT_SERVING');
});

it('a request over api.grpc.maxMessageBytes fails with RESOURCE_EXHAUSTED and the server keeps serving', async () => {
	const client = await start(async () => ({ channels: [] }));
	const md = new grpc.Metadata();
	md.set('authorization', `Bearer ${await mintApiToken({ keyId: 'k', secret: SECRET, grant: { channels: ['*'], operations: ['*'] }, ttlS: 60 })}`);
	const err = await new Promise<grpc.ServiceError | null>((resolve) => client.ListParticipants({ channel: 'x'.repeat(100_000) }, md, (e: grpc.ServiceError | null) => resolve(e)));
	expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
	expect(await list(client)).toBeNull();
});

it('serves over TLS with api.grpc.tls (a plaintext client is refused)', async () => {
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-grpc-tls-'));
	const tls = { certFile: path.join(dir, 'cert.pem'), keyFile: path.join(dir, 'key.pem') };
	execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', tls.keyFile, '-out', tls.certFile], { stdio: 'ignore' });
	const client = await start(async () => ({ channels: [] }), 100, tls);
	expect(await list(client)).toBeNull();
	const plain = new pkg.parley.v1.ChannelService(`localhost:${server!.port}`, grpc.credentials.createInsecure());
	clients.push(plain);
	expect((await list(plain, { deadline: Date.now() + 3000 }))?.code).toBeOneOf([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.INTERNAL]);
});
