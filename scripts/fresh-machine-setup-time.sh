#!/usr/bin/env bash
# Times `git clone` + `./scripts/setup` on a stand-in for a fresh machine: a Debian 12 root
# made with debootstrap (base system, git, ca-certificates), this machine's Node and npm
# copied in and its apt sources (bookworm-backports too), no npm cache, no Parley cache, no
# Debian packages beyond the base. Each run starts from a copy of the pristine root, so every
# run downloads and builds everything. Not run by CI (it downloads ~1 GB); for measuring
# set-up time by hand (issue 20: "under 6 minutes on a fresh machine").
#
# Usage (as root, on Debian 12):
#   scripts/fresh-machine-setup-time.sh pristine        make $FRESH/pristine once (~3 min)
#   scripts/fresh-machine-setup-time.sh run [commit]    clone this checkout at commit (default
#                                                       HEAD) into a copy and time setup in it
#   scripts/fresh-machine-setup-time.sh phases LOG      phase table of a run (LOG as printed)
# Env: FRESH (default /srv/fresh), KEEP=1 keeps the run's root for a look afterwards,
#      HOST_NPMRC=1 copies this user's ~/.npmrc into it (a fresh user has none),
#      OVERLAY="path ..." takes those files from this checkout's working tree over the commit's.
#
# What a chroot cannot do like a machine, worked around here rather than in setup:
#   - no init: packages' services are not started (/usr/sbin/policy-rc.d refuses), which a
#     real machine does on install (mariadb, postgresql, redis, coturn) and setup stops again;
#     a started service would bind its port in this machine's network, beside its own one;
#   - /proc, /sys, /dev and /dev/pts are bind-mounted from this machine; /etc/resolv.conf,
#     /etc/hosts and /etc/hostname are copied.
# The log ($FRESH/run-<time>-<commit>.log) has each line prefixed with the seconds since the
# clone started. Setup prints the worker build's output only when the build is done, so when
# each kind of work ran (apt's downloads, dpkg, npm ci, the SQLite, libsrtp and mediasoup
# compiles) is read off processes instead: scripts/fresh-machine-sampler.mjs lists what runs in
# the root twice a second (<log>.samples), and `phases` makes a table of it.
set -euo pipefail
FRESH="${FRESH:-/srv/fresh}"
PRISTINE="$FRESH/pristine"
# REPO: the checkout to clone (default: the one this script is in).
REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
log() { echo "[fresh] $*" >&2; }

make_pristine() {
	command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
	# The mirror this machine's apt uses.
	local mirror
	mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
	rm -rf "$PRISTINE.tmp"
	debootstrap --include=git,ca-certificates bookworm "$PRISTINE.tmp" "$mirror" >&2
	# The same apt sources as this machine (Debian ones only: third-party lists are not part of
	# what a fresh machine of this kind is given).
	rm -f "$PRISTINE.tmp/etc/apt/sources.list"
	cp /etc/apt/sources.list.d/*.sources "$PRISTINE.tmp/etc/apt/sources.list.d/"
	[ ! -f /etc/apt/sources.list ] || cp /etc/apt/sources.list "$PRISTINE.tmp/etc/apt/"
	# Node and npm as installed here (nodesource's Node 20 in /usr, npm 11 over it).
	cp -a /usr/bin/node "$PRISTINE.tmp/usr/bin/"
	mkdir -p "$PRISTINE.tmp/usr/lib/node_modules" "$PRISTINE.tmp/usr/include"
	cp -a /usr/lib/node_modules/. "$PRISTINE.tmp/usr/lib/node_modules/"
	cp -a /usr/include/node "$PRISTINE.tmp/usr/include/"
	for tool in npm npx corepack; do
		[ ! -e "/usr/bin/$tool" ] || cp -a "/usr/bin/$tool" "$PRISTINE.tmp/usr/bin/"
	done
	# This machine's network: any CA it adds for HTTPS egress, and npm's global config naming the
	# bundle (without them npm fails with SELF_SIGNED_CERT_IN_CHAIN behind an intercepting proxy).
	# The user's ~/.npmrc is not copied: a fresh user has none.
	if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
		cp /usr/local/share/ca-certificates/*.crt "$PRISTINE.tmp/usr/local/share/ca-certificates/"
		chroot "$PRISTINE.tmp" update-ca-certificates >&2
	fi
	for rc in /etc/npmrc /usr/etc/npmrc; do [ ! -f "$rc" ] || install -D -m 0644 "$rc" "$PRISTINE.tmp$rc"; done
	# No packages, package lists or caches beyond debootstrap's own base.
	chroot "$PRISTINE.tmp" apt-get clean
	rm -rf "$PRISTINE.tmp"/var/lib/apt/lists/* "$PRISTINE.tmp/root/.cache" "$PRISTINE.tmp/root/.npm"
	rm -rf "$PRISTINE"
	mv "$PRISTINE.tmp" "$PRISTINE"
	log "pristine root: $PRISTINE ($(chroot "$PRISTINE" node -v), npm $(chroot "$PRISTINE" npm -v))"
}

mounted=()
unmount_all() {
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
	mounted=()
}
bind() { mkdir -p "$2"; mount --bind "$1" "$2"; mounted+=("$2"); }

run_setup() {
	local commit="${1:-HEAD}"
	[ -d "$PRISTINE" ] || { log "no $PRISTINE: run '$0 pristine' first"; exit 1; }
	local sha stamp
	sha="$(git -C "$REPO" rev-parse --short "$commit")"
	stamp="$(date -u +%Y%m%dT%H%M%SZ)"
	root="$FRESH/run-$stamp-$sha"
	out="$FRESH/run-$stamp-$sha.log"
	log "copying the pristine root to $root"
	cp -a "$PRISTINE" "$root"
	trap 'unmount_all; [ "${KEEP:-0}" = 1 ] || rm -rf "${root:?}"' EXIT
	cp /etc/resolv.conf /etc/hosts /etc/hostname "$root/etc/"
	# HOST_NPMRC=1: this user's ~/.npmrc too (as on a machine provisioned like this one, where it
	# sets nodedir; without it node-gyp downloads Node's headers, which fails offline).
	[ "${HOST_NPMRC:-0}" != 1 ] || install -m 0600 "$HOME/.npmrc" "$root/root/.npmrc"
	printf '#!/bin/sh\n# chroot: no init to run services under\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
	chmod +x "$root/usr/sbin/policy-rc.d"
	bind /proc "$root/proc"
	bind /sys "$root/sys"
	bind /dev "$root/dev"
	bind /dev/pts "$root/dev/pts"
	# This checkout, read-only at the same path, for the clone a user would make.
	bind "$REPO" "$root$REPO"
	mount -o remount,ro,bind "$root$REPO"
	{
		echo "commit $(git -C "$REPO" rev-parse "$commit")"
		echo "uptime at start: $(uptime)"
	} | tee "$out" >&2
	local rc=0 t0=$EPOCHREALTIME line now d var
	# The CA settings this machine's environment gives every process (see make_pristine).
	local ca_env=()
	for var in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE GIT_SSL_CAINFO; do
		[ -z "${!var:-}" ] || ca_env+=("$var=${!var}")
	done
	# What runs inside the root, sampled twice a second (setup prints the worker's build log only
	# once it is done, so its lines cannot say when the compile ran).
	node "$REPO/scripts/fresh-machine-sampler.mjs" "$root" "$out.samples" & local sampler=$!
	set +e
	chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		TERM=dumb LANG=C.UTF-8 ${ca_env[@]+"${ca_env[@]}"} /bin/bash -c '
			set -e
			echo "[fresh] git clone"
			git clone -q --no-hardlinks "$1" /root/parley
			cd /root/parley
			git checkout -q --detach "$2"
			# OVERLAY: files taken from the working tree as they are (a change before its commit).
			for f in $3; do cp "$1/$f" "$f"; echo "[fresh] $f from the working tree"; done
			echo "[fresh] ./scripts/setup"
			./scripts/setup
			# CPU seconds of everything above (user and system, of this shell then of its
			# children): a figure other load on the machine changes less than the wall time.
			echo "[fresh] CPU seconds (user system; this shell, then setup and everything it ran):"
			times
		' bash "$REPO" "$(git -C "$REPO" rev-parse "$commit")" "${OVERLAY:-}" 2>&1 |
		# Seconds since the clone started on every line (bash built-ins only: no process per line).
		while IFS= read -r line; do
			now=${EPOCHREALTIME/./}
			d=$(( (10#$now - 10#${t0/./}) / 100000 ))
			printf '%5d.%d %s\n' $((d / 10)) $((d % 10)) "$line"
		done | tee -a "$out"
	rc=${PIPESTATUS[0]}
	set -e
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	echo "uptime at end: $(uptime)" | tee -a "$out" >&2
	log "setup exited $rc; log: $out, samples: $out.samples"
	phases "$out"
	return "$rc"
}

# From a run's samples: when each kind of work ran (first and last sample, seconds since the
# clone started) and for how many seconds it was seen; then setup's own phase lines.
phases() {
	awk '
	$1 == "cpu" { cpu[$2] = $3; next }
	{ t = $1; for (i = 2; i <= NF; i++) { k = $i; if (!(k in first)) { first[k] = t; order[++n] = k } last[k] = t; seen[k] += 0.5 } }
	END {
		printf "%-26s %8s %8s %8s\n", "work", "from s", "to s", "seen s"
		for (i = 1; i <= n; i++) printf "%-26s %8.1f %8.1f %8.1f\n", order[i], first[order[i]], last[order[i]], seen[order[i]]
		for (k in cpu) printf "CPU seconds of %-15s %8.1f\n", k, cpu[k]
	}' "$1.samples"
	grep -E '^ *[0-9.]+ \[(setup|fresh)\]|^(commit|uptime)' "$1" | grep -v 'in the background' || true
}

case "${1:-}" in
pristine) make_pristine ;;
run) shift; run_setup "$@" ;;
phases) phases "$2" ;;
*) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
