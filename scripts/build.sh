#!/bin/sh
# Builds pgnear in the source tree (or with --sanitizers in build-asan/).
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
if [ "${1:-}" = "--sanitizers" ]; then
    [ -x configure ] || ./autogen.sh
    mkdir -p build-asan
    cd build-asan
    [ -f Makefile ] || ../configure --enable-sanitizers
else
    [ -x configure ] || ./autogen.sh
    [ -f Makefile ] || ./configure
fi
make -j"$jobs"
