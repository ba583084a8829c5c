#!/bin/sh
# The whole test suite on a fresh Debian 12 machine: installs what it
# needs, builds, and runs the unit and integration tests (TAP).
#   scripts/test.sh                 normal build, in build/
#   scripts/test.sh --sanitizers    ASan + UBSan build, in build-asan/
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dir=$(scripts/build.sh "$@")
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
