// The webhook signature, shared by the server that signs (server/voice/VoiceWebhooks.ts) and
// the receivers that check it (the SDK's WebhookReceiver, tests):
//   X-Parley-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>
// The timestamp is signed with the body (Stripe's scheme), so a receiver that checks it is
// recent rejects a replay of an old request; several v1 values may be sent (secret rotation).
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The headers of a webhook POST (lower case, as node:http gives them). */
export const WEBHOOK_HEADERS = {
	event: 'x-parley-event',
	/** The event id: the same on every retry of one event (receivers deduplicate on it). */
	delivery: 'x-parley-delivery',
	signature: 'x-parley-signature',
} as const;

/** Oldest accepted signature timestamp by default, in seconds either side of now. */
export const DEFAULT_WEBHOOK_TOLERANCE_S = 300;

/** Hex HMAC-SHA256 of "<t>.<body>": what X-Parley-Signature's v1 carries. */
export function signWebhook(body: string | Buffer, timestampS: number, secret: string): string {
	return createHmac('sha256', secret).update(`${timestampS}.`).update(body).digest('hex');
}

export interface VerifyWebhookOptions {
	/** Oldest accepted signature timestamp, in seconds before (or after) now (default 300). */
	toleranceS?: number;
	/** Now, ms since the epoch (tests). */
	nowMs?: number;
}

/** Why a signature header was refused: unreadable, outside the tolerance, or not matching. */
export type WebhookSignatureFault = 'malformed' | 'stale' | 'mismatch';

export type WebhookSignatureCheck = { ok: true; timestampS: number } | { ok: false; fault: WebhookSignatureFault };

/**
 * Checks that `signatureHeader` signs exactly `rawBody` with one of `secrets` and that its
 * timestamp is within the tolerance of now. Pass the body bytes as received, before any JSON
 * parsing. Several secrets: the old and the new one while a secret is rotated.
 */
export function checkWebhookSignature(rawBody: string | Buffer, signatureHeader: string, secrets: string | readonly string[], options: VerifyWebhookOptions = {}): WebhookSignatureCheck {
	const parts = signatureHeader.split(',').map((p) => p.trim().split('='));
	const t = Number(parts.find(([k]) => k === 't')?.[1]);
	if (!Number.isSafeInteger(t)) return { ok: false, fault: 'malformed' };
	const signatures = parts.filter(([k, v]) => k === 'v1' && v !== undefined && /^[0-9a-f]{64}$/.test(v)).map(([, v]) => Buffer.from(v!, 'hex'));
	if (signatures.length === 0) return { ok: false, fault: 'malformed' };
	const nowS = (options.nowMs ?? Date.now()) / 1000;
	if (Math.abs(nowS - t) > (options.toleranceS ?? DEFAULT_WEBHOOK_TOLERANCE_S)) return { ok: false, fault: 'stale' };
	for (const secret of typeof secrets === 'string' ? [secrets] : secrets) {
		const expected = Buffer.from(signWebhook(rawBody, t, secret), 'hex');
		if (signatures.some((s) => timingSafeEqual(s, expected))) return { ok: true, timestampS: t };
	}
	return { ok: false, fault: 'mismatch' };
}

/** True when `signatureHeader` (X-Parley-Signature) signs exactly `rawBody` with `secret`, recently. */
export function verifyWebhookSignature(rawBody: string | Buffer, signatureHeader: string, secret: string, options: VerifyWebhookOptions = {}): boolean {
	return checkWebhookSignature(rawBody, signatureHeader, secret, options).ok;
}
