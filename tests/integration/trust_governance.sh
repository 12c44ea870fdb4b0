#!/usr/bin/env bash
# Roster governance end to end, over TLS, with the real programs:
#   - a founding roster of fpt, vnpt, hust; charter roster quorum 0.66 of the current members;
#   - fpt proposes to add uet: uet is refused until vnpt's vote approves it, then
#     uet's own key works at once (nobody re-issues credentials) and its worker
#     trains a round that the coordinator accepts;
#   - vnpt rotates its key: from the approval on, the old key is refused (named as
#     rotated out) and the new one accepted; a worker with the old key stops (exit 5);
#   - hust is removed while its worker trains a round: the upload that follows is
#     refused (PERMISSION_DENIED) and recorded once, and the worker stops at once with
#     exit 5 saying the member is no longer in the roster, instead of retrying (and
#     adding a ledger entry per retry) until the round's deadline;
#   - after a restart the coordinator rebuilds the same roster from the ledger;
#   - the ledger holds every proposal, vote and change and verifies;
#   - a world-readable key file is refused; a client trusting another CA cannot connect.
# Exit 0 on success. Uses $BUILD (default build), a temp dir, an ephemeral port.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
bin=$BUILD
T=$(mktemp -d "${TMPDIR:-/tmp}/aulac-trust-gov.XXXXXX")
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ]; then
        echo "trust_governance: FAILED (exit $rc); coordinator log:" >&2
        tail -30 "$T/coordinator.log" >&2 2>/dev/null || true
    fi
    [ -n "${KEEP:-}" ] || rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "trust_governance: $*" >&2; exit 1; }
step() { echo "== $*"; }

for p in aulac aulac-coordinator aulac-worker; do
    [ -x "$bin/$p" ] || fail "$bin/$p is missing: build first"
done
command -v openssl >/dev/null || fail "the openssl program is needed"

step "keys, roster, policy, TLS"
mkdir -p "$T/keys" "$T/newkeys"
for m in coordinator fpt vnpt hust uet; do
    "$bin/aulac" keygen --id "$m" --dir "$T/keys" >/dev/null
done
"$bin/aulac" keygen --id vnpt --dir "$T/newkeys" >/dev/null
for m in fpt vnpt hust; do
    "$bin/aulac" roster add --roster "$T/roster.yaml" --alliance trust-test \
        --pub "$T/keys/$m.pub" --organization "Org $m" >/dev/null
done
# the roster quorum is the charter's (policies/GOVERNANCE.md); the experiment is filed
# by the operator fpt (--policy), whose approval alone starts it under this charter
printf 'charter:\n  quorum: {roster: 0.66, experiments: 0.01, charter: 0.67}\n  proposers: [member]\n' >>"$T/roster.yaml"
sed -e 's/^  members: \[fpt, vnpt, hust\]/  members: [fpt, vnpt, hust, uet]/' \
    -e 's/^  round_deadline_s: .*/  round_deadline_s: 600/' \
    -e 's/^  rounds: .*/  rounds: 3/' -e 's/^  local_steps: .*/  local_steps: 60/' \
    -e '/^contribution:/,$d' policies/examples/demo.yaml >"$T/policy.yaml"
grep -q 'members: \[fpt, vnpt, hust, uet\]' "$T/policy.yaml" || fail "could not edit the policy"
"$bin/aulac" tls init --dir "$T/tls" --name "trust test" >/dev/null
"$bin/aulac" tls issue --ca-dir "$T/tls" --name coordinator --server >/dev/null
"$bin/aulac" tls init --dir "$T/othertls" --name "another ca" >/dev/null
python3 - "$T/corpus" <<'PY'
import os, random, sys
random.seed(7)
words = "mot hai ba bon nam sau bay tam chin muoi hoc may mo hinh ngon ngu du lieu".split()
os.makedirs(sys.argv[1], exist_ok=True)
with open(os.path.join(sys.argv[1], "text.txt"), "w") as f:
    for _ in range(6000):
        f.write(" ".join(random.choice(words) for _ in range(12)) + ".\n")
PY

start_coordinator() {
    rm -f "$T/port"
    "$bin/aulac-coordinator" --data-dir "$T/data" --key "$T/keys/coordinator.key" \
        --roster "$T/roster.yaml" --policy "$T/policy.yaml" --operator-key "$T/keys/fpt.key" \
        --listen 127.0.0.1:0 --port-file "$T/port" --tls-cert "$T/tls/coordinator.pem" \
        --tls-key "$T/tls/coordinator.key" >>"$T/coordinator.log" 2>&1 &
    coord_pid=$!
    pids+=($coord_pid)
    for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
    [ -s "$T/port" ] || fail "the coordinator did not start"
    addr="127.0.0.1:$(cat "$T/port")"
}
stop_coordinator() {
    kill "$coord_pid"
    wait "$coord_pid" 2>/dev/null || true
}

# as MEMBER KEYFILE ARGS...: runs aulac with MEMBER's identity; output in $T/out
as() {
    local m=$1 key=$2
    shift 2
    "$bin/aulac" "$@" --coordinator "$addr" --tls-ca "$T/tls/ca.pem" --member "$m" \
        --key "$key" >"$T/out" 2>&1
}
expect_ok() { "$@" || { cat "$T/out" >&2; fail "expected success: $*"; }; }
expect_refused() {   # PATTERN cmd...: must fail and say PATTERN
    local pat=$1
    shift
    if "$@"; then cat "$T/out" >&2; fail "expected a refusal: $*"; fi
    grep -q -- "$pat" "$T/out" || { cat "$T/out" >&2; fail "the refusal does not say '$pat'"; }
}
proposal_of() { sed -n 's/^proposal \([0-9a-f]\{64\}\)$/\1/p' "$T/out" | head -1; }
# wait_line FILE PATTERN SECONDS: as soon as a line of FILE matches (inotify, not polling).
wait_line() {
    grep -q -m1 -- "$2" < <(timeout "$3" tail -n +1 -f "$1" 2>/dev/null) || true
    grep -q -- "$2" "$1"
}

start_coordinator
echo "   coordinator on $addr (TLS)"

step "uet is not a member yet: refused"
expect_refused "unknown member 'uet'" as uet "$T/keys/uet.key" member list

step "fpt proposes to add uet; one approval of two needed is not enough"
expect_ok as fpt "$T/keys/fpt.key" member propose-add --id uet \
    --organization "VNU University of Engineering and Technology" --roles member,researcher \
    --public-key "$T/keys/uet.pub" --reason "joins for the Vietnamese corpus"
p_add=$(proposal_of)
[ -n "$p_add" ] || { cat "$T/out"; fail "no proposal hash printed"; }
grep -q "state: open; 1 approval(s) of 2 needed" "$T/out" || { cat "$T/out"; fail "tally"; }
expect_refused "unknown member 'uet'" as uet "$T/keys/uet.key" member list
expect_refused "already counted" as fpt "$T/keys/fpt.key" vote --proposal "$p_add" --yes

step "vnpt approves: uet is added and its own key works at once"
expect_ok as vnpt "$T/keys/vnpt.key" vote --proposal "$p_add" --yes
grep -q "state: approved" "$T/out" || { cat "$T/out"; fail "not approved"; }
expect_refused "votes are closed" as hust "$T/keys/hust.key" vote --proposal "$p_add" --no
expect_ok as uet "$T/keys/uet.key" member list
grep -q "^uet " "$T/out" || { cat "$T/out"; fail "uet not in the roster"; }

step "uet's worker trains a round and its update is accepted"
# no other member runs a worker here, so nobody witnesses the ledger: no quorum to wait for
timeout 120 "$bin/aulac-worker" --coordinator "$addr" --member uet --key "$T/keys/uet.key" \
    --data "$T/corpus" --state-dir "$T/state-uet" --tls-ca "$T/tls/ca.pem" --threads 1 \
    --max-rounds 1 --eval-windows 2 --witness-quorum 0 >"$T/uet.log" 2>&1 || { tail "$T/uet.log"; fail "uet's worker"; }
grep -q "update accepted" "$T/uet.log" || { tail "$T/uet.log"; fail "uet's update"; }

step "vnpt rotates its key; with 4 members 3 approvals are needed: fpt and hust approve"
expect_ok as vnpt "$T/keys/vnpt.key" member propose-rotate --public-key "$T/newkeys/vnpt.pub" \
    --reason "yearly rotation"
p_rot=$(proposal_of)
expect_ok as vnpt "$T/keys/vnpt.key" member list        # the old key still works until approval
grep -q "1 approval(s) of 3 needed" "$T/out" || { cat "$T/out"; fail "rotation tally"; }
expect_ok as fpt "$T/keys/fpt.key" vote --proposal "$p_rot" --yes
grep -q "state: open" "$T/out" || { cat "$T/out"; fail "rotation approved too early"; }
expect_ok as hust "$T/keys/hust.key" vote --proposal "$p_rot" --yes
grep -q "state: approved" "$T/out" || { cat "$T/out"; fail "rotation not approved"; }
expect_refused "rotated out" as vnpt "$T/keys/vnpt.key" member list
expect_ok as vnpt "$T/newkeys/vnpt.key" member list
rc=0
timeout 30 "$bin/aulac-worker" --coordinator "$addr" --member vnpt --key "$T/keys/vnpt.key" \
    --data "$T/corpus" --state-dir "$T/state-vnpt" --tls-ca "$T/tls/ca.pem" --threads 1 \
    >"$T/vnpt.log" 2>&1 || rc=$?
[ $rc -eq 5 ] && grep -q "Join: PERMISSION_DENIED: .*rotated out.*Stopping (exit 5)" "$T/vnpt.log" ||
    { tail "$T/vnpt.log" >&2; fail "a worker with vnpt's old key exited $rc, expected 5 (key rotated out)"; }

step "hust's worker trains round 1; it is held (SIGSTOP) before its upload"
"$bin/aulac-worker" --coordinator "$addr" --member hust --key "$T/keys/hust.key" \
    --data "$T/corpus" --state-dir "$T/state-hust" --tls-ca "$T/tls/ca.pem" --threads 1 \
    --eval-windows 2 --witness-quorum 0 >"$T/hust.log" 2>&1 &
hust_pid=$!
pids+=($hust_pid)
wait_line "$T/hust.log" "round 1/3: .*training 60 steps" 60 || { cat "$T/hust.log"; fail "hust's worker did not train"; }
kill -STOP "$hust_pid"

step "fpt proposes to remove hust; hust does not vote on its own removal; uet approves"
expect_ok as fpt "$T/keys/fpt.key" member propose-remove --id hust --reason "left the alliance"
p_rm=$(proposal_of)
grep -q "1 approval(s) of 2 needed" "$T/out" || { cat "$T/out"; fail "removal tally"; }
expect_refused "own removal" as hust "$T/keys/hust.key" vote --proposal "$p_rm" --no
expect_ok as uet "$T/keys/uet.key" vote --proposal "$p_rm" --yes
grep -q "state: approved" "$T/out" || { cat "$T/out"; fail "removal not approved"; }
expect_refused "PERMISSION_DENIED: member 'hust' was removed" as hust "$T/keys/hust.key" member list

step "hust's worker goes on: its upload is refused once, and it stops with exit 5"
kill -CONT "$hust_pid"
for _ in $(seq 300); do kill -0 "$hust_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$hust_pid" 2>/dev/null; then
    tail "$T/hust.log" >&2
    fail "the removed member's worker still runs 30 s after its refused upload"
fi
rc=0; wait "$hust_pid" || rc=$?
[ $rc -eq 5 ] || { tail "$T/hust.log" >&2; fail "hust's worker exited $rc, expected 5 (not in the roster)"; }
grep -q "SubmitUpdate: PERMISSION_DENIED: member 'hust' was removed" "$T/hust.log" &&
    grep -q "no longer in the alliance roster.*Stopping (exit 5)" "$T/hust.log" ||
    { tail "$T/hust.log" >&2; fail "hust's worker does not say it left the roster"; }
if grep -q "update accepted" "$T/hust.log"; then fail "hust's upload went through before its removal"; fi

step "a proposal refused: the one other voter says no"
expect_ok as uet "$T/keys/uet.key" member propose-remove --id fpt --reason "test of a refusal"
p_no=$(proposal_of)
expect_ok as vnpt "$T/newkeys/vnpt.key" vote --proposal "$p_no" --no
grep -q "state: rejected" "$T/out" || { cat "$T/out"; fail "not rejected"; }

step "restart: the roster is rebuilt from the ledger"
stop_coordinator
start_coordinator
grep -q "roster: 3 member(s).*rebuilt from the ledger" "$T/coordinator.log" || fail "no rebuild"
expect_refused "was removed" as hust "$T/keys/hust.key" member list
expect_refused "rotated out" as vnpt "$T/keys/vnpt.key" member list
expect_ok as vnpt "$T/newkeys/vnpt.key" member list
expect_ok as uet "$T/keys/uet.key" member list --all
# the 4 roster proposals and the experiment the operator filed (--policy)
[ "$(grep -c '^proposal ' "$T/out")" = 5 ] || { cat "$T/out"; fail "expected 5 proposals"; }
grep -q "state: rejected" "$T/out" || { cat "$T/out"; fail "the rejection was not rebuilt"; }

step "a world-readable key file is refused"
cp "$T/keys/fpt.key" "$T/fpt-open.key"
chmod 644 "$T/fpt-open.key"
expect_refused "chmod 600" as fpt "$T/fpt-open.key" member list

step "a client trusting another CA cannot connect"
if "$bin/aulac" member list --coordinator "$addr" --tls-ca "$T/othertls/ca.pem" --member fpt \
    --key "$T/keys/fpt.key" >"$T/out" 2>&1; then fail "connected through the wrong CA"; fi
grep -q "UNAVAILABLE" "$T/out" || { cat "$T/out"; fail "expected UNAVAILABLE"; }

step "the ledger records every proposal, vote and change, and verifies"
stop_coordinator
"$bin/aulac" ledger show --data-dir "$T/data" >"$T/ledger.txt"
for want in "roster change proposed: fpt proposes to add uet" "vote: vnpt votes yes" \
    "member added: uet" "key rotated: vnpt" "member removed: hust" "vote: vnpt votes no" \
    "roster change proposed: uet proposes to remove fpt"; do
    grep -q "$want" "$T/ledger.txt" || { cat "$T/ledger.txt"; fail "ledger lacks '$want'"; }
done
"$bin/aulac" ledger verify --data-dir "$T/data" >"$T/verify.txt" || { cat "$T/verify.txt"; fail "ledger verify"; }
grep -q "4 roster proposal(s), [1-9][0-9]* vote(s) (3 roster change(s) replayed)" "$T/verify.txt" ||
    { cat "$T/verify.txt"; fail "verify did not re-check the proposals and votes"; }
# The removed member's one refused upload is recorded; no retry added more.
n=$(grep -c "update rejected: hust, .*request authentication failed: member 'hust' was removed" \
    "$T/ledger.txt" || true)
[ "$n" -eq 1 ] || { grep "update rejected" "$T/ledger.txt" >&2; fail "$n refused uploads of hust in the ledger, expected 1"; }
echo "trust_governance: ok"
