#!/usr/bin/env bash
# The one list of Debian 12 packages aulac needs: to build, to test, and to run. Installs
# the missing ones (with sudo when not root) and prints what it installs; the Docker
# images (docker/Dockerfile.*) and scripts/gpu-check.sh install through it too, so the
# lists cannot drift apart (tests/integration/deploy_files.sh checks the Dockerfiles).
#
#   scripts/deps.sh                  build + test + runtime sets (make deps, demo, test)
#   scripts/deps.sh --build          only what `make all` needs (image build stages)
#   scripts/deps.sh --core-tests     --build and what `make tests` and the integration tests
#                                    without a browser need (scripts/gpu-check.sh)
#   scripts/deps.sh --runtime        only what the installed programs need to run
#                                    (image runtime stages, a systemd host)
#   scripts/deps.sh --nvidia-repo    add NVIDIA's Debian 12 CUDA apt repository (cuda-keyring;
#                                    needs curl and ca-certificates; x86_64)
#   scripts/deps.sh --cuda-build     nvcc, cudart, cuBLAS and NCCL headers from that repository
#   scripts/deps.sh --cuda-runtime   cudart, cuBLAS and NCCL libraries from that repository
#   scripts/deps.sh --list SET       print SET's packages (build, core-tests, test, runtime,
#                                    all, cuda-build, cuda-runtime), one a line; install nothing
# Sets combine: `--build --cuda-build`. The CUDA sets take the toolkit version from
# AULAC_CUDA_VERSION (default 12.6; NVIDIA's package suffix 12-6), and NCCL's build for
# that version (libnccl2=<v>+cuda12.6), never one built for another CUDA.
set -euo pipefail

# What `make all` compiles and links against (Makefile PKGS; libgnutls28-dev comes with
# libmicrohttpd-dev).
build_pkgs=(build-essential pkg-config make
            libgrpc-dev protobuf-c-compiler libprotobuf-c-dev libsodium-dev liblmdb-dev
            libfyaml-dev libzstd-dev libopenblas-dev libmicrohttpd-dev)
# What the installed programs load (their DT_NEEDED libraries' packages; deploy_files.sh
# checks this against the built binaries), and the tools an operator uses next to them.
runtime_pkgs=(libgrpc29 libprotobuf-c1 libsodium23 liblmdb0 libfyaml0 libzstd1
              libopenblas0-pthread libmicrohttpd12 libgnutls30
              libjs-chart.js    # Chart.js, served by the coordinator as /assets/chart.js
              lmdb-utils        # mdb_copy: hot backup of a data directory (docs/OPERATIONS.md)
              openssl curl ca-certificates)   # TLS material; the coordinator's healthcheck
# What the tests, benches and demo need on top.
test_pkgs=(libcmocka-dev lmdb-utils openssl curl python3 dpkg-dev clang libclang-rt-14-dev
           chromium    # chromium (~290 MB): tests/integration/report.sh renders the HTML report
           chromium-driver python3-selenium   # tests/integration/dashboard.sh drives the dashboard
           python3-yaml    # tests/integration/deploy_files.sh reads docker/compose.yaml
           libjs-chart.js
           prometheus  # promtool: tests/unit/test_metrics.c checks /metrics with `promtool check metrics`
           python3-venv      # scripts/torch-venv.sh: the PyTorch venv of make demo-torch and make reference
           python3-numpy) # worker/plugins/numpy_gpt2.py, the plug-in trainer make test runs (Debian's
                          # /usr/bin/python3; a pyenv python3 on PATH does not see it)
# Of those, what the unit tests and the browser-less integration tests need.
core_test_pkgs=(libcmocka-dev lmdb-utils openssl curl python3 python3-yaml libjs-chart.js)

cuda_ver=${AULAC_CUDA_VERSION:-12.6}
if ! [[ $cuda_ver =~ ^[0-9]+\.[0-9]+$ ]]; then
    echo "deps: AULAC_CUDA_VERSION must look like 12.6, got '$cuda_ver'" >&2
    exit 2
fi
cuda_sfx=${cuda_ver/./-}
cuda_build_pkgs=(cuda-nvcc-$cuda_sfx cuda-cudart-dev-$cuda_sfx libcublas-dev-$cuda_sfx libnccl-dev)
cuda_runtime_pkgs=(cuda-cudart-$cuda_sfx libcublas-$cuda_sfx libnccl2)

NVIDIA_REPO=https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64
KEYRING_DEB=cuda-keyring_1.1-1_all.deb

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

list_of() {   # SET -> the package names, one a line
    case $1 in
    build) printf '%s\n' "${build_pkgs[@]}" ;;
    runtime) printf '%s\n' "${runtime_pkgs[@]}" ;;
    test) printf '%s\n' "${test_pkgs[@]}" ;;
    core-tests) printf '%s\n' "${build_pkgs[@]}" "${core_test_pkgs[@]}" ;;
    all) printf '%s\n' "${build_pkgs[@]}" "${test_pkgs[@]}" "${runtime_pkgs[@]}" | awk '!seen[$0]++' ;;
    cuda-build) printf '%s\n' "${cuda_build_pkgs[@]}" ;;
    cuda-runtime) printf '%s\n' "${cuda_runtime_pkgs[@]}" ;;
    *) echo "deps: unknown set '$1' (build, core-tests, test, runtime, all, cuda-build, cuda-runtime)" >&2
       return 2 ;;
    esac
}

sets=()
nvidia_repo=0
while [ $# -gt 0 ]; do
    case $1 in
    --list) [ $# -ge 2 ] || { echo "deps: --list needs a set" >&2; exit 2; }
            list_of "$2"; exit $? ;;
    --build) sets+=(build) ;;
    --runtime) sets+=(runtime) ;;
    --core-tests) sets+=(core-tests) ;;
    --cuda-build) sets+=(cuda-build) ;;
    --cuda-runtime) sets+=(cuda-runtime) ;;
    --nvidia-repo) nvidia_repo=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "deps: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[ ${#sets[@]} -eq 0 ] && [ $nvidia_repo -eq 0 ] && sets=(all)

sudo=""
need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then sudo="sudo"; else
            echo "deps: not root and no sudo: $1" >&2
            exit 1
        fi
    fi
}
export DEBIAN_FRONTEND=noninteractive

if [ $nvidia_repo -eq 1 ] && ! dpkg-query -W -f='${Status}' cuda-keyring 2>/dev/null | grep -q 'install ok installed'; then
    need_root "install NVIDIA's cuda-keyring ($NVIDIA_REPO/$KEYRING_DEB) first"
    echo "deps: adding NVIDIA's Debian 12 CUDA repository ($NVIDIA_REPO)"
    if ! command -v curl >/dev/null || [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then
        $sudo apt-get update -q
        $sudo apt-get install -y -q --no-install-recommends curl ca-certificates
    fi
    tmp=$(mktemp -d)
    curl -fsSL -o "$tmp/$KEYRING_DEB" "$NVIDIA_REPO/$KEYRING_DEB"
    $sudo dpkg -i "$tmp/$KEYRING_DEB"
    rm -rf "$tmp"
    $sudo apt-get update -q
fi
[ ${#sets[@]} -eq 0 ] && exit 0

want=()
for s in "${sets[@]}"; do
    while read -r p; do want+=("$p"); done < <(list_of "$s")
done
missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        case " ${missing[*]} " in *" $p "*) ;; *) missing+=("$p") ;; esac
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
need_root "install these packages first: ${missing[*]}"
echo "deps: installing missing Debian packages: ${missing[*]}"
$sudo apt-get update -q
# NCCL is built per CUDA version: pin the build for ours (apt would take the newest).
args=()
for p in "${missing[@]}"; do
    case $p in
    libnccl2|libnccl-dev)
        v=$(apt-cache madison "$p" | awk -v c="+cuda$cuda_ver" '{ if (index($3, c) && substr($3, length($3) - length(c) + 1) == c) { print $3; exit } }')
        if [ -z "$v" ]; then
            echo "deps: no $p built for CUDA $cuda_ver in the apt sources (scripts/deps.sh --nvidia-repo adds NVIDIA's)" >&2
            exit 1
        fi
        args+=("$p=$v") ;;
    *) args+=("$p") ;;
    esac
done
$sudo apt-get install -y -q --no-install-recommends "${args[@]}"
echo "deps: installed ${args[*]}"
