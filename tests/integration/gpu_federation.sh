#!/usr/bin/env bash
# A short federated run with one worker training on a GPU (scripts/gpu-check.sh runs it):
# member alpha with --gpus 1 (CUDA) and member beta on the CPU train 3 rounds of the tiny
# test policy; every round must take both updates and the experiment must finish.
# SKIP where there is no GPU or the build has no CUDA (make NO_GPU=1).
# Prints "gpu-federation: ..." with alpha's training rate, for gpu-check's table.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

ngpu=$( { nvidia-smi -L 2>/dev/null || true; } | grep -c '^GPU' || true)
if [ "${ngpu:-0}" -lt 1 ]; then
    echo "SKIP: no GPU here (nvidia-smi -L lists ${ngpu:-0}): the GPU federation run needs one"
    exit 0
fi
if ! grep -q 'NEEDED.*libcudart' <<<"$(objdump -p "$BIN/aulac-worker" 2>/dev/null)"; then
    echo "SKIP: $BIN/aulac-worker is a build without CUDA (make without NO_GPU=1, e.g." \
         "make BUILD=build-gpu): the GPU federation run needs one"
    exit 0
fi

make_corpora
make_alliance alpha beta
LOCAL_STEPS=20 write_policy 3 alpha beta
start_coordinator
t0=$(date +%s)
start_worker alpha "" --gpus 1; alpha=$LAST_PID
start_worker beta; beta=$LAST_PID
for p in "$alpha" "$beta"; do
    rc=0; wait_pid "$p" 240 || rc=$?
    [ $rc -eq 0 ] || fail "a worker exited $rc"
done
t1=$(date +%s)
grep -q "trainer: CUDA on 1 GPU" "$T/logs/worker-alpha.log" \
    || fail "alpha did not train on the GPU: $(grep -m1 'trainer:' "$T/logs/worker-alpha.log")"
grep -q "trainer: CPU" "$T/logs/worker-beta.log" || fail "beta did not train on the CPU"
status_json >"$T/status.json"
python3 - "$T/status.json" <<'PY' || fail "status checks"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["state"] == "finished", s["state"]
assert len(s["rounds"]) == 3, len(s["rounds"])
for r in s["rounds"]:
    assert sorted(m["member"] for m in r["members"]) == ["alpha", "beta"], r
print("alpha (GPU) and beta (CPU) had an accepted update in each of the 3 rounds")
PY
rate=$(grep -oE '[0-9.]+ tok/s' "$T/logs/worker-alpha.log" | tail -1 || true)
echo "gpu-federation: 3 rounds, alpha on the GPU at ${rate:-? tok/s}, $((t1 - t0)) s"
