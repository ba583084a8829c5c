#!/bin/sh
# Builds pgnear out of tree: build/ (normal) or build-asan/ (--sanitizers:
# AddressSanitizer + UndefinedBehaviorSanitizer).  Prints the build dir.
set -eu
cd "$(dirname "$0")/.."
if [ -f Makefile ] && [ -f config.status ]; then
    echo "build.sh: the source tree is configured in place; run 'make distclean' first" >&2
    exit 1
fi
dir=build
flags=""
if [ "${1:-}" = "--sanitizers" ]; then
    dir=build-asan
    flags=--enable-sanitizers
fi
[ -x configure ] || ./autogen.sh >/dev/null
mkdir -p "$dir"
cd "$dir"
[ -f Makefile ] || ../configure -q $flags
make -s -j"$(nproc 2>/dev/null || echo 2)" >&2
pwd
