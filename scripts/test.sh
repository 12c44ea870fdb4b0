#!/usr/bin/env bash
# The whole suite: unit tests (cmocka), integration and fault tests (real processes
# on loopback), the unit tests again under AddressSanitizer + UBSan, and short fuzz
# runs. Prints what it runs and ends with "N passed, N failed".
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

# Runs one cmocka binary and adds its per-case counts.
run_unit() {
    local bin=$1 label=$2 out rc p f
    out="$log_dir/$(basename "$bin").$label.log"
    timeout 600 "$bin" >"$out" 2>&1
    rc=$?
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$out" | tail -1 | grep -oE '[0-9]+' | head -1)
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$out" | tail -1 | grep -oE '[0-9]+' | head -1)
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1   # crashed, timed out or failed before cmocka could summarise
    fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -gt 0 ]; then
        failures+=("$label $(basename "$bin") (log: $out)")
        printf '  FAIL  %-34s %3d passed, %d failed\n' "$label:$(basename "$bin")" "$p" "$f"
        grep -E '^\[  (FAILED|ERROR)|^\[  ERROR|Assert|Error|error:' "$out" | head -20 | sed 's/^/        /'
    else
        printf '  ok    %-34s %3d passed\n' "$label:$(basename "$bin")" "$p"
    fi
}

# Runs one script that exits 0 on success; counts as one test.
run_script() {
    local script=$1 label=$2 limit=${3:-600} out rc t0 t1
    out="$log_dir/$(basename "$script").$label.log"
    t0=$(date +%s)
    BUILD=$BUILD timeout "$limit" bash "$script" >"$out" 2>&1
    rc=$?
    t1=$(date +%s)
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        printf '  ok    %-34s (%ds)\n' "$label:$(basename "$script")" $((t1 - t0))
    else
        failed=$((failed + 1))
        failures+=("$label $(basename "$script") rc=$rc (log: $out)")
        printf '  FAIL  %-34s rc=%d (%ds)\n' "$label:$(basename "$script")" $rc $((t1 - t0))
        tail -25 "$out" | sed 's/^/        /'
    fi
}

echo "== unit tests ($BUILD/tests)"
for bin in "$BUILD"/tests/test_*; do
    [ -x "$bin" ] && run_unit "$bin" unit
done

echo "== integration and fault tests (tests/integration, real processes on loopback)"
for script in tests/integration/*.sh; do
    case $(basename "$script") in lib*.sh|san_*.sh) continue ;; esac
    [ -f "$script" ] && run_script "$script" integration 900
done

echo "== plug-in trainers (tests/plugins: the reference plug-ins against the built-in trainer)"
for script in tests/plugins/*.sh; do
    [ -f "$script" ] && run_script "$script" plugins 600
done

if [ $quick -eq 0 ]; then
    echo "== sanitizer build (ASan + UBSan, CPU-only): make SAN=1 tests"
    if make --no-print-directory SAN=1 -j"$(nproc)" tests >"$log_dir/san-build.log" 2>&1; then
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
        echo "== fuzz targets, briefly (scripts/fuzz.sh $AULAC_FUZZ_SECONDS)"
        run_script scripts/fuzz.sh fuzz 600
    fi
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
    echo "failures:"
    printf '  %s\n' "${failures[@]}"
fi
echo "logs: $log_dir"
[ -d "$AULAC_TEST_OUTPUT" ] && echo "test output (reports, screenshots): $AULAC_TEST_OUTPUT"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
