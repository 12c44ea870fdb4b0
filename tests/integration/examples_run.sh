#!/usr/bin/env bash
# Every example experiment policy (policies/examples/*.yaml but site-*) runs on the real
# coordinator with its aggregation, privacy, compression and participation sections as
# written: the coordinator loads it from a proposal, starts it and closes three rounds
# (past any dense warm-up), each with the update of every member it lists, and the
# ledger verifies.
#
# What is scaled down, so that it runs on two CPU cores in seconds: the model (a byte
# GPT-2 of one layer), the local training (2 steps of 4 x 32 bytes), the rounds (3), the
# members' data (licence texts), the round deadline, and the contribution measures that
# need an evaluation set (loo, shapley: the demo's set is a Debian package's text;
# tests/integration/credits_verify.sh runs them), dropped with their settings.
# A family external example keeps its model (its pinned files, uploaded with aulac
# artifact put as a proposer would) and its members train through a plug-in: the fake
# trainer of tests/support/fake_trainer.py (python3 standard library), since the built-in
# trainer sits external models out; tests/integration/torch_llama.sh trains llama-tiny
# for real with the torch plug-in.
# tests/unit/test_examples.c checks the examples as written: a plan for every round, and
# that the members they list can satisfy their rule and their privacy budget.
# policy_cli.sh: `aulac policy check` passes each of them unchanged.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

ROUNDS=3
# corpus DIR I: a member's corpus, a different mix of licence texts for each I.
corpus() {
    local files=(/usr/share/common-licenses/{GPL-3,Apache-2.0,LGPL-2.1,MPL-2.0,GFDL-1.3,GPL-2}
                 /usr/share/common-licenses/{Artistic,MPL-1.1})
    mkdir -p "$1"
    cat "${files[$(($2 % 8))]}" "${files[$((($2 + 3) % 8))]}" "${files[$((($2 + 5) % 8))]}" \
        >"$1/text.txt"
}

# shrink EXAMPLE OUT: the example with the scaled-down parts replaced; prints the
# proposer, min_members and the members, one line.
shrink() {
    python3 - "$1" "$2" "$ROUNDS" <<'PY'
import sys, yaml
src, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = yaml.safe_load(open(src))
if p["model"].get("family", "gpt2") == "gpt2":
    p["model"].update(vocab_size=256, n_positions=32, n_layer=1, n_head=2, n_embd=64)
t = p["training"]
t.update(rounds=rounds, local_steps=2, batch_size=4, seq_len=32)
t["inner"]["warmup_steps"] = 0
p["data"].update(min_tokens_per_member=1000, validation_fraction=0.2)
part = p["participation"]
part.update(round_deadline_s=30, grace_s=1)
c = p.get("contribution")
if c and set(c.get("measures", [])) & {"loo", "shapley"}:
    # no evaluation set here: the measures that need one are dropped, the rest kept
    c["measures"] = [m for m in c["measures"] if m not in ("loo", "shapley")]
    for k in ("evaluation_set", "shapley"):
        c.pop(k, None)
    w = c.get("credit_weights")
    if w:
        c["credit_weights"] = {m: v for m, v in w.items() if m in c["measures"]}
members = part.get("members")
assert isinstance(members, list), "%s: participation.members is not a list" % src
# the policy parser refuses the '' escape PyYAML writes: double quotes for such text
yaml.SafeDumper.add_representer(str, lambda d, s: d.represent_scalar(
    "tag:yaml.org,2002:str", s, style='"' if "'" in s else None))
yaml.safe_dump(p, open(out, "w"), sort_keys=False, width=1000)
print(p["metadata"]["proposer"], " ".join(members))
PY
}

# the pinned files of the external examples, next to their scaled-down copies
for d in policies/examples/*/; do cp -r "$d" "$T/"; done
n=0
for ex in ${EXAMPLES:-policies/examples/*.yaml}; do   # EXAMPLES="a.yaml ...": only those
    base=$(basename "$ex" .yaml)
    case $base in site-*) continue ;; esac
    t0=$SECONDS
    read -r proposer members < <(shrink "$ex" "$T/$base.yaml") || fail "$base: cannot scale it down"
    # the alliance of its members, the proposer first (it operates the coordinator)
    rm -rf "$T/keys" "$T/roster.yaml" "$T/state" "$T/coord" "$T/corpus"
    mkdir -p "$T/keys" "$T/state"
    # shellcheck disable=SC2086
    make_alliance "$proposer" $(printf '%s\n' $members | grep -vx "$proposer")
    cp "$T/$base.yaml" "$T/policy.yaml"
    "$BIN/aulac" policy check "$T/policy.yaml" >"$T/out" 2>&1 ||
        { cat "$T/out"; fail "$base: the scaled-down policy does not check"; }
    start_coordinator
    external=0
    grep -q "^  family: external" "$ex" && external=1
    if [ $external -eq 1 ]; then
        # the proposer uploads the pinned files (the --policy shortcut does not)
        files=$(sed -n 's/^  [a-z]*: *{file: \([^,]*\),.*/\1/p' "$ex")
        [ -n "$files" ] || fail "$base: no pinned files found in the example"
        # shellcheck disable=SC2086
        (cd "$T" && "$BIN/aulac" artifact put $files --coordinator "$ADDR" --member "$proposer" \
            --key "$T/keys/$proposer.key" --insecure) >"$T/put.txt" 2>&1 ||
            { cat "$T/put.txt"; fail "$base: aulac artifact put"; }
    fi
    pids=() i=0
    for m in $members; do
        corpus "$T/corpus/$m" $i
        site=()
        if [ $external -eq 1 ]; then
            printf 'schema: 1\nmember: %s\ntrainer:\n  kind: command\n  mode: serve\n  command: [python3, %s]\n  timeout_s: 120\n' \
                "$m" "$ROOT/tests/support/fake_trainer.py" >"$T/site-$m.yaml"
            site=(--site "$T/site-$m.yaml")
        fi
        start_bg "$base-worker-$m" "$BIN/aulac-worker" --coordinator "$ADDR" --member "$m" \
            --key "$T/keys/$m.key" --data "$T/corpus/$m" --state-dir "$T/state/$m" \
            --insecure --threads 1 --eval-windows 4 --exit-when-idle "${site[@]}"
        pids+=($LAST_PID); i=$((i + 1))
    done
    for p in "${pids[@]}"; do
        rc=0; wait_pid "$p" 240 || rc=$?
        [ $rc -eq 0 ] || fail "$base: a worker exited $rc"
    done
    kill "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
    mv "$T/logs/coordinator.log" "$T/logs/$base-coordinator.log"
    rule=$(sed -n 's/^aggregation: \([a-z_]*\).*/\1/p' "$T/out")
    k=$(grep -c "round [0-9]* aggregation: rule $rule: " "$T/logs/$base-coordinator.log" || true)
    [ -n "$rule" ] && [ "$k" -eq "$ROUNDS" ] ||
        fail "$base: $k rounds aggregated by rule '$rule' (policy check), expected $ROUNDS"
    grep -q "experiment .* started: $ROUNDS rounds" "$T/logs/$base-coordinator.log" ||
        fail "$base: the coordinator did not start it"
    "$BIN/aulac" ledger verify --data-dir "$T/coord" >"$T/verify.txt" 2>&1 ||
        { cat "$T/verify.txt"; fail "$base: ledger verify"; }
    "$BIN/aulac" ledger show --data-dir "$T/coord" --json >"$T/$base.jsonl"
    # every round's aggregate and model rebuilt from round 0 (aulac ledger replay); under
    # privacy with the noise recomputed from the experiment's seed (in the data directory,
    # revealed with the payloads once it ended), checked against experiment_started's
    # commitment (PRIVACY.md, "Replaying the noise")
    "$BIN/aulac" ledger replay --data-dir "$T/coord" >"$T/replay.txt" 2>&1 ||
        { cat "$T/replay.txt"; fail "$base: ledger replay"; }
    k=$(grep -c "^round [0-9]*: match (aggregate .* and model .* rebuilt bit for bit" "$T/replay.txt" || true)
    [ "$k" -eq "$ROUNDS" ] || { cat "$T/replay.txt"; fail "$base: ledger replay matched $k rounds"; }
    if grep -q '^privacy:' "$T/$base.yaml"; then
        grep -q "DP noise seed .*/dp-noise-seed = the commitment of experiment_started .*(scheme 2: libm-free" \
            "$T/replay.txt" || { cat "$T/replay.txt"; fail "$base: the DP seed is not checked"; }
        grep -q '"type":"experiment_started",.*"dp_noise_scheme":2' "$T/$base.jsonl" ||
            fail "$base: experiment_started records no DP noise scheme 2"
        k=$(grep -c "rebuilt bit for bit; DP noise recomputed from the revealed seed" "$T/replay.txt" || true)
        [ "$k" -eq "$ROUNDS" ] || { cat "$T/replay.txt"; fail "$base: DP noise recomputed in $k rounds"; }
        # the seed is in no ledger entry, and goes with the payloads of an ended experiment
        seed=$(od -An -tx1 "$T"/coord/experiments/*/dp-noise-seed | tr -d ' \n')
        [ ${#seed} -eq 64 ] || fail "$base: no 32-byte dp-noise-seed file"
        ! grep -q "$seed" "$T/$base.jsonl" || fail "$base: the DP noise seed is in the ledger"
        "$BIN/aulac" ledger export --data-dir "$T/coord" --payloads "$T/dp-export" 2>/dev/null ||
            fail "$base: ledger export --payloads"
        cmp "$T"/coord/experiments/*/dp-noise-seed "$T"/dp-export/dp-seeds/*.seed ||
            fail "$base: the export does not carry the DP noise seed"
        "$BIN/aulac" ledger replay --export "$T/dp-export" >"$T/replay-x.txt" 2>&1 ||
            { cat "$T/replay-x.txt"; fail "$base: ledger replay --export"; }
        k=$(grep -c "DP noise recomputed from the revealed seed" "$T/replay-x.txt" || true)
        [ "$k" -eq "$ROUNDS" ] || { cat "$T/replay-x.txt"; fail "$base: replay --export under DP"; }
        # without the seed (not revealed): each round NOT CHECKED with why, exit 3 (not 0:
        # an audited coordinator could leave the commitment out); a seed that is not the
        # committed one: MISMATCH, exit 1
        rm "$T"/dp-export/dp-seeds/*.seed
        rc=0; "$BIN/aulac" ledger replay --export "$T/dp-export" >"$T/replay-x.txt" 2>&1 || rc=$?
        [ $rc -eq 3 ] ||
            { cat "$T/replay-x.txt"; fail "$base: ledger replay --export without the seed exited $rc, expected 3"; }
        k=$(grep -c "^round [0-9]*: NOT CHECKED: its DP noise cannot be checked: no noise seed at" "$T/replay-x.txt" || true)
        [ "$k" -eq "$ROUNDS" ] || { cat "$T/replay-x.txt"; fail "$base: rounds without the seed"; }
        grep -q "^ledger replay: INCOMPLETE: .* $ROUNDS DP round(s) NOT CHECKED" "$T/replay-x.txt" ||
            { cat "$T/replay-x.txt"; fail "$base: the summary does not count the unchecked rounds"; }
        id=$(basename "$(dirname "$(ls "$T"/coord/experiments/*/dp-noise-seed)")")
        head -c 32 /dev/urandom >"$T/dp-export/dp-seeds/$id.seed"
        rc=0; "$BIN/aulac" ledger replay --export "$T/dp-export" >"$T/replay-x.txt" 2>&1 || rc=$?
        [ $rc -eq 1 ] && grep -q "MISMATCH: its DP noise seed .* hashes to .*, experiment_started committed to" \
            "$T/replay-x.txt" || { cat "$T/replay-x.txt"; fail "$base: a wrong seed is not refused"; }
        rm -rf "$T/dp-export"
        # payloads pruned (the store gone): the export withholds the seed, which without
        # the payloads would let holders of the per-round models subtract the noise
        mv "$T/coord/experiments/$id/payloads" "$T/payloads-away"
        "$BIN/aulac" ledger export --data-dir "$T/coord" --payloads "$T/dp-export" 2>"$T/export-x.err" ||
            { cat "$T/export-x.err"; fail "$base: ledger export --payloads without the payloads"; }
        ! ls "$T"/dp-export/dp-seeds/*.seed >/dev/null 2>&1 ||
            fail "$base: the export wrote the DP noise seed without the payloads"
        grep -q "DP noise seed of $id is not exported" "$T/export-x.err" ||
            { cat "$T/export-x.err"; fail "$base: the export does not say it withheld the seed"; }
        mv "$T/payloads-away" "$T/coord/experiments/$id/payloads"
        rm -rf "$T/dp-export"
    fi
    # the credits: every round's aggregate under the example's rule rebuilt from the
    # payloads (under privacy too, once the noise seed is revealed)
    if grep -q '^contribution:' "$T/$base.yaml"; then
        "$BIN/aulac" credits verify --data-dir "$T/coord" >"$T/credits.txt" 2>&1 ||
            { cat "$T/credits.txt"; fail "$base: credits verify"; }
        k=$(grep -c "^ *round [0-9]*: match" "$T/credits.txt" || true)
        [ "$k" -eq "$ROUNDS" ] || { cat "$T/credits.txt"; fail "$base: credits verify matched $k rounds"; }
        if grep -q '^privacy:' "$T/$base.yaml"; then
            k=$(grep -c "^round [0-9]*: match (model .* rebuilt bit for bit" "$T/credits.txt" || true)
            [ "$k" -eq "$ROUNDS" ] || { cat "$T/credits.txt"; fail "$base: credits verify under DP"; }
        fi
    fi
    # privacy: round_closed carries the epsilon spent, the last what policy check
    # predicts for all the rounds ("epsilon: X after all N rounds"); none without privacy
    eps=$(sed -n "s/^epsilon: \([0-9.e+-]*\) after all $ROUNDS rounds.*/\1/p" "$T/out")
    # shellcheck disable=SC2086
    python3 - "$T/$base.jsonl" "$ROUNDS" "${eps:-none}" $members <<'PY' || fail "$base: rounds"
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1])]
rounds, eps, members = int(sys.argv[2]), sys.argv[3], sorted(sys.argv[4:])
closed = [e for e in entries if e["type"] == "round_closed"]
assert [e["round"] for e in closed] == list(range(1, rounds + 1)), closed
for r in range(1, rounds + 1):
    got = sorted(e["member"] for e in entries if e["type"] == "update_accepted" and e["round"] == r)
    assert got == members, (r, got, members)
if eps == "none":
    assert all("epsilon" not in e for e in closed), "epsilon without privacy"
else:
    spent = [e["epsilon"] for e in closed]
    assert all(a < b for a, b in zip(spent, spent[1:])), spent
    assert abs(spent[-1] - float(eps)) <= 0.01 * float(eps), (spent, eps)
    print("epsilon spent after each round: %s (policy check: %s)"
          % (", ".join("%.4f" % x for x in spent), eps))
PY
    if [ -n "$eps" ]; then
        k=$(grep -c "round [0-9]* aggregation: .*; DP noise of std" \
            "$T/logs/$base-coordinator.log" || true)
        [ "$k" -eq "$ROUNDS" ] || fail "$base: DP noise added in $k rounds, expected $ROUNDS"
    fi
    note "$base: started by the coordinator, $ROUNDS rounds closed with its" \
        "$(wc -w <<<"$members") members, ledger OK ($((SECONDS - t0)) s)"
    n=$((n + 1))
done
[ -n "${EXAMPLES:-}" ] || [ "$n" -ge 4 ] || fail "only $n example policies"
echo "examples_run: ok ($n example policies)"
