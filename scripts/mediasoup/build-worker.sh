#!/usr/bin/env bash
# Builds mediasoup-worker offline on Debian 12 (bookworm) and caches it outside the repo.
#
# Why this exists: `npm install mediasoup` downloads a prebuilt worker from GitHub, then
# falls back to a build that pip-installs meson and lets meson download its C++
# dependencies. None of that is reachable here (only the npm registry and Debian's apt
# repositories are), so we build the worker from the npm source tarball against Debian's
# libraries (libuv, OpenSSL, abseil, flatbuffers) with a small patch, and point mediasoup at
# the result with MEDIASOUP_WORKER_BIN.
#
# libsrtp is built from source, statically, on OpenSSL's ciphers (AES-NI/PCLMUL AES-GCM and
# AES-CTR, OpenSSL HMAC-SHA1), as upstream mediasoup does with its libsrtp3 wrap. Debian's
# libsrtp2 package is built against NSS, which made SRTP cost 2-4x the forwarding itself
# (scripts/mediasoup/README.md has the before/after figures). The source is the upstream
# tarball Debian ships as libsrtp2's .orig.tar.gz, fetched from the machine's Debian mirror
# and checked against the sha256 in Debian's (signed) Sources index.
#
# Cache: $PARLEY_CACHE_DIR (default ~/.cache/parley)/mediasoup-worker/<version>-<build key>/,
# the key hashing the patches, the libsrtp tarball's hash and its build options. A second run
# with the same inputs only re-verifies the binary.
#
# Env:
#   PARLEY_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/parley)
#   JOBS              parallel compile jobs (default: nproc)
#   SKIP_APT=1        packages already installed (scripts/setup installs them)
#   WORKER_TESTS=1    also build and run mediasoup's C++ worker tests and libsrtp's own test
#                     suite on the OpenSSL backend (~10 more minutes)
#   PRINT_BIN=1       only print the path the binary would have; build nothing
#   FETCH_ONLY=1      only fetch and check the sources (no build packages needed: scripts/setup
#                     runs this while they install)
# Prints the binary's absolute path as the last line of stdout.
set -euo pipefail

MEDIASOUP_VERSION=3.27.1
# `npm view mediasoup@3.27.1 dist.integrity`: the tarball we build is the one we reviewed.
MEDIASOUP_INTEGRITY='sha512-unjG0ihJFZmCXxtS5ay6iPp+ov1Rg/BhJuP1gGfw4ElX/K5Z0it3PCC7rKecWMK2FgbQ52kKmDgZBPm/ewYO6A=='

# libsrtp 2.7.0 (the newest whose source this machine kind's Debian mirror serves: Debian
# 13 "trixie" has 2.7.0-3, sid 2.8.0+ds-1 whose files the mirror does not serve; no libsrtp 3
# is packaged in Debian or on npm). The .orig.tar.gz is upstream's v2.7.0 release tarball,
# shared by every Debian revision of 2.7.0; sha256 from trixie's Sources index.
LIBSRTP_VERSION=2.7.0
LIBSRTP_TGZ="libsrtp2_$LIBSRTP_VERSION.orig.tar.gz"
LIBSRTP_POOL_PATH="pool/main/libs/libsrtp2/$LIBSRTP_TGZ"
LIBSRTP_SHA256=54facb1727a557c2a76b91194dcb2d0a453aaf8e2d0cbbf1e3c2848c323e28ad
# How libsrtp is configured lives in the patch (worker/meson.build: static, OpenSSL).

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATCH="$HERE/mediasoup-$MEDIASOUP_VERSION-debian12.patch"
# Opus RED (RFC 2198), applied after the Debian one: kept apart because it changes what the
# worker forwards (README.md, "RED"), where the other one only makes it build here.
RED_PATCH="$HERE/mediasoup-$MEDIASOUP_VERSION-opus-red.patch"
# Every input of the binary is in the key, so changing a patch or the libsrtp source
# builds a new worker in a new folder (the old one stays usable for comparisons).
BUILD_KEY="$( { sha256sum < "$PATCH"; sha256sum < "$RED_PATCH"; echo "libsrtp $LIBSRTP_VERSION $LIBSRTP_SHA256"; } | sha256sum | cut -c1-16)"
CACHE_ROOT="${PARLEY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/parley}"
WORK="$CACHE_ROOT/mediasoup-worker/$MEDIASOUP_VERSION-$BUILD_KEY"
BIN="$WORK/bin/mediasoup-worker"
JOBS="${JOBS:-$(nproc)}"

if [ "${PRINT_BIN:-0}" = 1 ]; then echo "$BIN"; exit 0; fi

log() { echo "[build-worker] $*" >&2; }

# The worker exits with code 41 when started without the environment mediasoup's Node side
# gives it: a cheap check that the binary and every shared library it links load.
binary_runs() {
	local rc=0
	env -i "$1" >/dev/null 2>&1 || rc=$?
	[ "$rc" = 41 ]
}

# WORKER_TESTS=1 always rebuilds: the tests need the build tree, which is not cached.
if [ "${WORKER_TESTS:-0}" != 1 ] && [ -x "$BIN" ] && (cd "$WORK/bin" && sha256sum --status -c .sha256 2>/dev/null) && binary_runs "$BIN"; then
	log "mediasoup-worker $MEDIASOUP_VERSION (build $BUILD_KEY) cached and verified"
	echo "$BIN"
	exit 0
fi

if [ "${SKIP_APT:-0}" != 1 ] && [ "${FETCH_ONLY:-0}" != 1 ]; then
	"$HERE/../apt-packages.sh"
fi
if [ "${WORKER_TESTS:-0}" = 1 ] && [ "${FETCH_ONLY:-0}" != 1 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t bookworm-backports libcatch2-dev >&2
fi

[ "${FETCH_ONLY:-0}" = 1 ] || log "building mediasoup-worker $MEDIASOUP_VERSION in $WORK (takes ~5 min on 2 cores)"
mkdir -p "$WORK"
cd "$WORK"
TGZ="mediasoup-$MEDIASOUP_VERSION.tgz"
[ -f "$TGZ" ] || npm pack "mediasoup@$MEDIASOUP_VERSION" --silent >/dev/null
ACTUAL="sha512-$(openssl dgst -sha512 -binary "$TGZ" | base64 -w0)"
if [ "$ACTUAL" != "$MEDIASOUP_INTEGRITY" ]; then
	rm -f "$TGZ"
	log "integrity mismatch for $TGZ: $ACTUAL"
	exit 1
fi

# The Debian mirrors this machine's apt uses (deb.debian.org as a last resort); apt's own
# downloader checks the pinned hash, so a mirror can only fail the build, not change it.
debian_mirrors() {
	awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -E '/debian/?$' || true
	awk '/^deb / {sub(/\[[^]]*\] */, ""); print $2}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -E '/debian/?$' || true
	echo http://deb.debian.org/debian
}
if ! echo "$LIBSRTP_SHA256  $LIBSRTP_TGZ" | sha256sum --status -c 2>/dev/null; then
	rm -f "$LIBSRTP_TGZ"
	for mirror in $(debian_mirrors | awk '!seen[$0]++'); do
		log "fetching $LIBSRTP_TGZ from $mirror"
		if /usr/lib/apt/apt-helper -o APT::Sandbox::User=root download-file "${mirror%/}/$LIBSRTP_POOL_PATH" "$WORK/$LIBSRTP_TGZ" "SHA256:$LIBSRTP_SHA256" >&2; then
			break
		fi
		rm -f "$LIBSRTP_TGZ"
	done
fi
if ! echo "$LIBSRTP_SHA256  $LIBSRTP_TGZ" | sha256sum --status -c 2>/dev/null; then
	log "could not get $LIBSRTP_TGZ with sha256 $LIBSRTP_SHA256 from any Debian mirror"
	exit 1
fi
if [ "${FETCH_ONLY:-0}" = 1 ]; then log "sources of mediasoup-worker $MEDIASOUP_VERSION fetched"; exit 0; fi

rm -rf src build-ok
mkdir src
tar xzf "$TGZ" -C src --strip-components=1
# meson finds it as the 'libsrtp2' subproject (no wrap file, so nothing is downloaded).
mkdir src/worker/subprojects/libsrtp2
tar xzf "$LIBSRTP_TGZ" -C src/worker/subprojects/libsrtp2 --strip-components=1

# The patch: Debian packages via pkg-config instead of meson wraps, libsrtp2 as a static
# OpenSSL-backed subproject; SRTP session code on libsrtp2's API (mediasoup wants libsrtp 3,
# which neither Debian nor npm has); a std-container stand-in for
# ankerl::unordered_dense (not packaged); and the DTLS BIO callback fix without which
# Debian's kTLS-enabled OpenSSL crashes the worker at the first DTLS handshake.
patch -d src -p1 --forward --quiet < "$PATCH"
# RED: producers may send Opus in RED payloads; consumers with RED get them as they are,
# the others the primary block as plain Opus, frames lost upstream rebuilt from redundancy.
patch -d src -p1 --forward --quiet < "$RED_PATCH"

cd src/worker
# Every build key builds in a folder of its own, so without a compiler cache a one-line change to
# a patch recompiled all ~280 files (~5 min on 2 cores). meson uses ccache when it is on PATH;
# the cache lives beside the builds, shared by every key, and paths under the source folder are
# hashed relative to it, so the same file compiled for another key is a hit.
if command -v ccache >/dev/null; then
	export CCACHE_DIR="$CACHE_ROOT/ccache" CCACHE_BASEDIR="$WORK/src" CCACHE_NOHASHDIR=1
	ccache --max-size 2G >/dev/null
fi
meson setup --wrap-mode=nodownload --buildtype release -Db_ndebug=true build >&2
ninja -C build -j "$JOBS" mediasoup-worker >&2

if [ "${WORKER_TESTS:-0}" = 1 ]; then
	meson setup --wrap-mode=nodownload --buildtype release -Db_ndebug=true -Dms_build_tests=true build-test >&2
	ninja -C build-test -j "$JOBS" mediasoup-worker-test >&2
	# "RTP Packet" reads worker/test/data/*.raw, which the npm tarball does not ship.
	./build-test/mediasoup-worker-test --colour-mode=none "~Scenario: RTP Packet" >&2
	# libsrtp's own suite on the same sources and backend: known-answer tests for AES-GCM,
	# AES-ICM and HMAC-SHA1 through OpenSSL, srtp_driver's protect/unprotect vectors,
	# replay and rollover-counter tests.
	meson setup --wrap-mode=nodownload --buildtype release -Dcrypto-library=openssl \
		-Dcrypto-library-kdf=disabled -Ddefault_library=static -Dtests=enabled -Dpcap-tests=disabled \
		-Ddoc=disabled build-libsrtp-test subprojects/libsrtp2 >&2
	meson test -C build-libsrtp-test --print-errorlogs >&2
fi

install -D -m 0755 build/mediasoup-worker "$BIN"
strip "$BIN"
( cd "$WORK/bin" && sha256sum mediasoup-worker > .sha256 )
binary_runs "$BIN" || { log "built binary does not run"; exit 1; }
cd "$WORK" && rm -rf src
if command -v ccache >/dev/null; then log "compiler cache: $(ccache --print-stats 2>/dev/null | awk -F'\t' '$1 == "direct_cache_hit" || $1 == "preprocessed_cache_hit" {h += $2} $1 == "cache_miss" {m = $2} END {printf "%d hits, %d misses (since the cache began)", h, m}')"; fi
log "mediasoup-worker $MEDIASOUP_VERSION built: $BIN"
echo "$BIN"
