#!/bin/sh
# The whole test suite on a fresh Debian 12 machine: installs what it
# needs, builds, and runs the unit and integration tests (TAP).
#   scripts/test.sh           AddressSanitizer + UndefinedBehaviorSanitizer
#                             build, in build-asan/, with two event-loop
#                             threads per pgnear (PGNEAR_TEST_WORKERS=2
#                             unless the environment says otherwise): a
#                             memory error, undefined behaviour or a race
#                             between the threads fails the test that met it
#   scripts/test.sh --plain   the normal build, in build/, with pgnear's
#                             default of one event-loop thread
set -eu
cd "$(dirname "$0")/.."
build=--sanitizers
case "${1:-}" in
"" | --sanitizers) ;;
--plain) build="" ;;
*)
    echo "usage: scripts/test.sh [--plain]" >&2
    exit 2
    ;;
esac
if [ -n "$build" ]; then
    PGNEAR_TEST_WORKERS=${PGNEAR_TEST_WORKERS:-2}
    export PGNEAR_TEST_WORKERS
fi
scripts/install-deps.sh
# shellcheck disable=SC2086
dir=$(scripts/build.sh $build)
cd "$dir"
status=0
make -j2 check || status=$?
if [ "$status" -ne 0 ]; then
    # What failed, compactly and last, since CI may keep only the end of
    # the output: each failing file's "not ok" lines with the diagnostics
    # after them, why it ended, and a short tail of its log.
    for trs in $(find . -name '*.trs' | sort); do
        grep -q -E '^:test-result: (FAIL|ERROR)' "$trs" || continue
        log=${trs%.trs}.log
        echo "==== $log"
        grep -E -A 4 '^not ok' "$log" | grep -v -E '^(PASS|FAIL|ERROR): ' | head -n 16
        grep -E '^(# Looks like|ERROR: |Bail out)| at .* line [0-9]+\.$' "$log" | head -n 6
        # What the file printed to explain itself (stderr comes out of
        # step with the checks; its routine lines left out).
        grep -E '^# ' "$log" | grep -v -E '^#   (at |Failed test)|^# (PgNearTest:|Looks like)' | head -n 30
        # A sanitizer's report (the file's END prints it as diagnostics):
        # what it found and where, without the rest of the log's tail.
        grep -E -A 80 '^# sanitizer report in ' "$log" |
            grep -E 'sanitizer report in |ERROR: [A-Za-z]+Sanitizer|WARNING: ThreadSanitizer|runtime error:|SUMMARY: |#[0-9]+ 0x' |
            head -n 24
        echo "---- the last lines of $log"
        tail -n 6 "$log"
    done
    echo "==== failing files:"
    find . -name '*.trs' | sort | xargs grep -l -E '^:test-result: (FAIL|ERROR)' || true
fi
exit "$status"
