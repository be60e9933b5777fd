// Access control, table-driven. Every token that must be refused (expired, not yet valid,
// alg none, RS256 signed with the key pair whose public half is the HS secret, HS384/HS512,
// an embedded attacker key, wrong secret, tampered, malformed, missing claims, a lifetime
// beyond auth.maxTokenLifetimeS, a subject outside the user-id alphabet) is refused
// by the WebSocket (close 4401) and by every authenticated HTTP route (401). Every method in
// requestSchemas is called without grants and with another peer's objects: the table must
// name every method, so a new one cannot ship unchecked. Every HTTP route refuses users the
// message or upload is not theirs. Extends server/signaling/signaling.test.ts (WebSocket
// refusals of expired, nbf, none, forged and tampered tokens) to the HTTP routes and beyond.
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintAccessToken } from '../../server/auth/accessToken.js';
import { CLOSE_CODES, type Method, type RequestData } from '../../protocol/messages.js';
import type { ErrorCode } from '../../protocol/errors.js';
import { requestSchemas } from '../../protocol/schemas.js';
import { OggOpusWriter } from '../../server/voice/ogg/OggOpusWriter.js';
import type { VoiceMessage } from '../../server/voice/voiceMessage.js';
import { LocalVoiceStorage } from '../../server/voice/files/VoiceStorage.js';
import { encodeTone } from '../helpers/audio.js';
import { TestSignalingClient, type Reply } from '../../testkit/signalingClient.js';
import { publishWithWerift, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { createUploadId } from './helpers/tus.js';

// The HS256 secret is the PEM of an RSA public key: an RS256 token signed with its private
// key must not verify (the RS/HS confusion, the other way round).
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PUBLIC_PEM = publicKey.export({ type: 'spki', format: 'pem' }).toString();
const KEY = new TextEncoder().encode(PUBLIC_PEM);
const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const claims = { sub: 'mallory', name: 'Mallory', channels: ['*'], grants: { canPublish: true, canSubscribe: true, canRecord: true } };

/** HS256 over any header, signed by hand (jose refuses to sign some of what we test). */
function handSigned(header: Record<string, unknown>, payload: Record<string, unknown>): string {
	const input = `${b64(header)}.${b64(payload)}`;
	return `${input}.${createHmac('sha256', KEY).update(input).digest('base64url')}`;
}

/** Tokens Parley must refuse, by name. */
async function hostileTokens(valid: string): Promise<Record<string, string>> {
	const [h, p, s] = valid.split('.') as [string, string, string];
	const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
	const hs = (alg: string, payload: Record<string, unknown> = { ...claims, exp: now() + 600 }, header: Record<string, unknown> = {}) =>
		new SignJWT(payload).setProtectedHeader({ alg, ...header }).sign(KEY);
	const flip = (text: string, at: number) => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);
	return {
		expired: await hs('HS256', { ...claims, exp: now() - 60 }),
		'expired beyond the 5 s tolerance': await hs('HS256', { ...claims, exp: now() - 7 }),
		'not yet valid': await hs('HS256', { ...claims, exp: now() + 600, nbf: now() + 600 }),
		'no exp': await hs('HS256', { ...claims }),
		'exp as a string': await hs('HS256', { ...claims, exp: String(now() + 600) }),
		'no sub': await hs('HS256', { channels: ['*'], exp: now() + 600 }),
		'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, exp: now() + 600 })}.`,
		'alg None (case)': `${b64({ alg: 'None' })}.${b64({ ...claims, exp: now() + 600 })}.`,
		'RS256 with the key pair whose public PEM is the HS secret': await new SignJWT({ ...claims, exp: now() + 600 }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey),
		'RS256 with an embedded attacker jwk': await new SignJWT({ ...claims, exp: now() + 600 })
			.setProtectedHeader({ alg: 'RS256', jwk: await exportJWK(attacker.publicKey) })
			.sign(attacker.privateKey),
		HS384: await hs('HS384'),
		HS512: await hs('HS512'),
		'unknown critical header': handSigned({ alg: 'HS256', crit: ['x-parley'], 'x-parley': 1 }, { ...claims, exp: now() + 600 }),
		'wrong secret, jku to an attacker key set': await new SignJWT({ ...claims, exp: now() + 600 })
			.setProtectedHeader({ alg: 'HS256', jku: 'http://127.0.0.1:1/keys.json', kid: '../../../dev/null' })
			.sign(new TextEncoder().encode('y'.repeat(40))),
		'wrong secret': await new SignJWT({ ...claims, exp: now() + 600 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('x'.repeat(40))),
		'signature flipped': `${h}.${p}.${flip(s, 5)}`,
		'payload swapped': `${h}.${b64({ ...claims, exp: now() + 600 })}.${s}`,
		'header swapped to HS512': `${b64({ alg: 'HS512', typ: 'JWT' })}.${p}.${s}`,
		'signature stripped': `${h}.${p}.`,
		truncated: valid.slice(0, -10),
		'four segments': `${valid}.x`,
		'JWE-shaped': `${h}.a.b.c.d`,
		'not a JWT': 'hello',
		'channels not a list': await hs('HS256', { sub: 'mallory', channels: 'room', exp: now() + 600 }),
		'channel pattern with a path': await hs('HS256', { sub: 'mallory', channels: ['../*'], exp: now() + 600 }),
		'a 100-year lifetime': await hs('HS256', { ...claims, iat: now(), exp: now() + 100 * 365 * 86_400 }),
		'a 100-year exp without iat': await hs('HS256', { ...claims, exp: now() + 100 * 365 * 86_400 }),
		'sub with a path': await hs('HS256', { ...claims, sub: 'evil/../x', exp: now() + 600 }),
		'name with a line break': await hs('HS256', { ...claims, name: 'Mallory\n{"level":"info"}', exp: now() + 600 }),
	};
}

const OPUS_RTP: RequestData<'produce'>['rtpParameters'] = {
	mid: '7',
	codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }],
	encodings: [{ ssrc: 7777 }],
};

function code(reply: Reply): ErrorCode | 'OK' {
	return reply.ok ? 'OK' : reply.error.code;
}

describe('authentication and authorization on every entry point', () => {
	let h: Harness;
	/** Ada: every grant, joined to room, publishing (werift), recording, with a receive transport. */
	let ada: { client: TestSignalingClient; publisher: WeriftPublisher; recvTransportId: string; consumerId: string; recordingId: string; token: string };
	let message: VoiceMessage;
	let uploadId: string;
	let tokens: Record<string, string>;

	beforeAll(async () => {
		h = await startHarness({ PARLEY_AUTH_JWT_SECRET: PUBLIC_PEM });
		const adaToken = await mintAccessToken({ userId: 'ada', channels: ['room'], grants: { canPublish: true, canSubscribe: true, canRecord: true }, ttlS: 600 }, KEY);
		const { client } = await TestSignalingClient.connect(h.wsUrl(adaToken));
		const caps = await client.request('getRouterRtpCapabilities', {});
		if (!caps.ok) throw new Error('caps');
		await client.request('join', { channel: 'room', rtpCapabilities: caps.data.rtpCapabilities as RequestData<'join'>['rtpCapabilities'] });
		const publisher = await publishWithWerift(client);
		// A second peer publishing, so Ada has a consumer.
		const other = await h.joined('room', { userId: 'carl' });
		const otherSend = await other.client.request('createTransport', { direction: 'send' });
		if (!otherSend.ok) throw new Error('carl send');
		const recv = await client.request('createTransport', { direction: 'recv' });
		if (!recv.ok) throw new Error('ada recv');
		await other.client.request('produce', { transportId: otherSend.data.transportId, kind: 'audio', rtpParameters: OPUS_RTP });
		const consumer = await client.waitFor('newConsumer');
		const rec = await client.request('startRecording', { producerId: publisher.producerId, destination: { kind: 'channel', channel: 'room' } });
		if (!rec.ok) throw new Error('startRecording');
		ada = { client, publisher, recvTransportId: recv.data.transportId, consumerId: consumer.consumerId, recordingId: rec.data.voiceMessageId, token: adaToken };
		// A ready voice message of Ada's to the room, and an unfinished upload of hers.
		const storage = new LocalVoiceStorage(h.server.storageDir);
		message = { id: randomUUID(), ownerId: 'ada', destination: { kind: 'channel', channel: 'room' }, source: 'recording', status: 'ready', createdAt: Date.now(), updatedAt: Date.now(), durationMs: 1000 };
		const writer = new OggOpusWriter(await storage.workPath(message));
		encodeTone(440, 50).forEach((f, i) => writer.writePacket(f, i * 960));
		message.sizeBytes = writer.finalize().sizeBytes;
		await h.server.voiceStore.insert(message);
		uploadId = await createUploadId({ base: h.base, token: adaToken }, 1000);
		tokens = await hostileTokens(adaToken);
	});

	afterAll(async () => {
		await ada?.publisher.close();
		ada?.client.close();
		await h.close();
	});

	/** Every route that needs a token, as a request with `bearer` (undefined: none). */
	function routes(bearer: string | undefined): { name: string; run: () => Promise<Response> }[] {
		const auth: Record<string, string> = bearer === undefined ? {} : { authorization: `Bearer ${bearer}` };
		const tus = { ...auth, 'tus-resumable': '1.0.0' };
		return [
			{ name: 'GET /voice/messages?channel', run: () => fetch(`${h.base}/voice/messages?channel=room`, { headers: auth }) },
			{ name: 'GET /voice/messages?user', run: () => fetch(`${h.base}/voice/messages?user=ada`, { headers: auth }) },
			{ name: 'GET /voice/messages/:id', run: () => fetch(`${h.base}/voice/messages/${message.id}`, { headers: auth }) },
			{ name: 'GET /voice/messages/:id/audio', run: () => fetch(`${h.base}/voice/messages/${message.id}/audio`, { headers: auth }) },
			{ name: 'POST /voice/messages/:id/audio-url', run: () => fetch(`${h.base}/voice/messages/${message.id}/audio-url`, { method: 'POST', headers: auth }) },
			{ name: 'DELETE /voice/messages/:id', run: () => fetch(`${h.base}/voice/messages/${message.id}`, { method: 'DELETE', headers: auth }) },
			{
				name: 'POST /voice/uploads',
				run: () => fetch(`${h.base}/voice/uploads`, { method: 'POST', headers: { ...tus, 'upload-length': '10', 'upload-metadata': `destination ${Buffer.from('channel:room').toString('base64')}` } }),
			},
			{ name: 'HEAD /voice/uploads/:id', run: () => fetch(`${h.base}/voice/uploads/${uploadId}`, { method: 'HEAD', headers: tus }) },
			{
				name: 'PATCH /voice/uploads/:id',
				run: () => fetch(`${h.base}/voice/uploads/${uploadId}`, { method: 'PATCH', headers: { ...tus, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' }, body: new Uint8Array(5) }),
			},
			{ name: 'DELETE /voice/uploads/:id', run: () => fetch(`${h.base}/voice/uploads/${uploadId}`, { method: 'DELETE', headers: tus }) },
		];
	}

	it('refuses every hostile token on the WebSocket (4401) and on every authenticated HTTP route (401)', async () => {
		const failures: string[] = [];
		for (const [name, token] of [...Object.entries(tokens), ['no token at all', undefined] as const]) {
			if (token !== undefined) {
				const client = await TestSignalingClient.open(h.wsUrl(token));
				const closed = await Promise.race([client.closed, new Promise<'open'>((r) => setTimeout(() => r('open'), 2000))]);
				if (closed === 'open') {
					failures.push(`ws, ${name}: accepted (${client.notifications.map((n) => n.method).join(',')})`);
					client.close();
				} else if (closed.code !== CLOSE_CODES.AUTH || !closed.reason.startsWith('E_AUTH')) failures.push(`ws, ${name}: ${closed.code} ${closed.reason}`);
			}
			for (const route of routes(token)) {
				const res = await route.run();
				if (res.status !== 401) failures.push(`${route.name}, ${name}: ${res.status}`);
			}
		}
		expect(failures).toEqual([]);
		// Nothing was done on Ada's behalf: her upload, message and session are intact.
		expect((await routes(ada.token).find((r) => r.name === 'HEAD /voice/uploads/:id')!.run()).headers.get('upload-offset')).toBe('0');
		expect((await h.server.voiceStore.get(message.id))?.status).toBe('ready');
		expect(code(await ada.client.request('getTransportStats', { transportId: ada.recvTransportId }))).toBe('OK');
	}, 60_000);

	it('accepts a token expired within the 5 s clock tolerance, and ignores kid/jku (they never pick a key)', async () => {
		for (const token of [
			await new SignJWT({ ...claims, exp: now() - 2 }).setProtectedHeader({ alg: 'HS256' }).sign(KEY),
			await new SignJWT({ ...claims, exp: now() + 600 }).setProtectedHeader({ alg: 'HS256', kid: '../../../dev/null', jku: 'http://127.0.0.1:1/keys.json' }).sign(KEY),
		]) {
			const { client } = await TestSignalingClient.connect(h.wsUrl(token));
			client.close();
		}
	});

	// What each method answers to a peer in the channel whose token has no grants, called on
	// Ada's objects (the only ones there are): it may not publish, listen or record, and
	// cannot reach anything of hers. One row per method of the protocol.
	const withoutGrants: Record<Method, (a: typeof ada) => { data: unknown; expect: ErrorCode | 'OK' }[]> = {
		getRouterRtpCapabilities: () => [{ data: {}, expect: 'OK' }],
		// (Called before joining: a joined peer gets E_ALREADY_JOINED first.)
		join: () => [{ data: { channel: 'secret', rtpCapabilities: {} }, expect: 'E_FORBIDDEN' }],
		createTransport: () => [
			{ data: { direction: 'send' }, expect: 'E_FORBIDDEN' },
			{ data: { direction: 'recv' }, expect: 'E_FORBIDDEN' },
		],
		connectTransport: (a) => [{ data: { transportId: a.recvTransportId, dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA' }] } }, expect: 'E_NOT_FOUND' }],
		produce: (a) => [{ data: { transportId: a.recvTransportId, kind: 'audio', rtpParameters: OPUS_RTP }, expect: 'E_FORBIDDEN' }],
		pauseProducer: (a) => [{ data: { producerId: a.publisher.producerId }, expect: 'E_NOT_FOUND' }],
		resumeProducer: (a) => [{ data: { producerId: a.publisher.producerId }, expect: 'E_NOT_FOUND' }],
		closeProducer: (a) => [{ data: { producerId: a.publisher.producerId }, expect: 'E_NOT_FOUND' }],
		resumeConsumer: (a) => [{ data: { consumerId: a.consumerId }, expect: 'E_NOT_FOUND' }],
		restartIce: (a) => [{ data: { transportId: a.recvTransportId }, expect: 'E_NOT_FOUND' }],
		getTransportStats: (a) => [{ data: { transportId: a.recvTransportId }, expect: 'E_NOT_FOUND' }],
		startRecording: (a) => [{ data: { producerId: a.publisher.producerId, destination: { kind: 'channel', channel: 'room' } }, expect: 'E_FORBIDDEN' }],
		stopRecording: (a) => [{ data: { voiceMessageId: a.recordingId }, expect: 'E_FORBIDDEN' }],
		leave: () => [{ data: {}, expect: 'OK' }],
	};

	it('enforces grants on every method (the table covers all of requestSchemas)', async () => {
		expect(Object.keys(withoutGrants).sort()).toEqual(Object.keys(requestSchemas).sort());
		const results: string[] = [];
		for (const [method, cases] of Object.entries(withoutGrants) as [Method, (typeof withoutGrants)[Method]][]) {
			for (const c of cases(ada)) {
				const who = { userId: `nobody-${method}`, channels: ['room'], grants: { canPublish: false, canSubscribe: false, canRecord: false } };
				const peer = method === 'join' ? { client: await h.connect(who) } : await h.joined('room', who);
				const got = code(await peer.client.sendRaw({ id: 1, method, data: c.data }));
				results.push(`${method} ${JSON.stringify(c.data).slice(0, 40)}: ${got}${got === c.expect ? '' : ` (expected ${c.expect})`}`);
				expect(got, `${method} ${JSON.stringify(c.data)}`).toBe(c.expect);
				peer.client.close();
			}
		}
		// One grant at a time: each opens exactly its own door.
		const only = async (grant: 'canPublish' | 'canSubscribe' | 'canRecord') =>
			(await h.joined('room', { userId: `only-${grant}`, channels: ['room'], grants: { canPublish: grant === 'canPublish', canSubscribe: grant === 'canSubscribe', canRecord: grant === 'canRecord' } })).client;
		const publisher = await only('canPublish');
		expect(code(await publisher.request('createTransport', { direction: 'send' }))).toBe('OK');
		expect(code(await publisher.request('createTransport', { direction: 'recv' }))).toBe('E_FORBIDDEN');
		const listener = await only('canSubscribe');
		expect(code(await listener.request('createTransport', { direction: 'recv' }))).toBe('OK');
		expect(code(await listener.request('createTransport', { direction: 'send' }))).toBe('E_FORBIDDEN');
		const recorder = await only('canRecord');
		expect(code(await recorder.request('createTransport', { direction: 'send' }))).toBe('E_FORBIDDEN');
		expect(code(await recorder.request('stopRecording', { voiceMessageId: ada.recordingId }))).toBe('E_NOT_FOUND');
		for (const c of [publisher, listener, recorder]) c.close();
	});

	it("refuses a fully granted peer every method on another peer's objects", async () => {
		const mallory = await h.joined('room', { userId: 'mallory', channels: ['room'] });
		const idField: Partial<Record<Method, (a: typeof ada) => unknown>> = {
			connectTransport: (a) => ({ transportId: a.recvTransportId, dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA' }] } }),
			produce: (a) => ({ transportId: a.recvTransportId, kind: 'audio', rtpParameters: OPUS_RTP }),
			pauseProducer: (a) => ({ producerId: a.publisher.producerId }),
			resumeProducer: (a) => ({ producerId: a.publisher.producerId }),
			closeProducer: (a) => ({ producerId: a.publisher.producerId }),
			resumeConsumer: (a) => ({ consumerId: a.consumerId }),
			restartIce: (a) => ({ transportId: a.recvTransportId }),
			getTransportStats: (a) => ({ transportId: a.recvTransportId }),
			startRecording: (a) => ({ producerId: a.publisher.producerId, destination: { kind: 'channel', channel: 'room' } }),
			stopRecording: (a) => ({ voiceMessageId: a.recordingId }),
		};
		// Every method whose data names an object is here.
		const naming = Object.entries(requestSchemas)
			.filter(([, schema]) => Object.keys((schema as unknown as { shape: Record<string, unknown> }).shape).some((k) => /Id$/.test(k)))
			.map(([m]) => m)
			.sort();
		expect(Object.keys(idField).sort()).toEqual(naming);
		for (const [method, data] of Object.entries(idField) as [Method, (a: typeof ada) => unknown][]) {
			expect(code(await mallory.client.sendRaw({ id: 1, method, data: data(ada) })), method).toBe('E_NOT_FOUND');
		}
		// Ada's media is untouched: producer live and not paused, recording still running.
		const producer = [...h.server.channels.get('room')!.peers.values()].find((p) => p.userId === 'ada')!.producers.get(ada.publisher.producerId)!;
		expect(producer.closed).toBe(false);
		expect(producer.paused).toBe(false);
		expect((await h.server.voiceStore.get(ada.recordingId))?.status).toBe('recording');
		mallory.client.close();
	});

	it('refuses every HTTP route to users the message or upload is not for', async () => {
		const outsider = await mintAccessToken({ userId: 'eve', channels: ['elsewhere'], grants: { canRecord: true }, ttlS: 600 }, KEY);
		const member = await mintAccessToken({ userId: 'bob', channels: ['room'], grants: { canRecord: false }, ttlS: 600 }, KEY);
		const expected: Record<string, [outsider: number, member: number]> = {
			'GET /voice/messages?channel': [403, 200],
			'GET /voice/messages?user': [403, 403],
			'GET /voice/messages/:id': [404, 200],
			'GET /voice/messages/:id/audio': [404, 200],
			'POST /voice/messages/:id/audio-url': [404, 200],
			'DELETE /voice/messages/:id': [404, 403],
			'POST /voice/uploads': [403, 403],
			'HEAD /voice/uploads/:id': [404, 404],
			'PATCH /voice/uploads/:id': [404, 404],
			'DELETE /voice/uploads/:id': [404, 404],
		};
		expect(Object.keys(expected).sort()).toEqual(routes(undefined).map((r) => r.name).sort());
		for (const [who, token, column] of [
			['outsider', outsider, 0],
			['member without canRecord', member, 1],
		] as const) {
			for (const route of routes(token)) expect((await route.run()).status, `${route.name} as ${who}`).toBe(expected[route.name]![column]);
		}
		expect((await h.server.voiceStore.get(message.id))?.status).toBe('ready');
		expect((await routes(ada.token).find((r) => r.name === 'HEAD /voice/uploads/:id')!.run()).headers.get('upload-offset')).toBe('0');
	});
});
