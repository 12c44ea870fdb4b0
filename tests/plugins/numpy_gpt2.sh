#!/usr/bin/env bash
# worker/plugins/numpy_gpt2.py against the built-in C trainer (tests/plugins/
# check_numpy_gpt2.py says what is compared): the same init, batches and rounds through
# both, loss, gradients and parameters within relative 1e-4; serve mode and refusals.
# SKIP (exit 0) only when NumPy is missing (Debian python3-numpy, scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
# Debian's python3 has python3-numpy; a pyenv or venv python3 first on PATH may not.
PY=${AULAC_PLUGIN_PYTHON:-}
if [ -z "$PY" ]; then
    for c in /usr/bin/python3 python3; do
        if command -v "$c" >/dev/null && "$c" -c 'import numpy' 2>/dev/null; then PY=$c; break; fi
    done
fi
if [ -z "$PY" ]; then
    echo "SKIP: numpy_gpt2.sh needs NumPy for python3 (Debian python3-numpy; scripts/deps.sh installs it)"
    exit 0
fi
[ -x "$BUILD/tests/tools/gpt2_dump" ] || { echo "FAIL: $BUILD/tests/tools/gpt2_dump is not built (make tests)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/aulac-numpy.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/corpus" "$T/work"
cp /usr/share/common-licenses/GPL-3 "$T/corpus/a.txt"
cp /usr/share/common-licenses/Apache-2.0 "$T/corpus/b.txt"
"$BUILD/tests/tools/gpt2_dump" "$T/dump" "$T/corpus"
"$PY" tests/plugins/check_numpy_gpt2.py "$T/dump" "$T/corpus" "$T/work"
