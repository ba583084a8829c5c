#!/bin/sh
# The whole test suite on a fresh Debian 12 machine: installs what it
# needs, builds, and runs the unit and integration tests (TAP).
#   scripts/test.sh                 normal build
#   scripts/test.sh --sanitizers    ASan + UBSan build in build-asan/
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
dir=.
[ "${1:-}" = "--sanitizers" ] && dir=build-asan
cd "$dir"
status=0
make -j2 check || status=$?
if [ "$status" -ne 0 ]; then
    # Show what failed, with the logs of the failing tests.
    for log in $(grep -l -E '^:test-result: (FAIL|ERROR)' $(find . -name '*.trs') 2>/dev/null); do
        echo "==== ${log%.trs}.log"
        tail -n 60 "${log%.trs}.log"
    done
fi
exit "$status"
