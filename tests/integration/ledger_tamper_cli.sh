#!/usr/bin/env bash
# Tamper test through the CLI: a real coordinator and two workers write a ledger; one
# byte of one stored entry is then changed inside the LMDB file. `aulac ledger verify`
# must fail and name that index, from the data directory and over RPC; its inclusion
# proof must fail; and every ledger subcommand refuses bad arguments with exit 2.
source "$(dirname "$0")/ledger_lib.bash"

say "a tiny alliance: fpt and vnpt, 6 rounds"
make_alliance fpt vnpt
start_coordinator
run_worker fpt "$T/state/fpt" >"$T/fpt.rc" &
PIDS+=($!)
wpid=$!
rc_vnpt=$(run_worker vnpt "$T/state/vnpt")
wait "$wpid"
[ "$rc_vnpt" = 0 ] && [ "$(cat "$T/fpt.rc")" = 0 ] || fail "a worker failed (fpt $(cat "$T/fpt.rc"), vnpt $rc_vnpt)"
grep -q "is included in the signed tree" "$T/logs/fpt.log" || fail "fpt checked no inclusion proof"
D="$T/coordinator"

say "verify, proof, consistency and export of the untouched ledger"
expect_rc 0 "$AULAC" ledger verify --data-dir "$D"
expect_out "OK"
expect_out "signed checkpoint(s), each signed by aulac/ledger-test"
expect_rc 0 "$AULAC" ledger verify --coordinator "$ADDR" --insecure
expect_out "OK"
expect_rc 0 "$AULAC" ledger consistency --coordinator "$ADDR" --insecure \
    --checkpoint "$T/state/fpt/ledger-checkpoint"
expect_out "verified"
"$AULAC" ledger export --data-dir "$D" >"$T/export.jsonl"
"$AULAC" ledger export --coordinator "$ADDR" --insecure >"$T/export-rpc.jsonl"
cmp -s "$T/export.jsonl" "$T/export-rpc.jsonl" || fail "export differs between --data-dir and RPC"
expect_rc 0 "$AULAC" ledger proof --coordinator "$ADDR" --insecure --index 1 --json
expect_out '"verified":true'
expect_rc 0 "$AULAC" ledger show --coordinator "$ADDR" --insecure --from 0 --to 1
expect_out "genesis"
stop_coordinator

# the first update_accepted entry: its index and exact bytes
read -r K B64 < <(python3 - "$T/export.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o.get("entry", {}).get("type") == "update_accepted":
        print(o["index"], o["bytes"]); break
PY
)
[ -n "$K" ] || fail "no update_accepted entry in the ledger"
expect_rc 0 "$AULAC" ledger proof --data-dir "$D" --index "$K"
expect_out "verified: entry $K"

say "change one byte of entry $K in data.mdb"
python3 - "$D/data.mdb" "$B64" <<'PY'
import base64, sys
path, entry = sys.argv[1], base64.b64decode(sys.argv[2])
data = bytearray(open(path, "rb").read())
hits, at = 0, data.find(entry)
while at >= 0:               # stale copies of the page may hold the bytes too
    data[at + len(entry) // 2] ^= 0x01
    hits += 1
    at = data.find(entry, at + 1)
assert hits > 0, "entry bytes not found in data.mdb"
open(path, "r+b").write(data)
print("  changed %d copy(ies) of the entry's %d bytes" % (hits, len(entry)))
PY

expect_rc 1 "$AULAC" ledger verify --data-dir "$D"
expect_out "FAILED at entry $K:"
echo "  data dir: $OUT"
expect_rc 1 "$AULAC" ledger proof --data-dir "$D" --index "$K"
expect_out "FAILED"
start_coordinator
expect_rc 1 "$AULAC" ledger verify --coordinator "$ADDR" --insecure
expect_out "FAILED at entry $K:"
echo "  over RPC: $OUT"

say "bad arguments get exit 2 and a reason"
expect_rc 0 "$AULAC" ledger --help
expect_out "aulac ledger verify"
for sub in show verify checkpoint proof consistency export; do
    expect_rc 0 "$AULAC" ledger "$sub" --help
done
expect_rc 2 "$AULAC" ledger frobnicate
expect_out "unknown subcommand 'frobnicate'"
expect_rc 2 "$AULAC" ledger verify
expect_out "needs one source"
expect_rc 2 "$AULAC" ledger verify --data-dir "$D" --coordinator "$ADDR"
expect_out "needs one source"
expect_rc 2 "$AULAC" ledger verify --coordinator "$ADDR"
expect_out "--tls-ca"
expect_rc 2 "$AULAC" ledger proof --data-dir "$D"
expect_out "needs --index"
expect_rc 2 "$AULAC" ledger proof --data-dir "$D" --index 3x
expect_out "non-negative integer"
expect_rc 2 "$AULAC" ledger show --data-dir "$D" --from 5 --to 2
expect_out "--from 5 is after --to 2"
expect_rc 2 "$AULAC" ledger consistency --data-dir "$D"
expect_out "--from-size M or --checkpoint FILE"
expect_rc 2 "$AULAC" ledger show --data-dir "$D" --bogus
expect_out "unknown option '--bogus'"
expect_rc 2 "$AULAC" ledger show --data-dir
expect_out "needs a value"
expect_rc 1 "$AULAC" ledger proof --data-dir "$D" --index 999999
expect_out "not in the signed tree"
expect_rc 1 "$AULAC" ledger consistency --data-dir "$D" --from-size 999999
expect_out "larger than the newer tree"
expect_rc 1 "$AULAC" ledger checkpoint --data-dir "$D" --size 2   # thinned: 1 (genesis) is the first of its bucket
expect_out "no checkpoint of tree size 2"
expect_rc 1 "$AULAC" ledger verify --data-dir "$T/nonexistent"
expect_out "does not exist"
expect_rc 1 "$AULAC" ledger verify --data-dir "$D" --key "$T/keys/fpt.pub"
expect_out "FAILED"
stop_coordinator
say "ok"
