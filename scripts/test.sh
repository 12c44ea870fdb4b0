#!/usr/bin/env bash
# The whole suite: unit tests (cmocka), integration and fault tests (real processes
# on loopback), the unit tests again under AddressSanitizer + UBSan, and short fuzz
# runs. Prints what it runs, each step's wall and CPU seconds (user + system, the step's
# processes together), each phase's totals, and ends with "N passed, N failed".
#
#   scripts/test.sh [--quick]     --quick skips the sanitizer build and fuzzing
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
BUILD=${BUILD:-build}
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

# Runs one cmocka binary and adds its per-case counts.
run_unit() {
    local bin=$1 label=$2 out rc p f
    out="$log_dir/$(basename "$bin").$label.log"
    timed "$out" timeout 600 "$bin"
    rc=$?
    add_step_time
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

# Runs one script that exits 0 on success; counts as one test.
run_script() {
    local script=$1 label=$2 limit=${3:-600} out rc
    out="$log_dir/$(basename "$script").$label.log"
    BUILD=$BUILD timed "$out" timeout "$limit" bash "$script"
    rc=$?
    add_step_time
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        printf '  ok    %-40s %6ss %6ss CPU\n' "$label:$(basename "$script")" "$STEP_WALL" "$STEP_CPU"
    else
        failed=$((failed + 1))
        failures+=("$label $(basename "$script") rc=$rc (log: $out)")
        printf '  FAIL  %-40s rc=%d  %6ss %6ss CPU\n' "$label:$(basename "$script")" $rc "$STEP_WALL" "$STEP_CPU"
        tail -25 "$out" | sed 's/^/        /'
    fi
}

start_phase unit "unit tests ($BUILD/tests)"
for bin in "$BUILD"/tests/test_*; do
    [ -x "$bin" ] && run_unit "$bin" unit
done

start_phase integration "integration and fault tests (tests/integration, real processes on loopback)"
for script in tests/integration/*.sh; do
    case $(basename "$script") in lib*.sh|san_*.sh) continue ;; esac
    [ -f "$script" ] && run_script "$script" integration 900
done

start_phase plugins "plug-in trainers (tests/plugins: the reference plug-ins against the built-in trainer)"
for script in tests/plugins/*.sh; do
    [ -f "$script" ] && run_script "$script" plugins 600
done

if [ $quick -eq 0 ]; then
    start_phase san-build "sanitizer build (ASan + UBSan, CPU-only): make SAN=1 tests"
    timed "$log_dir/san-build.log" make --no-print-directory SAN=1 -j"$(nproc)" tests
    san_rc=$?
    add_step_time
    printf '  %-40s %6ss %6ss CPU\n' "make SAN=1 tests" "$STEP_WALL" "$STEP_CPU"
    if [ $san_rc -eq 0 ]; then
        start_phase san "unit tests under ASan + UBSan (build-san/tests)"
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
        export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
        for bin in build-san/tests/test_*; do
            [ -x "$bin" ] && run_unit "$bin" san
        done
        for script in tests/integration/san_*.sh; do
            [ -f "$script" ] && BUILD=build-san run_script "$script" san 900
        done
    else
        failed=$((failed + 1))
        failures+=("sanitizer build (log: $log_dir/san-build.log)")
        echo "  FAIL  sanitizer build"; tail -20 "$log_dir/san-build.log" | sed 's/^/        /'
    fi

    if [ -x scripts/fuzz.sh ]; then
        export AULAC_FUZZ_SECONDS=${AULAC_FUZZ_SECONDS:-10}   # per target (fuzz.sh alone: 20)
        start_phase fuzz "fuzz targets, briefly (scripts/fuzz.sh $AULAC_FUZZ_SECONDS)"
        run_script scripts/fuzz.sh fuzz 600
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
