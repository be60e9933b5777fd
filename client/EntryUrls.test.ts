// EntryUrls alone: rotation over the entry endpoints, following redirects (and refusing
// bad ones), the hop limit, and where failover goes after a redirect.
import { beforeEach, describe, expect, it } from 'vitest';
import { EntryUrls, MAX_REDIRECTS } from './EntryUrls.js';
import { isParleyError, ParleyError } from './ParleyError.js';

const A = 'ws://node-a.test/ws';
const B = 'ws://node-b.test/ws';
const C = 'ws://node-c.test/ws';
const HOME = 'ws://home.test/ws';

function redirectTo(url: string): ParleyError {
	return new ParleyError('E_REDIRECT', 'served elsewhere', { redirect: { nodeId: 'home', url } });
}

/** What follow() threw. */
function followError(urls: EntryUrls, redirect: ParleyError): unknown {
	try {
		urls.follow(redirect);
	} catch (error) {
		return error;
	}
	throw new Error('follow() did not throw');
}

describe('EntryUrls', () => {
	let urls: EntryUrls;

	beforeEach(() => {
		urls = new EntryUrls([A, B, C]);
	});

	it('starts at the first entry URL, not redirected', () => {
		expect(urls.current).toBe(A);
		expect(urls.redirected).toBe(false);
		expect(urls.hops).toBe(0);
		expect(urls.size).toBe(3);
	});

	it('fails over to the next entry URL, wrapping around the list', () => {
		expect([urls.failover(), urls.failover(), urls.failover(), urls.failover()]).toEqual([B, C, A, B]);
		expect(urls.current).toBe(B);
	});

	it('fails over to the same URL when there is only one', () => {
		const single = new EntryUrls([A]);
		expect(single.failover()).toBe(A);
	});

	it('follows a redirect: the target becomes current, and the hop is counted', () => {
		expect(urls.follow(redirectTo(HOME))).toBe(HOME);
		expect(urls.current).toBe(HOME);
		expect(urls.redirected).toBe(true);
		expect(urls.hops).toBe(1);
	});

	it('surfaces the redirect itself once the hop limit is reached', () => {
		for (let hop = 0; hop < MAX_REDIRECTS; hop++) urls.follow(redirectTo(`ws://hop-${hop}.test/ws`));
		const last = redirectTo(HOME);
		expect(followError(urls, last)).toBe(last);
		expect(urls.current).toBe(`ws://hop-${MAX_REDIRECTS - 1}.test/ws`);
		expect(urls.hops).toBe(MAX_REDIRECTS);
	});

	it('takes the hop limit from its options', () => {
		const strict = new EntryUrls([A], { maxRedirects: 1 });
		strict.follow(redirectTo(B));
		const second = redirectTo(C);
		expect(followError(strict, second)).toBe(second);
	});

	it('resetHops() gives a new join the full hop limit, staying on the redirected URL', () => {
		for (let hop = 0; hop < MAX_REDIRECTS; hop++) urls.follow(redirectTo(HOME));
		urls.resetHops();
		expect(urls.hops).toBe(0);
		expect(urls.current).toBe(HOME);
		expect(urls.redirected).toBe(true);
		expect(urls.follow(redirectTo(B))).toBe(B);
	});

	it('surfaces a redirect without a target as it is', () => {
		const bare = new ParleyError('E_REDIRECT');
		expect(followError(urls, bare)).toBe(bare);
		expect(urls.current).toBe(A);
	});

	it.each(['not a url', 'ftp://node-b.test/ws'])('refuses the target %j with E_REDIRECT, the redirect as cause', (target) => {
		const redirect = redirectTo(target);
		const error = followError(urls, redirect);
		expect(isParleyError(error, 'E_REDIRECT')).toBe(true);
		expect(error).not.toBe(redirect);
		expect((error as ParleyError).cause).toBe(redirect);
		expect(urls.current).toBe(A);
		expect(urls.hops).toBe(0);
	});

	it('refuses a redirect from wss to ws, and allows the other way', () => {
		const secure = new EntryUrls(['wss://node-a.test/ws']);
		const error = followError(secure, redirectTo(B));
		expect(error).toMatchObject({ code: 'E_REDIRECT', message: expect.stringMatching(/insecure/) });
		expect(secure.current).toBe('wss://node-a.test/ws');
		expect(urls.follow(redirectTo('wss://home.test/ws'))).toBe('wss://home.test/ws');
	});

	it('compares TLS against the redirected URL, not the entry URL', () => {
		urls.follow(redirectTo('wss://home.test/ws'));
		expect(followError(urls, redirectTo(B))).toMatchObject({ code: 'E_REDIRECT', message: expect.stringMatching(/insecure/) });
	});

	it('refuses schemes other than ws(s) and http(s)', () => {
		for (const target of ['file:///etc/passwd', 'javascript:alert(1)', 'ftp://home.test/ws', 'data:text/plain,x']) {
			expect(followError(urls, redirectTo(target))).toMatchObject({ code: 'E_REDIRECT' });
		}
		expect(urls.current).toBe(A);
		expect(urls.hops).toBe(0);
	});

	it('with redirectHosts, follows only to the entry hosts and those hosts', () => {
		const limited = new EntryUrls([A, B], { redirectHosts: ['home.test', '*.nodes.example'] });
		expect(limited.follow(redirectTo('ws://home.test:8080/ws'))).toBe('ws://home.test:8080/ws');
		expect(limited.follow(redirectTo('ws://n7.nodes.example/ws'))).toBe('ws://n7.nodes.example/ws');
		expect(limited.follow(redirectTo('ws://NODE-B.test/ws'))).toBe('ws://node-b.test/ws');
		limited.resetHops();
		for (const target of ['ws://evil.test/ws', 'ws://nodes.example/ws', 'ws://home.test.evil.test/ws', 'ws://evilnodes.example/ws', 'ws://203.0.113.7/ws']) {
			const error = followError(limited, redirectTo(target));
			expect(error).toMatchObject({ code: 'E_REDIRECT', message: expect.stringMatching(/not an entry URL host nor in redirectHosts/) });
		}
		expect(limited.current).toBe('ws://node-b.test/ws');
		// Without the option, any host the server names is followed.
		expect(urls.follow(redirectTo('ws://203.0.113.7/ws'))).toBe('ws://203.0.113.7/ws');
	});

	it('rejects redirectHosts entries that are not host names', () => {
		for (const host of ['ws://home.test', 'home.test/ws', 'home.test:80', '', '*']) {
			expect(() => new EntryUrls([A], { redirectHosts: [host] })).toThrow(TypeError);
		}
	});

	it('normalises the redirect target', () => {
		expect(urls.follow(redirectTo('WS://Home.Test:80/ws'))).toBe('ws://home.test/ws');
	});

	it('fails over from a redirected URL back to the entry URL that redirected, not the next one', () => {
		urls.failover();
		urls.follow(redirectTo(HOME));
		expect(urls.failover()).toBe(B);
		expect(urls.redirected).toBe(false);
		expect(urls.hops).toBe(0);
		// The next failure moves on along the entry list.
		expect(urls.failover()).toBe(C);
	});

	it('reset() goes back to the entry URL in use, forgetting the redirect and its hops', () => {
		urls.failover();
		urls.follow(redirectTo(HOME));
		expect(urls.reset()).toBe(B);
		expect(urls.redirected).toBe(false);
		expect(urls.hops).toBe(0);
		// No redirect to return from: failover advances.
		expect(urls.failover()).toBe(C);
	});

	it('rejects an empty list, malformed URLs and a bad hop limit with TypeError', () => {
		expect(() => new EntryUrls([])).toThrow(TypeError);
		expect(() => new EntryUrls([A, 'node-b/ws'])).toThrow(TypeError);
		expect(() => new EntryUrls(['ws://'])).toThrow(TypeError);
		expect(() => new EntryUrls([A], { maxRedirects: -1 })).toThrow(TypeError);
		expect(() => new EntryUrls([A], { maxRedirects: 1.5 })).toThrow(TypeError);
	});

	it('keeps its own copy of the list', () => {
		const list = [A, B];
		const own = new EntryUrls(list);
		list[1] = C;
		expect(own.failover()).toBe(B);
	});
});
