#!/usr/bin/env bash
# `make reference`: writes the PyTorch golden files that tests/unit/test_model_golden.c
# checks the C GPT-2 against (tests/reference/golden/), checks the independent torch
# implementation against Hugging Face transformers' GPT2LMHeadModel, and checks that a
# model trained and exported by aulac (gpt2_save, as the worker saves its final model)
# loads with GPT2LMHeadModel.from_pretrained and gives the same loss on the same bytes
# (tests/reference/export_check.c + gpt2_ref.py --c-checkpoint; fails above 1e-4
# relative).
#
#   scripts/reference.sh            venv in build/reference-venv (created once, whatever
#                                   BUILD is;
#                                   REFERENCE_VENV=dir to use another)
#
# Needs network access to PyPI the first time (torch, transformers, numpy,
# safetensors). The C tests never need Python: the goldens are committed.
# Exits non-zero when any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
# shared by every BUILD; bench/train, make demo-torch and the torch plug-in use it too
venv=$(scripts/torch-venv.sh)
"$venv/bin/python" -c 'import torch, transformers; print("reference: torch", torch.__version__, "transformers", transformers.__version__)'

# The export check's C half, linked the way the Makefile links programs. `make
# reference` passes its flags; run alone, this asks make for them.
make --no-print-directory BUILD="$BUILD" "$BUILD/libaulac.a" >/dev/null
if [ -z "${AULAC_REF_LDLIBS:-}" ]; then
    flags=$(make --no-print-directory -s -f Makefile -f - BUILD="$BUILD" reference-flags <<'MK'
reference-flags:
	@printf '%s\n%s\n%s\n' '$(CC)' '$(CFLAGS)' '$(LDFLAGS) $(LDLIBS)'
MK
)
    AULAC_REF_CC=$(sed -n 1p <<<"$flags")
    AULAC_REF_CFLAGS=$(sed -n 2p <<<"$flags")
    AULAC_REF_LDLIBS=$(sed -n 3p <<<"$flags")
fi
mkdir -p "$BUILD/reference"
# shellcheck disable=SC2086  # the flags are word lists
${AULAC_REF_CC:-cc} $AULAC_REF_CFLAGS -o "$BUILD/reference/export_check" \
    tests/reference/export_check.c "$BUILD/libaulac.a" $AULAC_REF_LDLIBS

ckpt="$BUILD/reference/ckpt"
rm -rf "$ckpt"
"$BUILD/reference/export_check" "$ckpt"

"$venv/bin/python" tests/reference/gpt2_ref.py --out tests/reference/golden --c-checkpoint "$ckpt"
echo "reference: goldens in tests/reference/golden (checked by $BUILD/tests/test_model_golden," \
     "part of make test); the exported model loads in transformers with the same loss"
