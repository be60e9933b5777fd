// Room events across a cluster: two Parley nodes (processes) on a real redis-server. A
// subscriber at B sees the events of a channel on A (A's ids, A's node id), in order, and an
// EventService call at A sees the same ids.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../../test/helpers/redis.js';
import { startNode, type NodeProcess } from '../../test/cluster/helpers/nodes.js';
import { joinVia, type JoinedClient } from '../../test/cluster/bridgeNodes.js';
import { freePort } from '../../testkit/ports.js';
import { mintApiToken } from '../api/apiAuth.js';
import { loadApiPackage } from '../api/GrpcApiServer.js';
import { collectStream } from '../../testkit/grpcStream.js';

const API_SECRET = 'api-secret-that-is-long-enough-0123456789';

interface StreamEvent {
	eventId: string;
	event: string;
	nodeId: string;
	channel: string;
	participant: { userId: string } | null;
}

describe('room events of every node at every node', () => {
	let redis: TestRedis;
	let a: NodeProcess;
	let b: NodeProcess;
	let atA: grpc.Client;
	let atB: grpc.Client;
	const clients: JoinedClient[] = [];
	const pkg = grpc.loadPackageDefinition(loadApiPackage()) as any;

	const start = async (id: string) => {
		const grpcPort = await freePort();
		const node = await startNode(redis.url, id, { PARLEY_API_GRPC_ENABLED: 'true', PARLEY_API_GRPC_PORT: String(grpcPort), PARLEY_API_KEYS: `backend:${API_SECRET}`, PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '0' });
		return { node, grpcPort };
	};

	beforeAll(async () => {
		redis = await startRedis();
		const [na, nb] = await Promise.all([start('events-a'), start('events-b')]);
		a = na.node;
		b = nb.node;
		atA = new pkg.parley.v1.EventService(`127.0.0.1:${na.grpcPort}`, grpc.credentials.createInsecure());
		atB = new pkg.parley.v1.EventService(`127.0.0.1:${nb.grpcPort}`, grpc.credentials.createInsecure());
	}, 60_000);

	afterAll(async () => {
		for (const c of clients) c.client.close();
		atA?.close();
		atB?.close();
		await Promise.all([a?.stop(), b?.stop()]);
		await redis?.stop();
	});

	async function follow(client: grpc.Client, until: (got: StreamEvent[]) => boolean): Promise<{ done: Promise<StreamEvent[]> }> {
		const md = new grpc.Metadata();
		md.set('authorization', `Bearer ${await mintApiToken({ keyId: 'backend', secret: API_SECRET, grant: { channels: ['*'], operations: ['events.subscribe'] }, ttlS: 60 })}`);
		const call = (client as any).SubscribeEvents({ filter: { channels: ['cluster-room'] } }, md) as grpc.ClientReadableStream<StreamEvent>;
		const done = collectStream(call, until);
		return { done };
	}

	it('a subscriber on B sees what happens in a channel on A, with A’s ids', async () => {
		const ended = (got: StreamEvent[]) => got.some((e) => e.event === 'channel.ended');
		const [onB, onA] = await Promise.all([follow(atB, ended), follow(atA, ended)]);
		// The stream sends nothing before its first event: give the subscriptions time to register.
		await new Promise((r) => setTimeout(r, 1500));
		const joined = await joinVia(a, 'cluster-room', 'remote-user');
		clients.push(joined);
		expect((await joined.client.request('leave', {})).ok).toBe(true);
		const [seenAtB, seenAtA] = await Promise.all([onB.done, onA.done]);
		expect(seenAtB.map((e) => [e.event, e.participant?.userId ?? ''])).toEqual([
			['channel.started', ''],
			['participant.joined', 'remote-user'],
			['participant.left', 'remote-user'],
			['channel.ended', ''],
		]);
		expect(seenAtB.every((e) => e.nodeId === a.nodeId && e.eventId.startsWith(`${a.nodeId}.`))).toBe(true);
		expect(seenAtB.map((e) => e.eventId)).toEqual(seenAtA.map((e) => e.eventId));
	}, 60_000);
});
