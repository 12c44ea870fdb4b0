#!/usr/bin/env bash
# The JSON API through the real coordinator's HTTP server (coordinator/HTTP.md, "API"):
# GET /api/v1/status answers exactly what `aulac status --json` prints for the same
# state (before any round, and once the experiment has finished), every endpoint answers
# JSON that python's json module parses with the documented top-level fields, an unknown
# path is 404 JSON and a bad query 400 JSON.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_corpora
make_alliance alpha beta
LOCAL_STEPS=4 write_policy 2 alpha beta
start_coordinator --http 127.0.0.1:0
for _ in $(seq 100); do grep -q "serving the HTTP view" "$T/logs/coordinator.log" && break; sleep 0.1; done
HTTP_PORT=$(sed -n 's/.*serving the HTTP view on [^ ]* (port \([0-9]*\)).*/\1/p' "$T/logs/coordinator.log" | head -1)
[ -n "$HTTP_PORT" ] || fail "the coordinator did not say where it serves HTTP"
API=http://127.0.0.1:$HTTP_PORT/api/v1

# same_status: the API's and the CLI's status, byte for byte (retried while a round
# moves between the two reads).
same_status() {
    local i
    for i in $(seq 20); do
        curl -sf "$API/status" >"$T/api.json" || fail "GET /api/v1/status failed"
        status_json >"$T/cli.json"
        cmp -s "$T/api.json" "$T/cli.json" && return 0
        sleep 0.2
    done
    diff "$T/api.json" "$T/cli.json" >&2 || true
    fail "/api/v1/status differs from aulac status --json"
}

for _ in $(seq 100); do status_json | grep -q '"state":"running"' && break; sleep 0.1; done
same_status
note "before any round: /api/v1/status = aulac status --json"

start_worker alpha
wa=$LAST_PID
start_worker beta
wb=$LAST_PID
wait_pid "$wa" 300 || fail "worker alpha did not finish"
wait_pid "$wb" 300 || fail "worker beta did not finish"
same_status
grep -q '"state":"finished"' "$T/api.json" || fail "the experiment did not finish: $(cat "$T/api.json")"
note "finished: /api/v1/status = aulac status --json"

# check ENDPOINT STATUS KEYS...: the reply's HTTP status, content type, JSON and keys.
check() {
    local path=$1 want=$2; shift 2
    local code
    code=$(curl -s -o "$T/body.json" -D "$T/headers" -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT$path")
    [ "$code" = "$want" ] || fail "$path: HTTP $code, want $want: $(cat "$T/body.json")"
    grep -qi '^content-type: application/json' "$T/headers" || fail "$path: not application/json"
    python3 - "$T/body.json" "$path" "$@" <<'PY' || fail "$path: bad JSON or fields"
import json, sys
body = json.load(open(sys.argv[1]))
for key in sys.argv[3:]:
    node = body
    for part in key.split("."):
        if isinstance(node, list):
            if not node:
                sys.exit(f"{sys.argv[2]}: {key}: empty list")
            node = node[0]
        if part not in node:
            sys.exit(f"{sys.argv[2]}: no {key} in {body}")
        node = node[part]
PY
}
check /api/v1/status 200 experiment state round total_rounds ledger_size ledger_root rounds.members.val_loss members.rejected
check /api/v1/members 200 now_ms members.member members.organization members.last_seen_ms members.rounds_joined members.tokens members.bytes_sent members.rejected members.recent_rejections members.last_val_loss
check /api/v1/rounds 200 experiment state privacy rounds.round rounds.duration_s rounds.participants rounds.tokens rounds.upload_bytes rounds.mean_train_loss rounds.members.val_loss
check /api/v1/experiments 200 loaded queue experiments.experiment experiments.phase experiments.rounds_done
check /api/v1/proposals 200 now_ms proposals
check /api/v1/ledger 200 size root checkpoint.size checkpoint.note verify.status verify.checked_ms
check /api/v1/credits 200 experiment state final credits
check /api/v1/nothing-here 404 error.status error.message
check "/api/v1/status?bogus=1" 400 error.status error.message
check "/api/v1/rounds?experiment=no-such" 404 error.message
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["rounds"]; assert len(r)==2 and r[1]["duration_s"] is not None, r' \
    <(curl -sf "$API/rounds") || fail "/api/v1/rounds does not list the 2 closed rounds"
note "every endpoint: JSON with its documented fields; 404 and 400 as JSON"
echo "PASS http_api"
