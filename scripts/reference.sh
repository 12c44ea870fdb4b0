#!/usr/bin/env bash
# Writes the PyTorch golden files that tests/unit/test_model_golden.c checks the C
# GPT-2 against (tests/reference/golden/*.bin), and checks the independent torch
# implementation against Hugging Face transformers' GPT2LMHeadModel, including
# loading a checkpoint written by the C code (model/export.c).
#
#   scripts/reference.sh            venv in build/reference-venv (created once;
#                                   REFERENCE_VENV=dir to use another)
#
# Needs network access to PyPI the first time (torch, transformers, numpy,
# safetensors). The C tests never need Python: the goldens are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
venv="${REFERENCE_VENV:-$BUILD/reference-venv}"
if [ ! -x "$venv/bin/python" ]; then
    echo "reference: creating $venv and installing torch, transformers (large download)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q torch transformers numpy safetensors
fi
"$venv/bin/python" -c 'import torch, transformers; print("reference: torch", torch.__version__, "transformers", transformers.__version__)'

# A checkpoint written by the C code, for the from_pretrained check.
ckpt="$BUILD/reference-ckpt"
make --no-print-directory BUILD="$BUILD" "$BUILD/tests/test_model_golden" >/dev/null
AULAC_EXPORT_DIR="$ckpt" "$BUILD/tests/test_model_golden" >/dev/null 2>&1

"$venv/bin/python" tests/reference/gpt2_ref.py --out tests/reference/golden --c-checkpoint "$ckpt"
echo "reference: goldens in tests/reference/golden; now run $BUILD/tests/test_model_golden"
