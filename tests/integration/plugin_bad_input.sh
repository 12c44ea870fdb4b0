#!/usr/bin/env bash
# A plug-in trainer that lies is refused locally and uploads nothing; the next round
# proceeds (worker/TRAINER.md, "What the worker refuses"). A real coordinator and two
# workers: alpha trains with the built-in trainer, beta with the fake plug-in
# (tests/support/fake_trainer.py) named in its site.yaml, which writes a NaN into its
# model in round 1 and trains honestly in round 2. Round 1 closes with alpha's update
# alone (beta's log says why); round 2 accepts beta's update, with the plug-in's
# tokens in it.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_corpora
make_alliance alpha beta
LOCAL_STEPS=4 write_policy 2 alpha beta
sed -i 's/min_members: 2, round_deadline_s: 60/min_members: 1, round_deadline_s: 12/' "$T/policy.yaml"

# site_beta MODE BAD: beta's site.yaml, its trainer the fake plug-in in MODE (oneshot or
# serve) misbehaving as BAD in round 1.
site_beta() {
    cat >"$T/site-beta.yaml" <<YAML
schema: 1
member: beta
trainer:
  kind: command
  command: [python3, $ROOT/tests/support/fake_trainer.py]
  mode: $1
  timeout_s: 60
  env: { FAKE_TRAINER_MODE: $2, FAKE_TRAINER_BAD_ROUNDS: "1", FAKE_TRAINER_LOG: $T/fake.log }
YAML
    "$BIN/aulac" site check "$T/site-beta.yaml" >/dev/null || fail "site.yaml with a trainer section"
}
site_beta oneshot nan

# A command trainer with --nodes is refused at start.
rc=0
"$BIN/aulac-worker" --coordinator 127.0.0.1:1 --member beta --key "$T/keys/beta.key" \
    --data "$T/corpus/beta" --state-dir "$T/state/nodes" --insecure --site "$T/site-beta.yaml" \
    --nodes 2 --node-rank 0 >"$T/logs/nodes.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || { cat "$T/logs/nodes.log" >&2; fail "--nodes 2 with a command trainer: exit $rc, expected 2"; }
grep -q "command trainer .* without --nodes" "$T/logs/nodes.log" || fail "--nodes: no reason given"
note "command trainer + --nodes 2: refused ($(grep -o 'this site trains with a command trainer' "$T/logs/nodes.log"))"

# run_case MODE BAD REASON: both workers through the experiment; beta's round 1 is
# refused with REASON (an extended regex), uploads nothing, and its round 2 is accepted.
run_case() {
    local mode=$1 bad=$2 reason=$3
    rm -rf "$T/coord" "$T/state" "$T/fake.log"
    site_beta "$mode" "$bad"
    start_coordinator
    start_worker alpha
    ALPHA=$LAST_PID
    start_worker beta "$T/corpus/beta" --site "$T/site-beta.yaml"
    BETA=$LAST_PID
    wait_pid "$ALPHA" 120 || fail "$mode/$bad: worker alpha did not finish"
    wait_pid "$BETA" 60 || fail "$mode/$bad: worker beta did not finish"
    kill "$COORD_PID" && wait "$COORD_PID" 2>/dev/null || true
    B="$T/logs/worker-beta.log"
    cp "$B" "$T/logs/beta-$mode-$bad.log.txt"
    grep -q "round 1 mode $bad" "$T/fake.log" || fail "$mode/$bad: the plug-in did not run round 1"
    grep -q "round 2 mode good_model" "$T/fake.log" || fail "$mode/$bad: the plug-in did not run round 2"
    grep -qE "round 1: $reason.*nothing of round 1 is uploaded" "$B" ||
        fail "$mode/$bad: beta's log does not say why round 1 was refused"
    note "$mode/$bad, beta: $(grep -oE "round 1: $reason" "$B" | head -1)"
    grep -q "round 1: update accepted" "$B" && fail "$mode/$bad: beta uploaded an update for round 1"
    grep -q "round 2: update accepted" "$B" || fail "$mode/$bad: beta's round 2 update was not accepted"

    # The ledger: beta's only update is round 2's, with the plug-in's tokens (4 steps x 4 x 32).
    "$BIN/aulac" ledger show --data-dir "$T/coord" --json >"$T/ledger.json"
    python3 - "$T/ledger.json" <<'PY' || fail "$mode/$bad: ledger"
import json, sys
updates = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    e = json.loads(line)
    if e.get("type") in ("update_accepted", "update"):
        updates.append(e)
beta = [(e.get("round"), e.get("tokens")) for e in updates if e.get("member") == "beta"]
alpha = [e.get("round") for e in updates if e.get("member") == "alpha"]
assert beta == [(2, 512)], "beta's updates in the ledger: %r" % (beta,)
assert sorted(alpha) == [1, 2], "alpha's updates in the ledger: %r" % (alpha,)
print("-- ledger: alpha rounds %s; beta rounds %s" % (sorted(alpha), [r for r, _ in beta]))
PY
    "$BIN/aulac" ledger verify --data-dir "$T/coord" >"$T/verify.txt" || { cat "$T/verify.txt"; fail "ledger verify"; }
}

run_case oneshot nan "the trainer's model.safetensors: tensor [^ ]+ holds NaN at index [0-9]+"
grep -q "trainer: fake trainer: round 2, 4 steps" "$T/logs/beta-oneshot-nan.log.txt" ||
    fail "the plug-in's stdout is not in the worker log"
run_case serve garbage "the trainer wrote a line on stdout that is not JSON"
note "ok: a NaN model (oneshot) and garbage on stdout (serve) uploaded nothing, the next round was accepted"
