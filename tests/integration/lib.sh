# Shared by the integration tests: a temporary alliance on loopback.
# Every process started through start_bg is killed when the test exits.
set -euo pipefail
BUILD=${BUILD:-build}
BIN=$(cd "$BUILD" && pwd)
ROOT=$(pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/aulac-it.XXXXXX")
BG=()
cleanup_alliance() {
    local rc=$?
    { for p in "${BG[@]:-}"; do [ -n "$p" ] && kill -9 "$p" && wait "$p"; done; } 2>/dev/null || true
    if [ $rc -ne 0 ]; then
        echo "--- test failed (rc $rc); logs under $T:" >&2
        for f in "$T"/logs/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
    else
        rm -rf "$T"
    fi
}
trap cleanup_alliance EXIT
mkdir -p "$T/logs" "$T/keys" "$T/state"

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "-- $*"; }

# start_bg NAME CMD...: runs CMD with its output in $T/logs/NAME.log; sets LAST_PID.
start_bg() {
    local name=$1; shift
    "$@" >"$T/logs/$name.log" 2>&1 &
    LAST_PID=$!
    BG+=($LAST_PID)
}

# Three small non-IID corpora from text every Debian machine has.
make_corpora() {
    mkdir -p "$T/corpus/alpha" "$T/corpus/beta" "$T/corpus/gamma"
    cp /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 "$T/corpus/alpha/"
    # C code that does not change with this tree (a build dependency's header), so that
    # editing coordinator/ cannot move the held-out loss this test asserts on
    cat /usr/include/zstd.h > "$T/corpus/beta/code.txt"
    cat "$ROOT"/README.md /usr/share/common-licenses/LGPL-2.1 > "$T/corpus/gamma/docs.txt"
}

# make_members RESEARCHER MEMBER...: keys for the coordinator and each member, and a
# roster with no charter in which RESEARCHER (if one of them) has the roles member and
# researcher, the others member.
make_members() {
    local researcher=$1 m roles
    shift
    "$BIN/aulac" keygen --id coordinator --dir "$T/keys" >/dev/null
    for m in "$@"; do
        "$BIN/aulac" keygen --id "$m" --dir "$T/keys" >/dev/null
        roles=member; [ "$m" = "$researcher" ] && roles=member,researcher
        "$BIN/aulac" roster add --roster "$T/roster.yaml" --alliance test-alliance \
            --pub "$T/keys/$m.pub" --organization "Org $m" --roles "$roles" >/dev/null
    done
}

# make_alliance MEMBER...: keys for the coordinator and each member, and a roster whose
# charter lets the first member (the operator) start an experiment alone: the
# coordinator's --policy shortcut files the proposal signed by its key, and under this
# charter that approval is the quorum (experiments_flow.sh and test_experiments cover
# proposals that need votes).
make_alliance() {
    make_members "" "$@"
    OPERATOR=$1
    printf 'charter:\n  quorum: { roster: 0.5, experiments: 0.01, charter: 0.67 }\n  proposers: [member]\n' \
        >>"$T/roster.yaml"
}

# write_policy ROUNDS MEMBER...: a tiny experiment. LOCAL_STEPS sets the inner steps and
# UPLINK_EXTRA (", key: value, ...") adds settings to the uplink.
write_policy() {
    local rounds=$1; shift
    local list
    list=$(IFS=,; echo "$*")
    cat >"$T/policy.yaml" <<YAML
schema: 1
metadata: { name: it-tiny, proposer: $1 }
model: { family: gpt2, vocab_size: 256, n_positions: 32, n_layer: 1, n_head: 2, n_embd: 32, seed: 7 }
data: { min_tokens_per_member: 1000, validation_fraction: 0.1 }
training:
  rounds: $rounds
  local_steps: ${LOCAL_STEPS:-12}
  batch_size: 4
  seq_len: 32
  inner: { kind: adamw, lr: 0.005, weight_decay: 0.0, beta1: 0.9, beta2: 0.95, grad_clip: 1.0 }
  outer: { kind: nesterov, lr: 0.7, momentum: 0.9 }
aggregation: { rule: fedavg, weighting: tokens }
compression:
  uplink: { method: topk, block_size: 256, k_per_block: 32, quant: int8, zstd_level: 3, error_feedback: true${UPLINK_EXTRA:-} }
  downlink: { method: topk, block_size: 256, k_per_block: 128, quant: int8, zstd_level: 3, error_feedback: true }
participation: { members: [$list], min_members: 2, round_deadline_s: 60, grace_s: 1 }
YAML
}

# start_coordinator [extra args]: sets PORT, ADDR, COORD_PID.
start_coordinator() {
    rm -f "$T/port"
    start_bg coordinator "$BIN/aulac-coordinator" --data-dir "$T/coord" --key "$T/keys/coordinator.key" \
        --roster "$T/roster.yaml" --policy "$T/policy.yaml" \
        --operator-key "$T/keys/$OPERATOR.key" --listen 127.0.0.1:0 \
        --port-file "$T/port" --insecure "$@"
    COORD_PID=$LAST_PID
    for _ in $(seq 150); do [ -s "$T/port" ] && break; sleep 0.1; done
    [ -s "$T/port" ] || fail "the coordinator did not start"
    PORT=$(cat "$T/port")
    ADDR=127.0.0.1:$PORT
}

# start_worker MEMBER [CORPUS] [extra args]: sets LAST_PID. The worker exits 0 once its
# experiment ended and nothing else is queued (--exit-when-idle).
start_worker() {
    local m=$1 corpus=${2:-$T/corpus/$1}
    shift; [ $# -gt 0 ] && shift
    start_bg "worker-$m" "$BIN/aulac-worker" --coordinator "$ADDR" --member "$m" \
        --key "$T/keys/$m.key" --data "$corpus" --state-dir "$T/state/$m" --insecure \
        --threads 1 --eval-windows 16 --exit-when-idle "$@"
}

# wait_pid PID SECONDS: the exit status of PID, or 124 after SECONDS.
wait_pid() {
    local pid=$1 limit=$2 i
    for i in $(seq $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then return 124; fi
    local rc=0
    wait "$pid" || rc=$?
    return $rc
}

# restart_coordinator DOWN_S NAME: kills the coordinator (SIGKILL), keeps its log as
# logs/NAME.log, waits DOWN_S seconds and starts it again on the same port and data
# directory; sets COORD_PID, and SERVE_TS to the timestamp of its "serving" line. Another
# step could take the freed port meanwhile: a script calling this must be in
# scripts/test.sh's $exclusive (steps that run alone).
restart_coordinator() {
    kill -9 "$COORD_PID"
    wait "$COORD_PID" 2>/dev/null || true
    mv "$T/logs/coordinator.log" "$T/logs/$2.log"
    sleep "$1"
    start_bg coordinator "$BIN/aulac-coordinator" --data-dir "$T/coord" \
        --key "$T/keys/coordinator.key" --roster "$T/roster.yaml" \
        --listen "127.0.0.1:$PORT" --insecure
    COORD_PID=$LAST_PID
    for _ in $(seq 300); do grep -q "serving the Federation" "$T/logs/coordinator.log" && break; sleep 0.05; done
    SERVE_TS=$(grep -m1 "serving the Federation" "$T/logs/coordinator.log" | cut -d' ' -f1)
    [ -n "$SERVE_TS" ] || fail "the coordinator did not come back after $1 s down"
}
iso_now() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
# answered_after LOG TS: LOG's first "the coordinator answers again" line stamped after TS.
answered_after() { awk -v k="$2" '$1 > k && /the coordinator answers again/ { print; exit }' "$1"; }

status_json() { "$BIN/aulac" status --coordinator "$ADDR" --insecure --json; }
