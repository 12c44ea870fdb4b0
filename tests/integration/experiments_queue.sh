#!/usr/bin/env bash
# Experiments one after another, over TLS: the coordinator starts with two experiments
# queued; three workers run the first, then move on to the second without being
# restarted. gamma's site policy refuses the second (its model is over gamma's
# max_parameters): gamma says why, sits it out and stays up until it ends, and the
# ledger holds no update of gamma's for it. The coordinator is killed (SIGKILL) during
# the second experiment and restarted: it resumes it, and the queue is not refilled.
# The ledger brackets each experiment with experiment_started / experiment_finished.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_corpora
make_alliance alpha beta gamma
"$BIN/aulac" tls init --dir "$T/tls" --name "queue test" >/dev/null
"$BIN/aulac" tls issue --ca-dir "$T/tls" --name coordinator --server >/dev/null

# Two tiny experiments: the second has a larger model (n_embd 64) and waits for the
# members that report (gamma never does) until its short deadline.
LOCAL_STEPS=6 write_policy 2 alpha beta gamma
mv "$T/policy.yaml" "$T/first.yaml"
LOCAL_STEPS=6 write_policy 3 alpha beta gamma
sed -e 's/name: it-tiny/name: it-second/' -e 's/n_embd: 32/n_embd: 64/' \
    -e 's/round_deadline_s: 60, grace_s: 1/round_deadline_s: 3, grace_s: 0/' \
    "$T/policy.yaml" >"$T/second.yaml"
printf 'schema: 1\nmember: gamma\nlimits: { max_parameters: 50000 }\n' >"$T/site-gamma.yaml"
"$BIN/aulac" site check "$T/site-gamma.yaml" --policy "$T/first.yaml" >/dev/null ||
    fail "gamma's site should allow the first experiment"
if "$BIN/aulac" site check "$T/site-gamma.yaml" --policy "$T/second.yaml" >/dev/null 2>&1; then
    fail "gamma's site should refuse the second experiment"
fi

coordinator() {   # the same command line at the start and at the restart
    start_bg coordinator "$BIN/aulac-coordinator" --data-dir "$T/coord" \
        --key "$T/keys/coordinator.key" --roster "$T/roster.yaml" \
        --policy "$T/first.yaml" --policy "$T/second.yaml" \
        --operator-key "$T/keys/alpha.key" --listen "127.0.0.1:$1" \
        --port-file "$T/port" --tls-cert "$T/tls/coordinator.pem" \
        --tls-key "$T/tls/coordinator.key"
    COORD_PID=$LAST_PID
}
coordinator 0
for _ in $(seq 150); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || fail "the coordinator did not start"
PORT=$(cat "$T/port")
ADDR=127.0.0.1:$PORT
grep -q "filed experiment it-second-[0-9a-f]* as a proposal .*approved" "$T/logs/coordinator.log" || fail "second not approved"
"$BIN/aulac" status --coordinator "$ADDR" --tls-ca "$T/tls/ca.pem" --json >"$T/status0.json"
python3 - "$T/status0.json" <<'PY' || fail "status at start"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["state"] == "running" and s["experiment"].startswith("it-tiny-"), s
assert s["queue_length"] == 1, s
PY

pids=()
for m in alpha beta gamma; do
    site=()
    [ $m = gamma ] && site=(--site "$T/site-gamma.yaml")
    start_bg "worker-$m" "$BIN/aulac-worker" --coordinator "$ADDR" --member "$m" \
        --key "$T/keys/$m.key" --data "$T/corpus/$m" --state-dir "$T/state/$m" \
        --tls-ca "$T/tls/ca.pem" --threads 1 --eval-windows 4 --exit-when-idle "${site[@]}"
    pids+=($LAST_PID)
done

# The second experiment runs; kill the coordinator once one of its updates is in.
started2() { grep -q "experiment it-second-[0-9a-f]* started" "$T/logs/coordinator.log"; }
for _ in $(seq 600); do started2 && break; sleep 0.1; done
started2 || fail "the second experiment never started"
for _ in $(seq 300); do grep -q "round 1: accepted" <(sed -n '/it-second-.* started/,$p' "$T/logs/coordinator.log") && break; sleep 0.05; done
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
note "killed the coordinator during the second experiment"
mv "$T/logs/coordinator.log" "$T/logs/coordinator-1.log"
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || fail "a worker exited while the coordinator was down"; done
coordinator "$PORT"
for _ in $(seq 150); do grep -q "serving the Federation" "$T/logs/coordinator.log" 2>/dev/null && break; sleep 0.1; done
grep -q "resumed experiment it-second-" "$T/logs/coordinator.log" ||
    fail "the restarted coordinator did not resume the second experiment"
[ "$(grep -c "was already proposed (ledger #[0-9]*); nothing filed" "$T/logs/coordinator.log")" = 2 ] ||
    fail "the restart filed a policy again"
note "$(grep -o 'resumed experiment.*' "$T/logs/coordinator.log")"

# gamma sits the second experiment out and stays up until it ends.
grep -q "refuses experiment it-second-.*max_parameters.*sitting it out" "$T/logs/worker-gamma.log" ||
    fail "gamma did not say why it sits the second experiment out"
note "gamma: $(grep -o "this site's policy refuses.*" "$T/logs/worker-gamma.log" | head -1)"
finished2() { grep -q "experiment it-second-[0-9a-f]* finished" "$T/logs/coordinator.log"; }
while ! finished2; do
    kill -0 "${pids[2]}" 2>/dev/null || fail "gamma exited before the second experiment ended"
    sleep 0.2
done

for i in 0 1 2; do
    rc=0; wait_pid "${pids[$i]}" 120 || rc=$?
    [ $rc -eq 0 ] || fail "worker $i exited $rc"
done
for m in alpha beta gamma; do
    [ "$(grep -c "resuming from\|connected to" "$T/logs/worker-$m.log")" -ge 1 ] || fail "$m log"
    grep -q "no experiment runs and none is queued" "$T/logs/worker-$m.log" || fail "$m left early"
done
grep -q "joined experiment it-second-" "$T/logs/worker-alpha.log" || fail "alpha did not move on"

"$BIN/aulac" ledger verify --data-dir "$T/coord" | grep -q ": OK" || fail "ledger verify"
"$BIN/aulac" ledger show --data-dir "$T/coord" --json >"$T/ledger.jsonl"
python3 - "$T/ledger.jsonl" <<'PY' || fail "ledger contents"
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1])]
kinds = [e["type"] for e in entries]
trail = [k for k in kinds if k not in ("update_accepted", "update_rejected")]
exp = [e.get("experiment", "") for e in entries]
first = next(x for x, k in zip(exp, kinds) if k == "experiment_started")
second = [x for x, k in zip(exp, kinds) if k == "experiment_started"][1]
assert first.startswith("it-tiny-") and second.startswith("it-second-"), (first, second)
# each close: round_closed then its contribution_scores; credits right before the finish
closes = lambda n: ["round_closed", "contribution_scores"] * n
want = (["genesis"] + ["policy_proposed", "proposal_decided"] * 2 + ["experiment_started"] + closes(2) +
        ["credits", "experiment_finished", "experiment_started"] + closes(3) + ["credits", "experiment_finished"])
assert trail == want, trail
for e in entries:
    if e["type"] in ("update_accepted", "update_rejected") and e["experiment"] == second:
        assert e["member"] != "gamma", e
    if e["type"] == "round_closed" and e["experiment"] == second:
        assert "gamma" not in e["participants"], e
acc1 = {(e["round"], e["member"]) for e in entries if e["type"] == "update_accepted" and e["experiment"] == first}
assert acc1 == {(r, m) for r in (1, 2) for m in ("alpha", "beta", "gamma")}, acc1
print("ledger trail:", " ".join(trail))
PY
"$BIN/aulac" status --coordinator "$ADDR" --tls-ca "$T/tls/ca.pem" --json >"$T/status.json"
python3 - "$T/status.json" <<'PY' || fail "status at the end"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["state"] == "finished" and s["experiment"].startswith("it-second-"), s
assert s["queue_length"] == 0, s
PY
# An ended experiment other than the loaded one: its record, rounds and last model.
FIRST=$(grep -o "experiment it-tiny-[0-9a-f]* started" "$T/logs/coordinator-1.log" | head -1 | cut -d' ' -f2)
"$BIN/aulac" status --coordinator "$ADDR" --tls-ca "$T/tls/ca.pem" --experiment "$FIRST" --json \
    >"$T/status1.json" || fail "status --experiment $FIRST"
python3 - "$T/status1.json" "$FIRST" <<'PY' || fail "status of the first experiment"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["experiment"] == sys.argv[2] and s["state"] == "finished", s
assert [r["round"] for r in s["rounds"]] == [1, 2] and len(s["model_hash"]) == 64, s
PY
if "$BIN/aulac" status --coordinator "$ADDR" --tls-ca "$T/tls/ca.pem" --experiment nope-1 \
    >"$T/out" 2>&1; then fail "status of an unknown experiment"; fi
grep -q "no experiment 'nope-1' was approved here" "$T/out" || fail "status refusal: $(cat "$T/out")"
note "ok: two experiments ran one after the other with the same three workers"
