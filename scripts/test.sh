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
    # Show what failed, with the logs of the failing tests.
    for trs in $(find . -name '*.trs'); do
        grep -q -E '^:test-result: (FAIL|ERROR)' "$trs" || continue
        echo "==== ${trs%.trs}.log"
        tail -n 80 "${trs%.trs}.log"
    done
fi
exit "$status"
