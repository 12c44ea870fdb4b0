#!/usr/bin/env bash
# A three-member experiment on loopback: the loss decreases, every round closes with
# the expected members, the ledger verifies, and workers with an unregistered key or
# an impostor's key are refused with a clear error while the others go on.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_corpora
make_alliance alpha beta gamma
LOCAL_STEPS=20 write_policy 4 alpha beta gamma
start_coordinator

# A stranger (not in the roster) and an impostor (gamma's id, another key).
"$BIN/aulac" keygen --id mallory --dir "$T/keys/stranger" >/dev/null
"$BIN/aulac" keygen --id gamma --dir "$T/keys/impostor" >/dev/null
start_bg stranger "$BIN/aulac-worker" --coordinator "$ADDR" --member mallory \
    --key "$T/keys/stranger/mallory.key" --data "$T/corpus/alpha" --state-dir "$T/state/x" --insecure
stranger=$LAST_PID
start_bg impostor "$BIN/aulac-worker" --coordinator "$ADDR" --member gamma \
    --key "$T/keys/impostor/gamma.key" --data "$T/corpus/alpha" --state-dir "$T/state/y" --insecure
impostor=$LAST_PID

pids=()
for m in alpha beta gamma; do start_worker "$m"; pids+=($LAST_PID); done

rc=0; wait_pid "$stranger" 30 || rc=$?
[ $rc -eq 5 ] || fail "the stranger's worker exited $rc, expected 5 (not in the roster)"
grep -q "unknown member 'mallory'" "$T/logs/stranger.log" || fail "the stranger was not told it is unknown"
rc=0; wait_pid "$impostor" 30 || rc=$?
[ $rc -eq 5 ] || fail "the impostor's worker exited $rc, expected 5 (its key is not in the roster)"
grep -q "bad signature" "$T/logs/impostor.log" || fail "the impostor was not told its signature is bad"
note "stranger: $(grep -m1 -oE "(refused|unknown member).*" "$T/logs/stranger.log")"
note "impostor: $(grep -m1 -oE "(refused|bad signature).*" "$T/logs/impostor.log")"

for i in 0 1 2; do
    rc=0; wait_pid "${pids[$i]}" 240 || rc=$?
    [ $rc -eq 0 ] || fail "worker ${i} exited $rc"
done

status_json >"$T/status.json"
python3 - "$T" <<'PY' || fail "status checks"
import json, re, sys
t = sys.argv[1]
s = json.load(open(t + "/status.json"))
assert s["state"] == "finished", s["state"]
assert len(s["rounds"]) == 4, len(s["rounds"])
for r in s["rounds"]:
    got = sorted(m["member"] for m in r["members"])
    assert got == ["alpha", "beta", "gamma"], (r["round"], got)
for m in s["members"]:
    if m["member"] in ("alpha", "beta", "gamma"):
        assert m["rounds_joined"] == 4 and m["tokens"] > 0 and m["bytes_sent"] > 0, m
first = {m["member"]: m["val_loss"] for m in s["rounds"][0]["members"]}
drops = []
for m in ("alpha", "beta", "gamma"):
    final = None
    for line in open("%s/logs/worker-%s.log" % (t, m)):
        g = re.search(r"final model: validation loss ([0-9.]+)", line)
        if g: final = float(g.group(1))
    assert final is not None, m
    print("%s: validation loss %.3f -> %.3f" % (m, first[m], final))
    assert final < first[m] - 0.1, (m, first[m], final)   # every member's held-out loss falls
    drops.append(first[m] - final)
assert sum(drops) / 3 > 0.5, drops                       # and clearly so on average
PY
"$BIN/aulac" ledger verify --data-dir "$T/coord" | tee "$T/verify.txt"
grep -q ": OK" "$T/verify.txt" || fail "ledger verify"
n_closed=$("$BIN/aulac" ledger show --data-dir "$T/coord" --json | grep -c '"type":"round_closed"')
[ "$n_closed" -eq 4 ] || fail "expected 4 round_closed entries, got $n_closed"
# Rounds after the first reach the replicas as compressed round updates.
for m in alpha beta gamma; do
    n=$(grep -c "applied the compressed round update" "$T/logs/worker-$m.log" || true)
    [ "$n" -ge 3 ] || fail "$m applied $n compressed round updates, expected at least 3"
done
note "ok: 4 rounds closed with alpha, beta, gamma; replicas followed by compressed updates; ledger verifies"
