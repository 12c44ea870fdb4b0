#!/usr/bin/env bash
# The update codec's quality experiment (bench/compression) on the demo corpora: makes
# the corpora when missing (scripts/demo-corpus.sh), builds the bench, runs it.
#
#   scripts/bench-compression.sh [bench/compression options]
#
# BUILD (default build) is the build directory; the corpora go to $BUILD/demo-corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
corpus="$BUILD/demo-corpus"
if [ ! -d "$corpus/fpt" ] || [ ! -d "$corpus/vnpt" ] || [ ! -d "$corpus/hust" ]; then
    scripts/demo-corpus.sh "$corpus" "$BUILD/demo-cache"
fi
make --no-print-directory BUILD="$BUILD" "$BUILD/bench/compression" >/dev/null
exec "$BUILD/bench/compression" --corpus "$corpus" "$@"
