import { describe, expect, it } from 'vitest';
import { RequestError } from '../../protocol/RequestError.js';
import { AudioUrlSigner } from './audioUrl.js';

const KEY = new TextEncoder().encode('audio-url-test-secret-long-enough!!!!');
const NOW_S = 1_800_000_000;
const MESSAGE = '0b6c7a3e-2f55-4d1b-9a8e-1c2d3e4f5a6b';
const OTHER_MESSAGE = '9f8e7d6c-5b4a-4321-8fed-cba987654321';

const query = (url: string) => new URL(url, 'http://parley.test').searchParams;
function refusal(run: () => unknown): string {
	try {
		run();
	} catch (err) {
		if (err instanceof RequestError) return err.code;
		throw err;
	}
	return 'accepted';
}

describe('AudioUrlSigner', () => {
	const signer = new AudioUrlSigner(KEY, 300);
	const { url, expiresAt } = signer.sign(MESSAGE, 'bob', NOW_S);

	it('issues a link to one message for one user that is valid for ttlS', () => {
		expect(url).toBe(`/voice/messages/${MESSAGE}/audio?user=bob&exp=${NOW_S + 300}&sig=${query(url).get('sig')}`);
		expect(expiresAt).toBe(NOW_S + 300);
		expect(signer.verify(MESSAGE, query(url), NOW_S)).toBe('bob');
		expect(signer.verify(MESSAGE, query(url), NOW_S + 300)).toBe('bob');
	});

	it('refuses it once expired with E_AUDIO_URL_EXPIRED', () => {
		expect(refusal(() => signer.verify(MESSAGE, query(url), NOW_S + 301))).toBe('E_AUDIO_URL_EXPIRED');
	});

	it('refuses it for another message, another user, a changed expiry or signature with E_AUDIO_URL_INVALID', () => {
		const changed = (k: string, v: string) => {
			const q = query(url);
			q.set(k, v);
			return q;
		};
		const sig = query(url).get('sig')!;
		expect(refusal(() => signer.verify(OTHER_MESSAGE, query(url), NOW_S))).toBe('E_AUDIO_URL_INVALID');
		expect(refusal(() => signer.verify(MESSAGE, changed('user', 'eve'), NOW_S))).toBe('E_AUDIO_URL_INVALID');
		expect(refusal(() => signer.verify(MESSAGE, changed('exp', String(NOW_S + 86_400)), NOW_S))).toBe('E_AUDIO_URL_INVALID');
		expect(refusal(() => signer.verify(MESSAGE, changed('sig', (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1)), NOW_S))).toBe('E_AUDIO_URL_INVALID');
		for (const [k, v] of [['sig', ''], ['sig', 'x'], ['exp', '-1'], ['exp', '1e9'], ['user', '../x'], ['user', '']]) {
			expect(refusal(() => signer.verify(MESSAGE, changed(k!, v!), NOW_S)), `${k}=${v}`).toBe('E_AUDIO_URL_INVALID');
		}
		// An expired link that was also tampered with is invalid, not merely expired.
		expect(refusal(() => signer.verify(MESSAGE, changed('user', 'eve'), NOW_S + 10_000))).toBe('E_AUDIO_URL_INVALID');
	});

	it('signs with a key of its own purpose: another auth secret, or the raw secret, does not verify', () => {
		const other = new AudioUrlSigner(new TextEncoder().encode('another-secret-that-is-long-enough!!!!'), 300);
		expect(refusal(() => other.verify(MESSAGE, query(url), NOW_S))).toBe('E_AUDIO_URL_INVALID');
	});
});
