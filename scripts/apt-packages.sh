#!/usr/bin/env bash
# Installs the Debian packages Parley needs, from the machine's configured Debian mirror.
# Idempotent and fast when everything is present (no `apt-get update` then).
#
# Usage: scripts/apt-packages.sh [all|worker|rest]
#   all     everything (the default);
#   worker  only what the mediasoup worker's compile needs (toolchain, its libraries, meson from
#           bookworm-backports), which also covers npm's native builds (g++, make, python3);
#   rest    everything else (services, browsers, tools).
# scripts/setup installs `worker` first, then starts the worker's compile and `npm ci` and
# installs `rest` while they run (the compile needs no dpkg lock).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
log() { echo "[apt] $*" >&2; }
phase="${1:-all}"

# The mediasoup worker: toolchain and the libraries it links against (libsrtp is built from
# source on OpenSSL by scripts/mediasoup/build-worker.sh: Debian's libsrtp2 uses NSS).
# ccache: a change to one of the worker's patches recompiles only the files it touches.
WORKER_BUILD=(g++ make pkg-config ninja-build patch openssl ca-certificates binutils ccache
	libuv1-dev libssl-dev libabsl-dev libflatbuffers-dev flatbuffers-compiler)
# meson >= 1.1 is needed; bookworm has 1.0.1, bookworm-backports has 1.7.
BACKPORTS=(meson)
# Services and tools the server, the tests and the bench use.
RUNTIME=(ffmpeg redis-server chromium opus-tools sox libsox-fmt-all espeak-ng
	prometheus nftables iproute2 procps curl)
# Real services the scale-out tests start throwaway instances of (never the system ones):
# OpenStack Swift with its S3 API, MariaDB and PostgreSQL; coturn for the TURN tests.
SERVICES=(swift-proxy swift-object swift-container swift-account mariadb-server postgresql coturn)
# The second browser the tests drive (through puppeteer-core), and a sound server with a null
# sink so its AudioContext runs headless.
BROWSERS=(firefox-esr pulseaudio)

case "$phase" in
all) wanted=("${WORKER_BUILD[@]}" "${RUNTIME[@]}" "${SERVICES[@]}" "${BROWSERS[@]}"); backports=("${BACKPORTS[@]}") ;;
worker) wanted=("${WORKER_BUILD[@]}"); backports=("${BACKPORTS[@]}") ;;
rest) wanted=("${RUNTIME[@]}" "${SERVICES[@]}" "${BROWSERS[@]}"); backports=() ;;
*) log "unknown set '$phase' (all, worker or rest)"; exit 2 ;;
esac

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# Only what is missing is named to apt: a package the machine has already (openssl,
# ca-certificates, procps from the base system) stays at its version unless a new package needs
# a newer one. Upgrading the machine is not setup's business, and a newer ca-certificates alone
# rehashes the whole certificate store (~20 s before the compile can start).
missing=()
for pkg in "${wanted[@]}"; do installed "$pkg" || missing+=("$pkg"); done
missing_backports=()
for pkg in ${backports[@]+"${backports[@]}"}; do installed "$pkg" || missing_backports+=("$pkg"); done
# meson from bookworm itself is too old: treat it as missing.
if [ ${#backports[@]} != 0 ] && [ ${#missing_backports[@]} = 0 ] && command -v meson >/dev/null && ! dpkg --compare-versions "$(meson --version)" ge 1.1; then
	missing_backports=(meson)
fi
if [ ${#missing[@]} = 0 ] && [ ${#missing_backports[@]} = 0 ]; then log "$phase: all Debian packages present"; exit 0; fi
log "$phase: installing ${missing[*]+${missing[*]}} ${missing_backports[*]+${missing_backports[*]}}"

if [ ${#missing_backports[@]} != 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	# Reuse the Debian mirror this machine is already configured with.
	mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
	[ -n "$mirror" ] || mirror="$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
	[ -n "$mirror" ] || { log "no Debian mirror configured"; exit 1; }
	printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
		> /etc/apt/sources.list.d/bookworm-backports.sources
fi
# Another apt (or the other set, run by hand) may hold the dpkg lock: wait for it instead of failing.
# dpkg's --force-unsafe-io: by default dpkg fsyncs every file it unpacks, ~6 ms each on this
# kind of machine's disk, and these sets are ~40,000 files (icon themes, timezone data, two
# browsers): minutes of waiting. One `sync` at the end makes it all durable instead. Only for
# these runs: the machine's dpkg configuration is left as it is.
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-unsafe-io)
# scripts/setup runs both sets one after the other: the second one skips the package lists'
# update the first one just made (APT_UPDATED_STAMP names a file only this setup run writes).
if [ -n "${APT_UPDATED_STAMP:-}" ] && [ -f "$APT_UPDATED_STAMP" ]; then
	log "$phase: package lists updated by this setup run already"
else
	"${APT[@]}" update -q >&2
	[ -z "${APT_UPDATED_STAMP:-}" ] || touch "$APT_UPDATED_STAMP"
fi
# One apt run for both origins (`pkg/bookworm-backports` takes that package from backports, its
# dependencies from bookworm): dpkg's triggers (man-db, ldconfig) run once.
from_backports=()
for pkg in ${missing_backports[@]+"${missing_backports[@]}"}; do from_backports+=("$pkg/bookworm-backports"); done
"${APT[@]}" install -y -q --no-install-recommends ${missing[@]+"${missing[@]}"} ${from_backports[@]+"${from_backports[@]}"} >&2
sync
# Debian starts services on install; Parley starts its own Redis (and tests their own coturn) where it needs one.
if [ "$phase" != worker ]; then
	for unit in redis-server mariadb postgresql coturn; do
		if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then systemctl stop "$unit" || true; fi
	done
fi
log "$phase: done"
