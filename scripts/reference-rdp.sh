#!/usr/bin/env bash
# `make reference-rdp`: writes tests/reference/golden/rdp.tsv, the goldens that
# tests/unit/test_rdp.c checks privacy/rdp.c against, from Google's dp-accounting
# (tests/reference/rdp_ref.py).
#
#   scripts/reference-rdp.sh        venv in build/reference-rdp-venv (created once;
#                                   REFERENCE_RDP_VENV=dir to use another)
#
# Needs network access to PyPI the first time (dp-accounting, which brings numpy and
# scipy; small, no torch). The version is pinned so the goldens are reproducible; the
# golden file's header names the versions that wrote it. The C tests never need Python.
set -euo pipefail
cd "$(dirname "$0")/.."
DP_ACCOUNTING_VERSION=${DP_ACCOUNTING_VERSION:-0.6.0}
venv="${REFERENCE_RDP_VENV:-build/reference-rdp-venv}"
if [ ! -x "$venv/bin/python" ]; then
    echo "reference-rdp: creating $venv and installing dp-accounting==$DP_ACCOUNTING_VERSION"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "dp-accounting==$DP_ACCOUNTING_VERSION"
fi
"$venv/bin/python" tests/reference/rdp_ref.py --out tests/reference/golden/rdp.tsv
echo "reference-rdp: checked by build*/tests/test_rdp (part of make test)"
