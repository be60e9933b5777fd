// Who is asking, for per-address limits: the socket's peer address, or behind a reverse
// proxy (http.trustProxy) the address that proxy saw, i.e. the last X-Forwarded-For entry.
// Earlier entries are whatever the client sent and cannot be trusted.
import net from 'node:net';

/** The client's IP address as text (IPv4-mapped IPv6 addresses as plain IPv4). */
export function clientAddress(socketAddress: string, forwardedFor: string, trustProxy: boolean): string {
	if (trustProxy && forwardedFor) {
		const last = forwardedFor.split(',').at(-1)?.trim() ?? '';
		// A proxy that writes something other than an address is misconfigured: fall back to
		// the socket (the proxy's own address) rather than key limits on client-chosen text.
		if (net.isIP(last)) return unmapIpv4(last);
	}
	return unmapIpv4(socketAddress);
}

function unmapIpv4(address: string): string {
	if (!net.isIPv6(address)) return address;
	const g = expandIpv6(address);
	if (g.slice(0, 5).every((x) => x === '0') && g[5] === 'ffff') {
		const hi = parseInt(g[6]!, 16);
		const lo = parseInt(g[7]!, 16);
		return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
	}
	return address;
}

/**
 * The key of an address's rate-limit bucket. An IPv6 host usually holds a whole /64 (and
 * can pick any address in it), so IPv6 addresses share their /64's bucket.
 */
export function addressLimitKey(address: string): string {
	if (net.isIPv4(address)) return address;
	if (!net.isIPv6(address)) return address.slice(0, 64);
	return `${expandIpv6(address).slice(0, 4).join(':')}::/64`;
}

/** The 8 groups of an IPv6 address, without leading zeros ("::" expanded). */
function expandIpv6(address: string): string[] {
	const withoutZone = address.split('%')[0]!;
	let text = withoutZone;
	// A trailing dotted IPv4 part (::ffff:1.2.3.4, ::1.2.3.4) counts as two groups.
	const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
	if (v4) {
		const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
		text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
	}
	const [head, tail] = text.split('::') as [string, string | undefined];
	const headGroups = head ? head.split(':') : [];
	const tailGroups = tail ? tail.split(':') : [];
	const zeros = tail === undefined ? [] : Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
	return [...headGroups, ...zeros, ...tailGroups].map((g) => parseInt(g, 16).toString(16));
}
