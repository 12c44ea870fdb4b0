#!/usr/bin/env bash
# The whole suite: unit tests (cmocka), integration and fault tests (real processes
# on loopback), the unit tests again under AddressSanitizer + UBSan, and short fuzz
# runs. Prints what it runs, each step's wall and CPU seconds (user + system, the step's
# processes together), each phase's totals, and ends with "N passed, N failed".
#
#   scripts/test.sh [--quick]     --quick skips the sanitizer build and fuzzing
#
# Unit binaries and integration scripts run AULAC_TEST_JOBS at a time (default 2; 1: one
# after another; an integer >= 1), but those in $exclusive (below: they re-bind or count on
# a freed loopback port) run alone; the sanitizer build and the fuzz targets' build run in
# the background meanwhile, at low priority.
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
BUILD=${BUILD:-build}
# Steps run side by side (unit binaries, integration scripts): $AULAC_TEST_JOBS, default 2.
JOBS=${AULAC_TEST_JOBS:-2}
if ! [[ $JOBS =~ ^[1-9][0-9]*$ ]]; then
    echo "scripts/test.sh: AULAC_TEST_JOBS must be an integer >= 1 (how many steps run side by side; 1: one after another), got '$JOBS'" >&2
    exit 2
fi
# The model calls BLAS single-threaded only (model/gpt2.c blas_single_threaded), so this
# changes no result; without it every process the suite starts (thousands: each CLI call,
# each fault-sweep run) starts OpenBLAS's thread pool, whose idle threads spin in
# sched_yield (a third of the fault sweep's CPU time).
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
passed=0
failed=0
failures=()
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/aulac-test.XXXXXX")
# What tests keep for people to look at (report.sh: the report and its screenshot).
export AULAC_TEST_OUTPUT="$log_dir/output"

now() { date +%s.%N; }
# timed LOG CMD...: runs CMD with its output in LOG and returns its status; sets STEP_WALL
# and STEP_CPU (seconds, one decimal: CPU is user + system of CMD and every process it
# waited for, from the subshell's `times`).
timed() {
    local log=$1 t0 t1 rc
    shift
    t0=$(now)
    ( "$@" >"$log" 2>&1; rc=$?; times >"$log.times"; exit $rc )
    rc=$?
    t1=$(now)
    STEP_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    STEP_CPU=$(awk 'NR == 2 { n = 0
        for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); n += p[1] * 60 + p[2] }
        printf "%.1f", n }' "$log.times")
    rm -f "$log.times"
    return $rc
}
# Per-phase sums of the steps' seconds, printed at the end.
phase=""
phases=()
declare -A phase_t0=() phase_end=() phase_cpu=()
end_phase() { [ -n "$phase" ] && phase_end[$phase]=$(now); phase=""; }
# start_phase NAME TITLE: ends the phase before and prints "== TITLE".
start_phase() {
    end_phase
    phase=$1; phases+=("$1"); phase_cpu[$1]=0; phase_t0[$1]=$(now)
    shift; echo "== $*"
}
add_step_time() {
    phase_cpu[$phase]=$(awk -v a="${phase_cpu[$phase]}" -v b="$STEP_CPU" 'BEGIN { printf "%.1f", a + b }')
}
suite_t0=$(now)

# --- steps, run $JOBS at a time -----------------------------------------------------
# A step is one cmocka binary (kind unit) or one script that exits 0 on success (kind
# script, one test). Each runs in the background with its output in its own log; the
# steps run here are independent (their own temporary directories, ports picked by the
# kernel), so they run side by side, and their lines are printed as they finish. Each
# writes "RC WALL CPU" to LOG.result.tmp and renames it to LOG.result (atomic: a reader
# never sees half of it).
declare -A running=()    # pid -> "kind<TAB>label<TAB>path<TAB>log"

# Steps that must run alone, with no other step beside them (by file name; unit binaries,
# integration and san_ scripts alike). Each frees a loopback port and counts on it staying
# free, or on getting it back: beside another step, that step's `--listen 127.0.0.1:0`,
# its client sockets or its own bind(0) can take the port in between (the kernel hands
# out freed ephemeral ports), and the restart fails to bind, or a client reaches the
# other step's server (seen: "unknown member 'alpha'" in reconnect.sh under load).
#   restart.sh            kills the coordinator and restarts it on the same port (the
#                         workers reconnect there)
#   reconnect.sh          restart_coordinator (lib.sh): the same port after 4, 6, 8 s down
#   artifacts.sh          restart_coordinator (lib.sh): the same port
#   experiments_flow.sh   restart(): SIGKILL, then the same command line on the same port
#   experiments_queue.sh  kills the coordinator, starts it again on "$PORT"
#   dashboard.sh          the --http port: picked by bind(0) in Python, closed, then
#                         bound by the coordinator
#   peers_offline.sh      a "closed" package-index port: picked by bind(0), closed, and
#                         counted on to refuse connections
#   test_reconnect        stops an RPC server and starts it again on the same port
#   test_rpc              test_fed_client_unreachable (a stopped server's port must
#                         refuse), and calls on a channel after its server stopped
# They start first in their phase (first_longest), so that none waits for a long step.
# A new test that does the same belongs here.
exclusive=(restart.sh reconnect.sh artifacts.sh experiments_flow.sh experiments_queue.sh
           dashboard.sh peers_offline.sh test_reconnect test_rpc)
alone=""                 # the pid of the exclusive step running, if one is
is_exclusive() { case " ${exclusive[*]} " in *" $(basename "$1") "*) return 0 ;; esac; return 1; }

# start_step KIND LABEL PATH LIMIT: starts it once fewer than $JOBS steps run, no
# exclusive step runs and, when it is exclusive itself, once no other step runs.
start_step() {
    local kind=$1 label=$2 path=$3 limit=$4 out excl=0
    is_exclusive "$path" && excl=1
    while [ ${#running[@]} -ge "$JOBS" ] || [ -n "$alone" ] ||
          { [ $excl -eq 1 ] && [ ${#running[@]} -gt 0 ]; }; do
        reap_steps
    done
    out="$log_dir/$(basename "$path").$label.log"
    rm -f "$out.result" "$out.result.tmp"
    if [ "$kind" = unit ]; then
        ( timed "$out" timeout "$limit" "$path"
          echo "$? $STEP_WALL $STEP_CPU" >"$out.result.tmp" && mv "$out.result.tmp" "$out.result" ) &
    else
        ( BUILD=$BUILD timed "$out" timeout "$limit" bash "$path"
          echo "$? $STEP_WALL $STEP_CPU" >"$out.result.tmp" && mv "$out.result.tmp" "$out.result" ) &
    fi
    running[$!]="$kind"$'\t'"$label"$'\t'"$path"$'\t'"$out"
    [ $excl -eq 1 ] && alone=$!
    [ $excl -eq 1 ] && [ "$JOBS" -gt 1 ] && echo "  (alone: $(basename "$path"), see \$exclusive in scripts/test.sh)"
    return 0
}

# read_result FILE: sets STEP_RC STEP_WALL STEP_CPU from FILE; when FILE is missing or
# has no exit status (the step's subshell died before writing it), STEP_RC=1 and says so.
read_result() {
    STEP_RC="" STEP_WALL="" STEP_CPU=""
    [ -r "$1" ] && read -r STEP_RC STEP_WALL STEP_CPU <"$1"
    if ! [[ $STEP_RC =~ ^[0-9]+$ ]]; then
        echo "  (no exit status in $1: the step ended without writing it; counted as failed)"
        STEP_RC=1
    fi
    STEP_WALL=${STEP_WALL:-0} STEP_CPU=${STEP_CPU:-0}
}

# reap_steps: waits until at least one running step has finished and reports those
# that have.
reap_steps() {
    local pid kind label path out done=0
    while [ $done -eq 0 ]; do
        for pid in "${!running[@]}"; do
            IFS=$'\t' read -r kind label path out <<<"${running[$pid]}"
            # finished: its result is there, or its subshell is gone without one
            if [ ! -e "$out.result" ] && kill -0 "$pid" 2>/dev/null; then continue; fi
            wait "$pid" 2>/dev/null
            unset "running[$pid]"
            [ "$pid" = "$alone" ] && alone=""
            done=1
            read_result "$out.result"
            rm -f "$out.result"
            add_step_time
            if [ "$kind" = unit ]; then report_unit "$path" "$label" "$out"
            else report_script "$path" "$label" "$out"; fi
        done
        # wait -n returns when a job ends (at once when none is left to wait for)
        [ $done -eq 1 ] || wait -n 2>/dev/null || sleep 0.05
    done
}

drain_steps() { while [ ${#running[@]} -gt 0 ]; do reap_steps; done; }

# A cmocka binary's per-case counts.
report_unit() {
    local bin=$1 label=$2 out=$3 rc=$STEP_RC p f
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$out" | tail -1 | grep -oE '[0-9]+' | head -1)
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$out" | tail -1 | grep -oE '[0-9]+' | head -1)
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1   # crashed, timed out or failed before cmocka could summarise
    fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -gt 0 ]; then
        failures+=("$label $(basename "$bin") (log: $out)")
        printf '  FAIL  %-40s %3d passed, %d failed  %6ss %6ss CPU\n' "$label:$(basename "$bin")" "$p" "$f" "$STEP_WALL" "$STEP_CPU"
        grep -E '^\[  (FAILED|ERROR)|^\[  ERROR|Assert|Error|error:' "$out" | head -20 | sed 's/^/        /'
    else
        printf '  ok    %-40s %3d passed  %6ss %6ss CPU\n' "$label:$(basename "$bin")" "$p" "$STEP_WALL" "$STEP_CPU"
    fi
}

# A script: one test.
report_script() {
    local script=$1 label=$2 out=$3 rc=$STEP_RC
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        printf '  ok    %-40s %6ss %6ss CPU\n' "$label:$(basename "$script")" "$STEP_WALL" "$STEP_CPU"
    else
        failed=$((failed + 1))
        failures+=("$label $(basename "$script") rc=$rc (log: $out)")
        printf '  FAIL  %-40s rc=%d  %6ss %6ss CPU\n' "$label:$(basename "$script")" "$rc" "$STEP_WALL" "$STEP_CPU"
        tail -25 "$out" | sed 's/^/        /'
    fi
}

# first_longest FILE...: FILE... with those in $exclusive first (each runs alone: first,
# none waits for a long step to end), then the steps that take longest (those named in
# $slow_first, in that order), so that the last ones to start are short.
first_longest() {
    local f s
    local -A seen_first=()
    for s in "${exclusive[@]}" "${slow_first[@]}"; do
        [ "$s" != "${seen_first[$s]:-}" ] || continue   # (named in both lists)
        seen_first[$s]=$s
        for f in "$@"; do [ "$(basename "$f")" = "$s" ] && echo "$f"; done
    done
    for f in "$@"; do
        case " ${exclusive[*]} ${slow_first[*]} " in *" $(basename "$f") "*) ;; *) echo "$f" ;; esac
    done
}
# The longest steps (wall, 2 cores; the suite prints each step's time).
quiet_first=(test_plugin test_http)
slow_first=(test_fault_sweep plugin_external.sh examples_run.sh
            byzantine.sh mixed_members.sh bad_input.sh plugin_bad_input.sh reconnect.sh
            experiments_flow.sh dashboard.sh node_bootstrap.sh deploy_files.sh
            http_bad_input.sh ledger_split_view.sh experiments_queue.sh)

# bg_start NAME CMD...: runs CMD in the background at low priority, its output in
# $log_dir/NAME.log; bg_wait NAME waits for it and sets BG_RC, STEP_WALL (seconds since
# it started) and STEP_CPU; BG_RC is 1 when the job left no exit status (said so).
declare -A bg_pid=()
bg_start() {
    local name=$1; shift
    rm -f "$log_dir/$name.result" "$log_dir/$name.result.tmp"
    ( timed "$log_dir/$name.log" nice -n 5 "$@"
      echo "$? $STEP_WALL $STEP_CPU" >"$log_dir/$name.result.tmp" &&
          mv "$log_dir/$name.result.tmp" "$log_dir/$name.result" ) &
    bg_pid[$name]=$!
}
bg_wait() {
    local f=$log_dir/$1.result
    while [ ! -e "$f" ] && kill -0 "${bg_pid[$1]}" 2>/dev/null; do
        wait "${bg_pid[$1]}" 2>/dev/null || sleep 0.2
    done
    wait "${bg_pid[$1]}" 2>/dev/null
    read_result "$f"
    BG_RC=$STEP_RC
}

start_phase unit "unit tests ($BUILD/tests, $JOBS at a time)"
# Unit tests whose plug-in trainers must start within timeouts of 1 s (test_plugin) run
# first, with only a light one beside them (test_http: waits on sockets), before
# anything heavy starts.
# run_units LABEL DIR first|rest: the unit tests in DIR named in quiet_first, or the others.
run_units() {
    local label=$1 dir=$2 which=$3 bin
    if [ "$which" = first ]; then
        for bin in "${quiet_first[@]/#/$dir/}"; do
            [ -x "$bin" ] && start_step unit "$label" "$bin" 600
        done
    else
        mapfile -t steps < <(first_longest "$dir"/test_*)
        for bin in "${steps[@]}"; do
            case " ${quiet_first[*]} " in *" $(basename "$bin") "*) continue ;; esac
            [ -x "$bin" ] && start_step unit "$label" "$bin" 600
        done
    fi
    drain_steps
}
run_units unit "$BUILD/tests" first
# Then the sanitizer build and the fuzz targets' build start, in the background at low
# priority: they take the cores the steps leave idle (most of an integration script's
# time is waiting). The sanitizer build makes what its phase runs: the unit tests and
# the programs they start (make unit-tests), or everything (make tests) when there are
# san_*.sh scripts.
if [ $quick -eq 0 ]; then
    san_target=unit-tests
    compgen -G 'tests/integration/san_*.sh' >/dev/null && san_target=tests
    bg_start san-build make --no-print-directory SAN=1 -j"$(nproc)" $san_target
    [ -x scripts/fuzz.sh ] && bg_start fuzz-build env BUILD="$BUILD" AULAC_FUZZ_STEP=build scripts/fuzz.sh
fi

run_units unit "$BUILD/tests" rest

start_phase integration "integration and fault tests (tests/integration, real processes on loopback, $JOBS at a time)"
scripts=()
for script in tests/integration/*.sh; do
    case $(basename "$script") in lib*.sh|san_*.sh) continue ;; esac
    [ -f "$script" ] && scripts+=("$script")
done
mapfile -t steps < <(first_longest "${scripts[@]}")
for script in "${steps[@]}"; do
    start_step script integration "$script" 900
done
drain_steps

start_phase plugins "plug-in trainers (tests/plugins: the reference plug-ins against the built-in trainer)"
for script in tests/plugins/*.sh; do
    [ -f "$script" ] && start_step script plugins "$script" 600
done
drain_steps

if [ $quick -eq 0 ]; then
    start_phase san-build "sanitizer build (ASan + UBSan, CPU-only): make SAN=1 $san_target, in the background since the first unit tests"
    bg_wait san-build
    san_rc=$BG_RC
    add_step_time
    printf '  %-46s %6ss %6ss CPU (wall since it started)\n' "make SAN=1 $san_target" "$STEP_WALL" "$STEP_CPU"
    if [ $san_rc -eq 0 ]; then
        start_phase san "unit tests under ASan + UBSan (build-san/tests, $JOBS at a time)"
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
        export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
        run_units san build-san/tests first
        run_units san build-san/tests rest
        for script in tests/integration/san_*.sh; do
            [ -f "$script" ] && BUILD=build-san start_step script san "$script" 900
        done
        drain_steps
    else
        failed=$((failed + 1))
        failures+=("sanitizer build (log: $log_dir/san-build.log)")
        echo "  FAIL  sanitizer build"; tail -20 "$log_dir/san-build.log" | sed 's/^/        /'
    fi

    if [ -x scripts/fuzz.sh ]; then
        export AULAC_FUZZ_SECONDS=${AULAC_FUZZ_SECONDS:-10}   # per target (fuzz.sh alone: 20)
        start_phase fuzz "fuzz targets, briefly (scripts/fuzz.sh $AULAC_FUZZ_SECONDS), built in the background since the first unit tests"
        bg_wait fuzz-build
        add_step_time
        printf '  %-46s %6ss %6ss CPU (wall since it started)\n' "fuzz targets' build" "$STEP_WALL" "$STEP_CPU"
        # (a failed build fails the run, which says why)
        AULAC_FUZZ_STEP=run start_step script fuzz scripts/fuzz.sh 600
        drain_steps
    fi
fi

end_phase
echo
echo "time by phase (wall; CPU = user + system of the phase's steps):"
for p in "${phases[@]}"; do
    printf '  %-12s %7.1fs %7.1fs CPU\n' "$p" \
        "$(awk -v a="${phase_t0[$p]}" -v b="${phase_end[$p]}" 'BEGIN { print b - a }')" "${phase_cpu[$p]}"
done
printf '  %-12s %7.1fs\n' total "$(awk -v a="$suite_t0" -v b="$(now)" 'BEGIN { print b - a }')"
if [ ${#failures[@]} -gt 0 ]; then
    echo "failures:"
    printf '  %s\n' "${failures[@]}"
fi
echo "logs: $log_dir"
[ -d "$AULAC_TEST_OUTPUT" ] && echo "test output (reports, screenshots): $AULAC_TEST_OUTPUT"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
