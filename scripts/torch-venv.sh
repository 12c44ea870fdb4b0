#!/usr/bin/env bash
# The Python venv with PyTorch and Hugging Face transformers that `make reference`,
# `make demo-torch` (scripts/demo-torch.sh), the torch plug-in
# (worker/plugins/torch_causal_lm.py) and tests/integration/torch_llama.sh use.
#
#   scripts/torch-venv.sh           creates it when missing, then prints its directory
#
# The venv is REFERENCE_VENV when set, else build/reference-venv (shared by every BUILD).
# Creating it needs network access to PyPI (torch is a large download);
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu takes the much smaller CPU-only
# torch wheels on a machine without a GPU. An existing venv is used as it is, after a
# check that it imports what the demo needs (torch, transformers, tokenizers,
# safetensors, numpy); a venv that lacks one gets it installed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${REFERENCE_VENV:-build/reference-venv}"
need="torch transformers tokenizers safetensors numpy"
if [ ! -x "$venv/bin/python" ]; then
    echo "torch-venv: creating $venv and installing $need (large download)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >&2
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "$venv/bin/pip" install -q --index-url "$TORCH_INDEX_URL" torch >&2
    fi
    # shellcheck disable=SC2086  # a word list
    "$venv/bin/pip" install -q $need >&2
fi
missing=()
for m in $need; do
    "$venv/bin/python" -c "import $m" 2>/dev/null || missing+=("$m")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "torch-venv: installing ${missing[*]} into $venv" >&2
    "$venv/bin/pip" install -q "${missing[@]}" >&2
fi
echo "$venv"
