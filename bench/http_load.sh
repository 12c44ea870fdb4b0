#!/usr/bin/env bash
# What the coordinator's HTTP view costs (bench/README.md, "http_load"):
#
#  (a) slow-down: the demo (scripts/demo.sh, INSECURE=1) run RUNS times with the dashboard
#      open and RUNS times without, alternated (off,on then on,off, ...). "Open" is what
#      the page does (coordinator/assets/app.js: every API endpoint every REFRESH s) plus
#      a Prometheus scrape of /metrics every second. Figure: the mean round time of the
#      demo's first experiment (12 rounds; from the coordinator's log: experiment start
#      and round closes), per run and per mode, and their relative difference.
#  (b) latency: a coordinator holding 32 members' statistics (a roster of MEMBERS members
#      who all trained two rounds of a tiny policy, tests/integration/lib.sh), then
#      REQUESTS GET /metrics and /api/v1/status (and /api/v1/members) one after another
#      over one keep-alive connection, and again each on a fresh connection: p50, p90,
#      p99, max.
#
#   bench/http_load.sh [a|b|all]      (BUILD=build; RUNS=3 REQUESTS=1000 MEMBERS=32
#                                      REFRESH=2 SCRAPE=1)
# It prints figures and asserts only that the load was served (no non-200 answers).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
BUILD=${BUILD:-build}
RUNS=${RUNS:-3}
REQUESTS=${REQUESTS:-1000}
MEMBERS=${MEMBERS:-32}
REFRESH=${REFRESH:-2}
SCRAPE=${SCRAPE:-1}
for p in aulac aulac-coordinator aulac-worker; do
    [ -x "$BUILD/$p" ] || { echo "http_load: $BUILD/$p is missing: run make" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "http_load: curl is needed" >&2; exit 1; }

# The page's endpoints (app.js) and the scrape.
API=(status members rounds experiments proposals ledger credits)

# load_until DIR URL OUT: the open dashboard and the scraper against URL while the
# coordinator whose --data-dir is DIR/coordinator runs; writes "<requests> <failed>" to
# OUT and each failure ("<code> <path>") to OUT.failed. A request cut short because the
# demo is stopping the coordinator (it is gone right after) is not a failure.
load_until() {
    local pat="--data-dir $1/coordinator" url=$2 out=$3 pid="" n=0 bad=0 t=0 p code
    for _ in $(seq 600); do pid=$(pgrep -o -f -- "$pat") && [ -n "$pid" ] && break; sleep 0.1; done
    [ -n "$pid" ] || { echo "0 1" >"$out"; echo "no coordinator" >"$out.failed"; return; }
    : >"$out.failed"
    while kill -0 "$pid" 2>/dev/null; do
        local paths=()
        [ $((t % (SCRAPE * 10))) -eq 0 ] && paths+=(metrics)
        [ $((t % (REFRESH * 10))) -eq 0 ] && paths+=("${API[@]/#/api/v1/}")
        for p in "${paths[@]}"; do
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url$p" || true)
            n=$((n + 1))
            if [ "$code" != 200 ]; then
                sleep 0.2
                kill -0 "$pid" 2>/dev/null || { n=$((n - 1)); break 2; }
                bad=$((bad + 1)); echo "$code /$p" >>"$out.failed"
            fi
        done
        sleep 0.1; t=$((t + 1))
    done
    echo "$n $bad" >"$out"
}

# cpu_until DIR OUT: the CPU seconds (user + system) of the coordinator whose --data-dir is
# DIR/coordinator, sampled every 0.2 s from /proc until it exits; the last sample to OUT.
cpu_until() {
    local pat="--data-dir $1/coordinator" pid="" last=0 v
    for _ in $(seq 600); do pid=$(pgrep -o -f -- "$pat") && [ -n "$pid" ] && break; sleep 0.1; done
    [ -n "$pid" ] || { echo "?" >"$2"; return; }
    local tck; tck=$(getconf CLK_TCK)
    while v=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) && [ -n "$v" ]; do
        last=$v; sleep 0.2
    done
    awk -v t="$last" -v k="$tck" 'BEGIN { printf "%.2f\n", t / k }' >"$2"
}

# round_times LOG: the first experiment's round durations (s), one a line: experiment
# start to round 1's close, then close to close.
round_times() {
    python3 - "$1" <<'PY'
import re, sys, datetime
def ts(line):
    return datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
last = None
for line in open(sys.argv[1], errors="replace"):
    if last is None and re.search(r"experiment \S+ started", line):
        last = ts(line)
    elif last is not None and re.search(r"round \d+ closed", line):
        t = ts(line); print("%.3f" % (t - last)); last = t
    elif last is not None and re.search(r"experiment \S+ finished", line):
        break
PY
}

part_a() {
    local T; T=$(mktemp -d "${TMPDIR:-/tmp}/aulac-http-load.XXXXXX")
    echo "== (a) demo round time, dashboard open + /metrics every ${SCRAPE} s vs closed; $RUNS runs each, alternated"
    echo "   (load: ${API[*]/#//api/v1/} every ${REFRESH} s, as app.js; demo logs under $T)"
    local i mode order res=()
    for i in $(seq "$RUNS"); do
        if [ $((i % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
        for mode in $order; do
            local dir=$T/$mode-$i
            INSECURE=1 RUN_DIR=$dir BUILD=$BUILD scripts/demo.sh >"$T/$mode-$i.out" 2>&1 &
            local dpid=$! load=""
            cpu_until "$dir" "$T/$mode-$i.cpu" &
            local cpid=$!
            if [ "$mode" = on ]; then
                for _ in $(seq 600); do [ -s "$dir/dashboard-url" ] && break; sleep 0.1; done
                [ -s "$dir/dashboard-url" ] || { tail "$T/$mode-$i.out"; echo "http_load: no dashboard URL" >&2; exit 1; }
                load_until "$dir" "$(cat "$dir/dashboard-url")" "$T/$mode-$i.load" &
                load=$!
            fi
            wait "$dpid" || { tail "$T/$mode-$i.out"; echo "http_load: the demo failed ($mode, run $i)" >&2; exit 1; }
            [ -n "$load" ] && wait "$load"
            wait "$cpid"
            round_times "$dir/logs/coordinator.log" >"$T/$mode-$i.rounds"
            local stats; stats=$(python3 -c '
import sys, statistics as s
x = [float(l) for l in open(sys.argv[1])]
print("%d %.3f %.3f" % (len(x), s.mean(x), s.median(x)))' "$T/$mode-$i.rounds")
            local cpu; cpu=$(cat "$T/$mode-$i.cpu")
            local extra=", coordinator CPU $cpu s"
            if [ "$mode" = on ]; then
                read -r n bad <"$T/$mode-$i.load"
                [ "$bad" -eq 0 ] || { echo "http_load: $bad of $n requests were not answered 200:" >&2
                                      sort "$T/$mode-$i.load.failed" | uniq -c >&2; exit 1; }
                extra="$extra ($n requests served, all 200)"
            fi
            printf '   run %d dashboard %-3s: %s rounds, mean %s s, median %s s%s\n' "$i" "$mode" \
                $stats "$extra"
            res+=("$mode $stats $cpu")
        done
    done
    printf '%s\n' "${res[@]}" | python3 -c '
import sys, statistics as s
r = {"on": [], "off": []}
c = {"on": [], "off": []}
for line in sys.stdin:
    m, n, mean, med, cpu = line.split(); r[m].append(float(mean)); c[m].append(float(cpu))
on, off = s.mean(r["on"]), s.mean(r["off"])
sd = lambda x: s.stdev(x) if len(x) > 1 else 0.0
print("   mean round time: closed %.3f s (sd of run means %.3f), open %.3f s (sd %.3f): %+.1f %%"
      % (off, sd(r["off"]), on, sd(r["on"]), 100 * (on - off) / off))
con, coff = s.mean(c["on"]), s.mean(c["off"])
print("   coordinator CPU per demo: closed %.2f s, open %.2f s: %+.2f s (%+.1f %%)"
      % (coff, con, con - coff, 100 * (con - coff) / coff))'
    rm -rf "$T"
}

part_b() {
    # tests/integration/lib.sh: a temporary alliance under $T, every process killed on exit.
    . tests/integration/lib.sh
    echo "== (b) latency at $MEMBERS members, $REQUESTS requests per path"
    make_corpora
    local ms=() i
    for i in $(seq "$MEMBERS"); do ms+=("$(printf 'm%02d' "$i")"); done
    make_alliance "${ms[@]}"
    LOCAL_STEPS=4 write_policy 2 "${ms[@]}"
    start_coordinator --http 127.0.0.1:0
    local c=(alpha beta gamma) pids=()
    for i in "${!ms[@]}"; do
        start_worker "${ms[$i]}" "$T/corpus/${c[$((i % 3))]}" --eval-windows 4
        pids+=("$LAST_PID")
    done
    for p in "${pids[@]}"; do
        rc=0; wait_pid "$p" 600 || rc=$?
        [ $rc -eq 0 ] || fail "a worker (pid $p) exited $rc"
    done
    local port; port=$(sed -n 's/.*serving the HTTP view on [^ ]* (port \([0-9]*\)).*/\1/p' "$T/logs/coordinator.log" | head -1)
    [ -n "$port" ] || fail "the coordinator does not serve HTTP"
    python3 - "$port" "$REQUESTS" "$MEMBERS" <<'PY'
import http.client, json, socket, sys, time
port, n, members = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse(); body = r.read()
    if r.status != 200:
        sys.exit("http_load: GET %s answered %d: %s" % (path, r.status, body[:200]))
    return body
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
status = json.loads(get(c, "/api/v1/status"))
metrics = get(c, "/metrics").decode()
seen = {l.split('member="')[1].split('"')[0] for l in metrics.splitlines() if 'member="' in l}
rounds = len(status.get("rounds", []))
names = {l.split("{")[0].split(" ")[0] for l in metrics.splitlines() if l and not l.startswith("#")}
print("   coordinator: %d members with a label in /metrics, %d rounds in /api/v1/status; /metrics %d bytes (%d series, %d names), /api/v1/status %d bytes"
      % (len(seen), rounds, len(metrics), sum(1 for l in metrics.splitlines() if l and not l.startswith("#")), len(names), len(json.dumps(status))))
if len(seen) < members:
    sys.exit("http_load: /metrics labels %d members, expected %d" % (len(seen), members))
def pct(x, p):
    x = sorted(x); return x[min(len(x) - 1, int(round(p / 100 * (len(x) - 1))))]
print("   %-16s %-10s %8s %8s %8s %8s  (ms)" % ("path", "connection", "p50", "p90", "p99", "max"))
for path in ("/metrics", "/api/v1/status", "/api/v1/members"):
    for mode in ("keep-alive", "fresh"):
        lat = []
        for _ in range(20):
            get(c, path)   # warm-up
        for _ in range(n):
            conn = c if mode == "keep-alive" else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            t0 = time.perf_counter()
            get(conn, path)
            lat.append((time.perf_counter() - t0) * 1e3)
            if conn is not c: conn.close()
        print("   %-16s %-10s %8.3f %8.3f %8.3f %8.3f" % (path, mode, pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat)))
PY
}

case $what in
    a) part_a ;;
    b) part_b ;;
    all) part_a; part_b ;;
    *) echo "usage: bench/http_load.sh [a|b|all]" >&2; exit 2 ;;
esac
