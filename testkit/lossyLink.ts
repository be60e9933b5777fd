// A lossy network path for a real browser: the browser runs in a client namespace whose only
// way out is a router namespace, and the router drops a share of the forwarded UDP datagrams
// at random (nftables `numgen random`) on their way to the host, where the servers listen.
// Dropping in a router, not at either end, is what a lossy network does: the browser's
// sendto() succeeds and the datagram is simply gone. Dropping on the browser's own output
// hook instead makes sendto() fail (EPERM) and Chromium then loses far fewer packets than the
// rule says (../shared/notes/real-services.md: 20% on output gave ~4.6% at the server).
//
//   host (servers on hostAddress) <-veth-> router namespace (forwards, masquerades) <-veth-> client namespace (browser)
//
// The router masquerades, so the host needs no route back and its routing table and rules are
// untouched; everything lives in the two namespaces, which close() deletes. Needs root
// (CAP_NET_ADMIN): see netAdminUnavailable() in testkit/netns.ts.
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeTempFolder, removeTempFolder } from './services/daemon.js';

const IP = '/usr/sbin/ip';
const NFT = '/usr/sbin/nft';

function sh(command: string, args: string[], input?: string): string {
	return execFileSync(command, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input !== undefined && { input }) });
}

export interface LinkLoss {
	/** Percent (0-100) of UDP datagrams from the browser to `udpPorts` on the host dropped. */
	uplinkPercent?: number;
	/** Percent of UDP datagrams from `udpPorts` on the host to the browser dropped. */
	downlinkPercent?: number;
	/** Host ports the loss applies to, e.g. '40000-40001' (the media ports); all UDP if absent. */
	udpPorts?: string;
}

/** What the router forwarded and dropped since the last setLoss() (its nftables counters). */
export interface LinkCounters {
	uplinkDropped: number;
	uplinkPassed: number;
	downlinkDropped: number;
	downlinkPassed: number;
}

export interface LossyLink {
	/** The host end's address: servers the browser should reach listen (and announce) here. */
	readonly hostAddress: string;
	/** The browser's own address inside the client namespace. */
	readonly clientAddress: string;
	/** The address the host sees the browser's traffic come from (the router's, masqueraded). */
	readonly routerAddress: string;
	/** An executable script that runs `binary` inside the client namespace (for playwright's executablePath). */
	wrapper(binary: string): string;
	/** Replaces the router's drop rules (no argument: a lossless link). Counters restart at zero. */
	setLoss(loss?: LinkLoss): void;
	counters(): LinkCounters;
	/** Deletes both namespaces (their veth pairs go with them) and the wrapper scripts. */
	close(): void;
}

/** A client and a router namespace on two /30s of 10.2xx.y.0 that no interface of the host uses. */
export function createLossyLink(): LossyLink {
	const id = `${process.pid % 10_000}${Math.floor(Math.random() * 100)}`;
	const router = `parley-lr-${id}`;
	const client = `parley-lc-${id}`;
	// Interface names: at most 15 characters.
	const hostIf = `plh${id}`;
	const routerUp = `plu${id}`;
	const routerDown = `pld${id}`;
	const clientIf = `plc${id}`;
	const used = sh(IP, ['-o', '-4', 'addr']);
	const freePrefix = (): string => {
		let prefix = '';
		do prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
		while (used.includes(` ${prefix}.`));
		return prefix;
	};
	const upPrefix = freePrefix();
	let downPrefix = freePrefix();
	while (downPrefix === upPrefix) downPrefix = freePrefix();
	const hostAddress = `${upPrefix}.1`;
	const routerAddress = `${upPrefix}.2`;
	const routerInner = `${downPrefix}.1`;
	const clientAddress = `${downPrefix}.2`;
	const folder = makeTempFolder('lossy-link');
	let closed = false;
	const close = (): void => {
		if (closed) return;
		closed = true;
		for (const args of [['netns', 'del', client], ['netns', 'del', router], ['link', 'del', hostIf]]) {
			try {
				sh(IP, args);
			} catch {
				// Never created (a failed setup), or gone with its namespace.
			}
		}
		removeTempFolder(folder);
	};
	process.once('exit', close);
	const inRouter = (command: string, args: string[], input?: string) => sh(IP, ['netns', 'exec', router, command, ...args], input);
	try {
		sh(IP, ['netns', 'add', router]);
		sh(IP, ['netns', 'add', client]);
		sh(IP, ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', routerUp]);
		sh(IP, ['link', 'set', routerUp, 'netns', router]);
		sh(IP, ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
		sh(IP, ['link', 'set', hostIf, 'up']);
		sh(IP, ['-n', router, 'addr', 'add', `${routerAddress}/30`, 'dev', routerUp]);
		sh(IP, ['-n', router, 'link', 'set', routerUp, 'up']);
		sh(IP, ['-n', router, 'link', 'set', 'lo', 'up']);
		sh(IP, ['-n', router, 'link', 'add', routerDown, 'type', 'veth', 'peer', 'name', clientIf]);
		sh(IP, ['-n', router, 'link', 'set', clientIf, 'netns', client]);
		sh(IP, ['-n', router, 'addr', 'add', `${routerInner}/30`, 'dev', routerDown]);
		sh(IP, ['-n', router, 'link', 'set', routerDown, 'up']);
		sh(IP, ['-n', client, 'addr', 'add', `${clientAddress}/30`, 'dev', clientIf]);
		sh(IP, ['-n', client, 'link', 'set', clientIf, 'up']);
		sh(IP, ['-n', client, 'link', 'set', 'lo', 'up']);
		sh(IP, ['-n', client, 'route', 'add', 'default', 'via', routerInner]);
		// Forwarding is per namespace: this turns it on in the router alone.
		inRouter('/usr/sbin/sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
	} catch (err) {
		close();
		throw err;
	}

	const setLoss = ({ uplinkPercent = 0, downlinkPercent = 0, udpPorts }: LinkLoss = {}): void => {
		for (const p of [uplinkPercent, downlinkPercent]) if (!(p >= 0 && p <= 100)) throw new RangeError(`loss must be 0-100 percent, got ${p}`);
		if (udpPorts !== undefined && !/^\d{1,5}(-\d{1,5})?$/.test(udpPorts)) throw new TypeError(`udpPorts must be a port or a range like 40000-40001, got ${udpPorts}`);
		const up = udpPorts ? `udp dport ${udpPorts}` : 'meta l4proto udp';
		const down = udpPorts ? `udp sport ${udpPorts}` : 'meta l4proto udp';
		// Each direction: a counted drop rule, then a counted pass for what got through.
		const ruleset = [
			'flush ruleset',
			'table ip parley_nat {',
			'\tchain postrouting {',
			'\t\ttype nat hook postrouting priority 100; policy accept;',
			`\t\toifname "${routerUp}" masquerade`,
			'\t}',
			'}',
			'table inet parley_loss {',
			'\tchain forward {',
			'\t\ttype filter hook forward priority 0; policy accept;',
			`\t\tiifname "${routerDown}" ${up} numgen random mod 100 < ${uplinkPercent} counter drop comment "uplink-dropped"`,
			`\t\tiifname "${routerDown}" ${up} counter comment "uplink-passed"`,
			`\t\tiifname "${routerUp}" ${down} numgen random mod 100 < ${downlinkPercent} counter drop comment "downlink-dropped"`,
			`\t\tiifname "${routerUp}" ${down} counter comment "downlink-passed"`,
			'\t}',
			'}',
			'',
		].join('\n');
		inRouter(NFT, ['-f', '-'], ruleset);
	};

	const counters = (): LinkCounters => {
		const listed = JSON.parse(inRouter(NFT, ['-j', 'list', 'table', 'inet', 'parley_loss'])) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] };
		const count = (comment: string): number => {
			const rule = listed.nftables.find((e) => e.rule?.comment === comment)?.rule;
			return rule?.expr.find((e) => e.counter)?.counter?.packets ?? 0;
		};
		return { uplinkDropped: count('uplink-dropped'), uplinkPassed: count('uplink-passed'), downlinkDropped: count('downlink-dropped'), downlinkPassed: count('downlink-passed') };
	};

	setLoss();
	let wrappers = 0;
	return {
		hostAddress,
		clientAddress,
		routerAddress,
		wrapper(binary) {
			const script = path.join(folder, `${path.basename(binary)}-${wrappers++}.sh`);
			writeFileSync(script, `#!/bin/sh\nexec ${IP} netns exec ${client} ${binary} "$@"\n`);
			chmodSync(script, 0o755);
			return script;
		},
		setLoss,
		counters,
		close,
	};
}
