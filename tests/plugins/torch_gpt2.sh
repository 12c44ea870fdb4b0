#!/usr/bin/env bash
# worker/plugins/torch_causal_lm.py (family gpt2, CPU fp32) against the built-in C trainer
# (tests/plugins/check_torch_gpt2.py says what is compared): the same init, batches and
# rounds through both, loss and models within relative 1e-4; serve mode and an error line.
# SKIP (exit 0) when the torch venv is missing (REFERENCE_VENV, default
# build/reference-venv; scripts/torch-venv.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
venv=${REFERENCE_VENV:-build/reference-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, transformers, safetensors' 2>/dev/null; then
    echo "SKIP: torch_gpt2.sh needs the torch venv $venv (scripts/torch-venv.sh)"
    exit 0
fi
[ -x "$BUILD/tests/tools/gpt2_dump" ] || { echo "FAIL: $BUILD/tests/tools/gpt2_dump is not built (make tests)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/aulac-torch.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/corpus" "$T/work"
cp /usr/share/common-licenses/GPL-3 "$T/corpus/a.txt"
cp /usr/share/common-licenses/Apache-2.0 "$T/corpus/b.txt"
"$BUILD/tests/tools/gpt2_dump" "$T/dump" "$T/corpus"
OMP_NUM_THREADS=1 "$venv/bin/python" tests/plugins/check_torch_gpt2.py "$T/dump" "$T/corpus" "$T/work"
