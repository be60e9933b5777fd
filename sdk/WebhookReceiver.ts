// Receiving Parley's signed webhooks: the signature must sign the body as received with the
// webhook secret, its timestamp must be recent (toleranceS), and a delivery id already handled
// is refused (a replay within the tolerance; older ones fail the timestamp check anyway). The
// signature check is the server's own (protocol/webhookSignature.ts).
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { checkWebhookSignature, DEFAULT_WEBHOOK_TOLERANCE_S, WEBHOOK_HEADERS } from '../protocol/webhookSignature.js';

/** Why a delivery was refused, and the HTTP status the handler answers it with. */
export const WEBHOOK_REJECTIONS = {
	/** No or unreadable X-Parley-Signature / X-Parley-Delivery, or a body that is not a JSON event. */
	malformed: 400,
	/** The signature does not sign this body with the secret (tampered, or another secret). */
	signature: 401,
	/** The signature's timestamp is outside the tolerance (an old request replayed, or a skewed clock). */
	stale: 401,
	/** This delivery id was already handled (or is being handled) within the tolerance window. */
	replayed: 409,
	/** The body is larger than maxBodyBytes. */
	tooLarge: 413,
} as const;
export type WebhookRejection = keyof typeof WEBHOOK_REJECTIONS;

export class WebhookVerificationError extends Error {
	override readonly name = 'WebhookVerificationError';
	constructor(
		readonly reason: WebhookRejection,
		message: string,
	) {
		super(message);
	}
	/** The HTTP status a receiver answers with. */
	get httpStatus(): number {
		return WEBHOOK_REJECTIONS[this.reason];
	}
}

/** A verified delivery: the event's name and id and its JSON body (voiceMessage.* events:
 * eventId, sequence, event, voiceMessageId, status, ownerId, destination, at, message). */
export interface WebhookDelivery {
	deliveryId: string;
	event: string;
	/** Seconds since the epoch, from the signature. */
	timestampS: number;
	payload: { eventId: string; event: string } & Record<string, unknown>;
	rawBody: Buffer;
}

export interface WebhookReceiverOptions {
	/** voice.webhookSecret; several while the secret is rotated (old and new). */
	secret: string | readonly string[];
	/** Accepted signature age, seconds either side of now (default 300). */
	toleranceS?: number;
	/** Delivery ids remembered for replay detection (default 10 000); the oldest go first when
	 * full, and each is forgotten once its signature is older than the tolerance. */
	maxRememberedDeliveries?: number;
	/** Largest body the node handler reads (default 1 MiB). */
	maxBodyBytes?: number;
	/** Now, ms since the epoch (tests). */
	now?: () => number;
}

type Headers = IncomingHttpHeaders | Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
	const v = headers[name] ?? Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1];
	return Array.isArray(v) ? v[0] : v;
}

export class WebhookReceiver {
	readonly #secrets: readonly string[];
	readonly #toleranceS: number;
	readonly #max: number;
	readonly #maxBodyBytes: number;
	readonly #now: () => number;
	/** Delivery id -> when it may be forgotten (ms); insertion order is age order. */
	readonly #seen = new Map<string, number>();

	constructor(options: WebhookReceiverOptions) {
		this.#secrets = typeof options.secret === 'string' ? [options.secret] : options.secret;
		if (this.#secrets.length === 0 || this.#secrets.some((s) => !s)) throw new TypeError('WebhookReceiver: secret must not be empty');
		this.#toleranceS = options.toleranceS ?? DEFAULT_WEBHOOK_TOLERANCE_S;
		this.#max = options.maxRememberedDeliveries ?? 10_000;
		this.#maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
		this.#now = options.now ?? Date.now;
	}

	/** Delivery ids currently remembered. */
	get rememberedDeliveries(): number {
		return this.#seen.size;
	}

	/**
	 * Verifies one request and claims its delivery id; throws WebhookVerificationError. Call
	 * `release(deliveryId)` when handling it failed, so Parley's retry of it is accepted.
	 */
	verify(rawBody: Buffer | string, headers: Headers): WebhookDelivery {
		const body = typeof rawBody === 'string' ? Buffer.from(rawBody) : rawBody;
		const signature = header(headers, WEBHOOK_HEADERS.signature);
		const deliveryId = header(headers, WEBHOOK_HEADERS.delivery);
		if (!signature) throw new WebhookVerificationError('malformed', `missing ${WEBHOOK_HEADERS.signature}`);
		if (!deliveryId) throw new WebhookVerificationError('malformed', `missing ${WEBHOOK_HEADERS.delivery}`);
		const nowMs = this.#now();
		const check = checkWebhookSignature(body, signature, this.#secrets, { toleranceS: this.#toleranceS, nowMs });
		if (!check.ok) {
			if (check.fault === 'stale') throw new WebhookVerificationError('stale', `signature timestamp outside ${this.#toleranceS} s of now`);
			if (check.fault === 'mismatch') throw new WebhookVerificationError('signature', 'signature does not match the body');
			throw new WebhookVerificationError('malformed', `unreadable ${WEBHOOK_HEADERS.signature}`);
		}
		let payload: WebhookDelivery['payload'];
		try {
			payload = JSON.parse(body.toString('utf8')) as WebhookDelivery['payload'];
		} catch {
			throw new WebhookVerificationError('malformed', 'body is not JSON');
		}
		if (typeof payload !== 'object' || payload === null || typeof payload.event !== 'string' || payload.eventId !== deliveryId) {
			throw new WebhookVerificationError('malformed', 'body is not an event with the delivery id');
		}
		this.#forgetExpired(nowMs);
		if (this.#seen.has(deliveryId)) throw new WebhookVerificationError('replayed', `delivery ${deliveryId} already received`);
		// Remembered as long as a copy of this request could pass the timestamp check.
		this.#seen.set(deliveryId, (check.timestampS + this.#toleranceS) * 1000);
		while (this.#seen.size > this.#max) this.#seen.delete(this.#seen.keys().next().value!);
		return { deliveryId, event: payload.event, timestampS: check.timestampS, payload, rawBody: body };
	}

	/** Forgets a claimed delivery id (its handling failed; Parley retries it). */
	release(deliveryId: string): void {
		this.#seen.delete(deliveryId);
	}

	#forgetExpired(nowMs: number): void {
		for (const [id, untilMs] of this.#seen) {
			if (untilMs > nowMs) continue;
			this.#seen.delete(id);
		}
	}

	/**
	 * A node:http (and express) request handler: verifies, calls `onDelivery`, answers 204; a
	 * refused delivery gets its status (400/401/409/413) and is not passed on; `onDelivery`
	 * throwing answers 500 and releases the id, so Parley's retry is accepted. Under express,
	 * mount it without a body parser or after express.raw({ type: 'application/json' }): the
	 * signature covers the bytes as sent.
	 */
	nodeHandler(onDelivery: (delivery: WebhookDelivery) => void | Promise<void>): (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => void {
		return (req, res) => {
			void this.#handle(req, res, onDelivery);
		};
	}

	async #handle(req: IncomingMessage & { body?: unknown }, res: ServerResponse, onDelivery: (delivery: WebhookDelivery) => void | Promise<void>): Promise<void> {
		const answer = (status: number, text = ''): void => {
			if (res.headersSent) return;
			res.writeHead(status, text ? { 'content-type': 'text/plain; charset=utf-8' } : {}).end(text);
		};
		if (req.method !== 'POST') return answer(405, 'POST only');
		let delivery: WebhookDelivery;
		try {
			const body = await this.#rawBody(req);
			delivery = this.verify(body, req.headers);
		} catch (err) {
			if (err instanceof WebhookVerificationError) return answer(err.httpStatus, err.message);
			return answer(500, (err as Error).message);
		}
		try {
			await onDelivery(delivery);
			answer(204);
		} catch (err) {
			this.release(delivery.deliveryId);
			answer(500, `handler failed: ${(err as Error).message}`);
		}
	}

	async #rawBody(req: IncomingMessage & { body?: unknown }): Promise<Buffer> {
		// express.raw() or express.text() ran before us.
		if (Buffer.isBuffer(req.body)) return req.body;
		if (typeof req.body === 'string') return Buffer.from(req.body);
		if (req.body !== undefined && req.readableEnded) throw new Error('the body was parsed before the webhook handler: mount it before express.json() or after express.raw()');
		const chunks: Buffer[] = [];
		let size = 0;
		for await (const chunk of req as AsyncIterable<Buffer>) {
			size += chunk.length;
			if (size > this.#maxBodyBytes) throw new WebhookVerificationError('tooLarge', `body over ${this.#maxBodyBytes} bytes`);
			chunks.push(chunk);
		}
		return Buffer.concat(chunks);
	}
}
