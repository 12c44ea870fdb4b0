#!/usr/bin/env bash
# The value of joining: each member trains the experiment's model alone, from the same
# round-0 model, with the compute it gave the alliance (aulac solo: rounds x local_steps
# of the worker's own inner steps, on its corpus alone), and both final models -- the
# federated one and the member's solo one -- are evaluated with the same evaluator
# (aulac eval, every window) on the member's held-out text (the policy's split). Prints
# one line per member: the federated and solo losses and the gain on its own held-out text,
# and the same on every member's held-out text (the mean), and whether every member gains.
#
#   scripts/value-of-joining.sh POLICY FEDERATED_MODEL_DIR OUT_DIR MEMBER=CORPUS_DIR...
#
# BUILD (default build) holds aulac. The solo runs go in parallel, one thread each; their
# models and logs are written under OUT_DIR (solo-MEMBER/, solo-MEMBER.log, joining.txt).
# Exit 0 when the table was printed (whether or not every member gains), 1 on failure.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: value-of-joining.sh POLICY FEDERATED_MODEL_DIR OUT_DIR MEMBER=CORPUS..." >&2; exit 2; }
bin=${BUILD:-build}
policy=$1 fed_model=$2 out=$3
shift 3
[ -f "$fed_model/model.safetensors" ] ||
    { echo "value-of-joining: the federated model $fed_model/model.safetensors is missing" >&2; exit 1; }
val_fraction=$(sed -n 's/^ *validation_fraction: *\([0-9.]*\).*/\1/p;s/.*validation_fraction: *\([0-9.]*\) *[,}].*/\1/p' "$policy" | head -1)
[ -n "$val_fraction" ] || val_fraction=0.1   # the policy default (policies/README.md)
mkdir -p "$out"
t0=$(date +%s)
members=() corpora=() solo_pids=()
# the solo runs stop with this script (Ctrl-C, a failure)
stop_solo() { local p; for p in "${solo_pids[@]:-}"; do if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi; done; }
trap stop_solo EXIT
for arg in "$@"; do
    m=${arg%%=*} corpus=${arg#*=}
    [ "$m" != "$arg" ] || { echo "value-of-joining: '$arg' is not MEMBER=CORPUS_DIR" >&2; exit 2; }
    members+=("$m"); corpora+=("$corpus")
    "$bin/aulac" solo --policy "$policy" --member "$m" --data "$corpus" --out "$out/solo-$m" \
        --threads 1 >"$out/solo-$m.log" 2>&1 &
    solo_pids+=($!)
done
failed=0
for i in "${!members[@]}"; do
    if ! wait "${solo_pids[$i]}"; then
        tail -5 "$out/solo-${members[$i]}.log" >&2
        echo "value-of-joining: ${members[$i]}'s solo run failed" >&2
        failed=1
    fi
done
[ $failed -eq 0 ] || exit 1
: >"$out/joining.txt"
# joining.txt: MODEL TEXT LOSS, MODEL "federated" or "solo-MEMBER", TEXT the member whose
# held-out text it is
for i in "${!members[@]}"; do
    for model in federated "${members[@]/#/solo-}"; do
        dir=$fed_model; [ "$model" = federated ] || dir="$out/$model"
        loss=$("$bin/aulac" eval --model "$dir" --data "${corpora[$i]}" \
                   --val-fraction "$val_fraction" --windows 0 --threads 1 |
               sed -n 's/.*validation loss \([0-9.]*\) nats.*/\1/p')
        [ -n "$loss" ] || { echo "value-of-joining: aulac eval of $model on ${members[$i]}'s text failed" >&2; exit 1; }
        echo "$model ${members[$i]} $loss" >>"$out/joining.txt"
    done
done
steps=$(sed -n 's/^solo model .* (\([0-9]*\) steps).*/\1/p' "$out/solo-${members[0]}.log")
python3 - "$out/joining.txt" "$steps" "$(( $(date +%s) - t0 ))" <<'PY'
import sys
loss, members = {}, []
for line in open(sys.argv[1]):
    model, text, x = line.split()
    loss[model, text] = float(x)
    if text not in members:
        members.append(text)
def mean(model):
    return sum(loss[model, t] for t in members) / len(members)
print("  loss in nats/byte of the federated model and of each member's solo model (the member")
print("  alone for the same %s inner steps from the same round-0 model); gain = solo - federated"
      % sys.argv[2])
print("  %-8s %-27s  %s" % ("", "on the member's held-out text", "on every member's held-out text (mean)"))
print("  %-8s %9s %8s %8s   %9s %8s %8s" % ("member", "federated", "solo", "gain",
                                           "federated", "solo", "gain"))
own, every = [], []
for m in members:
    f, s = loss["federated", m], loss["solo-" + m, m]
    fa, sa = mean("federated"), mean("solo-" + m)
    print("  %-8s %9.4f %8.4f %+8.4f   %9.4f %8.4f %+8.4f" % (m, f, s, s - f, fa, sa, sa - fa))
    own.append(s - f > 0)
    every.append(sa - fa > 0)
def verdict(gains):
    if all(gains):
        return "every member gains"
    if not any(gains):
        return "no member gains"
    return "%s gain(s), %s do(es) not" % (
        ", ".join(m for m, g in zip(members, gains) if g),
        ", ".join(m for m, g in zip(members, gains) if not g))
print("  on its own held-out text: %s; on every member's: %s" % (verdict(own), verdict(every)))
print("  (solo runs and evaluations: %s s)" % sys.argv[3])
PY
