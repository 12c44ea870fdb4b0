#!/usr/bin/env bash
# A member notices a rewritten ledger. The worker keeps the last checkpoint it saw in
# its state directory; the coordinator's data directory is then rolled back to a
# backup, which drops the last entries. The worker must stop with exit 4 and say
# "the coordinator's ledger at size N is not an extension of the one seen at size M:
# history was rewritten", both when the log is shorter than what it saw and when the
# coordinator has since grown a different history past it (a fork).
source "$(dirname "$0")/ledger_lib.bash"

size_of() { sed -n 2p "$1"; }   # tree size line of a checkpoint note
latest() {                      # the coordinator's latest signed tree size
    "$AULAC" ledger checkpoint --coordinator "$ADDR" --insecure | sed -n 2p
}
settle() {                      # until the round close (timer thread) has landed
    local a b
    a=$(latest)
    for _ in $(seq 50); do
        sleep 0.2
        b=$(latest)
        [ "$a" = "$b" ] && return 0
        a=$b
    done
}

say "a one-member alliance (fpt); round 1"
make_alliance fpt
S="$T/state/fpt"
start_coordinator
[ "$(run_worker fpt "$S" --max-rounds 1)" = 0 ] || fail "round 1 failed"
settle
m1=$(size_of "$S/ledger-checkpoint")
stop_coordinator
cp -a "$T/coordinator" "$T/backup"         # the operator's backup, after round 1
cp -a "$S" "$T/state-after-round-1"

say "round 2: the worker checks the new checkpoint extends the one it kept (size $m1)"
start_coordinator
[ "$(run_worker fpt "$S" --max-rounds 1)" = 0 ] || fail "round 2 failed"
settle
m2=$(size_of "$S/ledger-checkpoint")
[ "$m2" -gt "$m1" ] || fail "the kept checkpoint did not advance ($m1 -> $m2)"
grep -q "is included in the signed tree of size $m2, consistent with every checkpoint seen" \
    "$T/logs/fpt.log" || fail "no inclusion and consistency check logged"
expect_rc 0 "$AULAC" ledger consistency --coordinator "$ADDR" --insecure \
    --checkpoint "$T/state-after-round-1/ledger-checkpoint"
expect_out "verified: the ledger of size $(latest) extends the one of size $m1"
expect_rc 0 "$AULAC" ledger consistency --coordinator "$ADDR" --insecure --from-size 2
expect_out "verified: the ledger of size $(latest) extends the one of size 2"
stop_coordinator

say "roll the coordinator back to the backup: the entries after round 1 are gone"
rm -rf "$T/coordinator"
cp -a "$T/backup" "$T/coordinator"
start_coordinator
back=$(latest)
[ "$back" -lt "$m2" ] || fail "the backup is not shorter ($back) than what the worker saw ($m2)"
expect_rc 1 "$AULAC" ledger consistency --coordinator "$ADDR" --insecure --checkpoint "$S/ledger-checkpoint"
expect_out "FAILED"
expect_out "is not an extension of the one seen at size $m2"
rc=$(run_worker fpt "$S" --max-rounds 1)
[ "$rc" = 4 ] || fail "the worker exited $rc after the rollback, expected 4"
grep -q "the coordinator's ledger at size $back is not an extension of the one seen at size $m2: history was rewritten" \
    "$T/logs/fpt.log" || fail "the worker did not say the history was rewritten"
echo "  $(grep -o "the coordinator's ledger at size.*" "$T/logs/fpt.log" | tail -1)"
[ "$(size_of "$S/ledger-checkpoint")" = "$m2" ] || fail "the kept checkpoint was replaced"

say "a fork: the rolled-back coordinator accepts another round 2 from the older state"
cp -a "$T/state-after-round-1" "$T/state/fork"
[ "$(run_worker fpt "$T/state/fork" --max-rounds 1)" = 0 ] || fail "the forked round 2 failed"
settle
m3=$(latest)
[ "$m3" -ge "$m2" ] || fail "the fork did not reach size $m2 ($m3)"
rc=$(run_worker fpt "$S" --max-rounds 1)
[ "$rc" = 4 ] || fail "the worker exited $rc on the forked ledger, expected 4"
grep -q "the coordinator's ledger at size $m3 is not an extension of the one seen at size $m2: history was rewritten" \
    "$T/logs/fpt.log" || fail "the worker did not notice the fork"
echo "  $(grep -o "the coordinator's ledger at size.*" "$T/logs/fpt.log" | tail -1)"
stop_coordinator

say "a checkpoint signed by another coordinator key is refused"
"$AULAC" keygen --id coordinator --dir "$T/other" >/dev/null
rm -f "$T/port"
"$BUILD/aulac-coordinator" --data-dir "$T/coordinator2" --key "$T/other/coordinator.key" \
    --roster "$T/roster.yaml" --policy "$T/policy.yaml" --operator-key "$T/keys/$OPERATOR.key" \
    --listen 127.0.0.1:0 --port-file "$T/port" --insecure >>"$T/logs/coordinator.log" 2>&1 &
COORD_PID=$!
PIDS+=("$COORD_PID")
for _ in $(seq 150); do [ -s "$T/port" ] && break; sleep 0.1; done
ADDR="127.0.0.1:$(cat "$T/port")"
rc=$(run_worker fpt "$T/state-after-round-1" --max-rounds 1)
[ "$rc" = 4 ] || fail "the worker exited $rc against another coordinator key, expected 4"
grep -q "is not signed by this coordinator" "$T/logs/fpt.log" || fail "no key refusal logged"
stop_coordinator
say "ok"
