#!/usr/bin/env bash
# The scale table (bench/README.md, "Scale"): bench/scale against a real coordinator for
# N = 4, 16, 32 members at 124M and 4 members at 1B, one row each, then the table.
#
#   scripts/bench-scale.sh            (BUILD=build ROUNDS=2 ROWS="124m:4 124m:16 124m:32 1b:4"
#                                      LOGS=<dir> to keep each row's output,
#                                      EXTRA="--dense-warmup 0" more bench/scale options)
#   scripts/bench-scale.sh --table LOG...   the table of rows run before (their outputs)
#
# Each row is guarded: a row whose coordinator dies (bench/scale exit 3: killed by the OOM
# killer, typically, when the model does not fit this machine) is reported as such with
# its peak RSS until then, and a row that fails otherwise is reported with the last lines
# of its output; the script goes on with the next row and exits non-zero only when no row
# ran at all.
set -uo pipefail
cd "$(dirname "$0")/.."
# table: the markdown table of the RESULT lines on stdin
table() {
    python3 -c '
import sys
rows = []
for line in sys.stdin:
    kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    rows.append(kv)
def f(kv, k, fmt, scale=1.0):
    v = kv.get(k)
    if v is None or float(v) < 0: return "-"
    return fmt % (float(v) * scale)
print("| model | N | peak RSS | / model fp32 | updates/s dense, top-k | coordinator CPU s/update dense, top-k | round close s dense, top-k | download MB/s (raw TCP MB/s, ratio) | raw TLS MB/s (ratio) | disk / round dense, top-k | outcome |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for kv in rows:
    st = kv.get("coordinator", "?")
    outcome = {"ok": "all %s updates accepted" % kv.get("accepted", "?")}.get(st, st)
    if int(kv.get("upload_retries", "0")) > 0:
        outcome += " (%s upload attempts reset and retried)" % kv["upload_retries"]
    if st.startswith("died"):
        outcome = "coordinator died (%s) after %s of %s rounds" % (st.split(":", 1)[-1], kv.get("rounds_closed", "?"), kv.get("rounds", "?"))
    if "close_dense_s" not in kv:
        kv["close_dense_s"] = kv["close_sparse_s"] = "-1"   # (an older log: the mean only, close_s)
        kv["disk_dense_round_bytes"] = kv["disk_sparse_round_bytes"] = "-1"
    print("| %s | %s | %s | %s | %s, %s | %s, %s | %s, %s | %s (%s, %s) | %s (%s) | %s, %s | %s |" % (
        kv.get("model"), kv.get("members"),
        f(kv, "peak_rss_bytes", "%.2f GB", 1e-9), f(kv, "rss_ratio", "%.2fx"),
        f(kv, "updates_per_s_dense", "%.2f"), f(kv, "updates_per_s_sparse", "%.2f"),
        f(kv, "cpu_per_update_dense_s", "%.3f"), f(kv, "cpu_per_update_sparse_s", "%.3f"),
        f(kv, "close_dense_s", "%.1f"), f(kv, "close_sparse_s", "%.1f"),
        f(kv, "download_MBps", "%.0f"), f(kv, "raw_MBps", "%.0f"),
        f(kv, "download_ratio", "%.0f %%", 100),
        f(kv, "raw_tls_MBps", "%.0f"), f(kv, "download_tls_ratio", "%.0f %%", 100),
        f(kv, "disk_dense_round_bytes", "%.2f GB", 1e-9),
        f(kv, "disk_sparse_round_bytes", "%.2f GB", 1e-9),
        outcome))
'
}

if [ "${1:-}" = --table ]; then
    shift
    grep -h '^RESULT ' "$@" | table
    exit 0
fi
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-2}
ROWS=${ROWS:-"124m:4 124m:16 124m:32 1b:4"}
bin=$BUILD/bench/scale
[ -x "$bin" ] || { echo "bench-scale: $bin is missing: run make" >&2; exit 1; }
LOGS=${LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/aulac-bench-scale.XXXXXX")}
mkdir -p "$LOGS"
echo "== bench/scale: rows $ROWS, $ROUNDS rounds each ${EXTRA:-(round 1 dense uplink, then 1 % top-k)};"
echo "   $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM; load before: $(cut -d' ' -f1-3 /proc/loadavg); logs in $LOGS"
results=()
ran=0
for row in $ROWS; do
    model=${row%%:*}; n=${row##*:}
    log=$LOGS/scale-$model-n$n.log
    echo "-- $model, $n members ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1 /proc/loadavg))"
    rc=0
    # shellcheck disable=SC2086 # EXTRA is a list of options
    "$bin" --model "$model" --members "$n" --rounds "$ROUNDS" ${EXTRA:-} >"$log" 2>&1 || rc=$?
    grep -E '^scale: round [0-9]+( closed|: [0-9]+/)|^THE COORDINATOR DIED' "$log" | sed 's/^/   /'
    res=$(grep '^RESULT ' "$log" | tail -1)
    case $rc in
        0) ran=$((ran + 1)); results+=("$res") ;;
        3) ran=$((ran + 1)); results+=("$res")
           echo "   the coordinator died: $(grep '^THE COORDINATOR DIED' "$log")" ;;
        *) if [ -n "$res" ]; then ran=$((ran + 1)); results+=("$res"); fi
           echo "   bench/scale exited $rc; last lines of $log:"; tail -5 "$log" | sed 's/^/     /'
           [ -z "$res" ] && results+=("RESULT model=$model members=$n coordinator=failed:$rc") ;;
    esac
done
echo
printf '%s\n' "${results[@]}" | table
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ $ran -gt 0 ]
