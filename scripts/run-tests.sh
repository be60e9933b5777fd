#!/usr/bin/env bash
# `npm test`: the whole suite. The type check and the layer check (about 30 s of one core)
# run beside vitest instead of before it: the first test files spend most of their time
# waiting on the services they start, so the checks cost the run little wall time. Any
# failure fails the run; the checks' output is printed after vitest's.
# Arguments go to vitest (.ci/run passes its reporters).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The browser tests load the client bundle, so it is built first (a few seconds).
npm run -s build:client || exit 1

checks_log="$(mktemp)"
( npx tsc --noEmit -p . && npm run -s check:deps ) > "$checks_log" 2>&1 &
checks=$!

rc=0
npx vitest run "$@" || rc=$?

checks_rc=0
wait "$checks" || checks_rc=$?
if [ "$checks_rc" != 0 ]; then
	echo "::: type check or layer check failed"
	cat "$checks_log"
	[ "$rc" != 0 ] || rc=$checks_rc
else
	echo "::: type check and layer check passed"
fi
rm -f "$checks_log"
exit "$rc"
