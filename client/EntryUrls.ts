// Where the client's next socket goes (LiveKit's RegionUrlProvider): the entry endpoints of
// one cluster, tried in turn, and the node a join was redirected to. Kept apart from the
// sockets themselves so the rotation and the redirect rules can be read, and tested, alone.
import { ParleyError } from './ParleyError.js';

/** E_REDIRECT hops followed for one join; more means nodes disagree, and E_REDIRECT surfaces. */
export const MAX_REDIRECTS = 3;

export interface EntryUrlsOptions {
	/** Redirects followed per join (default MAX_REDIRECTS). */
	maxRedirects?: number;
	/** Hosts a redirect may go to besides the entry URLs' hosts (see follow()). */
	redirectHosts?: readonly string[];
}

/** A redirectHosts entry: a host name (`node-b.example.com`, `[::1]`, `10.0.0.5`) or a
 * wildcard for its subdomains (`*.example.com`); no scheme, port or path. */
const HOST_PATTERN_RE = /^(\*\.)?([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/i;

export class EntryUrls {
	readonly #entries: readonly string[];
	readonly #maxRedirects: number;
	/** The entry endpoint in use, or that the current redirect came from. */
	#index = 0;
	/** An entry endpoint, or the node a join was redirected to. */
	#current: string;
	#redirected = false;
	#hops = 0;
	/** Host patterns a redirect may go to (lower case), or undefined: any host. */
	readonly #redirectHosts: readonly string[] | undefined;

	/** `urls`: absolute ws(s):// (or http(s)://) URLs, at least one; the first is used first. */
	constructor(urls: readonly string[], { maxRedirects = MAX_REDIRECTS, redirectHosts }: EntryUrlsOptions = {}) {
		if (urls.length === 0) throw new TypeError('at least one entry URL is required');
		for (const url of urls) {
			if (!/^(wss?|https?):\/\//.test(url) || !URL.canParse(url)) throw new TypeError(`url must be an absolute ws:// or wss:// URL, got ${JSON.stringify(url)}`);
		}
		if (!Number.isInteger(maxRedirects) || maxRedirects < 0) throw new TypeError('maxRedirects must be an integer >= 0');
		if (redirectHosts !== undefined) {
			for (const host of redirectHosts) {
				if (typeof host !== 'string' || !HOST_PATTERN_RE.test(host)) throw new TypeError(`redirectHosts entries must be host names or *.domain, got ${JSON.stringify(host)}`);
			}
			this.#redirectHosts = [...urls.map((u) => new URL(u).hostname.toLowerCase()), ...redirectHosts.map((h) => h.toLowerCase())];
		}
		this.#entries = [...urls];
		this.#maxRedirects = maxRedirects;
		this.#current = this.#entries[0]!;
	}

	/** Where the next socket connects. */
	get current(): string {
		return this.#current;
	}

	/** The current URL is one a join was redirected to, not an entry endpoint. */
	get redirected(): boolean {
		return this.#redirected;
	}

	/** Redirects followed since the last resetHops(), failover() or reset(). */
	get hops(): number {
		return this.#hops;
	}

	/** How many entry endpoints there are (connect() tries each once). */
	get size(): number {
		return this.#entries.length;
	}

	/**
	 * Follows E_REDIRECT: returns the URL to connect to, which becomes current. Throws the
	 * redirect itself when it carries no target or the hop limit is reached, and a new
	 * E_REDIRECT for a target the client refuses. The rule (the token goes to the target):
	 *  - only ws:, wss:, http: and https: targets;
	 *  - never from TLS to no TLS (wss:/https: to ws:/http:), judged against the current URL;
	 *  - with `redirectHosts`: only to the entry URLs' hosts and those hosts (exact, or
	 *    `*.domain` for its subdomains); without it, to the node the server names: a
	 *    cluster's nodes take redirect targets only from registry entries signed with the
	 *    cluster secret, so a target is a node of the cluster the client connected to.
	 *    Give redirectHosts when the client should not rely on that (e.g. the entry URLs are
	 *    a load balancer in front of nodes with known names).
	 */
	follow(redirect: ParleyError): string {
		const url = redirect.redirect?.url;
		if (url === undefined || this.#hops >= this.#maxRedirects) throw redirect;
		let parsed: URL;
		try {
			parsed = new URL(url);
		} catch {
			throw new ParleyError('E_REDIRECT', `The server redirected to an invalid URL: ${JSON.stringify(url).slice(0, 200)}`, { cause: redirect });
		}
		if (!/^(wss?|https?):$/.test(parsed.protocol)) throw new ParleyError('E_REDIRECT', `The server redirected to a non-WebSocket URL (${parsed.protocol}).`, { cause: redirect });
		if (this.#redirectHosts && !this.#hostAllowed(parsed.hostname.toLowerCase())) {
			throw new ParleyError('E_REDIRECT', `The server redirected to ${parsed.hostname}, which is not an entry URL host nor in redirectHosts; refused.`, { cause: redirect });
		}
		const target = parsed.toString();
		if (/^(wss|https):/.test(this.#current) && /^(ws|http):/.test(target)) {
			throw new ParleyError('E_REDIRECT', 'The server redirected from a secure to an insecure URL; refused.', { cause: redirect });
		}
		this.#current = target;
		this.#redirected = true;
		this.#hops += 1;
		return target;
	}

	#hostAllowed(hostname: string): boolean {
		return this.#redirectHosts!.some((pattern) => (pattern.startsWith('*.') ? hostname.endsWith(pattern.slice(1)) && hostname.length > pattern.length - 1 : hostname === pattern));
	}

	/**
	 * Where to go after the current URL failed. After a redirect: back to the entry endpoint
	 * that redirected us (it was alive; the node we were sent to may be the one that died, and
	 * the entry node finds the channel's new home). Otherwise the next entry endpoint, wrapping
	 * around, so retries walk past a dead node.
	 */
	failover(): string {
		if (this.#redirected) this.#redirected = false;
		else this.#index = (this.#index + 1) % this.#entries.length;
		this.#hops = 0;
		this.#current = this.#entries[this.#index]!;
		return this.#current;
	}

	/** Back to the entry endpoint in use (connect()): forgets a redirect and its hops. */
	reset(): string {
		this.#redirected = false;
		this.#hops = 0;
		this.#current = this.#entries[this.#index]!;
		return this.#current;
	}

	/** A join starts: the hop limit counts per join, not over every join of a long session. */
	resetHops(): void {
		this.#hops = 0;
	}
}
