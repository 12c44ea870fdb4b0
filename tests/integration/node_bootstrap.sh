#!/usr/bin/env bash
# Several nodes in one member (model/README.md): the leader's node channel on loopback.
# Checks that a follower and a leader holding different keys for the same member refuse
# each other, that the same key passes the signed probe (--check-nodes, no GPU needed),
# that --nodes N > 1 is refused with a clear error where there is no CUDA or GPU, and,
# on a machine with at least two GPUs, a real two-node member (two processes, one GPU
# each) training rounds next to a one-node member.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_corpora
make_alliance alpha beta
"$BIN/aulac" keygen --id alpha --dir "$T/keys/impostor" >/dev/null

# leader_port LOG: the port a leader logged for its followers.
leader_port() {
    local log=$1 p=""
    for _ in $(seq 100); do
        p=$(grep -oE "followers reach it on port [0-9]+" "$log" 2>/dev/null | grep -oE "[0-9]+$" || true)
        [ -n "$p" ] && break
        sleep 0.1
    done
    [ -n "$p" ] || fail "the leader did not start its node channel ($(tail -3 "$log"))"
    echo "$p"
}

check_leader() {   # NAME KEY
    start_bg "$1" "$BIN/aulac-worker" --check-nodes --nodes 2 --node-rank 0 \
        --node-listen 127.0.0.1:0 --member alpha --key "$2" --insecure --connect-timeout 10
}
check_follower() { # NAME KEY PORT
    start_bg "$1" "$BIN/aulac-worker" --check-nodes --nodes 2 --node-rank 1 \
        --leader "127.0.0.1:$3" --member alpha --key "$2" --insecure --connect-timeout 10
}

note "a leader holding another key for member alpha"
check_leader leader-bad "$T/keys/impostor/alpha.key"; lpid=$LAST_PID
port=$(leader_port "$T/logs/leader-bad.log")
check_follower follower-bad "$T/keys/alpha.key" "$port"; fpid=$LAST_PID
rc=0; wait_pid "$fpid" 20 || rc=$?
[ $rc -eq 3 ] || fail "the follower exited $rc against a leader with another key, expected 3"
grep -q "refusing the leader" "$T/logs/follower-bad.log" || fail "the follower did not say it refuses the leader"
grep -qE "does not verify with member alpha's key|another key" "$T/logs/follower-bad.log" \
    || fail "the follower did not name the key mismatch"
note "follower: $(grep -m1 -oE "refusing the leader.*" "$T/logs/follower-bad.log" | cut -c1-200)"
# SIGTERM stops a leader waiting for its followers at once (its --connect-timeout is 10 s).
kill -TERM "$lpid" 2>/dev/null || true
rc=0; wait_pid "$lpid" 5 || rc=$?
[ $rc -eq 0 ] || fail "the leader exited $rc on SIGTERM while waiting for its followers (124: still running after 5 s)"
grep -q "stopping before every follower" "$T/logs/leader-bad.log" || fail "the leader did not say it stops"

note "leader and follower with the member's key: the signed probe passes"
check_leader leader-ok "$T/keys/alpha.key"; lpid=$LAST_PID
port=$(leader_port "$T/logs/leader-ok.log")
check_follower follower-ok "$T/keys/alpha.key" "$port"; fpid=$LAST_PID
rc=0; wait_pid "$fpid" 20 || rc=$?
[ $rc -eq 0 ] || fail "the follower's channel check exited $rc"
grep -q "the node channel works" "$T/logs/follower-ok.log" || fail "the follower did not verify the probe"
rc=0; wait_pid "$lpid" 20 || rc=$?
[ $rc -eq 0 ] || fail "the leader's channel check exited $rc"
grep -q "fetched the signed probe" "$T/logs/leader-ok.log" || fail "the leader did not see the probe fetched"

note "a follower of another member is refused by the leader"
check_leader leader-m "$T/keys/alpha.key"; lpid=$LAST_PID
port=$(leader_port "$T/logs/leader-m.log")
start_bg follower-m "$BIN/aulac-worker" --check-nodes --nodes 2 --node-rank 1 \
    --leader "127.0.0.1:$port" --member beta --key "$T/keys/beta.key" --insecure --connect-timeout 10
rc=0; wait_pid "$LAST_PID" 20 || rc=$?
[ $rc -eq 3 ] || fail "a follower of member beta exited $rc against alpha's leader, expected 3"
grep -q "this leader serves only 'alpha'" "$T/logs/follower-m.log" || fail "the leader did not say whom it serves"
kill -9 "$lpid" 2>/dev/null || true; wait "$lpid" 2>/dev/null || true

ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${ngpu:-0}" -lt 1 ]; then
    note "no GPU here: --nodes 2 must be refused at start"
    for r in 0 1; do
        rc=0
        "$BIN/aulac-worker" --coordinator 127.0.0.1:1 --member alpha --key "$T/keys/alpha.key" \
            --data "$T/corpus/alpha" --state-dir "$T/state/nogpu" --insecure --nodes 2 \
            --node-rank $r --node-listen 127.0.0.1:0 --leader 127.0.0.1:1 \
            >"$T/logs/nogpu-$r.log" 2>&1 || rc=$?
        [ $rc -eq 2 ] || fail "--nodes 2 --node-rank $r without a GPU exited $rc, expected 2"
        grep -q "multi-node training needs the CUDA backend and GPUs" "$T/logs/nogpu-$r.log" \
            || fail "no clear refusal of --nodes 2 without a GPU: $(cat "$T/logs/nogpu-$r.log")"
    done
    note "refused: $(grep -m1 -oE "multi-node training needs.*" "$T/logs/nogpu-0.log" | cut -c1-160)"
fi

if [ "${ngpu:-0}" -lt 2 ]; then
    echo "SKIP: a real two-node run needs at least two GPUs (nvidia-smi -L shows ${ngpu:-0})"
    note "ok: node channel refusals, the signed probe and the no-GPU refusal"
    exit 0
fi

note "two nodes of member alpha (one GPU each) and one CPU node of beta train 3 rounds"
write_policy 3 alpha beta
start_coordinator
start_bg alpha-leader env CUDA_VISIBLE_DEVICES=0 "$BIN/aulac-worker" --coordinator "$ADDR" \
    --member alpha --key "$T/keys/alpha.key" --data "$T/corpus/alpha" --state-dir "$T/state/alpha" \
    --insecure --gpus 1 --nodes 2 --node-rank 0 --node-listen 127.0.0.1:0 --eval-windows 16 \
    --exit-when-idle
leader=$LAST_PID
port=$(leader_port "$T/logs/alpha-leader.log")
start_bg alpha-follower env CUDA_VISIBLE_DEVICES=1 "$BIN/aulac-worker" --member alpha \
    --key "$T/keys/alpha.key" --data "$T/corpus/alpha" --insecure --gpus 1 --nodes 2 \
    --node-rank 1 --leader "127.0.0.1:$port"
follower=$LAST_PID
start_worker beta; beta=$LAST_PID
for p in "$leader" "$follower" "$beta"; do
    rc=0; wait_pid "$p" 240 || rc=$?
    [ $rc -eq 0 ] || fail "a worker exited $rc"
done
n=$(grep -c "steps done on node 1" "$T/logs/alpha-follower.log" || true)
[ "$n" -eq 3 ] || fail "the follower trained $n rounds, expected 3"
status_json >"$T/status.json"
python3 - "$T/status.json" <<'PY' || fail "status checks"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["state"] == "finished", s["state"]
assert len(s["rounds"]) == 3
for r in s["rounds"]:
    assert sorted(m["member"] for m in r["members"]) == ["alpha", "beta"], r
print("alpha (2 nodes) and beta had an accepted update in every round")
PY
note "ok: a two-node member trained 3 rounds with one update per round"
