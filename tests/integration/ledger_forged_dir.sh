#!/usr/bin/env bash
# Issue 10, item 3: a data directory rewritten without the coordinator's key. A real
# coordinator and two workers (vnpt, hust) write two rounds; ledger_forge.py then
# credits vnpt's first accepted update to hust, recomputes every leaf and subtree
# hash, and deletes the checkpoints that cover it, or all of them, or (as only the
# coordinator's key holder could) re-signs every checkpoint over the forged log.
#   - `aulac ledger verify` fails (exit 1), naming the first entry no checkpoint
#     covers and the forged entry, whose envelope signature does not verify;
#   - the coordinator refuses to start on the first two (exit 1, the entries named)
#     and leaves data.mdb as it was, instead of signing a checkpoint over the forgery;
#   - the re-signed one passes every hash and checkpoint, and still fails verify, from
#     the data directory and over RPC, on the member's signature.
source "$(dirname "$0")/ledger_lib.bash"
command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null ||
    fail "mdb_dump / mdb_load missing (Debian package lmdb-utils; scripts/deps.sh installs it)"
FORGE="python3 $(dirname "$0")/ledger_forge.py"

say "vnpt and hust, two rounds"
make_alliance vnpt hust
start_coordinator
run_worker vnpt "$T/state/vnpt" --max-rounds 2 >"$T/vnpt.rc" &
PIDS+=($!)
wpid=$!
rc_hust=$(run_worker hust "$T/state/hust" --max-rounds 2)
wait "$wpid"
[ "$rc_hust" = 0 ] && [ "$(cat "$T/vnpt.rc")" = 0 ] || fail "a worker failed (vnpt $(cat "$T/vnpt.rc"), hust $rc_hust)"
stop_coordinator
D="$T/coordinator"
expect_rc 0 "$AULAC" ledger verify --data-dir "$D"
expect_out "OK"
expect_out "the latest covers all"
expect_out "member signatures re-checked against the roster of their moment: 4 update envelope(s)"

# refuse_start DIR: the coordinator must exit non-zero (not keep serving) on DIR,
# and write nothing there.
refuse_start() {
    local dir=$1 rc=0 before
    before=$(sha256sum "$dir/data.mdb")
    timeout 60 "$BUILD/aulac-coordinator" --data-dir "$dir" --key "$T/keys/coordinator.key" \
        --roster "$T/roster.yaml" --policy "$T/policy.yaml" --operator-key "$T/keys/$OPERATOR.key" \
        --listen 127.0.0.1:0 --insecure >"$T/logs/refused.log" 2>&1 || rc=$?
    [ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "the coordinator started on $dir (exit $rc)"
    grep -q "refusing to start on $dir" "$T/logs/refused.log" || fail "no refusal logged: $(cat "$T/logs/refused.log")"
    [ "$(sha256sum "$dir/data.mdb")" = "$before" ] || fail "the coordinator wrote to $dir"
    echo "  coordinator: exit $rc; $(grep -o 'refusing to sign checkpoints over this log: entries [0-9.]* are covered by no signed checkpoint ([^)]*)' "$T/logs/refused.log")"
}

for mode in covering all; do
    say "forgery with the checkpoints deleted: $mode"
    F="$T/forged-$mode"
    K=$($FORGE "$D" "$F" --from vnpt --to hust --checkpoints "$mode")
    if [ "$mode" = covering ]; then
        first=$("$AULAC" ledger checkpoint --data-dir "$F" | sed -n 2p)
    else
        first=0
    fi
    expect_rc 1 "$AULAC" ledger verify --data-dir "$F"
    expect_out "FAILED at entry $first: entries $first.."
    expect_out "are covered by no signed checkpoint"
    expect_out "FAILED at entry $K: the update envelope of hust for"
    expect_out "does not verify with hust's key of that moment"
    echo "$OUT" | sed 's/^/  /'
    refuse_start "$F"
    expect_rc 1 "$AULAC" ledger verify --data-dir "$F"   # still the same, nothing signed
    expect_out "are covered by no signed checkpoint"
done

say "forgery re-signed with the coordinator's key: every hash and checkpoint agrees"
F="$T/forged-resign"
K=$($FORGE "$D" "$F" --from vnpt --to hust --checkpoints resign --key "$T/keys/coordinator.key")
expect_rc 1 "$AULAC" ledger verify --data-dir "$F"
expect_out "FAILED at entry $K: the update envelope of hust for"
echo "$OUT" | sed 's/^/  /'
start_coordinator "$F"
expect_rc 1 "$AULAC" ledger verify --coordinator "$ADDR" --insecure
expect_out "FAILED at entry $K: the update envelope of hust for"
echo "  over RPC: $OUT"
stop_coordinator
say "ok"
