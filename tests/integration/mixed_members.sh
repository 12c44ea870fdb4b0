#!/usr/bin/env bash
# Mixed members (issue 15): one GPT-2 experiment, the same data, seeds and policy, run
#   A   with three members on the built-in C trainer,
#   B   with two on the built-in trainer and one (vnpt) on worker/plugins/numpy_gpt2.py
#       through its site.yaml (trainer: kind command, oneshot), and again in serve mode
#       (which must end at the same loss: the same arithmetic),
#   B'  as B with vnpt on worker/plugins/torch_causal_lm.py (serve mode: torch is imported
#       once, not every round), when $REFERENCE_VENV
#       (default build/reference-venv) has torch and the plug-in is in the tree (SKIP
#       otherwise);
# and the final model of each run, evaluated with `aulac eval` on text no member trains
# on, must be within 2 % of run A's. Prints every loss.
#
# The policy is demo.yaml's training (byte GPT-2, DiLoCo Nesterov outer step, top-k int8
# uplink with error feedback, AdamW warm-up), smaller (2 layers x 64, 5 rounds) so that the
# three runs fit in about a minute on two cores; min_members 3, so every round averages
# all three members. The numpy plug-in draws the same batches as the built-in trainer
# (worker/data.h's sampler), so B agrees with A to float rounding; torch draws its own.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

# Debian's python3 has python3-numpy (scripts/deps.sh); a pyenv or venv python3 on PATH may not.
PY=""
for c in /usr/bin/python3 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import numpy' 2>/dev/null; then PY=$(command -v "$c"); break; fi
done
[ -n "$PY" ] || { echo "SKIP: mixed_members.sh needs NumPy for python3 (Debian python3-numpy; scripts/deps.sh installs it)"; exit 0; }

ROUNDS=${MIXED_ROUNDS:-5}
MEMBERS=(hust fpt vnpt)
HELD_OUT=$T/heldout

corpus() {   # corpus DIR I: a different mix of licence texts per member
    local files=(/usr/share/common-licenses/{GPL-3,Apache-2.0,LGPL-2.1,GPL-2,Artistic,MPL-1.1})
    mkdir -p "$1"
    cat "${files[$(($2 % 6))]}" "${files[$((($2 + 2) % 6))]}" "${files[$((($2 + 4) % 6))]}" \
        "${files[$((($2 + 1) % 6))]}" >"$1/text.txt"
}
for i in 0 1 2; do corpus "$T/corpus/${MEMBERS[$i]}" "$i"; done
# held out: licence texts none of the members reads
mkdir -p "$HELD_OUT"
cat /usr/share/common-licenses/MPL-2.0 /usr/share/common-licenses/GFDL-1.3 >"$HELD_OUT/text.txt"

make_alliance "${MEMBERS[@]}"
cat >"$T/policy.yaml" <<YAML
schema: 1
metadata: { name: demo-mixed-members, proposer: hust }
model: { family: gpt2, vocab_size: 256, n_positions: 64, n_layer: 2, n_head: 4, n_embd: 64, seed: 1337 }
data: { min_tokens_per_member: 20000, validation_fraction: 0.1 }
training:
  rounds: $ROUNDS
  local_steps: 20
  batch_size: 8
  seq_len: 64
  inner: { kind: adamw, lr: 3.0e-3, weight_decay: 0.01, beta1: 0.9, beta2: 0.95, grad_clip: 1.0, warmup_steps: 10 }
  outer: { kind: nesterov, lr: 0.7, momentum: 0.9 }
aggregation: { rule: fedavg, weighting: tokens, norm_bound: 0 }
compression:
  uplink: { method: topk, block_size: 1024, k_per_block: 64, quant: int8, zstd_level: 3, error_feedback: true, dense_warmup_rounds: 1 }
  downlink: { method: topk, block_size: 1024, k_per_block: 256, quant: int8, zstd_level: 3, error_feedback: true }
participation: { members: [hust, fpt, vnpt], min_members: 3, round_deadline_s: 120, grace_s: 5 }
YAML
"$BIN/aulac" policy check "$T/policy.yaml" >"$T/check.txt" 2>&1 || { cat "$T/check.txt"; fail "the policy does not check"; }

# site_for MEMBER PYTHON PLUGIN MODE: a site.yaml whose trainer is the plug-in.
site_for() {
    cat >"$T/site-$1.yaml" <<YAML
schema: 1
member: $1
trainer:
  kind: command
  mode: $4
  command: [$2, $ROOT/$3]
  timeout_s: 300
  env: {OPENBLAS_NUM_THREADS: "1", OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1"}
YAML
    echo "$T/site-$1.yaml"
}

# run NAME [PLUGIN_MEMBER SITE]: one experiment from scratch; sets LOSS to the loss of
# hust's final model (a built-in member in every run) on the held-out text.
run() {
    local name=$1 pm=${2:-} site=${3:-} m pids=() i rc
    rm -rf "$T/coord" "$T/state"
    mkdir -p "$T/state"
    start_coordinator
    local cpid=$COORD_PID
    # each worker logs straight to logs/NAME-worker-M.log: renaming start_worker's
    # log afterwards raced with the shell that creates it
    for m in "${MEMBERS[@]}"; do
        local extra=()
        [ "$m" = "$pm" ] && extra=(--site "$site")
        start_bg "$name-worker-$m" "$BIN/aulac-worker" --coordinator "$ADDR" --member "$m" \
            --key "$T/keys/$m.key" --data "$T/corpus/$m" --state-dir "$T/state/$m" \
            --insecure --threads 1 --eval-windows 16 --exit-when-idle "${extra[@]}"
        pids+=($LAST_PID)
    done
    for i in 0 1 2; do
        rc=0; wait_pid "${pids[$i]}" 150 || rc=$?
        [ $rc -eq 0 ] || fail "run $name: worker ${MEMBERS[$i]} exited $rc"
    done
    status_json >"$T/status-$name.json"
    kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null || true
    mv "$T/logs/coordinator.log" "$T/logs/$name-coordinator.log"
    # each round's updates as the coordinator took them (the members' train losses)
    grep -oE "round [0-9]+: accepted [a-z]+ \([0-9]+ tokens, [0-9]+ bytes, loss [0-9.]+\)" \
        "$T/logs/$name-coordinator.log" | sed "s/^/   $name: /" >&2
    python3 - "$T/status-$name.json" "$ROUNDS" "$name" <<'PY' || fail "run $name: status checks"
import json, sys
s = json.load(open(sys.argv[1])); rounds = int(sys.argv[2])
assert s["state"] == "finished", s["state"]
assert len(s["rounds"]) == rounds, len(s["rounds"])
for r in s["rounds"]:
    got = sorted(m["member"] for m in r["members"])
    assert got == ["fpt", "hust", "vnpt"], (sys.argv[3], r["round"], got)
PY
    [ -f "$T/state/hust/final/model.safetensors" ] || fail "run $name: hust kept no final model"
    "$BIN/aulac" eval --model "$T/state/hust/final" --data "$HELD_OUT" --val-fraction 0.5 \
        --windows 64 --threads 2 >"$T/eval-$name.txt" 2>&1 || { cat "$T/eval-$name.txt"; fail "run $name: aulac eval"; }
    LOSS=$(grep -oE 'loss [0-9]+\.[0-9]+' "$T/eval-$name.txt" | head -1 | cut -d' ' -f2)
    [ -n "$LOSS" ] || { cat "$T/eval-$name.txt"; fail "run $name: no loss in aulac eval's output"; }
}

t0=$SECONDS
run A; loss_a=$LOSS
note "run A (3 built-in): held-out loss $loss_a ($((SECONDS - t0)) s)"

t0=$SECONDS
run B vnpt "$(site_for vnpt "$PY" worker/plugins/numpy_gpt2.py oneshot)"; loss_b=$LOSS
note "run B (2 built-in + vnpt on numpy_gpt2.py): held-out loss $loss_b ($((SECONDS - t0)) s)"
grep -q "numpy_gpt2: round 1" "$T/logs/B-worker-vnpt.log" ||
    fail "run B: vnpt's log does not show the numpy plug-in training"

within() {   # within A B: |B - A| / A <= 2 %
    python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); r = abs(b - a) / a; print('%.3f %%' % (100 * r)); sys.exit(0 if r <= 0.02 else 1)" "$1" "$2"
}
rel=$(within "$loss_a" "$loss_b") || fail "run B's final loss $loss_b is not within 2 % of run A's $loss_a ($rel)"
note "numpy plug-in: $loss_b vs built-in $loss_a: $rel apart (limit 2 %)"

# the same through serve mode (JSON lines, AdamW moments in memory): the same arithmetic,
# so the same final model
t0=$SECONDS
run S vnpt "$(site_for vnpt "$PY" worker/plugins/numpy_gpt2.py serve)"; loss_s=$LOSS
note "run B in serve mode: held-out loss $loss_s ($((SECONDS - t0)) s)"
[ "$loss_s" = "$loss_b" ] || fail "numpy_gpt2.py in serve mode ends at $loss_s, in oneshot mode at $loss_b"

VENV=${REFERENCE_VENV:-build/reference-venv}
if [ ! -f worker/plugins/torch_causal_lm.py ]; then
    echo "SKIP (torch plug-in): worker/plugins/torch_causal_lm.py is not in this tree"
elif [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, transformers' 2>/dev/null; then
    echo "SKIP (torch plug-in): $VENV has no torch + transformers (scripts/reference.sh; REFERENCE_VENV=...)"
else
    t0=$SECONDS
    run C vnpt "$(site_for vnpt "$VENV/bin/python" worker/plugins/torch_causal_lm.py serve)"; loss_c=$LOSS
    note "run B' (2 built-in + vnpt on torch_causal_lm.py): held-out loss $loss_c ($((SECONDS - t0)) s)"
    rel=$(within "$loss_a" "$loss_c") || fail "run B' final loss $loss_c is not within 2 % of run A's $loss_a ($rel)"
    note "torch plug-in: $loss_c vs built-in $loss_a: $rel apart (limit 2 %)"
fi
note "ok: mixed members within 2 % of the all-built-in run"
