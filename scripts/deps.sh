#!/usr/bin/env bash
# Installs the Debian packages aulac needs to build, test and run its demo, when
# they are missing. Uses sudo when not root. Prints what it installs.
set -euo pipefail

pkgs=(build-essential pkg-config make
      libgrpc-dev protobuf-c-compiler libprotobuf-c-dev libsodium-dev liblmdb-dev
      libfyaml-dev libzstd-dev libopenblas-dev libmicrohttpd-dev libcmocka-dev
      lmdb-utils openssl curl python3 dpkg-dev clang libclang-rt-14-dev
      chromium    # chromium (~290 MB): tests/integration/report.sh renders the HTML report
      chromium-driver python3-selenium   # tests/integration/dashboard.sh drives the dashboard
      libjs-chart.js    # Chart.js, served by the coordinator as /assets/chart.js
      prometheus  # promtool: tests/unit/test_metrics.c checks /metrics with `promtool check metrics`
      python3-venv      # scripts/torch-venv.sh: the PyTorch venv of make demo-torch and make reference
      python3-numpy) # worker/plugins/numpy_gpt2.py, the plug-in trainer make test runs (Debian's
                     # /usr/bin/python3; a pyenv python3 on PATH does not see it)

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "deps: installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
        echo "deps: not root and no sudo: install these packages first: ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
