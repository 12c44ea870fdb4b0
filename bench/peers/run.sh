#!/usr/bin/env bash
# bench/peers: aulac and Flower side by side on the demo's workload (bench/README.md,
# "Peers"). One after the other on this machine, with real processes on loopback:
#
#   aulac   its coordinator and three workers (fpt, vnpt, hust), started as
#           scripts/demo.sh starts them (scripts/lib/alliance.sh), plaintext; the
#           experiment proposed and approved by signed votes; two rows:
#             dense       the demo policy with FedAvg (lr 1) and no compression
#             compressed  the demo policy as shipped (read from $POLICY at run time)
#   Flower  its deployment engine: flower-superlink, three flower-supernode processes
#           and the ServerApp/ClientApp in bench/peers/flower/ (Flower's FedAvg),
#           run with `flwr run`; once, dense (the baseline of both rows)
#
# Both train the demo's GPT-2 bytes model (the policy's model section) from the same
# round-0 weights (aulac's, exported by its coordinator as safetensors), on the same
# three corpora (scripts/demo-corpus.sh) and train/validation split, with the same
# schedule (rounds, local steps, batch, seq_len, AdamW, warm-up, clipping, data seeds),
# FedAvg weighted by tokens, one thread per process. Both final models are evaluated by
# `aulac eval` on every member's held-out text. Bytes are counted by one TCP proxy
# (bench/peers/meter.py) in front of each server, peak RSS by one sampler of each
# process tree.
#
#   bench/peers/run.sh              everything under build/peers/ (RUN_DIR=... to move it)
#   ROWS="dense" bench/peers/run.sh only the dense row
#   PEERS_REUSE=1 bench/peers/run.sh  keeps the runs already finished under RUN_DIR
#                                   (e.g. add the compressed row to a dense-only run)
#
# Environment: BUILD (default build), POLICY (policies/examples/demo.yaml), PEERS_VENV
# (the venv with Flower, PyTorch and transformers; default build/peers-venv, created
# when missing; an existing venv is used as it is once it imports flwr, torch,
# transformers, safetensors and numpy), FLWR_VERSION (1.42.0), TORCH_INDEX_URL (as
# scripts/torch-venv.sh: e.g. https://download.pytorch.org/whl/cpu for the CPU wheel),
# PIP_INDEX_URL (pip's own), PEERS_FLOWER_TASK_DEADLINE_S (600: the seconds Flower gives
# a ClientApp/ServerApp process to start, raised from Flower's 30 s; flower_launch.py).
# Creating the venv needs network access to the package
# index: without it the script says so and exits 3, before anything else runs.
#
# Exit status: 0 when both runs finished and the table was printed; 1 on a failure
# (logs under RUN_DIR); 3 when the venv cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
POLICY=${POLICY:-policies/examples/demo.yaml}
PEERS_VENV=${PEERS_VENV:-build/peers-venv}
FLWR_VERSION=${FLWR_VERSION:-1.42.0}
ROWS=${ROWS:-dense compressed}
# Flower's task start deadline (bench/peers/flower_launch.py): 30 s in Flower 1.42, which
# a loaded machine misses; empty = Flower's own
export PEERS_FLOWER_TASK_DEADLINE_S=${PEERS_FLOWER_TASK_DEADLINE_S-600}
top=$(pwd)
RUN_ROOT=${RUN_DIR:-build/peers}
DEMO=peers
need_py="flwr torch transformers safetensors numpy"

# ---- the venv ---------------------------------------------------------------------------
venv_ok() {
    [ -x "$1/bin/python" ] || return 1
    "$1/bin/python" -c "import flwr, torch, transformers, safetensors, numpy" 2>/dev/null &&
        [ -x "$1/bin/flower-superlink" ] && [ -x "$1/bin/flower-supernode" ] && [ -x "$1/bin/flwr" ]
}
# index_reachable URL: 0 when an HTTP(S) request to URL gets any answer within 15 s.
index_reachable() {
    python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/flwr/", timeout=15)
except urllib.error.HTTPError:
    pass                      # the index answered
except Exception as e:        # refused, unresolvable, timed out
    sys.stderr.write("%s\n" % (getattr(e, "reason", None) or e))
    sys.exit(1)
PY
}
install_failed() {   # install_failed WHY: the message, exit 3
    echo "peers: cannot install Flower: $1" >&2
    echo "peers: bench/peers needs network access to PyPI once, to install flwr $FLWR_VERSION," \
         "torch, transformers, safetensors and numpy into $PEERS_VENV; or set PEERS_VENV to" \
         "a venv that has them." >&2
    exit 3
}
if ! venv_ok "$PEERS_VENV"; then
    index=${PIP_INDEX_URL:-https://pypi.org/simple}
    why=$(index_reachable "$index" 2>&1) ||
        install_failed "the package index $index is not reachable (${why:-no answer})."
    echo "peers: creating $PEERS_VENV with flwr $FLWR_VERSION, torch, transformers (large download)" >&2
    [ -x "$PEERS_VENV/bin/python" ] || python3 -m venv "$PEERS_VENV"
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "$PEERS_VENV/bin/pip" install -q --index-url "$TORCH_INDEX_URL" torch >&2 ||
            install_failed "pip could not install torch from $TORCH_INDEX_URL (its messages are above)."
    fi
    # shellcheck disable=SC2086
    "$PEERS_VENV/bin/pip" install -q "flwr==$FLWR_VERSION" torch transformers safetensors numpy >&2 ||
        install_failed "pip could not install them from $index (its messages are above)."
    venv_ok "$PEERS_VENV" || { echo "peers: $PEERS_VENV still lacks one of $need_py" >&2; exit 3; }
fi
py="$top/$PEERS_VENV/bin/python"
case $PEERS_VENV in /*) py="$PEERS_VENV/bin/python" ;; esac
vbin=$(dirname "$py")
echo "peers: $("$py" -c 'import flwr, torch, transformers; print("flwr", flwr.__version__, "torch", torch.__version__, "transformers", transformers.__version__)')"

# ---- the workload ---------------------------------------------------------------------
# shellcheck source=scripts/lib/alliance.sh
. scripts/lib/alliance.sh
alliance_check_programs
mkdir -p "$RUN_ROOT"
RUN_ROOT=$(cd "$RUN_ROOT" && pwd)
bin=$(cd "$BUILD" && pwd)
meters=()
peers_cleanup() {
    local rc=$?
    for p in "${pids[@]:-}" "${meters[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]:-}" "${meters[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    [ $rc -eq 0 ] || echo "peers: failed (exit $rc); logs are under $RUN_ROOT" >&2
    exit $rc
}
trap peers_cleanup EXIT
trap 'trap - INT TERM; echo; echo "peers: interrupted"; exit 130' INT TERM
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

say "corpora (scripts/demo-corpus.sh)"
[ -d "$RUN_ROOT/corpus/hust" ] || scripts/demo-corpus.sh "$RUN_ROOT/corpus" "$BUILD/demo-cache"
# policies: contribution scoring (aulac's credit: extra model evaluations every round,
# which Flower does not do) is left out of both rows; dense also drops compression and
# takes FedAvg with lr 1 (plain averaging, as Flower's FedAvg).
"$py" bench/peers/policy.py "$POLICY" "$RUN_ROOT"
for row in $ROWS; do
    "$bin/aulac" policy check "$RUN_ROOT/$row.yaml" >/dev/null
done
now() { date +%s.%N; }
# wait_logs TEXT FILE...: until every FILE.log holds TEXT (up to 5 min).
wait_logs() {
    local text=$1 f; shift
    for f in "$@"; do
        for _ in $(seq 3000); do grep -q "$text" "$f.log" 2>/dev/null && break; sleep 0.1; done
        grep -q "$text" "$f.log" || { tail "$f.log"; echo "peers: $f.log never said '$text'" >&2; exit 1; }
    done
}

# stop_meters: SIGTERM to the meters (they write their files), then wait for them.
stop_meters() {
    for p in "${meters[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${meters[@]}"; do wait "$p" 2>/dev/null || true; done
    meters=()
}
start_proxy() {   # start_proxy TARGET_PORT OUT_DIR: sets proxy_port
    rm -f "$2/proxy.port"
    python3 bench/peers/meter.py proxy "$2/proxy.port" "$1" "$2/bytes.json" 2>"$2/logs/proxy.log" &
    meters+=($!)
    for _ in $(seq 100); do [ -s "$2/proxy.port" ] && break; sleep 0.05; done
    proxy_port=$(cat "$2/proxy.port")
}

# ---- aulac -----------------------------------------------------------------------------
run_aulac() {   # run_aulac ROW
    local row=$1 m out id t0 t1
    RUN_DIR="$RUN_ROOT/$row/aulac"
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"/{keys,logs,state}
    ln -s "$RUN_ROOT/corpus" "$RUN_DIR/corpus"
    pids=(); wpids=()
    alliance_keys_roster
    alliance_start_coordinator
    local coord_addr=$addr
    start_proxy "${addr##*:}" "$RUN_DIR"
    addr="127.0.0.1:$proxy_port"
    for m in "${MEMBERS[@]}"; do alliance_start_worker "$m"; done
    addr=$coord_addr
    python3 bench/peers/meter.py rss "$RUN_DIR/rss.json" "server=$coord_pid" \
        "fpt=${wpids[0]}" "vnpt=${wpids[1]}" "hust=${wpids[2]}" &
    meters+=($!)
    wait_logs "connected to" "${MEMBERS[@]/#/$RUN_DIR/logs/}"   # the workers wait for an experiment
    t0=$(now)
    out=$(as hust experiment propose "$RUN_ROOT/$row.yaml" --reason "bench/peers $row") ||
        { echo "$out" >&2; exit 1; }
    id=$(sed -n 's/^experiment \([^ ]*\) (policy.*/\1/p' <<<"$out")
    as fpt vote --proposal "$id" --yes >/dev/null
    as vnpt vote --proposal "$id" --yes >/dev/null 2>&1 || true   # may come after approval
    for _ in $(seq 36000); do   # up to 30 min
        grep -q "experiment $id finished" "$RUN_DIR/logs/coordinator.log" && break
        kill -0 "$coord_pid" 2>/dev/null || { tail "$RUN_DIR/logs/coordinator.log"; exit 1; }
        sleep 0.05
    done
    t1=$(now)
    grep -q "experiment $id finished" "$RUN_DIR/logs/coordinator.log" ||
        { echo "peers: aulac's $row experiment did not finish" >&2; exit 1; }
    echo "  aulac $row: $(grep -c "round [0-9]* closed" "$RUN_DIR/logs/coordinator.log") rounds in $(python3 -c "print('%.1f' % ($t1 - $t0))") s"
    for p in "${wpids[@]}"; do wait "$p" || { echo "peers: an aulac worker failed" >&2; exit 1; }; done
    kill "$coord_pid"; wait "$coord_pid" 2>/dev/null || true
    stop_meters
    "$bin/aulac" ledger show --data-dir "$RUN_DIR/coordinator" --json >"$RUN_DIR/ledger.jsonl"
    python3 - "$RUN_DIR" "$t0" "$t1" <<'PY'
import json, sys
run, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
start = final = None
for line in open(run + "/ledger.jsonl"):
    e = json.loads(line)
    if e["type"] == "experiment_started": start = e["model_hash"]
    if e["type"] == "experiment_finished": final = e["model_hash"]
json.dump({"wall_s": t1 - t0, "round0": run + "/coordinator/models/" + start,
           "final": run + "/coordinator/models/" + final}, open(run + "/run.json", "w"))
PY
}

# ---- Flower ------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run_flower() {   # run_flower ROUND0_DIR
    local round0=$1 dir="$RUN_ROOT/flower" link sn=() i m port t0 t1
    rm -rf "$dir"
    mkdir -p "$dir"/{logs,home,state}
    # the SuperLink and SuperNodes start flower-superexec, flwr-serverapp and
    # flwr-clientapp by name
    local PATH="$vbin:$PATH"
    cp -r bench/peers/flower "$dir/app"
    link=$(free_port)
    "$py" bench/peers/flower_launch.py superlink --insecure --disable-runtime-dependency-installation \
        --host 127.0.0.1 --port "$link" >"$dir/logs/superlink.log" 2>&1 &
    local link_pid=$!
    pids+=("$link_pid")
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$link") 2>/dev/null && break
        sleep 0.1
    done
    start_proxy "$link" "$dir"
    i=0
    for m in "${MEMBERS[@]}"; do
        port=$(free_port)
        mkdir -p "$dir/state/$m"
        "$py" bench/peers/flower_launch.py supernode --insecure --superlink "127.0.0.1:$proxy_port" --port "$port" \
            --node-config "member=\"$m\" data-dir=\"$RUN_ROOT/corpus/$m\" state-dir=\"$dir/state/$m\"" \
            >"$dir/logs/$m.log" 2>&1 &
        pids+=($!); sn+=($!)
        i=$((i + 1))
    done
    python3 bench/peers/meter.py rss "$dir/rss.json" "server=$link_pid" \
        "fpt=${sn[0]}" "vnpt=${sn[1]}" "hust=${sn[2]}" &
    meters+=($!)
    cat >"$dir/home/config.toml" <<TOML
[superlink]
default = "bench"

[superlink.bench]
address = "127.0.0.1:$link"
insecure = true
TOML
    "$py" bench/peers/policy.py --flower-config "$RUN_ROOT/dense.yaml" "$round0" "$top/worker/plugins" \
        "$dir/final" >"$dir/run-config.toml"
    wait_logs "SuperNode ID" "${MEMBERS[@]/#/$dir/logs/}"   # the SuperNodes are registered
    t0=$(now)
    FLWR_HOME="$dir/home" "$vbin/flwr" run "$dir/app" bench --run-config "$dir/run-config.toml" \
        >"$dir/logs/flwr-run.log" 2>&1 || { cat "$dir/logs/flwr-run.log" >&2; exit 1; }
    local warned=0
    for _ in $(seq 216000); do   # up to 3 h
        [ -s "$dir/final/timings.json" ] && break
        if [ $warned -eq 0 ] && grep -q "task-token authentication failed" "$dir"/logs/{fpt,vnpt,hust}.log; then
            # Flower gives a ClientApp process 30 s (HEARTBEAT_DEFAULT_INTERVAL) from being
            # launched to claiming its task; on a loaded machine its imports take longer,
            # the task goes back to pending and a new process is launched, and so on
            echo "peers: warning: a Flower ClientApp did not start within Flower's 30 s task" \
                 "deadline and was relaunched (the machine is too loaded?); see $dir/logs" >&2
            warned=1
        fi
        kill -0 "$link_pid" 2>/dev/null || { tail "$dir/logs/superlink.log"; exit 1; }
        sleep 0.05
    done
    t1=$(now)
    [ -s "$dir/final/timings.json" ] || { echo "peers: the Flower run did not finish" >&2; exit 1; }
    echo "  Flower dense: $(python3 -c "print('%.1f' % ($t1 - $t0))") s"
    for p in "${sn[@]}" "$link_pid"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    stop_meters
    python3 -c 'import json,sys; json.dump({"wall_s": float(sys.argv[2]) - float(sys.argv[1]), "final": sys.argv[3]}, open(sys.argv[4], "w"))' \
        "$t0" "$t1" "$dir/final" "$dir/run.json"
}

say "aulac (coordinator + 3 workers, one thread each)"
round0=""
for row in $ROWS; do
    if [ "${PEERS_REUSE:-0}" = 1 ] && [ -s "$RUN_ROOT/$row/aulac/run.json" ]; then
        echo "  aulac $row: reusing the finished run in $RUN_ROOT/$row/aulac (PEERS_REUSE=1)"
    else
        run_aulac "$row"
    fi
    [ -n "$round0" ] || round0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["round0"])' "$RUN_ROOT/$row/aulac/run.json")
done
say "Flower $("$py" -c 'import flwr; print(flwr.__version__)') (SuperLink + 3 SuperNodes, FedAvg, one thread each)"
if [ "${PEERS_REUSE:-0}" = 1 ] && [ -s "$RUN_ROOT/flower/run.json" ]; then
    echo "  reusing the finished run in $RUN_ROOT/flower (PEERS_REUSE=1)"
else
    run_flower "$round0"
fi

say "evaluation (aulac eval on each member's held-out text) and the table"
vf=$("$py" bench/peers/policy.py --get "$RUN_ROOT/dense.yaml" data.validation_fraction)
for d in $ROWS flower; do
    f="$RUN_ROOT/$d/aulac/run.json"; [ "$d" = flower ] && f="$RUN_ROOT/flower/run.json"
    final=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["final"])' "$f")
    for m in "${MEMBERS[@]}"; do
        "$bin/aulac" eval --model "$final" --data "$RUN_ROOT/corpus/$m" --val-fraction "$vf" \
            --windows 100000 --threads 1 | sed -n 's/.*validation loss \([0-9.]*\) .*/\1/p' \
            >"$(dirname "$f")/eval-$m.txt"
    done
done
# shellcheck disable=SC2086  # ROWS is a word list
"$py" bench/peers/report.py "$RUN_ROOT" $ROWS | tee "$RUN_ROOT/table.txt"
