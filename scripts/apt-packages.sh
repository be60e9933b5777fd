#!/usr/bin/env bash
# Installs the Debian packages Parley needs, from the machine's configured Debian mirror.
# Idempotent and fast when everything is present (no `apt-get update` then).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
log() { echo "[apt] $*" >&2; }

# The mediasoup worker: toolchain and the libraries it links against (libsrtp is built from
# source on OpenSSL by scripts/mediasoup/build-worker.sh: Debian's libsrtp2 uses NSS).
WORKER_BUILD=(g++ make pkg-config ninja-build patch openssl ca-certificates binutils
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

missing=()
for pkg in "${WORKER_BUILD[@]}" "${BACKPORTS[@]}" "${RUNTIME[@]}" "${SERVICES[@]}" "${BROWSERS[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
# meson from bookworm itself is too old: treat it as missing.
if command -v meson >/dev/null && ! dpkg --compare-versions "$(meson --version)" ge 1.1; then missing+=(meson); fi
if [ ${#missing[@]} = 0 ]; then log "all Debian packages present"; exit 0; fi
log "installing: ${missing[*]}"

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	# Reuse the Debian mirror this machine is already configured with.
	mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
	[ -n "$mirror" ] || mirror="$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
	[ -n "$mirror" ] || { log "no Debian mirror configured"; exit 1; }
	printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
		> /etc/apt/sources.list.d/bookworm-backports.sources
fi
apt-get update -q >&2
apt-get install -y -q --no-install-recommends -t bookworm-backports "${BACKPORTS[@]}" >&2
apt-get install -y -q --no-install-recommends "${WORKER_BUILD[@]}" "${RUNTIME[@]}" "${SERVICES[@]}" "${BROWSERS[@]}" >&2
# Debian starts services on install; Parley starts its own Redis (and tests their own coturn) where it needs one.
for unit in redis-server mariadb postgresql coturn; do
	if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then systemctl stop "$unit" || true; fi
done
log "done"
