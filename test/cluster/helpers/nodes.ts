// Parley nodes as separate processes (run the way `npm start` runs them) sharing one real
// redis-server, for the placement, node-death and Redis-down tests.
import { mintAccessToken, type MintOptions } from '../../../server/auth/accessToken.js';
import { testEnv } from '../../helpers/config.js';
import { freePort } from '../../../testkit/ports.js';
import { logLine, startServerProcess, type ServerProcess } from '../../helpers/serverProcess.js';

const SECRET = 'cluster-test-secret-0123456789-abcdefghij';
const KEY = new TextEncoder().encode(SECRET);

export interface NodeProcess {
	nodeId: string;
	proc: ServerProcess;
	/** The signaling URL the node announces (what a redirect to it carries). */
	url: string;
	httpBase: string;
	/** SIGKILL, and wait for the exit. */
	kill(): Promise<void>;
	/** SIGTERM, and wait for the exit (no-op when it is already gone). */
	stop(): Promise<void>;
}

export async function startNode(redisUrl: string, nodeId: string, env: Record<string, string> = {}): Promise<NodeProcess> {
	const port = await freePort();
	const proc = startServerProcess(
		await testEnv({
			PARLEY_LOG_LEVEL: 'info',
			PARLEY_AUTH_JWT_SECRET: SECRET,
			PARLEY_HTTP_PORT: String(port),
			REDIS_URL: redisUrl,
			PARLEY_CLUSTER_NODE_ID: nodeId,
			PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '300',
			PARLEY_METRICS_STATS_INTERVAL_MS: '0',
			...env,
		}),
	);
	await logLine(proc, 'parley listening', 30_000);
	const gone = () => proc.child.exitCode !== null || proc.child.signalCode !== null;
	return {
		nodeId,
		proc,
		url: `ws://127.0.0.1:${port}/ws`,
		httpBase: `http://127.0.0.1:${port}`,
		async kill() {
			if (gone()) return;
			proc.child.kill('SIGKILL');
			await proc.exited;
		},
		async stop() {
			if (gone()) return;
			proc.child.kill('SIGTERM');
			await proc.exited;
		},
	};
}

/** A token for `userId`: every channel and grant, 10 minutes; `overrides` change any of it. */
export function token(userId: string, overrides: Partial<MintOptions> = {}): Promise<string> {
	return mintAccessToken({ userId, channels: ['*'], grants: { canPublish: true, canSubscribe: true, canRecord: true }, ttlS: 600, ...overrides }, KEY);
}

export async function readyz(node: NodeProcess): Promise<{ status: number; body: { status: string; checks: Record<string, { ok: boolean; error?: string }> } }> {
	const res = await fetch(`${node.httpBase}/readyz`);
	return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, { ok: boolean; error?: string }> } };
}

export { sleep, waitUntil } from '../../helpers/wait.js';
