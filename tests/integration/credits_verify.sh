#!/usr/bin/env bash
# Credit, recomputed by someone else: a three-member run whose policy measures tokens,
# alignment, loo and shapley on an evaluation set; then `aulac credits verify` on a copy
# of the coordinator's data directory matches every round and the credits, and so does
# `credits verify --export` on what `ledger export --payloads` wrote; a payload with one
# flipped byte makes it fail naming the round and the member, and so does a deleted one
# (named missing). `aulac ledger replay` rebuilds every round's model from round 0 on the
# same copy and export, and names round 2 when one byte of a payload of round 2, or the
# model hash round 2's round_closed recorded, is altered.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_corpora
make_alliance alpha beta gamma
LOCAL_STEPS=8 write_policy 3 alpha beta gamma

# The evaluation set: text no member trains on, pinned by its BLAKE2b-256, where the
# coordinator looks by default (DATA_DIR/evalsets/<name>).
mkdir -p "$T/coord/evalsets"
cat >"$T/coord/evalsets/eval-vi.txt" <<'TEXT'
Hom nay troi dep, chung toi cung nhau di dao quanh ho Hoan Kiem va ngam nhung hang cay xanh.
Lien minh Au Lac huan luyen mot mo hinh ngon ngu chung ma khong chia se du lieu cua tung thanh vien.
Moi vong huan luyen, dieu phoi vien tong hop cac cap nhat va ghi lai dong gop cua tung thanh vien vao so cai.
Bat ky ai giu so cai, cac goi cap nhat va tap danh gia deu co the tinh lai diem dong gop den chu so cuoi cung.
TEXT
hash=$(b2sum -l 256 "$T/coord/evalsets/eval-vi.txt" | cut -d' ' -f1)
cat >>"$T/policy.yaml" <<YAML
contribution:
  measures: [tokens, alignment, loo, shapley]
  evaluation_set: { name: eval-vi.txt, blake2b: $hash, windows: 8 }
  shapley: { budget: 64 }
YAML
"$BIN/aulac" policy check "$T/policy.yaml" >/dev/null || fail "the policy does not check"

start_coordinator
pids=()
for m in alpha beta gamma; do start_worker "$m"; pids+=($LAST_PID); done
for i in 0 1 2; do
    rc=0; wait_pid "${pids[$i]}" 300 || rc=$?
    [ $rc -eq 0 ] || fail "worker $i exited $rc"
done
kill "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
n_scores=$("$BIN/aulac" ledger show --data-dir "$T/coord" --json | grep -c '"type":"contribution_scores"' || true)
[ "$n_scores" -eq 3 ] || fail "expected 3 contribution_scores entries, got $n_scores"

# 1. A copy of the data directory: every round and the credits match.
cp -a "$T/coord" "$T/copy"
rc=0; "$BIN/aulac" credits verify --data-dir "$T/copy" >"$T/verify.txt" 2>"$T/verify.err" || rc=$?
cat "$T/verify.txt"
[ $rc -eq 0 ] || fail "credits verify --data-dir exited $rc"
for r in 1 2 3; do
    grep -q "^round $r: match (model .* rebuilt bit for bit; tokens alignment exact; loo shapley within tolerance" \
        "$T/verify.txt" || fail "round $r does not match"
done
grep -q "^credits: match" "$T/verify.txt" || fail "the credits do not match"
grep -q "^credits verify: OK: 1 experiment(s), 3 round(s) and 1 credits entry recomputed" \
    "$T/verify.txt" || fail "no OK summary"

# 2. An export, verified elsewhere with the evaluation set given as a file.
"$BIN/aulac" ledger export --data-dir "$T/copy" --payloads "$T/export" 2>"$T/export.err" \
    || fail "ledger export --payloads: $(cat "$T/export.err")"
cat "$T/export.err"
grep -q "9 payload(s) to $T/export/payloads; 0 missing" "$T/export.err" \
    || fail "the export did not write the 9 payloads"
[ "$(ls "$T/export/payloads" | wc -l)" -eq 9 ] || fail "expected 9 payload files"
cmp <("$BIN/aulac" ledger export --data-dir "$T/copy") "$T/export/entries.jsonl" \
    || fail "entries.jsonl is not what ledger export prints"
cp "$T/copy/evalsets/eval-vi.txt" "$T/eval-copy.txt"
rc=0; "$BIN/aulac" credits verify --export "$T/export" --eval-set "$T/eval-copy.txt" \
    >"$T/verify-export.txt" 2>&1 || rc=$?
cat "$T/verify-export.txt"
[ $rc -eq 0 ] || fail "credits verify --export exited $rc"
grep -q "^ledger export .*: OK, " "$T/verify-export.txt" || fail "the export was not audited"
[ "$(grep -c '^round [123]: match' "$T/verify-export.txt")" -eq 3 ] || fail "export: rounds"

# ledger replay: the models alone, from the data directory and from the export.
rc=0; "$BIN/aulac" ledger replay --data-dir "$T/copy" >"$T/replay.txt" 2>"$T/replay.err" || rc=$?
cat "$T/replay.txt"
[ $rc -eq 0 ] || fail "ledger replay --data-dir exited $rc"
[ "$(grep -c '^round [123]: match (aggregate .* and model .* rebuilt bit for bit)' "$T/replay.txt")" -eq 3 ] \
    || fail "ledger replay: not every round matches"
grep -q "^ledger replay: OK: 1 experiment(s), 3 round(s): 3 model(s) rebuilt from round 0" \
    "$T/replay.txt" || fail "ledger replay: no OK summary"
grep -q "round 1 of" "$T/replay.err" || fail "ledger replay: no progress on stderr"
rc=0; "$BIN/aulac" ledger replay --export "$T/export" >"$T/replay-export.txt" 2>&1 || rc=$?
[ $rc -eq 0 ] || { cat "$T/replay-export.txt"; fail "ledger replay --export exited $rc"; }
grep -q "^ledger replay: OK: " "$T/replay-export.txt" || fail "ledger replay --export: no OK"
# one recorded hash altered: round 2's model_hash in the export's entry bytes (leaf hash
# recomputed; the signed checkpoints no longer match, and the replay names the round)
cp -a "$T/export" "$T/export-hash"
python3 - "$T/export-hash/entries.jsonl" <<'PY'
import base64, hashlib, json, sys
path = sys.argv[1]
lines = open(path).read().splitlines()
for i, line in enumerate(lines):
    o = json.loads(line)
    if o.get("entry", {}).get("type") == "round_closed" and o["entry"]["round"] == 2:
        b = bytearray(base64.b64decode(o["bytes"]))
        h = bytes.fromhex(o["entry"]["model_hash"])
        at = bytes(b).index(h)
        b[at + 5] ^= 0x01
        o["bytes"] = base64.b64encode(bytes(b)).decode()
        o["leaf_hash"] = hashlib.sha256(b"\0" + bytes(b)).hexdigest()
        lines[i] = json.dumps(o, separators=(",", ":"))
        break
else:
    sys.exit("no round_closed of round 2")
open(path, "w").write("\n".join(lines) + "\n")
PY
rc=0; "$BIN/aulac" ledger replay --export "$T/export-hash" >"$T/replay-hash.txt" 2>&1 || rc=$?
cat "$T/replay-hash.txt"
[ $rc -eq 1 ] || fail "ledger replay on an altered model hash exited $rc, expected 1"
grep -q "^round 1: match" "$T/replay-hash.txt" || fail "replay: round 1 should still match"
grep -q "^round 2: MISMATCH: the rebuilt model hashes to .*, round_closed says" "$T/replay-hash.txt" \
    || fail "replay: the altered model hash of round 2 is not named"
grep -q "^ledger replay: FAILED: the first round that differs is round 2 of " "$T/replay-hash.txt" \
    || fail "replay: the first differing round is not named"
grep -q "FAILED its audit" "$T/replay-hash.txt" || fail "replay: the audit failure is not said"
rm -rf "$T/export-hash"

# The payload of a member in a round, from update_accepted.
payload_of() {   # ROUND MEMBER
    "$BIN/aulac" ledger show --data-dir "$T/copy" --json | python3 -c '
import json, sys
r, m = int(sys.argv[1]), sys.argv[2]
for line in sys.stdin:
    e = json.loads(line)
    if e["type"] == "update_accepted" and e["round"] == r and e["member"] == m:
        print(e["payload_hash"])' "$1" "$2"
}

# 3. One flipped byte in beta's payload of round 2 (in the export).
h=$(payload_of 2 beta)
[ -n "$h" ] || fail "no update of beta in round 2"
f="$T/export/payloads/$h.bin"
python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x10
open(p, "wb").write(bytes(b))
PY
rc=0; "$BIN/aulac" credits verify --export "$T/export" --eval-set "$T/eval-copy.txt" \
    >"$T/verify-flip.txt" 2>&1 || rc=$?
cat "$T/verify-flip.txt"
[ $rc -eq 1 ] || fail "credits verify on an altered payload exited $rc, expected 1"
grep -q "^round 2: the payload of beta is altered: it hashes to .*, update_accepted says ${h:0:16}" \
    "$T/verify-flip.txt" || fail "the altered payload is not named with its round and member"
grep -q "^round 1: match" "$T/verify-flip.txt" || fail "round 1 should still match"
grep -q "^credits verify: FAILED: .*1 altered" "$T/verify-flip.txt" || fail "no FAILED summary"
rc=0; "$BIN/aulac" ledger replay --export "$T/export" >"$T/replay-flip.txt" 2>&1 || rc=$?
cat "$T/replay-flip.txt"
[ $rc -eq 1 ] || fail "ledger replay on an altered payload exited $rc, expected 1"
grep -q "^round 2: the payload of beta is altered" "$T/replay-flip.txt" \
    || fail "replay: the altered payload is not named"
grep -q "^ledger replay: FAILED: the first round that differs is round 2 of .*1 altered" \
    "$T/replay-flip.txt" || fail "replay: the first differing round is not named"

# 4. gamma's payload of round 3 deleted (in the data directory's copy).
h=$(payload_of 3 gamma)
[ -n "$h" ] || fail "no update of gamma in round 3"
exp_dir=$(dirname "$(find "$T/copy/experiments" -name "$h.bin")")
rm "$exp_dir/$h.bin"
rc=0; "$BIN/aulac" credits verify --data-dir "$T/copy" >"$T/verify-missing.txt" 2>&1 || rc=$?
cat "$T/verify-missing.txt"
[ $rc -eq 1 ] || fail "credits verify on a missing payload exited $rc, expected 1"
grep -q "^round 3: the payload of gamma (${h:0:16}…) is missing" "$T/verify-missing.txt" \
    || fail "the missing payload is not named with its round and member"
grep -q "^credits verify: FAILED: .*1 payload(s) missing" "$T/verify-missing.txt" \
    || fail "no FAILED summary"
# the export says what it could not copy
"$BIN/aulac" ledger export --data-dir "$T/copy" --payloads "$T/export2" 2>"$T/export2.err" \
    || fail "ledger export --payloads with a missing payload failed"
grep -q "8 payload(s) to .*; 1 missing" "$T/export2.err" || fail "the export did not count the missing payload"

# Usage.
rc=0; "$BIN/aulac" credits verify >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "credits verify without a source exited $rc, expected 2"
rc=0; "$BIN/aulac" ledger export --coordinator 127.0.0.1:1 --insecure --payloads "$T/x" \
    >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "ledger export --payloads over RPC exited $rc, expected 2"
"$BIN/aulac" credits verify --help | grep -q "within" || fail "credits verify --help"
"$BIN/aulac" ledger replay --help | grep -q "first round that differs" || fail "ledger replay --help"
rc=0; "$BIN/aulac" ledger replay >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "ledger replay without a source exited $rc, expected 2"
note "ok: credits verify and ledger replay match on a copy and on an export; an altered and a missing payload, and an altered model hash, are named"
