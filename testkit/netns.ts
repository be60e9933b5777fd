// A network namespace of a test's own, joined to the host by a veth pair: a browser started
// inside it (wrapper()) reaches servers on the host side only over that pair, and nftables
// rules inside it (firewall()) block what a corporate firewall would, while the host's own
// networking is untouched and nothing leaves the machine. Chromium gathers no ICE candidates
// on loopback, hence a veth with addresses of its own (../shared/notes/real-services.md).
// Needs root (CAP_NET_ADMIN); netAdminUnavailable() says why not, for a clean skip.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeTempFolder, removeTempFolder } from './services/daemon.js';

const IP = '/usr/sbin/ip';
const NFT = '/usr/sbin/nft';

function sh(command: string, args: string[], input?: string): string {
	return execFileSync(command, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input !== undefined && { input }) });
}

/** Why namespaces cannot be made here (not root, no ip/nft, no CAP_NET_ADMIN), or null. */
export function netAdminUnavailable(): string | null {
	if (process.platform !== 'linux') return 'network namespaces need Linux';
	if (process.getuid?.() !== 0) return 'network namespaces need root (CAP_NET_ADMIN): run the test as root';
	for (const tool of [IP, NFT]) if (!existsSync(tool)) return `${tool} is not installed: run scripts/setup (iproute2, nftables)`;
	const probe = `parley-probe-${process.pid}`;
	try {
		sh(IP, ['netns', 'add', probe]);
		sh(IP, ['netns', 'del', probe]);
	} catch (err) {
		return `cannot create a network namespace (CAP_NET_ADMIN missing?): ${(err as Error).message.split('\n')[0]}`;
	}
	return null;
}

export interface VethNamespace {
	readonly name: string;
	/** The host end's address: servers the namespace should reach listen here. */
	readonly hostAddress: string;
	/** The namespace end's address (what the servers see as the client). */
	readonly nsAddress: string;
	/** Runs a command inside the namespace to completion and returns its output. */
	exec(command: string, args: string[]): string;
	/** An executable script that runs `binary` inside the namespace with the arguments it is given
	 * (for launchers that take an executable path, like playwright's). */
	wrapper(binary: string): string;
	/**
	 * Replaces the namespace's nftables rules with `rules` (statements for both the input and
	 * the output hook, e.g. `udp dport 40000-40001 drop`); an empty list removes them. Output
	 * drops make the browser's sendto fail at once, which a real firewall would not do, but
	 * for a path that must not work at all that only makes the test quicker.
	 */
	firewall(rules: { input?: string[]; output?: string[] }): void;
	/** Deletes the namespace (the veth pair goes with it) and the wrapper scripts. */
	close(): void;
}

/** A namespace with a veth pair on a /30 of 10.2xx.y.0 that no interface of the host uses. */
export function createVethNamespace(): VethNamespace {
	const id = `${process.pid % 10_000}${Math.floor(Math.random() * 100)}`;
	const name = `parley-${id}`;
	const hostIf = `pvh${id}`;
	const nsIf = `pvn${id}`;
	const used = sh(IP, ['-o', '-4', 'addr']);
	let prefix = '';
	do prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
	while (used.includes(` ${prefix}.`));
	const hostAddress = `${prefix}.1`;
	const nsAddress = `${prefix}.2`;
	const folder = makeTempFolder('netns');
	let closed = false;
	const close = (): void => {
		if (closed) return;
		closed = true;
		try {
			sh(IP, ['netns', 'del', name]);
		} catch {
			// Never created (a failed setup): nothing to delete.
		}
		try {
			sh(IP, ['link', 'del', hostIf]);
		} catch {
			// Gone with the namespace (deleting one end of a veth deletes both).
		}
		removeTempFolder(folder);
	};
	process.once('exit', close);
	try {
		sh(IP, ['netns', 'add', name]);
		sh(IP, ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
		sh(IP, ['link', 'set', nsIf, 'netns', name]);
		sh(IP, ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
		sh(IP, ['link', 'set', hostIf, 'up']);
		sh(IP, ['-n', name, 'addr', 'add', `${nsAddress}/30`, 'dev', nsIf]);
		sh(IP, ['-n', name, 'link', 'set', nsIf, 'up']);
		sh(IP, ['-n', name, 'link', 'set', 'lo', 'up']);
	} catch (err) {
		close();
		throw err;
	}
	let wrappers = 0;
	return {
		name,
		hostAddress,
		nsAddress,
		exec: (command, args) => sh(IP, ['netns', 'exec', name, command, ...args]),
		wrapper(binary) {
			const script = path.join(folder, `${path.basename(binary)}-${wrappers++}.sh`);
			writeFileSync(script, `#!/bin/sh\nexec ${IP} netns exec ${name} ${binary} "$@"\n`);
			chmodSync(script, 0o755);
			return script;
		},
		firewall({ input = [], output = [] }) {
			const chain = (hook: string, rules: string[]) => [`\tchain ${hook} {`, `\t\ttype filter hook ${hook} priority 0; policy accept;`, ...rules.map((r) => `\t\t${r}`), '\t}'];
			// Flushing the whole ruleset of the namespace (its own, never the host's) and adding the table in one transaction.
			const ruleset = ['flush ruleset', 'table inet parley_test {', ...chain('input', input), ...chain('output', output), '}', ''].join('\n');
			sh(IP, ['netns', 'exec', name, NFT, '-f', '-'], ruleset);
		},
		close,
	};
}
