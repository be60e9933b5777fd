// WebhookReceiver on its own: the replay memory's bounds and expiry, secret rotation, and the
// node handler's answers (a failing handler releases the id for Parley's retry).
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { signWebhook } from '../protocol/webhookSignature.js';
import { WebhookReceiver, WebhookVerificationError, type WebhookDelivery } from './WebhookReceiver.js';

const SECRET = 'receiver-unit-secret-0123456789';

function signed(eventId: string, tS: number, secret = SECRET): { body: string; headers: Record<string, string> } {
	const body = JSON.stringify({ eventId, event: 'voiceMessage.ready', voiceMessageId: 'm1' });
	return { body, headers: { 'x-parley-event': 'voiceMessage.ready', 'x-parley-delivery': eventId, 'x-parley-signature': `t=${tS},v1=${signWebhook(body, tS, secret)}` } };
}

function reason(fn: () => unknown): string | undefined {
	try {
		fn();
		return undefined;
	} catch (err) {
		if (err instanceof WebhookVerificationError) return err.reason;
		throw err;
	}
}

describe('WebhookReceiver', () => {
	let server: http.Server | undefined;
	afterEach(async () => {
		server?.closeAllConnections();
		await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
		server = undefined;
	});

	it('remembers a delivery id until its signature is older than the tolerance, then forgets it', () => {
		let nowMs = 1_800_000_000_000;
		const receiver = new WebhookReceiver({ secret: SECRET, toleranceS: 60, now: () => nowMs });
		const t = nowMs / 1000;
		const a = signed('a', t);
		expect(receiver.verify(a.body, a.headers).deliveryId).toBe('a');
		expect(reason(() => receiver.verify(a.body, a.headers))).toBe('replayed');
		nowMs += 61_000;
		// The copy is now refused by its age, and the id is no longer held.
		expect(reason(() => receiver.verify(a.body, a.headers))).toBe('stale');
		const b = signed('b', nowMs / 1000);
		receiver.verify(b.body, b.headers);
		expect(receiver.rememberedDeliveries).toBe(1);
	});

	it('keeps at most maxRememberedDeliveries ids, dropping the oldest', () => {
		const receiver = new WebhookReceiver({ secret: SECRET, maxRememberedDeliveries: 3 });
		const t = Math.floor(Date.now() / 1000);
		for (const id of ['1', '2', '3', '4']) receiver.verify(signed(id, t).body, signed(id, t).headers);
		expect(receiver.rememberedDeliveries).toBe(3);
		expect(reason(() => receiver.verify(signed('4', t).body, signed('4', t).headers))).toBe('replayed');
		expect(reason(() => receiver.verify(signed('1', t).body, signed('1', t).headers))).toBeUndefined();
	});

	it('accepts either secret while one is rotated, refuses a third, and refuses a body whose eventId is not the delivery id', () => {
		const receiver = new WebhookReceiver({ secret: ['new-secret-0123456789', SECRET] });
		const t = Math.floor(Date.now() / 1000);
		expect(reason(() => receiver.verify(signed('old', t).body, signed('old', t).headers))).toBeUndefined();
		const n = signed('new', t, 'new-secret-0123456789');
		expect(reason(() => receiver.verify(n.body, n.headers))).toBeUndefined();
		const other = signed('other', t, 'a-third-secret-0123456789');
		expect(reason(() => receiver.verify(other.body, other.headers))).toBe('signature');
		const s = signed('x', t);
		expect(reason(() => receiver.verify(s.body, { ...s.headers, 'x-parley-delivery': 'y' }))).toBe('malformed');
		expect(reason(() => receiver.verify(s.body, { 'x-parley-delivery': 'x' }))).toBe('malformed');
		expect(() => new WebhookReceiver({ secret: '' })).toThrow(TypeError);
	});

	it('node handler: 204 once handled, 500 when the handler throws (and the retry is accepted), 409 for a copy, 413 over the size limit', async () => {
		const receiver = new WebhookReceiver({ secret: SECRET, maxBodyBytes: 1024 });
		const got: WebhookDelivery[] = [];
		let failNext = true;
		server = http.createServer(
			receiver.nodeHandler((d) => {
				if (failNext) {
					failNext = false;
					throw new Error('database down');
				}
				got.push(d);
			}),
		);
		server.listen(0, '127.0.0.1');
		await once(server, 'listening');
		const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
		const post = async (m: { body: string; headers: Record<string, string> }) => (await fetch(url, { method: 'POST', body: m.body, headers: m.headers })).status;
		const t = Math.floor(Date.now() / 1000);
		expect(await post(signed('d1', t))).toBe(500);
		expect(await post(signed('d1', t + 1))).toBe(204); // Parley's retry: same id, new signature
		expect(await post(signed('d1', t + 2))).toBe(409);
		expect(got.map((d) => d.deliveryId)).toEqual(['d1']);
		const big = 'x'.repeat(2048);
		expect(await post({ body: big, headers: { 'x-parley-delivery': 'big', 'x-parley-signature': `t=${t},v1=${signWebhook(big, t, SECRET)}` } })).toBe(413);
		expect((await fetch(url)).status).toBe(405);
	});
});
