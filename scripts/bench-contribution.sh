#!/usr/bin/env bash
# The contribution measures' experiment (bench/contribution) on the demo corpora: makes
# the corpora (scripts/demo-corpus.sh) and the evaluation set (scripts/evalset.sh) when
# missing, builds the bench, runs it.
#
#   scripts/bench-contribution.sh [bench/contribution options]
#
# BUILD (default build) is the build directory; the corpora go to $BUILD/demo-corpus, the
# evaluation set to $BUILD/evalset/vi-firefox-ui.txt, downloads to $BUILD/demo-cache.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
corpus="$BUILD/demo-corpus"
evalset="$BUILD/evalset/vi-firefox-ui.txt"
if [ ! -d "$corpus/fpt" ] || [ ! -d "$corpus/vnpt" ] || [ ! -d "$corpus/hust" ]; then
    scripts/demo-corpus.sh "$corpus" "$BUILD/demo-cache"
fi
if [ ! -s "$evalset" ]; then
    scripts/evalset.sh "$evalset" "$BUILD/demo-cache" >/dev/null
fi
make --no-print-directory BUILD="$BUILD" "$BUILD/bench/contribution" >/dev/null
exec "$BUILD/bench/contribution" --corpus "$corpus" --evalset "$evalset" "$@"
