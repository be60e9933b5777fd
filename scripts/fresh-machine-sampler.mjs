// Samples, twice a second, what runs inside one chroot (processes whose root is that folder)
// and writes one line per sample: seconds since the start, then the kinds of work seen, e.g.
// `12.5 apt-download dpkg npm-ci`. Used by scripts/fresh-machine-setup-time.sh to say when
// each phase of a fresh-machine set-up ran, which setup's own log cannot (it prints the
// worker build's output only when the build is done).
// Usage: node scripts/fresh-machine-sampler.mjs <root> <out file>
import { appendFileSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';

const [root, out] = process.argv.slice(2);
const started = performance.now();
writeFileSync(out, '');

/** What one process of the set-up is doing, from its command line and working folder. */
function kindOf(args, cwd) {
	const cmd = args.join(' ');
	if (cmd.includes('/usr/lib/apt/methods/http')) return 'apt-download';
	if (/^(\/usr\/bin\/)?dpkg( |$)/.test(cmd)) return 'dpkg';
	if (/apt-get .*update/.test(cmd)) return 'apt-update';
	if (/(cc1plus|cc1|collect2|\/ld) /.test(cmd) || /^(\/usr\/bin\/)?(ld|ar|strip)( |$)/.test(cmd)) {
		// The file compiled says whose it is (mediasoup's compile lines name libsrtp's headers too).
		const source = args.find((a) => /\.(c|cc|cpp)$/.test(a)) ?? '';
		if (cwd.includes('better-sqlite3') || source.includes('sqlite3')) return 'compile-sqlite';
		if (source.includes('libsrtp2')) return 'compile-libsrtp';
		if (cwd.includes('mediasoup-worker')) return 'compile-mediasoup';
		return 'compile-other';
	}
	if (/meson(\.py)? setup/.test(cmd) || /\/meson setup/.test(cmd)) return 'meson-setup';
	if (/npm(-cli\.js)? ci/.test(cmd)) return 'npm-ci';
	if (/npm(-cli\.js)? pack/.test(cmd)) return 'npm-pack';
	if (cmd.includes('esbuild')) return 'esbuild';
	if (cmd.includes('check-install.mjs')) return 'check-install';
	if (/^(git|\/usr\/bin\/git|\/usr\/lib\/git-core)/.test(cmd)) return 'git';
	return null;
}

/**
 * CPU seconds of the processes that lead each kind of work, with their children's (a compile's
 * cc1plus runs are in ninja's, dpkg's and the maintainer scripts' in apt-get's, the SQLite
 * build's in npm rebuild's), from /proc/<pid>/stat at their last sample: a figure other load on
 * the machine changes less than the wall time.
 */
const leaderCpu = new Map(); // pid -> { kind, seconds }
const TICKS_PER_SECOND = 100;

function leaderKind(args) {
	const cmd = args.join(' ');
	if (/^(\S*\/)?ninja /.test(cmd)) return 'worker-compile';
	if (/meson(\.py)? setup/.test(cmd)) return 'worker-meson';
	if (/^(\S*\/)?apt-get .*\binstall\b/.test(cmd)) return 'apt-install';
	if (/^(\S*\/)?apt-get .*\bupdate\b/.test(cmd)) return 'apt-update';
	if (/npm(-cli\.js)? ci\b/.test(cmd)) return 'npm-ci';
	if (/npm(-cli\.js)? rebuild\b/.test(cmd)) return 'npm-rebuild';
	return null;
}

function cpuSeconds(pid) {
	const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
	// Fields after the command name (which may hold spaces), from field 3 on.
	const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]));
	return (utime + stime + cutime + cstime) / TICKS_PER_SECOND;
}

function writeCpu() {
	const totals = new Map();
	for (const { kind, seconds } of leaderCpu.values()) totals.set(kind, (totals.get(kind) ?? 0) + seconds);
	for (const [kind, seconds] of totals) appendFileSync(out, `cpu ${kind} ${seconds.toFixed(1)}\n`);
}
process.on('SIGTERM', () => {
	writeCpu();
	process.exit(0);
});

function sample() {
	const kinds = new Set();
	for (const pid of readdirSync('/proc')) {
		if (!/^\d+$/.test(pid)) continue;
		try {
			if (readlinkSync(`/proc/${pid}/root`) !== root) continue;
			const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
			const kind = kindOf(args, readlinkSync(`/proc/${pid}/cwd`));
			if (kind) kinds.add(kind);
			const leader = leaderKind(args);
			if (leader) leaderCpu.set(pid, { kind: leader, seconds: cpuSeconds(pid) });
		} catch {
			// The process ended while we read it.
		}
	}
	const t = ((performance.now() - started) / 1000).toFixed(1);
	if (kinds.size > 0) appendFileSync(out, `${t} ${[...kinds].sort().join(' ')}\n`);
}

setInterval(sample, 500);
