// A minimal Node signaling client for tests and the bench (the browser client lives in client/).
import WebSocket from 'ws';
import type { Method, NotificationName, Notifications, RequestData, ResponseData } from '../protocol/messages.js';
import type { ProtocolError } from '../protocol/errors.js';

export interface Closed {
	code: number;
	reason: string;
}

export type Reply<M extends Method = Method> = { id: number | null; ok: true; data: ResponseData[M] } | { id: number | null; ok: false; error: ProtocolError };

export class TestSignalingClient {
	readonly ws: WebSocket;
	readonly notifications: { method: string; data: unknown }[] = [];
	readonly closed: Promise<Closed>;
	readonly #pending = new Map<number, (reply: Reply) => void>();
	/** Replies that carried id null (unparseable requests), in arrival order. */
	readonly orphanReplies: Reply[] = [];
	#nextId = 1;
	#waiters: (() => void)[] = [];

	private constructor(ws: WebSocket) {
		this.ws = ws;
		this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
		ws.on('message', (raw, isBinary) => {
			if (isBinary) return;
			const msg = JSON.parse(raw.toString()) as { id?: number | null; ok?: boolean; method?: string; data?: unknown };
			if ('ok' in msg) {
				const resolve = typeof msg.id === 'number' ? this.#pending.get(msg.id) : undefined;
				if (resolve) {
					this.#pending.delete(msg.id as number);
					resolve(msg as Reply);
				} else {
					this.orphanReplies.push(msg as Reply);
				}
			} else if (msg.method) {
				this.notifications.push({ method: msg.method, data: msg.data });
			}
			for (const w of this.#waiters.splice(0)) w();
		});
	}

	/** Opens a socket; resolves once it is open (the welcome may follow, or a close).
	 * `options` reach `ws` as they are (wss: a test CA with `ca`). */
	static async open(url: string, options?: WebSocket.ClientOptions): Promise<TestSignalingClient> {
		const ws = new WebSocket(url, options);
		const client = new TestSignalingClient(ws);
		await new Promise<void>((resolve, reject) => {
			ws.once('open', () => resolve());
			ws.once('error', reject);
		});
		return client;
	}

	/** Opens a socket and waits for the welcome notification. */
	static async connect(url: string, options?: WebSocket.ClientOptions): Promise<{ client: TestSignalingClient; welcome: Notifications['welcome'] }> {
		const client = await TestSignalingClient.open(url, options);
		const welcome = await client.waitFor('welcome');
		return { client, welcome };
	}

	request<M extends Method>(method: M, data: RequestData<M>): Promise<Reply<M>> {
		return this.sendRaw({ id: this.#nextId++, method, data }) as Promise<Reply<M>>;
	}

	/** Sends any JSON value as a request; resolves with the reply to its id. */
	sendRaw(message: { id: number; method: string; data?: unknown }): Promise<Reply> {
		return new Promise((resolve) => {
			this.#pending.set(message.id, resolve);
			this.ws.send(JSON.stringify(message));
		});
	}

	/** Sends a frame as is and resolves with the next reply carrying id null. */
	async sendJunk(frame: string | Buffer): Promise<Reply> {
		const before = this.orphanReplies.length;
		this.ws.send(frame);
		await this.until(() => this.orphanReplies.length > before);
		return this.orphanReplies[before]!;
	}

	async waitFor<N extends NotificationName>(method: N, predicate: (data: Notifications[N]) => boolean = () => true, timeoutMs = 5000): Promise<Notifications[N]> {
		let found: Notifications[N] | undefined;
		await this.until(() => {
			const n = this.notifications.find((x) => x.method === method && predicate(x.data as Notifications[N]));
			found = n?.data as Notifications[N] | undefined;
			return found !== undefined;
		}, timeoutMs, `notification ${method}`);
		return found!;
	}

	async until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
		const deadline = Date.now() + timeoutMs;
		while (!cond()) {
			if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
			await new Promise<void>((resolve) => {
				const t = setTimeout(resolve, 50);
				this.#waiters.push(() => {
					clearTimeout(t);
					resolve();
				});
			});
		}
	}

	close(): void {
		this.ws.close();
	}
}
