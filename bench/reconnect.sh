#!/usr/bin/env bash
# How fast workers come back after a coordinator restart. Starts an alliance on loopback
# (WORKERS of alpha, beta, gamma training; the others absent), then RESTARTS times:
# lets it run GAP_S seconds, kills the coordinator with SIGKILL, keeps it down for the
# next of DOWN_S (seconds, cycled), restarts it on the same port and data directory, and
# waits for every worker that noticed to log "the coordinator answers again". Prints,
# per restart and then as a distribution, the seconds from the restarted coordinator's
# "serving" line to the start of each worker's first call that got through (log
# timestamps, ms; the worker's line says how long that call, maybe a long poll, took).
#
#   BUILD=build RESTARTS=12 WORKERS=1 DOWN_S="0 1 2 4 8" bash bench/reconnect.sh
# KEEP_LOGS=DIR keeps the logs there.
# Measures; asserts nothing (tests/integration/reconnect.sh holds a bound).
cd "$(dirname "$0")/.."
. tests/integration/lib.sh
RESTARTS=${RESTARTS:-12}
WORKERS=${WORKERS:-1}
GAP_S=${GAP_S:-3}
read -r -a downs <<<"${DOWN_S:-0 1 2 4 8}"
members=(alpha beta gamma)
[ "$WORKERS" -ge 1 ] && [ "$WORKERS" -le 3 ] || fail "WORKERS must be 1..3"

make_corpora
make_alliance "${members[@]}"
LOCAL_STEPS=${LOCAL_STEPS:-12} write_policy 1000 "${members[@]}"
start_coordinator
for m in "${members[@]:0:$WORKERS}"; do start_worker "$m"; done
for _ in $(seq 300); do grep -q "round 1 step" "$T/logs/worker-alpha.log" && break; sleep 0.1; done

noticed_after() { awk -v k="$2" '$1 > k && / warning: / { n = 1 } END { exit !n }' "$1"; }

: >"$T/events"
for i in $(seq "$RESTARTS"); do
    sleep "$GAP_S"
    down=${downs[$(((i - 1) % ${#downs[@]}))]}
    kill_ts=$(iso_now)
    restart_coordinator "$down" "coordinator-$i"
    line="$i $down $kill_ts $SERVE_TS"
    for m in "${members[@]:0:$WORKERS}"; do
        got=""
        for _ in $(seq 1200); do
            got=$(answered_after "$T/logs/worker-$m.log" "$kill_ts")
            [ -n "$got" ] && break
            sleep 0.05
        done
        if [ -n "$got" ]; then
            line+=" $m=$(echo "$got" | cut -d' ' -f1)@$(echo "$got" | sed -n 's/.*which took \([0-9.]*\) s.*/\1/p')"
        elif noticed_after "$T/logs/worker-$m.log" "$kill_ts"; then line+=" $m=lost"
        else line+=" $m=unaffected"; fi
    done
    echo "$line" >>"$T/events"
done

python3 - "$T/events" <<'PY'
import sys, datetime
def t(s): return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
delays, lost = [], 0
print("restart down_s  start_s  per worker: seconds from 'serving' to its first call that got through")
for line in open(sys.argv[1]):
    i, down, kill_ts, serve_ts, *ws = line.split()
    cells = []
    for w in ws:
        m, v = w.split("=")
        if v in ("lost", "unaffected"):
            lost += v == "lost"
            cells.append(f"{m} {v}")
        else:
            ts, took = v.split("@")
            d = t(ts) - float(took) - t(serve_ts)   # when the call that got through started
            delays.append(d)
            cells.append(f"{m} {d:6.2f}")
    start = t(serve_ts) - t(kill_ts) - float(down)
    print(f"{int(i):7d} {float(down):6.1f} {start:8.2f}  " + "  ".join(cells))
delays.sort()
n = len(delays)
if n:
    q = lambda p: delays[min(n - 1, int(p * n))]
    print(f"\n{n} reconnections: min {delays[0]:.2f} s, median {q(0.5):.2f} s, p90 {q(0.9):.2f} s, "
          f"max {delays[-1]:.2f} s; over 1 s: {sum(d > 1 for d in delays)}, over 5 s: "
          f"{sum(d > 5 for d in delays)}, over 10 s: {sum(d > 10 for d in delays)}; "
          f"no answer within 60 s: {lost}")
PY
if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$T"/logs/*.log "$T/events" "$KEEP_LOGS/"; fi
