#!/usr/bin/env bash
# A split view is caught by the members' cosignatures (ledger/README.md "Witnesses").
# Two coordinators with the same key start from copies of one data directory and then
# diverge: fpt works with A, vnpt with B. Each sees a ledger that extends what it saw,
# so neither worker nor `aulac ledger verify` notices anything. Witnessing catches it:
# when vnpt comes to A, it sends A the checkpoint it cosigned on B; from then on A
# serves that cosignature to everyone, and fpt (which saw nothing wrong), hust (a
# member joining later, with no checkpoint of its own) and an auditor (online, and
# offline from a copy of B's data directory) all report the split view: who cosigned
# which root. Last, a member joining a coordinator that shows it a ledger no other
# member has cosigned refuses it (the witness quorum).
source "$(dirname "$0")/ledger_lib.bash"

witness() { "$AULAC" witness check "$@"; }

say "an alliance of fpt, vnpt and hust; rounds close at a 4 s deadline"
make_alliance fpt vnpt hust
sed -i -e 's/^  round_deadline_s: .*/  round_deadline_s: 4/' -e 's/^  grace_s: .*/  grace_s: 1/' \
    "$T/policy.yaml"
start_coordinator

say "round 1: fpt and vnpt start together; each waits for the other to witness the ledger"
run_worker fpt "$T/state/fpt" --max-rounds 1 >"$T/fpt.rc" &
rc_vnpt=$(run_worker vnpt "$T/state/vnpt" --max-rounds 1)
wait $!
[ "$(cat "$T/fpt.rc")" = 0 ] && [ "$rc_vnpt" = 0 ] || fail "round 1 failed (fpt $(cat "$T/fpt.rc"), vnpt $rc_vnpt)"
for m in fpt vnpt; do
    [ -s "$T/state/$m/ledger-cosigned" ] || fail "$m kept no cosigned checkpoint"
    grep -q "^— aulac/ledger-test/witness/$m " "$T/state/$m/ledger-cosigned" \
        || fail "$m's kept checkpoint carries no cosignature line by $m"
done
expect_rc 0 witness --coordinator "$ADDR" --insecure --quorum 2
expect_out "OK: 2 witness(es) cosigned checkpoints consistent with it"
echo "  $(grep "^OK" <<<"$OUT")"
stop_coordinator

say "the split: coordinators A and B, same key, from copies of the data directory"
cp -a "$T/coordinator" "$T/B"
start_coordinator "$T/coordinator"; A_PID=$COORD_PID; A=$ADDR
start_coordinator "$T/B"; B_PID=$COORD_PID; B=$ADDR
ADDR=$A
# two rounds each: the second is trained on a ledger holding the first one's entries,
# which differ between A (fpt's update) and B (vnpt's), and that is what each cosigns
[ "$(run_worker fpt "$T/state/fpt" --max-rounds 2)" = 0 ] || fail "fpt's rounds on A failed"
ADDR=$B
[ "$(run_worker vnpt "$T/state/vnpt" --max-rounds 2)" = 0 ] || fail "vnpt's rounds on B failed"
ADDR=$A
cos_a=$(sed -n 2p "$T/state/fpt/ledger-cosigned")
cos_b=$(sed -n 2p "$T/state/vnpt/ledger-cosigned")

say "what the checks without witnesses say: nothing is wrong"
expect_rc 0 "$AULAC" ledger verify --coordinator "$A" --insecure
expect_rc 0 "$AULAC" ledger verify --coordinator "$B" --insecure
echo "  both workers exited 0; ledger verify: OK on A and on B"
echo "  fpt cosigned A's ledger at size $cos_a, vnpt cosigned B's at size $cos_b"
COORD_PID=$B_PID; stop_coordinator; COORD_PID=$A_PID

say "vnpt comes to A: it stops (its own check) and A keeps what it cosigned on B"
rc=$(run_worker vnpt "$T/state/vnpt" --max-rounds 1)
[ "$rc" = 4 ] || fail "vnpt exited $rc on A, expected 4"
grep -q "vnpt cosigned a checkpoint of size .* that this ledger does not hold: a split view" \
    "$T/logs/coordinator.log" || fail "A did not log the cosignature of another history"

say "fpt, which saw nothing wrong, catches the split view at its next check"
rc=$(run_worker fpt "$T/state/fpt" --max-rounds 1)
[ "$rc" = 4 ] || fail "fpt exited $rc after the split, expected 4"
grep -q "split view: vnpt cosigned the ledger at size $cos_b, root .*, which is not the same history as the checkpoint shown here" \
    "$T/logs/fpt.log" || fail "fpt did not report vnpt's cosignature as a split view"
echo "  $(grep -o "split view: .*" "$T/logs/fpt.log" | tail -1 | cut -c1-220)"

say "hust joins A later, with no checkpoint of its own: it refuses too"
rc=$(run_worker hust "$T/state/hust" --max-rounds 1 --witness-wait 5)
[ "$rc" = 4 ] || fail "hust exited $rc, expected 4"
grep -q "split view: vnpt cosigned" "$T/logs/hust.log" || fail "hust did not report the split view"

say "an auditor: online against A, and offline from B's data directory with fpt's cosignature"
expect_rc 1 witness --coordinator "$A" --insecure
expect_out "FAILED: split view: vnpt cosigned the ledger at size $cos_b"
expect_rc 1 witness --data-dir "$T/B" --cosigned "$T/state/fpt/ledger-cosigned"
expect_out "FAILED: split view:"
expect_out "fpt"
echo "  $(grep "^FAILED" <<<"$OUT" | cut -c1-200)"
stop_coordinator

say "a private ledger: a coordinator with the same key on a fresh directory; no one witnessed it"
start_coordinator "$T/private"
rc=$(run_worker hust "$T/state/hust-private" --max-rounds 1 --witness-wait 3)
[ "$rc" = 4 ] || fail "hust accepted an unwitnessed ledger (exit $rc), expected 4"
grep -q "is not witnessed: this member has no checkpoint of its own to compare with, and after 3 s 0 of the 1 other member(s) needed" \
    "$T/logs/hust.log" || fail "hust did not say the ledger is not witnessed"
expect_rc 1 witness --coordinator "$ADDR" --insecure --quorum 2
expect_out "FAILED: only 1 witness(es)"
stop_coordinator
say "ok"
