#!/usr/bin/env bash
# One command for a machine with NVIDIA GPUs: installs missing Debian packages
# (scripts/deps.sh --core-tests), builds with CUDA into build-gpu/, then runs every CUDA
# check, each under its own time limit (about 8 minutes in all on one GPU, the build
# aside):
#
#   test_model_cuda      CUDA trainer against the CPU backend (forward, gradients, AdamW,
#                        state moves, non-finite refusal; two GPUs against one when >= 2)
#   test_codec_cuda      CUDA encoder against the CPU codec
#   multi-node           tests/integration/node_bootstrap.sh: a member on two nodes, one
#                        GPU each (only with >= 2 GPUs; SKIP with one)
#   bench/train 124m     GPT-2 124M training step on the GPU: tokens/s and MFU
#   bench/codec          the CUDA encoder's HBM share (the GPU half of bench/codec)
#   federation           tests/integration/gpu_federation.sh: 3 rounds, one worker on a GPU
#
# prints a table (step, status, key figure, seconds) and exits 0 only when every step
# passed (SKIP counts as passed only for the multi-node step on a one-GPU machine).
# The full log of every step and the table go to build-gpu/gpu-check.txt (--out), so
# that a remote run can send back one file.
#
#   scripts/gpu-check.sh [--dry-run] [--no-deps] [--out FILE]
#     --dry-run    print the plan (steps, commands, limits) for this machine; run nothing
#     --no-deps    do not run scripts/deps.sh
#   BUILD=dir      build directory (default build-gpu)
#   AULAC_NVIDIA_SMI   the nvidia-smi to ask for the GPUs (default nvidia-smi; the tests
#                      set a stand-in)
#
# Exit status: 0 all passed; 1 a step failed or timed out; 2 usage; 3 no NVIDIA GPU on
# this machine (nothing was run).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BUILD=${BUILD:-build-gpu}
SMI=${AULAC_NVIDIA_SMI:-nvidia-smi}
dry=0
deps=1
out=""
while [ $# -gt 0 ]; do
    case $1 in
    --dry-run) dry=1 ;;
    --no-deps) deps=0 ;;
    --out) [ $# -ge 2 ] || { echo "gpu-check: --out needs a file" >&2; exit 2; }
           out=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown option '$1' (--dry-run, --no-deps, --out FILE)" >&2; exit 2 ;;
    esac
    shift
done
out=${out:-$BUILD/gpu-check.txt}
mkdir -p "$(dirname "$out")" || { echo "gpu-check: cannot create the directory of $out" >&2; exit 2; }
: >"$out" || { echo "gpu-check: cannot write $out" >&2; exit 2; }

say() { echo "$*"; echo "$*" >>"$out"; }

# --- the GPUs ---------------------------------------------------------------------
gpu_lines=""
smi_why=""
if ! command -v "$SMI" >/dev/null 2>&1; then
    smi_why="$SMI not found (no NVIDIA driver installed)"
else
    smi_rc=0
    gpu_lines=$("$SMI" -L 2>&1) || smi_rc=$?
    if [ $smi_rc -ne 0 ]; then
        smi_why="'$SMI -L' failed with exit $smi_rc${gpu_lines:+: $(echo "$gpu_lines" | head -1)}"
        gpu_lines=""
    fi
fi
gpu_lines=$(echo "$gpu_lines" | grep '^GPU [0-9]' || true)
ngpu=$(echo -n "$gpu_lines" | grep -c '^GPU' || true)
ngpu=${ngpu:-0}
[ "$ngpu" -eq 0 ] && [ -z "$smi_why" ] && smi_why="'$SMI -L' lists no GPU"

say "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if [ "$ngpu" -gt 0 ]; then
    say "GPUs ($ngpu):"
    echo "$gpu_lines" | sed 's/^/  /' | tee -a "$out"
    drv=$("$SMI" --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 || true)
    [ -n "$drv" ] && say "driver: $drv"
fi

find_nvcc() {
    command -v nvcc 2>/dev/null && return 0
    [ -x /usr/local/cuda/bin/nvcc ] && { echo /usr/local/cuda/bin/nvcc; return 0; }
    return 1
}

# --- the plan -----------------------------------------------------------------------
# name | limit (s) | command. Commands run from the repository root under bash.
NPROC=$(nproc 2>/dev/null || echo 4)
GPU_TARGETS="$BUILD/aulac-coordinator $BUILD/aulac-worker $BUILD/aulac $BUILD/tests/test_model_cuda $BUILD/tests/test_codec_cuda $BUILD/bench/train $BUILD/bench/codec"
steps=()
[ $deps -eq 1 ] && steps+=("deps|900|scripts/deps.sh --core-tests")
steps+=("build|1200|make BUILD=$BUILD -j$NPROC $GPU_TARGETS")
steps+=("test_model_cuda|240|$BUILD/tests/test_model_cuda")
steps+=("test_codec_cuda|120|$BUILD/tests/test_codec_cuda")
steps+=("multi-node|300|BUILD=$BUILD bash tests/integration/node_bootstrap.sh")
steps+=("bench/train 124m|240|$BUILD/bench/train --config 124m --no-torch")
steps+=("bench/codec|240|$BUILD/bench/codec --reps 3")
steps+=("federation|300|BUILD=$BUILD bash tests/integration/gpu_federation.sh")

if [ $dry -eq 1 ]; then
    say "plan (--dry-run: nothing is run; $ngpu GPU(s) seen${smi_why:+: $smi_why}):"
    for s in "${steps[@]}"; do
        IFS='|' read -r name limit cmd <<<"$s"
        note=""
        [ "$name" = multi-node ] && [ "$ngpu" -lt 2 ] && note="   (SKIP: needs >= 2 GPUs)"
        say "$(printf '  %-18s limit %4ss  %s%s' "$name" "$limit" "$cmd" "$note")"
    done
    nv=$(find_nvcc || true)
    say "nvcc: ${nv:-not found (the build step would fail: install the CUDA toolkit)}"
    say "full log and table: $out"
    exit 0
fi

if [ "$ngpu" -eq 0 ]; then
    say "gpu-check: no NVIDIA GPU on this machine ($smi_why): nothing was built or run."
    say "Run it on a machine with NVIDIA GPUs and their driver; --dry-run prints the plan."
    exit 3
fi

# --- running the steps --------------------------------------------------------------
rows=()
failed=0
stop_rest=""          # set when the build fails: later steps cannot run
T_CHECKS=0            # seconds of the checks (the build and deps aside)

# key_of NAME LOG RC: sets status and key from a step's output.
key_of() {
    local name=$1 log=$2 rc=$3 p f s allowed
    status=PASS; key=""
    case $name in
    deps) [ $rc -eq 0 ] || status=FAIL
          key=$(grep -m1 '^deps: installed' "$log" | cut -c1-60 || true)
          [ -n "$key" ] || key="all present" ;;
    build)
        if [ $rc -ne 0 ]; then status=FAIL; key=$(grep -m1 -E 'error|Error' "$log" | cut -c1-60 || true)
        elif ! grep -q 'NEEDED.*libcudart' <<<"$(objdump -p "$BUILD/aulac-worker" 2>/dev/null)"; then
            status=FAIL; key="$BUILD/aulac-worker has no CUDA (nvcc not found?)"
        else key="CUDA: $($(find_nvcc) --version | grep -oE 'release [0-9.]+' | head -1)"; fi ;;
    test_model_cuda|test_codec_cuda)
        p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log" | tail -1 | grep -oE '[0-9]+' | head -1)
        f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log" | tail -1 | grep -oE '[0-9]+' | head -1)
        s=$(grep -E '^\[  SKIPPED \] [0-9]+ test' "$log" | tail -1 | grep -oE '[0-9]+' | head -1)
        p=${p:-0}; f=${f:-0}; s=${s:-0}
        # the only skip allowed: a test that needs more GPUs than this machine has
        allowed=$(grep -E 'skipped: [0-9]+ CUDA device\(s\), [0-9]+ needed' "$log" |
                  sed -E 's/.*, ([0-9]+) needed.*/\1/' | awk -v n="$ngpu" '$1 > n { c++ } END { print c + 0 }')
        key="$p passed, $f failed, $s skipped"
        if [ $rc -ne 0 ] || [ "$f" -gt 0 ] || [ "$p" -eq 0 ]; then status=FAIL
        elif [ "$s" -gt "$allowed" ]; then
            status=FAIL; key="$key ($((s - allowed)) skipped that must run here)"
        fi ;;
    multi-node)
        if [ $rc -ne 0 ]; then status=FAIL; key=$(grep -m1 '^FAIL' "$log" | cut -c1-60 || true)
        elif grep -q '^SKIP' "$log"; then status=SKIP; key="needs >= 2 GPUs"
        else key=$(grep -m1 'accepted update in every round' "$log" | cut -c1-60 || echo "2 nodes trained"); fi ;;
    "bench/train 124m")
        local line
        line=$(grep -m1 'aulac cuda' "$log" || true)
        if [ $rc -ne 0 ] || ! echo "$line" | grep -q 'tokens/s'; then
            status=FAIL; key=$(grep -m1 -E 'failed|cannot|error' "$log" | cut -c1-60 || true)
            [ -n "$key" ] || key="no CUDA figure"
        else
            key="$(echo "$line" | grep -oE '[0-9.]+ tokens/s' | head -1)"
            local mfu
            mfu=$(echo "$line" | grep -oE 'MFU [0-9.]+%' || true)
            key="$key${mfu:+, $mfu}"
        fi ;;
    bench/codec)
        local best
        best=$(grep -E '\|.*[0-9]+%$' "$log" | grep -oE '[0-9]+%$' | tr -d '%' | sort -n | tail -1)
        if [ $rc -ne 0 ] || [ -z "$best" ] || grep -qE '^GPU: (none|setup failed|codec_cuda_create)| failed: ' "$log"; then
            status=FAIL; key=$(grep -m1 -E '^GPU: |failed' "$log" | cut -c1-60 || true)
        else key="HBM share best $best% (goal >= 50%)"; fi ;;
    federation)
        if [ $rc -ne 0 ]; then status=FAIL; key=$(grep -m1 '^FAIL' "$log" | cut -c1-60 || true)
        elif grep -q '^SKIP' "$log"; then status=FAIL; key=$(grep -m1 '^SKIP' "$log" | cut -c7-66)
        else key=$(grep -m1 '^gpu-federation:' "$log" | sed 's/^gpu-federation: //' | cut -c1-60); fi ;;
    esac
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=TIMEOUT; fi
}

for s in "${steps[@]}"; do
    IFS='|' read -r name limit cmd <<<"$s"
    if [ -n "$stop_rest" ]; then
        rows+=("$name|NOT RUN|$stop_rest|0")
        failed=1
        continue
    fi
    if [ "$name" = multi-node ] && [ "$ngpu" -lt 2 ]; then
        rows+=("$name|SKIP|needs >= 2 GPUs ($ngpu here)|0")
        { echo; echo "== $name: SKIP, needs >= 2 GPUs ($ngpu here)"; } >>"$out"
        continue
    fi
    echo "-- $name (limit ${limit}s): $cmd"
    { echo; echo "== $name (limit ${limit}s): $cmd"; } >>"$out"
    log=$(mktemp "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
    t0=$(date +%s)
    timeout -k 10 "$limit" bash -c "$cmd" >"$log" 2>&1
    rc=$?
    t1=$(date +%s)
    cat "$log" >>"$out"
    key_of "$name" "$log" "$rc"
    rm -f "$log"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && key="timed out after ${limit}s"
    echo "== $name: $status (rc $rc, $((t1 - t0)) s)" >>"$out"
    echo "   $status  $key"
    rows+=("$name|$status|$key|$((t1 - t0))")
    case $name in deps|build) ;; *) T_CHECKS=$((T_CHECKS + t1 - t0)) ;; esac
    case $status in PASS|SKIP) ;; *) failed=1 ;; esac
    if [ "$name" = build ] && [ "$status" != PASS ]; then stop_rest="the build failed"; fi
    # (a failed deps step does not stop the rest: on a machine without network the
    # packages may all be there but one, and the build says whether it matters)
done

table() {
    echo
    printf '%-18s %-8s %-62s %6s\n' step status "key figure" seconds
    printf '%-18s %-8s %-62s %6s\n' ------------------ -------- \
        -------------------------------------------------------------- ------
    for r in "${rows[@]}"; do
        IFS='|' read -r name status key secs <<<"$r"
        printf '%-18s %-8s %-62s %6s\n' "$name" "$status" "$key" "$secs"
    done
    echo
    echo "checks took $T_CHECKS s (goal <= 480 s on one GPU; deps and build not counted)"
    if [ $failed -eq 0 ]; then echo "gpu-check: all passed"; else echo "gpu-check: FAILED"; fi
    echo "full log: $out"
}
table | tee -a "$out"
exit $failed
