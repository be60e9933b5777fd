// The voice-message HTTP API against a real server: permissions, pagination, downloads
// with Range and ETag, deletion, and hostile ids; with metadata in SQLite (one node) and in
// Redis (a cluster node, against a real redis-server).
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTone } from '../../test/helpers/audio.js';
import { testConfig } from '../../test/helpers/config.js';
import { testLogger } from '../../test/helpers/logger.js';
import { startRedis, type TestRedis } from '../../test/helpers/redis.js';
import { ParleyServer } from '../ParleyServer.js';
import { mintAccessToken, type MintOptions } from '../auth/accessToken.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { OggOpusWriter } from './ogg/OggOpusWriter.js';
import { LocalVoiceStorage } from './files/VoiceStorage.js';
import type { Destination, VoiceMessage } from './voiceMessage.js';

const SECRET = 'voice-routes-test-secret-0123456789-abcdef';

/** Handles are closed just after the reply's last byte: give them a moment. */
async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
	for (const started = Date.now(); !condition() && Date.now() - started < timeoutMs; ) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe.each([
	['SQLite', false],
	['Redis', true],
])('voice-message HTTP API, metadata in %s', (_store, withRedis) => {
	let redis: TestRedis | undefined;
	let server: ParleyServer;
	let base: string;
	let storage: LocalVoiceStorage;
	const key = new TextEncoder().encode(SECRET);
	const token = (o: Partial<MintOptions> & { userId: string }) => mintAccessToken({ channels: ['room'], ttlS: 600, ...o }, key);

	/** A ready message with a real Ogg Opus file, as a recording would leave it. */
	async function message(ownerId: string, destination: Destination, createdAt: number, status: VoiceMessage['status'] = 'ready'): Promise<VoiceMessage> {
		const m: VoiceMessage = { id: randomUUID(), ownerId, destination, source: 'recording', status, createdAt, updatedAt: createdAt, durationMs: 1000, sha256: randomUUID().replace(/-/g, '') };
		const writer = new OggOpusWriter(await storage.workPath(m));
		encodeTone(440, 50).forEach((f, i) => writer.writePacket(f, i * 960));
		m.sizeBytes = writer.finalize().sizeBytes;
		await server.voiceStore.insert(m);
		return m;
	}

	const get = async (path: string, bearer?: string, headers: Record<string, string> = {}) =>
		fetch(`${base}${path}`, { headers: { ...(bearer && { authorization: `Bearer ${bearer}` }), ...headers } });

	let ada: string;
	let bob: string;
	let eve: string;
	let older: VoiceMessage;
	let newer: VoiceMessage;
	let newest: VoiceMessage;
	let toBob: VoiceMessage;

	beforeAll(async () => {
		redis = withRedis ? await startRedis() : undefined;
		server = await ParleyServer.create(await testConfig({ PARLEY_AUTH_JWT_SECRET: SECRET, ...(redis && { REDIS_URL: redis.url }) }), testLogger());
		base = `http://127.0.0.1:${server.http.port}`;
		storage = new LocalVoiceStorage(server.storageDir);
		ada = await token({ userId: 'ada' });
		bob = await token({ userId: 'bob' });
		eve = await token({ userId: 'eve', channels: ['elsewhere'] });
		const now = Date.now();
		older = await message('ada', { kind: 'channel', channel: 'room' }, now - 3000);
		newer = await message('bob', { kind: 'channel', channel: 'room' }, now - 2000);
		newest = await message('ada', { kind: 'channel', channel: 'room' }, now - 1000);
		toBob = await message('ada', { kind: 'user', userId: 'bob' }, now);
	});

	afterAll(async () => {
		await server.shutdown('test end');
		await redis?.stop();
	});

	it('lists a channel newest first, page by page', async () => {
		const first = (await (await get('/voice/messages?channel=room&limit=2', bob)).json()) as { messages: VoiceMessageInfo[]; nextCursor: string };
		expect(first.messages.map((m) => m.id)).toEqual([newest.id, newer.id]);
		expect(first.messages[0]!.audioUrl).toBe(`/voice/messages/${newest.id}/audio`);
		const second = (await (await get(`/voice/messages?channel=room&limit=2&before=${first.nextCursor}`, bob)).json()) as { messages: VoiceMessageInfo[]; nextCursor?: string };
		expect(second.messages.map((m) => m.id)).toEqual([older.id]);
		expect(second.nextCursor).toBeUndefined();
	});

	it('lists the messages sent to me, and refuses other listings', async () => {
		const mine = (await (await get('/voice/messages?user=bob', bob)).json()) as { messages: VoiceMessageInfo[] };
		expect(mine.messages.map((m) => m.id)).toEqual([toBob.id]);
		expect((await get('/voice/messages?user=bob', ada)).status).toBe(403);
		expect((await get('/voice/messages?channel=room', eve)).status).toBe(403);
		expect((await get('/voice/messages', ada)).status).toBe(400);
		expect((await get('/voice/messages?channel=room&limit=1000', ada)).status).toBe(400);
		expect((await get('/voice/messages?channel=room&before=nonsense', ada)).status).toBe(400);
		expect((await get('/voice/messages?channel=../etc', ada)).status).toBe(400);
	});

	it('needs a valid token', async () => {
		expect((await get('/voice/messages?channel=room')).status).toBe(401);
		expect((await get(`/voice/messages/${older.id}`, 'not.a.jwt')).status).toBe(401);
		const forged = await mintAccessToken({ userId: 'ada', channels: ['room'], ttlS: 600 }, new TextEncoder().encode('y'.repeat(40)));
		const res = await get(`/voice/messages/${older.id}`, forged);
		expect(res.status).toBe(401);
		expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_AUTH');
	});

	it('shows a message to its sender, its recipient and the channel, and to nobody else', async () => {
		expect((await get(`/voice/messages/${toBob.id}`, bob)).status).toBe(200);
		expect((await get(`/voice/messages/${toBob.id}`, ada)).status).toBe(200);
		const carol = await token({ userId: 'carol' });
		expect((await get(`/voice/messages/${toBob.id}`, carol)).status).toBe(404);
		expect((await get(`/voice/messages/${older.id}`, eve)).status).toBe(404);
		expect((await get(`/voice/messages/${older.id}/audio`, eve)).status).toBe(404);
	});

	it('refuses hostile ids without touching the disk', async () => {
		for (const id of ['..%2F..%2Fetc%2Fpasswd', '..', 'not-a-uuid', `${older.id}%00`, '%2e%2e']) {
			expect((await get(`/voice/messages/${id}`, ada)).status, id).toBe(404);
			expect((await get(`/voice/messages/${id}/audio`, ada)).status, id).toBe(404);
		}
	});

	it('downloads the Ogg Opus file whole, by range, and revalidates by ETag', async () => {
		const file = readFileSync(storage.pathOf(older));
		const full = await get(`/voice/messages/${older.id}/audio`, bob);
		expect(full.status).toBe(200);
		expect(full.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
		expect(full.headers.get('accept-ranges')).toBe('bytes');
		expect(Number(full.headers.get('content-length'))).toBe(file.length);
		expect(Buffer.from(await full.arrayBuffer()).equals(file)).toBe(true);
		const etag = full.headers.get('etag')!;
		expect(etag).toBe(`"${older.sha256}"`);

		const part = await get(`/voice/messages/${older.id}/audio`, bob, { range: 'bytes=10-109' });
		expect(part.status).toBe(206);
		expect(part.headers.get('content-range')).toBe(`bytes 10-109/${file.length}`);
		expect(Buffer.from(await part.arrayBuffer()).equals(file.subarray(10, 110))).toBe(true);
		const tail = await get(`/voice/messages/${older.id}/audio`, bob, { range: 'bytes=-16' });
		expect(Buffer.from(await tail.arrayBuffer()).equals(file.subarray(file.length - 16))).toBe(true);
		const bad = await get(`/voice/messages/${older.id}/audio`, bob, { range: `bytes=${file.length}-` });
		expect(bad.status).toBe(416);
		expect(bad.headers.get('content-range')).toBe(`bytes */${file.length}`);
		expect((await get(`/voice/messages/${older.id}/audio`, bob, { 'if-none-match': etag })).status).toBe(304);
		// The token never goes in the URL: ?access_token= is not accepted.
		expect((await fetch(`${base}/voice/messages/${older.id}/audio?access_token=${bob}`)).status).toBe(401);
	});

	it('plays and seeks a signed audio link scoped to one message and user, without the token in the URL', async () => {
		const file = readFileSync(storage.pathOf(older));
		const issue = (id: string, bearer: string) => fetch(`${base}/voice/messages/${id}/audio-url`, { method: 'POST', headers: { authorization: `Bearer ${bearer}` } });
		const issued = await issue(older.id, bob);
		expect(issued.status).toBe(200);
		const { url, expiresAt } = (await issued.json()) as { url: string; expiresAt: number };
		expect(url).toMatch(new RegExp(`^/voice/messages/${older.id}/audio\\?user=bob&exp=\\d+&sig=[\\w-]{43}$`));
		expect(url).not.toContain(bob);
		expect(expiresAt - Date.now() / 1000).toBeGreaterThan(290);
		expect(expiresAt - Date.now() / 1000).toBeLessThanOrEqual(300);

		const whole = await fetch(`${base}${url}`);
		expect(whole.status).toBe(200);
		expect(Buffer.from(await whole.arrayBuffer()).equals(file)).toBe(true);
		// An <audio> element seeks with Range on the same link.
		const part = await fetch(`${base}${url}`, { headers: { range: 'bytes=100-199' } });
		expect(part.status).toBe(206);
		expect(part.headers.get('content-range')).toBe(`bytes 100-199/${file.length}`);
		expect(Buffer.from(await part.arrayBuffer()).equals(file.subarray(100, 200))).toBe(true);

		const code = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code });
		const params = new URL(url, base).searchParams;
		const withParams = (id: string, change: Record<string, string>) => {
			const q = new URLSearchParams(params);
			for (const [k, v] of Object.entries(change)) q.set(k, v);
			return fetch(`${base}/voice/messages/${id}/audio?${q}`);
		};
		// Another message's link does not open this one; nor does another user's name on it.
		expect(await code(await withParams(newest.id, {}))).toEqual({ status: 403, code: 'E_AUDIO_URL_INVALID' });
		expect(await code(await withParams(older.id, { user: 'ada' }))).toEqual({ status: 403, code: 'E_AUDIO_URL_INVALID' });
		// Tampered expiry or signature.
		expect(await code(await withParams(older.id, { exp: String(expiresAt + 3600) }))).toEqual({ status: 403, code: 'E_AUDIO_URL_INVALID' });
		const sig = params.get('sig')!;
		expect(await code(await withParams(older.id, { sig: (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1) }))).toEqual({ status: 403, code: 'E_AUDIO_URL_INVALID' });
		expect(await code(await withParams(older.id, { sig: '' }))).toEqual({ status: 403, code: 'E_AUDIO_URL_INVALID' });

		// Only a reader gets a link: eve may not read the channel, and ids do not leak.
		expect((await issue(older.id, eve)).status).toBe(404);
		expect((await fetch(`${base}/voice/messages/${older.id}/audio-url`, { method: 'POST' })).status).toBe(401);
		// A link to a message sent to bob is bob's alone.
		expect((await issue(toBob.id, bob)).status).toBe(200);
		expect((await issue(toBob.id, eve)).status).toBe(404);
	});

	it('closes every audio file it opens, streamed or not', async () => {
		// Linux names open files under /proc/self/fd; elsewhere there is nothing to count.
		const linksInto = (fd: string, dir: string): boolean => {
			try {
				return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
			} catch {
				return false; // closed meanwhile
			}
		};
		const openInStorage = () => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').filter((fd) => linksInto(fd, storage.root)).length : 0);
		const before = openInStorage();
		const url = `/voice/messages/${older.id}/audio`;
		const etag = (await get(url, bob)).headers.get('etag')!;
		const variants: Record<string, string>[] = [{}, { range: 'bytes=0-9' }, { range: 'bytes=999999999-' }, { 'if-none-match': etag }];
		for (const headers of variants) await (await get(url, bob, headers)).arrayBuffer();
		// A file an earlier test left open may close meanwhile: fewer than before is no leak.
		await waitFor(() => openInStorage() <= before);
		expect(openInStorage()).toBeLessThanOrEqual(before);
	});

	it('answers 409 for audio that is not ready yet', async () => {
		const pending = await message('ada', { kind: 'channel', channel: 'room' }, Date.now(), 'processing');
		const res = await get(`/voice/messages/${pending.id}/audio`, ada);
		expect(res.status).toBe(409);
	});

	it('lets only the sender delete, removing the file', async () => {
		const del = (id: string, bearer: string) => fetch(`${base}/voice/messages/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${bearer}` } });
		expect((await del(newer.id, ada)).status).toBe(403);
		expect((await del(newer.id, eve)).status).toBe(404);
		const path = storage.pathOf(newer);
		expect((await del(newer.id, bob)).status).toBe(204);
		expect(existsSync(path)).toBe(false);
		expect((await get(`/voice/messages/${newer.id}`, bob)).status).toBe(404);
	});
});
