#!/usr/bin/env bash
# The Byzantine and DP benchmark (bench/robust) on the demo corpora: makes the corpora
# when missing (scripts/demo-corpus.sh), builds the bench, runs it.
#
#   scripts/bench-robust.sh [bench/robust options]
#
# BUILD (default build) is the build directory; the corpora go to $BUILD/demo-corpus and
# the members' shards (removed at the end) under $BUILD/robust-work.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
corpus="$BUILD/demo-corpus"
if [ ! -d "$corpus/fpt" ] || [ ! -d "$corpus/vnpt" ] || [ ! -d "$corpus/hust" ]; then
    scripts/demo-corpus.sh "$corpus" "$BUILD/demo-cache"
fi
make --no-print-directory BUILD="$BUILD" "$BUILD/bench/robust" >/dev/null
mkdir -p "$BUILD/robust-work"
exec "$BUILD/bench/robust" --corpus "$corpus" --work "$BUILD/robust-work" "$@"
