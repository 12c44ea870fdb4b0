#!/usr/bin/env bash
# bench/scale on the tiny model: 4 simulated members, 2 rounds against a real coordinator
# over gRPC with TLS. Checks that every update was accepted, that both rounds closed, and
# that the figures it prints are sane (positive rates, a peak RSS the coordinator really
# had, a data directory that grew, a download ratio between 0 and a few). Figures are
# not compared with wall-clock goals (tests never assert timings).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
bin=$BUILD/bench/scale
[ -x "$bin" ] || { echo "FAIL: $bin is missing: run make" >&2; exit 1; }
out=$(mktemp "${TMPDIR:-/tmp}/aulac-scale-smoke.XXXXXX")
trap 'rm -f "$out"' EXIT
rc=0
timeout 60 "$bin" --model tiny --members 4 --rounds 2 >"$out" 2>&1 || rc=$?
cat "$out"
[ $rc -eq 0 ] || { echo "FAIL: bench/scale exited $rc" >&2; exit 1; }
result=$(grep '^RESULT ' "$out" | tail -1)
[ -n "$result" ] || { echo "FAIL: no RESULT line" >&2; exit 1; }
python3 - "$result" <<'PY'
import sys
kv = dict(f.split("=", 1) for f in sys.argv[1].split()[1:])
def num(k):
    return float(kv[k])
def check(ok, what):
    if not ok:
        sys.exit("FAIL: %s (%s)" % (what, sys.argv[1]))
check(kv["coordinator"] == "ok", "the coordinator ran to the end")
check(kv["tls"] == "1", "the run used TLS")
check(int(kv["upload_retries"]) >= 0, "upload retries counted")
check(int(kv["accepted"]) == 8 and int(kv["expected"]) == 8, "all 8 updates accepted")
check(int(kv["rounds_closed"]) == 2, "both rounds closed")
mb = num("model_bytes")
check(mb == 21984 * 4, "the tiny model's fp32 bytes")
rss = num("peak_rss_bytes")
check(4 << 20 <= rss <= 2 << 30, "a coordinator peak RSS between 4 MiB and 2 GiB")
check(abs(num("rss_ratio") - rss / mb) < 0.01 * rss / mb, "rss_ratio = peak / model bytes")
check(num("updates_per_s_sparse") > 0, "updates per second measured")
check(0 <= num("cpu_per_update_sparse_s") < 5, "coordinator CPU per update in [0, 5) s (a tiny model's update can take less than one clock tick)")
check(0 < num("close_s") < 30, "round close time in (0, 30) s")
check(num("download_MBps") > 0 and num("raw_MBps") > 0, "download and raw rates measured")
check(0 < num("download_ratio") < 10, "a download ratio in (0, 10)")
check(kv["tls_suite"].startswith("TLS_"), "the TLS 1.3 suite the coordinator negotiates")
check(num("raw_tls_MBps") > 0, "the raw TLS copy's rate measured")
check(0 < num("download_tls_ratio") < 10, "a download ratio to the raw TLS copy in (0, 10)")
for k in ("download_cpu_per_gb_coordinator", "download_cpu_per_gb_members", "raw_cpu_per_gb", "raw_tls_cpu_per_gb"):
    check(num(k) >= 0, "%s measured" % k)
check(num("disk_per_round_bytes") > 0, "the data directory grew each round")
print("ok:", sys.argv[1])
PY
# the per-round table: two rows, 4/4 accepted each
[ "$(grep -cE '^ +[12] +top-k .* 4/4 ' "$out")" -eq 2 ] || { echo "FAIL: the table does not show 2 rounds of 4/4 accepted" >&2; exit 1; }
echo "scale_smoke: ok"
