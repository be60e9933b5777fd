#!/usr/bin/env bash
# Builds mediasoup-worker offline on Debian 12 (bookworm) and caches it outside the repo.
#
# Why this exists: `npm install mediasoup` downloads a prebuilt worker from GitHub, then
# falls back to a build that pip-installs meson and lets meson download its C++
# dependencies. None of that is reachable here (only the npm registry and Debian's apt
# repositories are), so we build the worker from the npm source tarball against Debian's
# libraries (libuv, OpenSSL, libsrtp2, abseil, flatbuffers) with a small patch, and point
# mediasoup at the result with MEDIASOUP_WORKER_BIN.
#
# Cache: $PARLEY_CACHE_DIR (default ~/.cache/parley)/mediasoup-worker/<version>-<patch sha256>/
# A second run with the same mediasoup version and patch only re-verifies the binary.
#
# Env:
#   PARLEY_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/parley)
#   JOBS              parallel compile jobs (default: nproc)
#   SKIP_APT=1        packages already installed (scripts/setup installs them)
#   WORKER_TESTS=1    also build and run mediasoup's C++ worker tests (~10 more minutes)
#   PRINT_BIN=1       only print the path the binary would have; build nothing
# Prints the binary's absolute path as the last line of stdout.
set -euo pipefail

MEDIASOUP_VERSION=3.27.1
# `npm view mediasoup@3.27.1 dist.integrity`: the tarball we build is the one we reviewed.
MEDIASOUP_INTEGRITY='sha512-unjG0ihJFZmCXxtS5ay6iPp+ov1Rg/BhJuP1gGfw4ElX/K5Z0it3PCC7rKecWMK2FgbQ52kKmDgZBPm/ewYO6A=='

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATCH="$HERE/mediasoup-$MEDIASOUP_VERSION-debian12.patch"
PATCH_SUM="$(sha256sum "$PATCH" | cut -c1-16)"
CACHE_ROOT="${PARLEY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/parley}"
WORK="$CACHE_ROOT/mediasoup-worker/$MEDIASOUP_VERSION-$PATCH_SUM"
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

if [ -x "$BIN" ] && (cd "$WORK/bin" && sha256sum --status -c .sha256 2>/dev/null) && binary_runs "$BIN"; then
	log "mediasoup-worker $MEDIASOUP_VERSION (patch $PATCH_SUM) cached and verified"
	echo "$BIN"
	exit 0
fi

if [ "${SKIP_APT:-0}" != 1 ]; then
	"$HERE/../apt-packages.sh"
fi
if [ "${WORKER_TESTS:-0}" = 1 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t bookworm-backports libcatch2-dev >&2
fi

log "building mediasoup-worker $MEDIASOUP_VERSION in $WORK (takes ~5 min on 2 cores)"
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
rm -rf src build-ok
mkdir src
tar xzf "$TGZ" -C src --strip-components=1

# The patch: Debian packages via pkg-config instead of meson wraps; SRTP session code on
# libsrtp2's API (Debian has 2.5, mediasoup wants 3); a std-container stand-in for
# ankerl::unordered_dense (not packaged); and the DTLS BIO callback fix without which
# Debian's kTLS-enabled OpenSSL crashes the worker at the first DTLS handshake.
patch -d src -p1 --forward --quiet < "$PATCH"

cd src/worker
meson setup --wrap-mode=nodownload --buildtype release -Db_ndebug=true build >&2
ninja -C build -j "$JOBS" mediasoup-worker >&2

if [ "${WORKER_TESTS:-0}" = 1 ]; then
	meson setup --wrap-mode=nodownload --buildtype release -Db_ndebug=true -Dms_build_tests=true build-test >&2
	ninja -C build-test -j "$JOBS" mediasoup-worker-test >&2
	# "RTP Packet" reads worker/test/data/*.raw, which the npm tarball does not ship.
	./build-test/mediasoup-worker-test --colour-mode=none "~Scenario: RTP Packet" >&2
fi

install -D -m 0755 build/mediasoup-worker "$BIN"
strip "$BIN"
( cd "$WORK/bin" && sha256sum mediasoup-worker > .sha256 )
binary_runs "$BIN" || { log "built binary does not run"; exit 1; }
cd "$WORK" && rm -rf src
log "mediasoup-worker $MEDIASOUP_VERSION built: $BIN"
echo "$BIN"
