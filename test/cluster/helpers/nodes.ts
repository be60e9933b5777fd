// Parley nodes as separate processes (run the way `npm start` runs them) sharing one real
// redis-server, for the placement, node-death and Redis-down tests.
import { mintAccessToken } from '../../../server/signaling/accessToken.js';
import { testEnv } from '../../helpers/config.js';
import { freePort } from '../../helpers/ports.js';
import { logLine, startServerProcess, type ServerProcess } from '../../helpers/serverProcess.js';

export const SECRET = 'cluster-test-secret-0123456789-abcdefghij';
const KEY = new TextEncoder().encode(SECRET);

export interface NodeProcess {
	nodeId: string;
	proc: ServerProcess;
	port: number;
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
		port,
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

export function token(userId: string): Promise<string> {
	return mintAccessToken({ userId, channels: ['*'], grants: { canPublish: true, canSubscribe: true, canRecord: false }, ttlS: 600 }, KEY);
}

export async function readyz(node: NodeProcess): Promise<{ status: number; body: { status: string; checks: Record<string, { ok: boolean; error?: string }> } }> {
	const res = await fetch(`${node.httpBase}/readyz`);
	return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, { ok: boolean; error?: string }> } };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, stepMs = 25): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!(await cond())) {
		if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
		await sleep(stepMs);
	}
}
