// A webhook endpoint for tests and the bench: an HTTP server on a free loopback port that
// keeps every request it gets (body and headers) and answers 204.
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedHook {
	body: string;
	headers: http.IncomingHttpHeaders;
}

export interface WebhookReceiver {
	/** http://127.0.0.1:<port>/parley */
	url: string;
	/** Every request so far, in arrival order. */
	readonly hooks: ReceivedHook[];
	close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
	const hooks: ReceivedHook[] = [];
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on('data', (c: Buffer) => chunks.push(c));
		req.on('end', () => {
			hooks.push({ body: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
			res.writeHead(204).end();
		});
	});
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	return {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/parley`,
		hooks,
		close: async () => {
			server.closeAllConnections();
			await new Promise<void>((resolve) => server.close(() => resolve()));
		},
	};
}
