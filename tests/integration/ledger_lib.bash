# Sourced by the tests/integration/ledger_*.sh scripts (not a test itself): a tiny
# alliance in a temporary directory, a coordinator on an ephemeral loopback port,
# and workers, with every process killed and the directory removed on exit.
#
#   BUILD        build directory with aulac, aulac-coordinator, aulac-worker (default build)
#   KEEP_TMP=1   keep the temporary directory (its path is printed) for a post-mortem
set -euo pipefail
BUILD=${BUILD:-build}
for p in aulac aulac-coordinator aulac-worker; do
    [ -x "$BUILD/$p" ] || { echo "missing $BUILD/$p: build first (make BUILD=$BUILD)" >&2; exit 1; }
done
AULAC="$BUILD/aulac"
T=$(mktemp -d "${TMPDIR:-/tmp}/aulac-ledger-it.XXXXXX")
PIDS=()
COORD_PID=
ADDR=

cleanup() {
    local rc=$?
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ]; then
        echo "FAILED (exit $rc); last coordinator and worker log lines:" >&2
        for f in "$T"/logs/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -8 "$f" >&2; }; done
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Deterministic text, ~40 kB per member, different per member.
make_corpus() {
    local member=$1 dir=$2
    mkdir -p "$dir"
    awk -v seed="$(printf '%s' "$member" | cksum | cut -d' ' -f1)" 'BEGIN {
        split("the of and to in ledger alliance member round model update proof tree root " \
              "checkpoint signed coordinator worker train token data hash merkle entry log", w, " ");
        n = length(w); x = seed % 2147483647;
        for (line = 0; line < 900; line++) {
            s = "";
            for (k = 0; k < 8; k++) { x = (x * 48271) % 2147483647; s = s w[x % n + 1] " "; }
            print s ".";
        }
    }' >"$dir/text.txt"
}

# make_alliance MEMBER...: keys, roster, a tiny policy with those members, corpora.
make_alliance() {
    mkdir -p "$T/keys" "$T/logs" "$T/state"
    "$AULAC" keygen --id coordinator --dir "$T/keys" >/dev/null
    for m in "$@"; do
        "$AULAC" keygen --id "$m" --dir "$T/keys" >/dev/null
        "$AULAC" roster add --roster "$T/roster.yaml" --alliance ledger-test \
            --pub "$T/keys/$m.pub" >/dev/null
        make_corpus "$m" "$T/corpus/$m"
    done
    # The first member operates the coordinator; under this charter its proposal alone
    # approves an experiment (the vote flow has its own tests).
    OPERATOR=$1
    printf 'charter:\n  quorum: { experiments: 0.01 }\n  proposers: [member]\n' >>"$T/roster.yaml"
    local list
    list=$(IFS=,; echo "$*")
    sed -e 's/^  rounds: .*/  rounds: 6/' -e 's/^  local_steps: .*/  local_steps: 2/' \
        -e 's/^  min_tokens_per_member: .*/  min_tokens_per_member: 1000/' \
        -e "s/^  members: .*/  members: [$list]/" -e 's/^  min_members: .*/  min_members: 1/' \
        -e 's/^  n_layer: .*/  n_layer: 1/' \
        -e '/^contribution:/,$d' policies/examples/demo.yaml >"$T/policy.yaml"
    "$AULAC" policy check "$T/policy.yaml" >/dev/null || fail "the test policy does not validate"
}

# start_coordinator [DATA_DIR]: sets COORD_PID and ADDR.
start_coordinator() {
    local data=${1:-$T/coordinator}
    rm -f "$T/port"
    "$BUILD/aulac-coordinator" --data-dir "$data" --key "$T/keys/coordinator.key" \
        --roster "$T/roster.yaml" --policy "$T/policy.yaml" \
        --operator-key "$T/keys/$OPERATOR.key" --listen 127.0.0.1:0 \
        --port-file "$T/port" --insecure >>"$T/logs/coordinator.log" 2>&1 &
    COORD_PID=$!
    PIDS+=("$COORD_PID")
    for _ in $(seq 150); do [ -s "$T/port" ] && break; sleep 0.1; done
    [ -s "$T/port" ] || fail "the coordinator did not start (log: $T/logs/coordinator.log)"
    ADDR="127.0.0.1:$(cat "$T/port")"
}

stop_coordinator() {
    kill -TERM "$COORD_PID" 2>/dev/null || true
    wait "$COORD_PID" 2>/dev/null || true
    COORD_PID=
}

# run_worker MEMBER STATE_DIR [ARGS...]: runs to its end (at most 120 s); prints its
# exit status, never fails by itself.
run_worker() {
    local m=$1 state=$2
    shift 2
    local rc=0
    timeout 120 "$BUILD/aulac-worker" --coordinator "$ADDR" --member "$m" \
        --key "$T/keys/$m.key" --data "$T/corpus/$m" --state-dir "$state" --insecure \
        --threads 1 --connect-timeout 20 --exit-when-idle "$@" >>"$T/logs/$m.log" 2>&1 || rc=$?
    echo "$rc"
}

# expect_rc WANT CMD...: runs CMD, keeps its output in $OUT, checks its exit status.
expect_rc() {
    local want=$1
    shift
    local rc=0
    OUT=$("$@" 2>&1) || rc=$?
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want; output: $OUT"
}

expect_out() {
    grep -qF -- "$1" <<<"$OUT" || fail "expected '$1' in: $OUT"
}
